//! `immutable_bluegreen_deployment`: owns the default action of one ALB listener, which
//! always forwards to both colour target groups (live at 100, standby at 0). A new
//! `release` (or new `targets`) lands on the standby colour; the plan shows the flip with
//! known values, and apply performs the health-gated cut-over (see `rollout`).

use std::sync::Arc;
use std::time::Duration;

use super::rollout::{Endpoint, Health, Outcome, Release, Rollout, Strategy};
use super::{observe, Color, Slots, GENERATION_TAG, RELEASE_TAG};
use crate::probe::{Method, StatusMatcher};
use crate::provider::Shared;
use crate::resources::common::{self, timeouts_block};
use crate::router::{shift, RouterError, Target, TrafficRouter};
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Ctx, Resource};
use crate::tfplugin::schema::{Attribute, Block, Nesting, Schema};
use crate::tfplugin::value::{Type, Value};
use crate::{duration, validators};

const DEFAULT_TIMEOUT: &str = "30m";

pub struct BlueGreenDeployment {
    pub shared: Arc<Shared>,
}

/// The attributes the provider computes; planned explicitly in every case.
const COMPUTED: [&str; 10] = [
    "active_color",
    "standby_color",
    "active_release",
    "previous_release",
    "blue_release",
    "green_release",
    "active_target_group_arn",
    "generation",
    "traffic_weights",
    "deployed_at",
];

