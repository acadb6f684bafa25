//! terraform-provider-immutable: immutable, health-gated blue/green releases as
//! Terraform resources.
//!
//! The tree follows the layers: [`plugin`] is go-plugin's handshake, listener and
//! AutoMTLS; [`tfplugin`] is Terraform's protocol (values, schemas, planning, the gRPC
//! services); [`provider`] and the resource modules are the product, written against
//! [`tfplugin::resource`] as plain Rust.

pub mod analysis;
pub mod aws;
pub mod budget;
pub mod duration;
pub mod error_chain;
pub mod lease;
pub mod logging;
pub mod plugin;
pub mod probe;
pub mod provider;
pub mod redact;
pub mod resources;
pub mod rollout;
pub mod router;
pub mod text;
pub mod tfplugin;
pub mod validators;
