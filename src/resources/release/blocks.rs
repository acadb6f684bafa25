//! The blocks both deployment resources share, declared once: `health_check` and
//! `traffic`, each schema beside the typed model it decodes into. A default lives in one
//! constant, quoted by the schema's description and used by the decoder.

use std::fmt;
use std::time::Duration;

use crate::duration;
use crate::probe::{Method, StatusMatcher};
use crate::redact;
use crate::resources::common;
use crate::rollout::{Endpoint, Health, Strategy};
use crate::text::capitalised;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::schema::{Attribute, Block};
use crate::tfplugin::value::Value;
use crate::validators::{self, DurationAttribute};

const EXPECTED_STATUS: &str = "200-299";
const HEALTHY_THRESHOLD: i64 = 3;
const UNHEALTHY_THRESHOLD: i64 = 0;
const INTERVAL: &str = "5s";
const REQUEST_TIMEOUT: &str = "2s";
const MIN_HEALTHY_TARGETS: i64 = 1;
const PROTOCOL: &str = "HTTP";
const STRATEGY: &str = "all_at_once";
const STEP_PERCENT: i64 = 10;
const BAKE_TIME: &str = "0s";

/// `health_check { ... }`. `router` names what health-checks the members mid-sentence
/// ("the load balancer", "HAProxy"), for the descriptions.
pub fn health_check_block(router: &str) -> Block {
    let sentence_start = capitalised(router);
    Block::new(&format!(
        "How the standby colour is checked before it takes traffic and while traffic moves. {sentence_start} must report at least `min_healthy_targets` healthy targets (and all of `targets`); then the HTTP checks must pass `healthy_threshold` times in a row. Without this block only {router}'s own health checks count.",
    ))
    .attribute(Attribute::string("url").optional().description("URL to check; `{color}` is replaced by `blue` or `green`, e.g. `https://{color}.internal.example.com/health`. Conflicts with `path`.").validate(validators::http_url_template))
    .attribute(Attribute::string("path").optional().description("Path to request from every healthy IP target of the standby colour directly, e.g. `/health`. Conflicts with `url`.").validate(validators::url_path))
    .attribute(Attribute::string("protocol").optional().description(&format!("`HTTP` or `HTTPS`, with `path`. Defaults to `{PROTOCOL}`.")).validate(validators::one_of(&["HTTP", "HTTPS"])))
    .attribute(Attribute::number("port").optional().description("Port, with `path`. Defaults to each target's port.").validate(validators::int_in_range(1, 65535)))
    .attribute(Attribute::string("expected_status").optional().description(&format!("Passing status codes in ELB matcher syntax. Defaults to `{EXPECTED_STATUS}`.")).validate(validators::status_matcher))
    .attribute(Attribute::string("body_regex").optional().description("A regular expression the body must match.").validate(validators::regex))
    .attribute(Attribute::number("healthy_threshold").optional().description(&format!("Consecutive passing checks needed. Defaults to `{HEALTHY_THRESHOLD}`.")).validate(validators::int_in_range(1, 1000)))
    .attribute(Attribute::number("unhealthy_threshold").optional().description(&format!("Before the shift: consecutive failures that fail the gate early (`0`, the default, keeps trying until the timeout). While traffic moves and bakes: consecutive failures that roll back (at least 1). Defaults to `{UNHEALTHY_THRESHOLD}`.")).validate(validators::int_in_range(0, 1000)))
    .attribute(Attribute::string("interval").optional().description(&format!("Between checks. Defaults to `{INTERVAL}`.")).duration_within(duration::INTERVAL))
    .attribute(Attribute::string("request_timeout").optional().description(&format!("Per check. Defaults to `{REQUEST_TIMEOUT}`.")).duration_within(duration::INTERVAL))
    .attribute(Attribute::string_map("headers").optional().sensitive().description("Request headers, e.g. an auth token. Sensitive, but stored in the state: on Terraform 1.11 or later prefer `headers_wo`."))
    .attributes(common::write_only_headers())
    .attribute(Attribute::bool("insecure_skip_verify").optional().description("Skip TLS verification. Defaults to `false`."))
    .attribute(Attribute::number("min_healthy_targets").optional().description(&format!("Healthy targets {router} must report in the standby colour. Defaults to `{MIN_HEALTHY_TARGETS}`; the provider never cuts over to a colour with none.")).validate(validators::int_in_range(1, 1000)))
}