fn schema() -> Schema {
    let computed = |name: &str, ty: Type, description: &str| {
        Attribute::new(name, ty).computed().description(description)
    };
    Schema::new(
        Block::new(
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
            Attribute::string("release")
                .required()
                .description("The immutable artifact being released: an image tag, AMI ID or commit. A change lands on the standby colour; setting it back to the previous release is a rollback to the still-warm colour.")
                .validate(validators::non_empty),
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
        .attribute(
            Attribute::bool("auto_rollback")
                .default(true)
                .description("When a check fails after all traffic moved (during `bake_time`), move it back to the previous colour. A partial shift (canary or linear) is always moved back."),
        )
        .attribute(
            Attribute::bool("retain_previous")
                .default(true)
                .description("Keep the previous colour's `targets` registered (at weight 0) for an instant rollback. When false they are deregistered after a successful cut-over."),
        )
        .attribute(
            Attribute::string("rollback_window")
                .optional()
                .description("A rollback to the colour that served until less than this long ago (`release` set back to `previous_release`, its fleet unchanged) skips the traffic steps and the HTTP threshold: the load balancer must still report the colour healthy, and one HTTP check must pass. E.g. `\"1h\"`. Unset: a rollback is gated like any release.")
                .validate(validators::duration),
        )
        .attribute(Attribute::string("id").computed().use_state_for_unknown().description("The listener ARN."))
        .attribute(computed("active_color", Type::String, "The colour serving traffic: `blue` or `green`."))
        .attribute(computed("standby_color", Type::String, "The colour at weight 0, where the next release lands."))
        .attribute(computed("active_release", Type::String, "The release serving traffic."))
        .attribute(computed("previous_release", Type::String, "The release that served before the current one: setting `release` back to it is a rollback."))
        .attribute(computed("blue_release", Type::String, "The release the blue colour holds."))
        .attribute(computed("green_release", Type::String, "The release the green colour holds."))
        .attribute(computed("active_target_group_arn", Type::String, "The live colour's target group."))
        .attribute(computed("generation", Type::Number, "Cut-overs so far; +1 per release or rollback."))
        .attribute(computed("traffic_weights", Type::map(Type::Number), "The listener's forward weights per colour, as read from the load balancer, e.g. `{ blue = 0, green = 100 }`."))
        .attribute(computed("deployed_at", Type::String, "When the last cut-over finished (RFC 3339)."))
        .block("health_check", Nesting::Single, health_check_block())
        .block("traffic", Nesting::Single, traffic_block())
        .block("timeouts", Nesting::Single, timeouts_block(&[("create", DEFAULT_TIMEOUT), ("update", DEFAULT_TIMEOUT)])),
    )
}

fn health_check_block() -> Block {
    Block::new(
        "How the standby colour is checked before it takes traffic and while traffic moves. The load balancer must report at least `min_healthy_targets` healthy targets (and all of `targets`); then the HTTP checks must pass `healthy_threshold` times in a row. Without this block only the load balancer's target health is checked.",
    )
    .attribute(Attribute::string("url").optional().description("URL to check; `{color}` is replaced by `blue` or `green`, e.g. `https://{color}.internal.example.com/health`. Conflicts with `path`.").validate(validators::http_url_template))
    .attribute(Attribute::string("path").optional().description("Path to request from every healthy IP target of the standby colour directly, e.g. `/health`. Conflicts with `url`.").validate(validators::url_path))
    .attribute(Attribute::string("protocol").optional().description("`HTTP` or `HTTPS`, with `path`. Defaults to `HTTP`.").validate(validators::one_of(&["HTTP", "HTTPS"])))
    .attribute(Attribute::number("port").optional().description("Port, with `path`. Defaults to each target's registered port.").validate(validators::int_in_range(1, 65535)))
    .attribute(Attribute::string("expected_status").optional().description("Passing status codes in ELB matcher syntax. Defaults to `200-299`.").validate(validators::status_matcher))
    .attribute(Attribute::string("body_regex").optional().description("A regular expression the body must match.").validate(validators::regex))
    .attribute(Attribute::number("healthy_threshold").optional().description("Consecutive passing checks needed. Defaults to `3`.").validate(validators::int_in_range(1, 1000)))
    .attribute(Attribute::number("unhealthy_threshold").optional().description("Before the shift: consecutive failures that fail the gate early (`0`, the default, keeps trying until the timeout). While traffic moves and bakes: consecutive failures that roll back (at least 1).").validate(validators::int_in_range(0, 1000)))
    .attribute(Attribute::string("interval").optional().description("Between checks. Defaults to `5s`.").validate(validators::duration))
    .attribute(Attribute::string("request_timeout").optional().description("Per check. Defaults to `2s`.").validate(validators::duration))
    .attribute(Attribute::string_map("headers").optional().sensitive().description("Request headers, e.g. an auth token. Sensitive."))
    .attribute(Attribute::bool("insecure_skip_verify").optional().description("Skip TLS verification. Defaults to `false`."))
    .attribute(Attribute::number("min_healthy_targets").optional().description("Healthy targets the load balancer must report in the standby colour. Defaults to `1`; the provider never cuts over to a colour with none, as ALB would then send traffic to all of its targets.").validate(validators::int_in_range(1, 1000)))
}

fn traffic_block() -> Block {
    Block::new("How traffic moves to the new colour. Defaults to all at once with no bake time.")
        .attribute(Attribute::string("strategy").optional().description("`all_at_once` (default), `canary` (`canary_percent`, then the rest after `step_interval`) or `linear` (`step_percent` more every `step_interval`).").validate(validators::one_of(&["all_at_once", "canary", "linear"])))
        .attribute(Attribute::number("canary_percent").optional().description("With `canary`: the first share of traffic, 1-99.").validate(validators::int_in_range(1, 99)))
        .attribute(Attribute::number("step_percent").optional().description("With `linear`: the share added per step, 1-99.").validate(validators::int_in_range(1, 99)))
        .attribute(Attribute::string("step_interval").optional().description("Required with `canary` or `linear`: time between steps, while checks keep running.").validate(validators::duration))
        .attribute(Attribute::string("bake_time").optional().description("After 100%: how long checks keep running before the release is done; a failure moves traffic back when `auto_rollback` is on (Ctrl-C or the timeout always does). Defaults to `0s`.").validate(validators::duration))
}

/// A nested block's attribute, or its default when the block or the attribute is null.
fn nested<'a>(config: &'a Value, block: &str, attr: &str) -> Option<&'a Value> {
    config
        .get(block)
        .and_then(|b| b.get(attr))
        .filter(|v| !v.is_null())
}

fn nested_str<'a>(config: &'a Value, block: &str, attr: &str) -> Option<&'a str> {
    nested(config, block, attr).and_then(Value::as_str)
}

fn nested_duration(
    config: &Value,
    block: &str,
    attr: &str,
    default: &str,
) -> Result<Duration, String> {
    duration::parse(nested_str(config, block, attr).unwrap_or(default))
}

