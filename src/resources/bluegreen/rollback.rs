//! `action "immutable_rollback"` (Terraform 1.14+): the incident's rollback, with no
//! configuration change and no pull request. `terraform apply -invoke=action.immutable_rollback.NAME`
//! gates the warm colour on the load balancer's health and moves all traffic back to it
//! (see [`Rollout::roll_back_now`]). An action changes no state: the rollback is marked
//! on the target group traffic left, which the deployment's read and plan understand.

use std::sync::Arc;

use crate::duration;
use crate::lease::s3::Keeper;
use crate::lease::{self, fenced::Fenced};
use crate::provider::Shared;
use crate::resources::release::blocks;
use crate::rollout::Rollout;
use crate::router::TrafficRouter;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Action, Ctx, Progress};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::Value;
use crate::validators::{self, DurationAttribute};

/// How long the warm colour is given, by default, to be reported healthy.
const TIMEOUT: &str = "5m";

pub struct Rollback {
    pub shared: Arc<Shared>,
}

fn schema() -> Schema {
    let arn = |name: &str, kind: &'static str, description: &str| {
        Attribute::string(name)
            .required()
            .description(description)
            .validate(validators::elb_arn(kind))
    };
    Schema::new(
        Block::new(
            "Moves all traffic of an `immutable_bluegreen_deployment`'s listener back to the warm colour, at once, once the load balancer reports its targets healthy. For the incident: no configuration change, no pull request. \
             Afterwards a plan with the configuration unchanged moves no traffic and warns which release serves; setting `release` to it adopts the rollback with no traffic moving; a new release deploys as usual."
        )
        .attribute(arn("listener_arn", "listener", "The deployment's listener."))
        .attribute(arn("blue_target_group_arn", "targetgroup", "The deployment's blue target group."))
        .attribute(arn("green_target_group_arn", "targetgroup", "The deployment's green target group."))
        .attribute(
            Attribute::string("timeout")
                .optional()
                .description(&format!("How long the load balancer is given to report the warm colour healthy; traffic is not moved when it does not. Defaults to `{TIMEOUT}`."))
                .duration_within(duration::TIMEOUT),
        ),
    )
}

#[tonic::async_trait]
impl Action for Rollback {
    fn type_name(&self) -> &'static str {
        "immutable_rollback"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        super::validate_colours(config, diags);
    }

    async fn invoke(
        &self,
        ctx: &Ctx,
        config: &Value,
        progress: &Progress,
        diags: &mut Diagnostics,
    ) {
        let Some(listener) = super::listener(&self.shared, config).await else {
            diags.error(
                "Unknown listener",
                "listener_arn and the target group ARNs must be known when the action runs.",
            );
            return;
        };
        let timeout = config
            .get("timeout")
            .and_then(Value::as_str)
            .unwrap_or(TIMEOUT);
        let timeout = match duration::parse(timeout) {
            Ok(timeout) => timeout,
            Err(e) => {
                return diags.attribute_error(AttributePath::attr("timeout"), "Invalid timeout", e)
            }
        };
        // The load balancer's own health only: the action carries no HTTP checks.
        let health = match blocks::health(&Value::Null) {
            Ok(health) => health,
            Err(e) => return diags.error("Provider bug", e),
        };
        let keeper = Keeper::of(self.shared.aws.s3_leases().await, &listener);
        let keeper = keeper.router();
        let held = match lease::acquire(keeper).await {
            Ok(held) => held,
            Err(refused) => return diags.error("Rollback failed", format!("{refused}")),
        };
        let rolled_back = lease::while_held(keeper, &held, async {
            let records = listener
                .records()
                .await
                .map_err(|e| format!("{e}. Traffic was not moved."))?;
            let fenced = Fenced::new(keeper, &held, records);
            Rollout {
                router: &fenced,
                test_route: None,
                http: &self.shared.http,
                stop: &ctx.stop,
                health: &health,
                deadline: duration::later(tokio::time::Instant::now(), timeout),
                analysis: None,
            }
            .roll_back_now(&|message| progress.say(message))
            .await
        })
        .await;
        if let Err(e) = rolled_back {
            diags.error("Rollback failed", e);
        }
    }
}