/// `traffic { ... }`.
pub fn traffic_block() -> Block {
    Block::new("How traffic moves to the new colour. Defaults to all at once with no bake time.")
        .attribute(Attribute::string("strategy").optional().description(&format!("`all_at_once` (default), `canary` (`canary_percent`, then the rest after `step_interval`) or `linear` (`step_percent` more every `step_interval`). Defaults to `{STRATEGY}`.")).validate(validators::one_of(&["all_at_once", "canary", "linear"])))
        .attribute(Attribute::number("canary_percent").optional().description(&format!("With `canary`: the first share of traffic, 1-99. Defaults to `{STEP_PERCENT}`.")).validate(validators::int_in_range(1, 99)))
        .attribute(Attribute::number("step_percent").optional().description(&format!("With `linear`: the share added per step, 1-99. Defaults to `{STEP_PERCENT}`.")).validate(validators::int_in_range(1, 99)))
        .attribute(Attribute::string("step_interval").optional().description("Required with `canary` or `linear`: time between steps, while checks keep running.").duration_within(duration::INTERVAL))
        .attribute(Attribute::string("bake_time").optional().description(&format!("After 100%: how long checks keep running before the release is done; a failure moves traffic back when `auto_rollback` is on (Ctrl-C or the timeout always does). Defaults to `{BAKE_TIME}`.")).duration_within(duration::SPAN))
}

/// One block's attributes, null when the block or the attribute is left out.
struct Fields<'a>(Option<&'a Value>);

impl<'a> Fields<'a> {
    fn of(config: &'a Value, block: &str) -> Self {
        Fields(config.get(block).filter(|b| !b.is_null()))
    }

    fn get(&self, attr: &str) -> Option<&'a Value> {
        self.0.and_then(|b| b.get(attr)).filter(|v| !v.is_null())
    }

    fn has(&self, attr: &str) -> bool {
        self.get(attr).is_some()
    }

    fn str(&self, attr: &str) -> Option<&'a str> {
        self.get(attr).and_then(Value::as_str)
    }

    fn int(&self, attr: &str, default: i64) -> i64 {
        self.get(attr).and_then(Value::as_i64).unwrap_or(default)
    }

    fn duration(&self, attr: &str, default: &str) -> Result<Duration, String> {
        duration::parse(self.str(attr).unwrap_or(default))
    }
}

/// The `health_check` block as the rollout engine takes it.
pub fn health(config: &Value) -> Result<Health, String> {
    let hc = Fields::of(config, "health_check");
    let endpoint = match (hc.str("url"), hc.str("path")) {
        (Some(url), _) => Some(Endpoint::Url(url.to_string())),
        (None, Some(path)) => Some(Endpoint::Targets {
            path: path.to_string(),
            protocol: hc.str("protocol").unwrap_or(PROTOCOL).to_string(),
            port: hc.get("port").and_then(Value::as_i64).map(|p| p as u16),
        }),
        (None, None) => None,
    };
    Ok(Health {
        endpoint,
        method: Method::Get,
        headers: hc.0.map(common::request_headers).unwrap_or_default(),
        expected_status: StatusMatcher::parse(
            hc.str("expected_status").unwrap_or(EXPECTED_STATUS),
        )?,
        body_regex: hc
            .str("body_regex")
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| e.to_string())?,
        healthy_threshold: hc.int("healthy_threshold", HEALTHY_THRESHOLD) as u32,
        unhealthy_threshold: hc.int("unhealthy_threshold", UNHEALTHY_THRESHOLD) as u32,
        interval: hc.duration("interval", INTERVAL)?,
        request_timeout: hc.duration("request_timeout", REQUEST_TIMEOUT)?,
        insecure_skip_verify: hc
            .get("insecure_skip_verify")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        min_healthy_targets: hc.int("min_healthy_targets", MIN_HEALTHY_TARGETS) as u32,
    })
}