fn health(config: &Value) -> Result<Health, String> {
    let number = |attr: &str, default: i64| {
        nested(config, "health_check", attr)
            .and_then(Value::as_i64)
            .unwrap_or(default) as u32
    };
    let endpoint = match (
        nested_str(config, "health_check", "url"),
        nested_str(config, "health_check", "path"),
    ) {
        (Some(url), _) => Some(Endpoint::Url(url.to_string())),
        (None, Some(path)) => Some(Endpoint::Targets {
            path: path.to_string(),
            protocol: nested_str(config, "health_check", "protocol")
                .unwrap_or("HTTP")
                .to_string(),
            port: nested(config, "health_check", "port")
                .and_then(Value::as_i64)
                .map(|p| p as u16),
        }),
        (None, None) => None,
    };
    Ok(Health {
        endpoint,
        method: Method::Get,
        headers: common::string_map(config.get("health_check").and_then(|h| h.get("headers"))),
        expected_status: StatusMatcher::parse(
            nested_str(config, "health_check", "expected_status").unwrap_or("200-299"),
        )?,
        body_regex: nested_str(config, "health_check", "body_regex")
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| e.to_string())?,
        healthy_threshold: number("healthy_threshold", 3),
        unhealthy_threshold: number("unhealthy_threshold", 0),
        interval: nested_duration(config, "health_check", "interval", "5s")?,
        request_timeout: nested_duration(config, "health_check", "request_timeout", "2s")?,
        insecure_skip_verify: nested(config, "health_check", "insecure_skip_verify")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        min_healthy_targets: number("min_healthy_targets", 1),
    })
}

fn strategy(config: &Value) -> Result<Strategy, String> {
    let percent = |attr: &str| {
        nested(config, "traffic", attr)
            .and_then(Value::as_i64)
            .map(|p| p as u32)
    };
    let interval = nested_duration(config, "traffic", "step_interval", "0s")?;
    Ok(
        match nested_str(config, "traffic", "strategy").unwrap_or("all_at_once") {
            "canary" => Strategy::Canary {
                percent: percent("canary_percent").unwrap_or(10),
                interval,
            },
            "linear" => Strategy::Linear {
                step: percent("step_percent").unwrap_or(10),
                interval,
            },
            _ => Strategy::AllAtOnce,
        },
    )
}

