//! Terraform's plugin protocol and the go-plugin services around it, as Rust types.
//!
//! The `.proto` files in this crate's directory are the wire contract; see their headers
//! for the protocol versions they implement and where the definitions are published.

/// Terraform plugin protocol 6 (Terraform 1.0 and later).
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// Terraform plugin protocol 5 (Terraform 0.12 and later).
pub mod tfplugin5 {
    tonic::include_proto!("tfplugin5");
}

/// go-plugin's own services: controller (shutdown), stdio and broker.
pub mod plugin {
    tonic::include_proto!("plugin");
}
