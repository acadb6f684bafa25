//! `data "immutable_bluegreen_slots"`: which colour a release lands on, known at plan
//! time, so that per-colour services (ECS services, Auto Scaling groups registered in the
//! colour target groups) can take their image from it in the same apply as the
//! deployment that cuts over to them.

use std::sync::Arc;

use crate::provider::Shared;
use crate::rollout::observe;
use crate::router::Color;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Ctx, DataSource};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::Value;
use crate::validators;

pub struct BlueGreenSlots {
    pub shared: Arc<Shared>,
}

fn schema() -> Schema {
    Schema::new(
        Block::new(
            "Tells, at plan time, which colour receives a release: the live colour keeps its release and the standby colour gets `release`, unless a colour already holds it (a rollback: then both keep theirs). Read from the listener's weights and the target groups' `immutable:release` tags.",
        )
        .attribute(Attribute::string("listener_arn").required().description("ARN of the production listener.").validate(validators::elb_arn("listener")))
        .attribute(Attribute::string("blue_target_group_arn").required().description("ARN of the blue target group.").validate(validators::elb_arn("targetgroup")))
        .attribute(Attribute::string("green_target_group_arn").required().description("ARN of the green target group.").validate(validators::elb_arn("targetgroup")))
        .attribute(Attribute::string("release").required().description("The release about to be deployed.").validate(validators::non_empty))
        .attribute(Attribute::string("active_color").computed().description("The colour serving traffic now (`green` when neither does, so that blue is the standby)."))
        .attribute(Attribute::string("standby_color").computed().description("The other colour, where a new release lands."))
        .attribute(Attribute::string("blue_release").computed().description("The release the blue colour should run."))
        .attribute(Attribute::string("green_release").computed().description("The release the green colour should run.")),
    )
}

#[tonic::async_trait]
impl DataSource for BlueGreenSlots {
    fn type_name(&self) -> &'static str {
        "immutable_bluegreen_slots"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, _ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Value {
        let (Some(router), Some(release)) = (
            super::listener(&self.shared, config).await,
            config.get("release").and_then(Value::as_str),
        ) else {
            diags.error(
                "Provider bug",
                "the data source was read with unknown arguments",
            );
            return Value::Null;
        };
        let observed = match observe(&router).await {
            Ok(o) => o,
            Err(e) => {
                diags.attribute_error(
                    AttributePath::attr("listener_arn"),
                    "Cannot read the listener",
                    e.to_string(),
                );
                return Value::Null;
            }
        };
        // The standby colour takes the release, unless a colour holds it already (a
        // rollback, or a release that is live): then both keep what they hold. When
        // neither colour serves, blue is the standby, as the deployment decides on create.
        let standby = observed.live.map_or(Color::Blue, Color::other);
        let held = Color::BOTH
            .into_iter()
            .any(|c| observed.release(c) == Some(release));
        let release_of = |c: Color| -> Value {
            if c == standby && !held {
                release.into()
            } else {
                observed.release(c).map_or(Value::Null, Value::from)
            }
        };
        let mut state = config.clone();
        for (name, value) in [
            ("active_color", Value::from(standby.other().name())),
            ("standby_color", Value::from(standby.name())),
            ("blue_release", release_of(Color::Blue)),
            ("green_release", release_of(Color::Green)),
        ] {
            if let Some(slot) = state.get_mut(name) {
                *slot = value;
            }
        }
        state
    }
}
