//! What the deployment resources share: the `health_check`, `traffic` and `timeouts`
//! blocks with their typed models ([`blocks`], [`model`]), and plan, apply, read and
//! delete written once over any [`TrafficRouter`](crate::router::TrafficRouter)
//! ([`lifecycle`]).

pub mod analysis;
pub mod blocks;
pub mod lifecycle;
pub mod model;
pub mod schema;
