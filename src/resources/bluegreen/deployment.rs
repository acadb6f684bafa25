//! `immutable_bluegreen_deployment`: owns the default action of one ALB listener, which
//! always forwards to both colour target groups (live at 100, standby at 0). A new
//! `release` (or new `targets`) lands on the standby colour; the plan shows the flip with
//! known values, and apply performs the health-gated cut-over (see [`crate::rollout`]).

use std::sync::Arc;

use crate::provider::Shared;
use crate::resources::release::analysis::Terms;
use crate::resources::release::blocks;
use crate::resources::release::lifecycle::{self, ImportError, Site};
use crate::resources::release::model::set;
use crate::resources::release::schema::{self, Words};
use crate::rollout::Observed;
use crate::router::elbv2::{Listener, RELEASE_TAG};
use crate::router::{Color, TrafficRouter};
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::{Ctx, Resource};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::{Type, Value};
use crate::validators;

pub struct BlueGreenDeployment {
    pub shared: Arc<Shared>,
}

/// The computed attribute of this resource's own, beside the shared ones.
const OWN_COMPUTED: [&str; 1] = ["active_target_group_arn"];

/// What identifies a deployment (Terraform 1.12+ `import { identity = { ... } }`).
const IDENTITY: [&str; 3] = [
    "listener_arn",
    "blue_target_group_arn",
    "green_target_group_arn",
];

fn schema() -> Schema {
    let block = Block::new(
            "Blue/green releases on one Application Load Balancer listener. The listener's default action always forwards to both colour target groups: the live colour at weight 100 and the standby at weight 0, so the load balancer keeps health-checking the standby. \
             A new `release` (or new `targets`) always lands on the standby colour: the plan shows the colour flip, and apply registers the targets, health-gates the standby colour, shifts traffic, verifies the listener, bakes, and keeps the previous colour warm for an instant rollback. \
             A failure before traffic moves leaves the listener untouched; a failure after it moves traffic back.",
        )
        .attribute(
            Attribute::string("listener_arn")
                .required()
                .requires_replace()
                .description("ARN of the production listener whose default action this resource owns.")
                .validate(validators::elb_arn("listener")),
        )
        .attribute(
            Attribute::string("blue_target_group_arn")
                .required()
                .requires_replace()
                .description("ARN of the blue colour's target group.")
                .validate(validators::elb_arn("targetgroup")),
        )
        .attribute(
            Attribute::string("green_target_group_arn")
                .required()
                .requires_replace()
                .description("ARN of the green colour's target group. Must differ from the blue one.")
                .validate(validators::elb_arn("targetgroup")),
        )
        .attribute(
            Attribute::new(
                "targets",
                Type::list(Type::object([("id", Type::String), ("port", Type::Number), ("availability_zone", Type::String)])),
            )
            .optional()
            .nested_list(vec![
                Attribute::string("id").required().description("Instance ID or IP address.").validate(validators::elb_target_id),
                Attribute::number("port").optional().description("Port, 1-65535; defaults to the target group's port.").validate(validators::int_in_range(1, 65535)),
                Attribute::string("availability_zone").optional().description("Availability zone, for IP targets outside the VPC."),
            ])
            .description("The release's fleet, registered by the provider into the standby colour (stale targets there are deregistered first). Leave it out when the fleet registers itself (ECS services, Auto Scaling groups). A change of the set of targets lands on the standby colour; reordering them, giving them to a deployment that had none (after import), or removing them is not a release."),
        )
        .attribute(
            Attribute::string("test_listener_arn")
                .optional()
                .description("A test listener pointed at the standby colour before the health gate, like CodeDeploy's test traffic route.")
                .validate(validators::elb_arn("listener")),
        )
        .attribute(Attribute::string("id").computed().use_state_for_unknown().description("The listener ARN."))
        .attribute(Attribute::string("active_target_group_arn").computed().description("The live colour's target group."));
    Schema::new(schema::with_release_model(
        block,
        &Words {
            checker: "the load balancer",
            splitter: "the listener's forward",
            analysis: Terms {
                placeholders: &["color", "release", "target_group_arn"],
                cloudwatch: true,
            },
        },
    ))
}

/// The live colour's target group.
fn live_extras(
    listener: &Listener,
) -> impl Fn(Option<Color>) -> Vec<(&'static str, Value)> + Sync + '_ {
    move |live| {
        vec![(
            "active_target_group_arn",
            live.map_or(Value::Null, |c| listener.target_group(c).into()),
        )]
    }
}

/// The listener's [`Site`]: errors about it name `listener_arn`, and each colour's its
/// target group's attribute.
fn site<'a>(
    listener: &'a Listener,
    test_route: Option<&'a dyn TrafficRouter>,
    extras: &'a (dyn Fn(Option<Color>) -> Vec<(&'static str, Value)> + Sync),
) -> Site<'a> {
    Site {
        router: listener,
        test_route,
        noun: "listener",
        router_attr: "listener_arn",
        reach_attr: "listener_arn",
        color_attrs: ["blue_target_group_arn", "green_target_group_arn"],
        problem_title: "The listener cannot forward to this target group",
        checked: "target groups",
        live_extras: extras,
        alarms: None,
        leases: None,
    }
}

