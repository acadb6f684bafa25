//! Terraform's plugin protocol, independent of any resource: the value codec, schemas,
//! diagnostics, schema-driven planning, the traits resources implement, and the gRPC
//! services of protocols 5 and 6.

pub mod diagnostics;
pub mod grpc;
pub mod identity;
pub mod plan;
pub mod resource;
pub mod schema;
pub mod server;
pub mod value;