/// Shows the URL redacted and header names only: a `health_check` may hold tokens.
impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.endpoint {
            Some(Endpoint::Url(url)) => Some(Endpoint::Url(redact::redact_url_text(url))),
            other => other.clone(),
        };
        f.debug_struct("Health")
            .field("endpoint", &endpoint)
            .field("method", &self.method)
            .field("headers", &redact::headers(&self.headers))
            .field("expected_status", &self.expected_status.to_string())
            .field("body_regex", &self.body_regex.as_ref().map(|r| r.as_str()))
            .field("healthy_threshold", &self.healthy_threshold)
            .field("unhealthy_threshold", &self.unhealthy_threshold)
            .field("interval", &self.interval)
            .field("request_timeout", &self.request_timeout)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("min_healthy_targets", &self.min_healthy_targets)
            .finish()
    }
}

/// The `traffic` block: how traffic moves, and the bake time after 100%.
pub fn traffic(config: &Value) -> Result<(Strategy, Duration), String> {
    let t = Fields::of(config, "traffic");
    let interval = t.duration("step_interval", "0s")?;
    let percent = |attr: &str| t.int(attr, STEP_PERCENT) as u32;
    let strategy = match t.str("strategy").unwrap_or(STRATEGY) {
        "canary" => Strategy::Canary {
            percent: percent("canary_percent"),
            interval,
        },
        "linear" => Strategy::Linear {
            step: percent("step_percent"),
            interval,
        },
        _ => Strategy::AllAtOnce,
    };
    Ok((strategy, t.duration("bake_time", BAKE_TIME)?))
}

/// What `terraform validate` checks across the attributes of both blocks, and of
/// `analysis`.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    super::analysis::validate(config, diags);
    let hc = Fields::of(config, "health_check");
    let at = |block: &str, attr: &str| AttributePath::attr(block).then_attr(attr);
    if hc.has("url") && hc.has("path") {
        diags.attribute_error(at("health_check", "path"), "Conflicting health check endpoints", "Set either health_check.url (one URL, `{color}` allowed) or health_check.path (every IP target probed directly), not both.");
    }
    for attr in ["protocol", "port"] {
        if hc.has(attr) && !hc.has("path") {
            diags.attribute_error(at("health_check", attr), format!("health_check.{attr} needs path"), format!("health_check.{attr} applies to checks of each target (health_check.path); with health_check.url put the scheme and port in the URL."));
        }
    }
    let traffic = Fields::of(config, "traffic");
    let strategy_known = traffic.get("strategy").is_none_or(|s| !s.is_unknown());
    if !strategy_known {
        return;
    }
    let strategy = traffic.str("strategy").unwrap_or(STRATEGY);
    for (attr, only) in [("canary_percent", "canary"), ("step_percent", "linear")] {
        if traffic.has(attr) && strategy != only {
            diags.attribute_error(at("traffic", attr), format!("traffic.{attr} needs strategy \"{only}\""), format!("traffic.{attr} applies only to strategy = \"{only}\"; the strategy is {strategy:?}."));
        }
    }
    if matches!(strategy, "canary" | "linear") && !traffic.has("step_interval") {
        diags.attribute_error(
            at("traffic", "step_interval"),
            format!("traffic.step_interval is required with strategy \"{strategy}\""),
            "Set how long each step holds, with checks running, before more traffic moves, e.g. step_interval = \"1m\".",
        );
    }
    if traffic.has("step_interval") && strategy == STRATEGY {
        diags.attribute_error(
            at("traffic", "step_interval"),
            "traffic.step_interval needs steps",
            "traffic.step_interval applies to strategy = \"canary\" or \"linear\".",
        );
    }
}
