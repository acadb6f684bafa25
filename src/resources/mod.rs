//! The provider's resources and data sources, one file each with its schema beside its
//! plan and apply logic; [`release`] is what the two deployment resources share.

pub mod bluegreen;
pub mod common;
pub mod haproxy_deployment;
pub mod health_gate;
pub mod release;