impl BlueGreenDeployment {
    /// The state of the deployment a listener already is: the live colour from its
    /// weights, releases and generation from the tags. Import reads them (`observed` is
    /// `None`); discovery passes what its listing read.
    pub async fn adopt(
        &self,
        listener: &Listener,
        observed: Option<Observed>,
    ) -> Result<Value, String> {
        let mut state = schema().block.empty_value();
        for (name, value) in [
            ("id", &listener.listener),
            ("listener_arn", &listener.listener),
            ("blue_target_group_arn", &listener.blue),
            ("green_target_group_arn", &listener.green),
        ] {
            set(&mut state, name, value.as_str());
        }
        let extras = live_extras(listener);
        match lifecycle::import(&site(listener, None, &extras), state, observed, false).await {
            Ok(state) => Ok(state),
            Err(ImportError::Router(e)) => Err(e.to_string()),
            Err(ImportError::NoLiveColour) => Err("The listener forwards to neither target group, so no colour is live. Create the resource instead: it adopts the listener.".to_string()),
            Err(ImportError::NoRelease(live)) => Err(format!("The live ({live}) target group has no {RELEASE_TAG} tag, so the release it serves is unknown. Create the resource instead, or tag the target group with its release.")),
        }
    }

    async fn listener(&self, config: &Value) -> Option<Listener> {
        super::listener(&self.shared, config).await
    }

    async fn deploy(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value {
        let Some(listener) = self.listener(planned).await else {
            diags.error(
                "Provider bug",
                "the target group and listener ARNs are unknown at apply",
            );
            return prior.clone();
        };
        let test_route = planned
            .get("test_listener_arn")
            .and_then(Value::as_str)
            .map(|arn| Listener {
                listener: arn.to_string(),
                ..listener.clone()
            });
        let extras = live_extras(&listener);
        let mut site = site(
            &listener,
            test_route.as_ref().map(|t| t as &dyn TrafficRouter),
            &extras,
        );
        // Built from the SDK configuration the listener already loaded; no call until an
        // analysis reads `cloudwatch_alarms`.
        site.alarms = Some(self.shared.aws.cloudwatch().await);
        site.leases = self.shared.aws.s3_leases().await;
        lifecycle::apply(&site, ctx, &self.shared.http, prior, planned, diags).await
    }
}

#[tonic::async_trait]
impl Resource for BlueGreenDeployment {
    fn type_name(&self) -> &'static str {
        "immutable_bluegreen_deployment"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        super::validate_colours(config, diags);
        blocks::validate(config, diags);
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        prior: &Value,
        config: &Value,
        planned: &mut Value,
        diags: &mut Diagnostics,
    ) {
        let Some(listener) = self.listener(planned).await else {
            return lifecycle::plan_unknown(planned, &OWN_COMPUTED);
        };
        set(planned, "id", listener.listener.as_str());
        let extras = live_extras(&listener);
        let site = site(&listener, None, &extras);
        if prior.is_null() {
            lifecycle::plan_create(&site, planned, diags).await
        } else {
            lifecycle::plan_update(&site, prior, config, planned, &OWN_COMPUTED, diags)
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, diags: &mut Diagnostics) -> Value {
        self.deploy(ctx, &Value::Null, planned, diags).await
    }

    async fn read(&self, _ctx: &Ctx, state: &Value, diags: &mut Diagnostics) -> Value {
        let Some(listener) = self.listener(state).await else {
            return state.clone();
        };
        let extras = live_extras(&listener);
        lifecycle::read(&site(&listener, None, &extras), state, diags).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value {
        self.deploy(ctx, prior, planned, diags).await
    }

    /// Leaves the listener serving the active colour (never a black hole) and removes
    /// the provider's tags.
    async fn delete(&self, _ctx: &Ctx, prior: &Value, diags: &mut Diagnostics) {
        let Some(listener) = self.listener(prior).await else {
            return;
        };
        let extras = live_extras(&listener);
        lifecycle::delete(&site(&listener, None, &extras), prior, diags).await
    }

    /// `terraform import immutable_bluegreen_deployment.x "<listener>,<blue>,<green>"`:
    /// the live colour from the listener, releases and generation from the tags.
    fn identity(&self) -> &'static [&'static str] {
        &IDENTITY
    }

    /// The ID `terraform import` takes: the three ARNs, in the identity's order.
    fn import_id(&self, identity: &Value) -> Option<String> {
        let arns: Option<Vec<&str>> = IDENTITY
            .iter()
            .map(|name| identity.get(name).and_then(Value::as_str))
            .collect();
        Some(arns?.join(","))
    }

    async fn import(&self, _ctx: &Ctx, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        let parts: Vec<&str> = id.split(',').map(str::trim).collect();
        let [listener, blue, green] = parts.as_slice() else {
            diags.error("Invalid import ID", format!("Expected \"<listener_arn>,<blue_target_group_arn>,<green_target_group_arn>\", got {id:?}."));
            return None;
        };
        let checks = [
            (
                validators::elb_arn("listener")(&Value::from(*listener)),
                "listener ARN",
            ),
            (
                validators::elb_arn("targetgroup")(&Value::from(*blue)),
                "blue target group ARN",
            ),
            (
                validators::elb_arn("targetgroup")(&Value::from(*green)),
                "green target group ARN",
            ),
        ];
        for (result, what) in checks {
            if let Err(e) = result {
                diags.error("Invalid import ID", format!("The {what}: {e}"));
                return None;
            }
        }
        let listener = Listener {
            api: self.shared.elbv2().await,
            listener: listener.to_string(),
            blue: blue.to_string(),
            green: green.to_string(),
        };
        match self.adopt(&listener, None).await {
            Ok(state) => Some(state),
            Err(failure) => {
                diags.error("Cannot import", failure);
                None
            }
        }
    }
}