fn targets(config: &Value) -> Option<Vec<Target>> {
    let Some(Value::List(items)) = config.get("targets") else {
        return None;
    };
    Some(
        items
            .iter()
            .map(|t| Target {
                id: t
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                port: t.get("port").and_then(Value::as_i64).map(|p| p as u16),
                availability_zone: t
                    .get("availability_zone")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
            .collect(),
    )
}

/// `targets` as a comparable set: order carries no meaning.
fn sorted_targets(config: &Value) -> Option<Vec<Target>> {
    targets(config).map(|mut t| {
        t.sort();
        t
    })
}

/// Whether this apply rolls back, within `rollback_window`, to the colour that served
/// until the last cut-over: the release is the previous one, and the last cut-over (when
/// that colour stopped serving) is recent enough. (The rollout also requires the colour
/// to hold that release and its fleet still.)
fn within_rollback_window(prior: &Value, planned: &Value) -> bool {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let Some(window) = text(planned, "rollback_window").and_then(|w| duration::parse(&w).ok())
    else {
        return false;
    };
    let rollback = text(planned, "release").is_some()
        && text(planned, "release") == text(prior, "previous_release");
    let since_cut_over = text(prior, "deployed_at")
        .and_then(|at| humantime::parse_rfc3339(&at).ok())
        .and_then(|at| at.elapsed().ok());
    rollback && since_cut_over.is_some_and(|elapsed| elapsed <= window)
}

fn set(state: &mut Value, name: &str, value: impl Into<Value>) {
    if let Some(slot) = state.get_mut(name) {
        *slot = value.into();
    }
}

fn color_of(state: &Value, attr: &str) -> Option<Color> {
    state
        .get(attr)
        .and_then(Value::as_str)
        .and_then(Color::parse)
}

fn release_attr(color: Color) -> &'static str {
    match color {
        Color::Blue => "blue_release",
        Color::Green => "green_release",
    }
}

/// Plans a cut-over from `from` (the live colour) to the other colour: the values the
/// plan shows, all known except `deployed_at` (and the release when it is unknown).
fn plan_flip(
    planned: &mut Value,
    slots: &Slots,
    from: Color,
    from_release: Value,
    generation: i64,
) {
    let to = from.other();
    let release = planned.get("release").cloned().unwrap_or(Value::Null);
    set(planned, "active_color", to.name());
    set(planned, "standby_color", from.name());
    set(planned, "active_release", release.clone());
    set(planned, "previous_release", from_release.clone());
    set(planned, release_attr(to), release);
    set(planned, release_attr(from), from_release);
    set(planned, "active_target_group_arn", slots.target_group(to));
    set(planned, "generation", generation + 1);
    set(
        planned,
        "traffic_weights",
        slots.weights_value(&slots.all_on(to)),
    );
    set(planned, "deployed_at", Value::Unknown);
}

impl BlueGreenDeployment {
    async fn router(&self) -> Arc<dyn TrafficRouter> {
        self.shared.router().await
    }

    /// Plans a create: the release goes to the colour not serving traffic now (blue when
    /// neither is), read from the listener and the target groups' tags.
    async fn plan_create(&self, slots: &Slots, planned: &mut Value, diags: &mut Diagnostics) {
        let router = self.router().await;
        match observe(router.as_ref(), slots).await {
            Ok(observed) => {
                let from = observed.live.unwrap_or(Color::Green);
                let from_release = observed.release(from).map_or(Value::Null, Value::from);
                plan_flip(planned, slots, from, from_release, observed.generation);
            }
            Err(e) => diags.attribute_error(
                AttributePath::attr("listener_arn"),
                "Cannot read the listener",
                format!("Planning needs to know which colour is live: {e}."),
            ),
        }
    }

    /// Applies a create or an update.
    async fn deploy(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
        diags: &mut Diagnostics,
    ) -> Value {
        let Some(slots) = Slots::from_config(planned) else {
            diags.error(
                "Provider bug",
                "the target group and listener ARNs are unknown at apply",
            );
            return prior.clone();
        };
        let (health, strategy) = match (health(planned), strategy(planned)) {
            (Ok(h), Ok(s)) => (h, s),
            (Err(e), _) | (_, Err(e)) => {
                diags.error("Invalid settings", e);
                return prior.clone();
            }
        };
        let operation = if prior.is_null() { "create" } else { "update" };
        let timeout = common::timeout(planned, operation, DEFAULT_TIMEOUT)
            .unwrap_or(Duration::from_secs(1800));
        let router = self.router().await;
        let rollout = Rollout {
            router: router.as_ref(),
            http: &self.shared.http,
            stop: &ctx.stop,
            slots: &slots,
            health: &health,
            deadline: tokio::time::Instant::now() + timeout,
        };
        let to = color_of(planned, "active_color").unwrap_or(Color::Blue);
        let mut state = planned.clone();
        let flip = prior.is_null() || color_of(prior, "active_color") != Some(to);
        if !flip {
            return self.converge(&rollout, prior, state, to, diags).await;
        }
        let release_text = planned
            .get("release")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let release = Release {
            color: to,
            release: release_text.clone(),
            targets: targets(planned),
            tag_release: prior.get(release_attr(to)).and_then(Value::as_str)
                != Some(release_text.as_str()),
            test_listener: planned
                .get("test_listener_arn")
                .and_then(Value::as_str)
                .map(str::to_string),
            strategy,
            bake_time: nested_duration(planned, "traffic", "bake_time", "0s").unwrap_or_default(),
            auto_rollback: planned
                .get("auto_rollback")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            retain_previous: planned
                .get("retain_previous")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            generation: planned
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            quick_rollback: within_rollback_window(prior, planned),
        };
        if !self
            .target_groups_usable(router.as_ref(), &slots, diags)
            .await
        {
            return prior.clone();
        }
        let summary = format!("Release {release_text:?} was not deployed to {to}");
        let now = || common::rfc3339(std::time::SystemTime::now());
        match rollout.run(&release).await {
            Outcome::Done(weights) => {
                set(&mut state, "traffic_weights", slots.weights_value(&weights));
                set(&mut state, "deployed_at", now());
                state
            }
            Outcome::NotMoved {
                error,
                holds_release,
            } => {
                diags.error(summary, error);
                // Nothing that serves traffic changed, but the standby colour may now hold
                // the failed release: the state says so, and still plans the same release.
                let mut state = prior.clone();
                if holds_release {
                    set(&mut state, release_attr(to), release_text.as_str());
                }
                state
            }
            Outcome::RolledBack(e, weights) => {
                diags.error(summary, e);
                // Traffic is back where it was; the standby colour holds the failed release.
                let mut state = prior.clone();
                set(&mut state, "traffic_weights", slots.weights_value(&weights));
                if !prior.is_null() {
                    set(&mut state, release_attr(to), release_text.as_str());
                }
                state
            }
            Outcome::Kept(e, weights) => {
                diags.error(format!("Release {release_text:?} failed its checks on {to}; auto_rollback is off, so it keeps the traffic"), e);
                set(&mut state, "traffic_weights", slots.weights_value(&weights));
                set(&mut state, "deployed_at", now());
                state
            }
            Outcome::Stuck(e) => {
                diags.error(summary, e);
                // Record what the listener says now, so the next plan corrects it.
                let mut state = if prior.is_null() {
                    planned.clone()
                } else {
                    prior.clone()
                };
                if let Ok(weights) = router.weights(&slots.listener).await {
                    set(&mut state, "traffic_weights", slots.weights_value(&weights));
                }
                if prior.is_null() {
                    set(&mut state, "deployed_at", Value::Null);
                }
                state
            }
        }
    }

    /// Checks both target groups once, before anything is written, for what the load
    /// balancer would refuse; each problem is an error on its attribute.
    async fn target_groups_usable(
        &self,
        router: &dyn TrafficRouter,
        slots: &Slots,
        diags: &mut Diagnostics,
    ) -> bool {
        let groups = [slots.blue.as_str(), slots.green.as_str()];
        let problems = match router.check_target_groups(&slots.listener, &groups).await {
            Ok(problems) => problems,
            Err(RouterError::NotFound(what)) => {
                diags.attribute_error(
                    AttributePath::attr("listener_arn"),
                    "Listener not found",
                    format!("{what}: create it first, or fix listener_arn."),
                );
                return false;
            }
            Err(e) => {
                diags.error(
                    "Cannot check the target groups",
                    format!("{e}\nNothing was changed; traffic was not moved."),
                );
                return false;
            }
        };
        let attrs = ["blue_target_group_arn", "green_target_group_arn"];
        let mut usable = true;
        for (attr, problem) in attrs.into_iter().zip(problems) {
            if let Some(problem) = problem {
                usable = false;
                diags.attribute_error(
                    AttributePath::attr(attr),
                    "The listener cannot forward to this target group",
                    format!("{problem}. Nothing was changed; traffic was not moved."),
                );
            }
        }
        usable
    }

    /// No colour flip: settings changed, or the listener drifted. Traffic is put back on
    /// the recorded colour (after gating it) only when it is not there already.
    async fn converge(
        &self,
        rollout: &Rollout<'_>,
        prior: &Value,
        mut state: Value,
        color: Color,
        diags: &mut Diagnostics,
    ) -> Value {
        let slots = rollout.slots;
        let current = match rollout.router.weights(&slots.listener).await {
            Ok(w) => w,
            Err(e) => {
                diags.error("Cannot read the listener", e.to_string());
                return prior.clone();
            }
        };
        let wanted = slots.all_on(color);
        if current.of(&slots.blue) == wanted.of(&slots.blue)
            && current.of(&slots.green) == wanted.of(&slots.green)
        {
            set(&mut state, "traffic_weights", slots.weights_value(&current));
            return state;
        }
        tracing::info!(%color, "listener drifted; restoring the recorded colour");
        if let Err(e) = rollout.check_color(color).await {
            diags.error(format!("Traffic was not restored to {color}"), e);
            let mut state = prior.clone();
            set(&mut state, "traffic_weights", slots.weights_value(&current));
            return state;
        }
        match shift(rollout.router, &slots.listener, &wanted).await {
            Ok(weights) => {
                set(&mut state, "traffic_weights", slots.weights_value(&weights));
                state
            }
            Err(e) => {
                diags.error(
                    format!("Traffic was not restored to {color}"),
                    e.to_string(),
                );
                prior.clone()
            }
        }
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
        if let Some(hc) = config.get("health_check").filter(|h| !h.is_null()) {
            let has = |attr: &str| hc.get(attr).is_some_and(|v| !v.is_null());
            let at = |attr: &str| AttributePath::attr("health_check").then_attr(attr);
            if has("url") && has("path") {
                diags.attribute_error(at("path"), "Conflicting health check endpoints", "Set either health_check.url (one URL, `{color}` allowed) or health_check.path (every IP target probed directly), not both.");
            }
            for attr in ["protocol", "port"] {
                if has(attr) && !has("path") {
                    diags.attribute_error(at(attr), format!("health_check.{attr} needs path"), format!("health_check.{attr} applies to checks of each target (health_check.path); with health_check.url put the scheme and port in the URL."));
                }
            }
        }
        if let Some(traffic) = config.get("traffic").filter(|t| !t.is_null()) {
            let strategy = traffic
                .get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("all_at_once");
            let has = |attr: &str| traffic.get(attr).is_some_and(|v| !v.is_null());
            let at = |attr: &str| AttributePath::attr("traffic").then_attr(attr);
            let needs = [("canary_percent", "canary"), ("step_percent", "linear")];
            for (attr, only) in needs {
                if has(attr)
                    && strategy != only
                    && traffic.get("strategy").is_some_and(|s| !s.is_unknown())
                {
                    diags.attribute_error(at(attr), format!("traffic.{attr} needs strategy \"{only}\""), format!("traffic.{attr} applies only to strategy = \"{only}\"; the strategy is {strategy:?}."));
                }
            }
            let strategy_known = traffic.get("strategy").is_some_and(|s| !s.is_unknown());
            if strategy_known && matches!(strategy, "canary" | "linear") && !has("step_interval") {
                diags.attribute_error(
                    AttributePath::attr("traffic").then_attr("step_interval"),
                    format!("traffic.step_interval is required with strategy \"{strategy}\""),
                    "Set how long each step holds, with checks running, before more traffic moves, e.g. step_interval = \"1m\".",
                );
            }
            if has("step_interval") && strategy == "all_at_once" {
                diags.attribute_error(
                    at("step_interval"),
                    "traffic.step_interval needs steps",
                    "traffic.step_interval applies to strategy = \"canary\" or \"linear\".",
                );
            }
        }
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        prior: &Value,
        config: &Value,
        planned: &mut Value,
        diags: &mut Diagnostics,
    ) {
        let Some(slots) = Slots::from_config(planned) else {
            for name in COMPUTED {
                set(planned, name, Value::Unknown);
            }
            return;
        };
        set(planned, "id", slots.listener.as_str());
        if prior.is_null() {
            return self.plan_create(&slots, planned, diags).await;
        }
        let unknown = |name: &str| config.get(name).is_some_and(Value::contains_unknown);
        let new_release = !unknown("release") && config.get("release") != prior.get("release");
        // Targets land as a release only when they really change: not when reordered, not
        // when first given to a deployment that had none (after import, say: they are
        // adopted and take effect with the next release), and not when removed (the fleet
        // now registers itself).
        let new_targets = !unknown("targets")
            && matches!((sorted_targets(config), sorted_targets(prior)), (Some(new), Some(old)) if new != old);
        if !new_release && (unknown("release") || unknown("targets")) {
            // Whether a release lands is known only at apply.
            for name in COMPUTED {
                set(planned, name, Value::Unknown);
            }
            return;
        }
        let from = color_of(prior, "active_color").unwrap_or(Color::Blue);
        for name in COMPUTED {
            set(
                planned,
                name,
                prior.get(name).cloned().unwrap_or(Value::Null),
            );
        }
        if new_release || new_targets {
            let from_release = prior.get("active_release").cloned().unwrap_or(Value::Null);
            let generation = prior.get("generation").and_then(Value::as_i64).unwrap_or(0);
            plan_flip(planned, &slots, from, from_release, generation);
        } else {
            // Restores the recorded colour when the listener drifted; otherwise no change.
            set(
                planned,
                "traffic_weights",
                slots.weights_value(&slots.all_on(from)),
            );
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, diags: &mut Diagnostics) -> Value {
        self.deploy(ctx, &Value::Null, planned, diags).await
    }

    async fn read(&self, _ctx: &Ctx, state: &Value, diags: &mut Diagnostics) -> Value {
        let Some(slots) = Slots::from_config(state) else {
            return state.clone();
        };
        match self.router().await.weights(&slots.listener).await {
            Ok(weights) => {
                let mut state = state.clone();
                set(&mut state, "traffic_weights", slots.weights_value(&weights));
                state
            }
            Err(RouterError::NotFound(what)) => {
                tracing::info!(%what, "listener gone; removing the deployment from state");
                Value::Null
            }
            Err(e) => {
                diags.error("Cannot read the listener", e.to_string());
                state.clone()
            }
        }
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
        let Some(slots) = Slots::from_config(prior) else {
            return;
        };
        let router = self.router().await;
        let active = color_of(prior, "active_color").unwrap_or(Color::Blue);
        match router.weights(&slots.listener).await {
            Ok(weights) if weights.of(slots.target_group(active.other())) > 0 => {
                if let Err(e) = shift(router.as_ref(), &slots.listener, &slots.all_on(active)).await
                {
                    diags.error(
                        "Cannot leave the listener on the active colour",
                        e.to_string(),
                    );
                    return;
                }
            }
            Ok(_) | Err(RouterError::NotFound(_)) => {}
            Err(e) => {
                diags.error("Cannot read the listener", e.to_string());
                return;
            }
        }
        let keys = [RELEASE_TAG.to_string(), GENERATION_TAG.to_string()];
        for tg in [&slots.blue, &slots.green] {
            match router.remove_tags(tg, &keys).await {
                Ok(()) | Err(RouterError::NotFound(_)) => {}
                Err(e) => diags.warning("Tags not removed", format!("{tg}: {e}")),
            }
        }
    }

    /// `terraform import immutable_bluegreen_deployment.x "<listener>,<blue>,<green>"`:
    /// the live colour from the listener, releases and generation from the tags.
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
        let slots = Slots {
            listener: listener.to_string(),
            blue: blue.to_string(),
            green: green.to_string(),
        };
        let router = self.router().await;
        let observed = match observe(router.as_ref(), &slots).await {
            Ok(o) => o,
            Err(e) => {
                diags.error("Cannot import", e.to_string());
                return None;
            }
        };
        let Some(live) = observed.live else {
            diags.error("Cannot import", "The listener forwards to neither target group, so no colour is live. Create the resource instead: it adopts the listener.");
            return None;
        };
        let Some(release) = observed.release(live).map(str::to_string) else {
            diags.error(
                "Cannot import",
                format!("The live ({live}) target group has no {RELEASE_TAG} tag, so the release it serves is unknown. Create the resource instead, or tag the target group with its release."),
            );
            return None;
        };
        let text = |v: Option<&str>| v.map_or(Value::Null, Value::from);
        let mut state = schema().block.empty_value();
        set(&mut state, "id", slots.listener.as_str());
        set(&mut state, "listener_arn", slots.listener.as_str());
        set(&mut state, "blue_target_group_arn", slots.blue.as_str());
        set(&mut state, "green_target_group_arn", slots.green.as_str());
        set(&mut state, "release", release.as_str());
        set(&mut state, "auto_rollback", true);
        set(&mut state, "retain_previous", true);
        set(&mut state, "active_color", live.name());
        set(&mut state, "standby_color", live.other().name());
        set(&mut state, "active_release", release.as_str());
        set(
            &mut state,
            "previous_release",
            text(observed.release(live.other())),
        );
        set(
            &mut state,
            "blue_release",
            text(observed.release(Color::Blue)),
        );
        set(
            &mut state,
            "green_release",
            text(observed.release(Color::Green)),
        );
        set(
            &mut state,
            "active_target_group_arn",
            slots.target_group(live),
        );
        set(&mut state, "generation", observed.generation);
        set(
            &mut state,
            "traffic_weights",
            slots.weights_value(&observed.weights),
        );
        Some(state)
    }
}
