//! Blue/green colour slots behind an ALB listener: the deployment resource, the slots
//! data source, the rollback action and the lease held for a run, all reading the
//! listener and its two target groups through [`Listener`].

pub mod deployment;
pub mod discovery;
pub mod lease;
pub mod rollback;
pub mod slots;

use crate::provider::Shared;
use crate::router::elbv2::Listener;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::value::Value;

/// Each colour needs its own target group.
pub fn validate_colours(config: &Value, diags: &mut Diagnostics) {
    let known = |name: &str| config.get(name).and_then(Value::as_str);
    if let (Some(blue), Some(green)) = (
        known("blue_target_group_arn"),
        known("green_target_group_arn"),
    ) {
        if blue == green {
            diags.attribute_error(
                AttributePath::attr("green_target_group_arn"),
                "Blue and green are the same target group",
                "green_target_group_arn must name a different target group than blue_target_group_arn: each colour needs its own.",
            );
        }
    }
}

/// The listener and colour target groups a configuration names (`listener_arn`,
/// `blue_target_group_arn`, `green_target_group_arn`); `None` while any is unknown.
pub async fn listener(shared: &Shared, config: &Value) -> Option<Listener> {
    let arn = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
    let (listener, blue, green) = (
        arn("listener_arn")?,
        arn("blue_target_group_arn")?,
        arn("green_target_group_arn")?,
    );
    Some(Listener {
        api: shared.elbv2().await,
        listener,
        blue,
        green,
    })
}
