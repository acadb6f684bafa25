//! A terraform-plugin-testing-style harness for this provider: real Terraform CLIs driven
//! through steps of config, plan checks, state checks and import verification, against
//! moto (ELBv2 on loopback) and real HTTP apps on loopback.

pub mod alb;
pub mod app;
pub mod checks;
pub mod cli;
pub mod elb;
pub mod haproxy;
pub mod hcl;
pub mod keeper;
pub mod load;
pub mod moto;
pub mod prometheus;
pub mod proxy;
pub mod s3;
pub mod sshd;
pub mod terraform;
pub mod traffic;
pub mod workspace;
