//! The provider's resources and data sources, one file each with its schema beside its
//! plan and apply logic.

pub mod bluegreen;
pub mod common;
pub mod health_gate;
