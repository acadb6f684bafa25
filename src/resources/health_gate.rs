//! `immutable_health_gate`: an apply that blocks until an HTTP(S) endpoint is healthy,
//! and fails with a report of what was checked when it does not become healthy.
//!
//! A gate is a point-in-time fact: read keeps the recorded result, delete forgets it,
//! and any change of an argument (or of `triggers`) replaces it, which runs it again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::duration;
use crate::probe::{self, Check, HttpClients, Method, Policy, StatusMatcher, TlsOptions};
use crate::resources::common::{self, timeouts_block};
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Ctx, Resource};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::Value;
use crate::validators::{self, DurationAttribute};

/// A check's timeout when `request_timeout` is not set (and `interval` is not shorter).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The gate's deadline when `timeouts { create }` is not set.
const DEFAULT_DEADLINE: &str = "5m";

pub struct HealthGate {
    pub http: Arc<HttpClients>,
}

fn schema() -> Schema {
    let replace = |a: Attribute| a.requires_replace();
    let [headers_wo, headers_wo_version] = common::write_only_headers();
    Schema::new(
        Block::new(
            "Blocks the apply until an HTTP(S) endpoint is healthy: `healthy_threshold` consecutive checks must pass before the deadline (`timeouts { create }`). \
             When the endpoint does not become healthy the apply fails with a report of what was checked, and the gate is not stored, so the next plan runs it again. \
             Any change of an argument, including `triggers`, replaces the gate and runs it again.",
        )
        .attribute(replace(
            Attribute::string("url")
                .required()
                .description("The `http://` or `https://` URL to check.")
                .validate(validators::http_url),
        ))
        .attribute(replace(
            Attribute::string("method")
                .default("GET")
                .description("HTTP method: `GET`, `HEAD` or `POST`.")
                .validate(validators::one_of(&["GET", "HEAD", "POST"])),
        ))
        .attribute(replace(
            Attribute::string_map("headers")
                .default(Value::Map(Default::default()))
                .sensitive()
                .description("Request headers, e.g. an `Authorization` token. Sensitive: never shown in plans, logs or errors, but stored in the state; on Terraform 1.11 or later prefer `headers_wo`."),
        ))
        .attribute(headers_wo)
        .attribute(replace(headers_wo_version))
        .attribute(replace(
            Attribute::string("expected_status")
                .default("200-299")
                .description("Status codes that pass, in ELB matcher syntax: `\"200\"`, `\"200,204\"`, `\"200-299\"`.")
                .validate(|v| StatusMatcher::parse(v.as_str().unwrap_or_default()).map(|_| ())),
        ))
        .attribute(replace(
            Attribute::string("body_regex")
                .optional()
                .description("A regular expression the response body must match (Rust `regex` syntax).")
                .validate(validators::regex),
        ))
        .attribute(replace(
            Attribute::number("healthy_threshold")
                .default(3)
                .description("Consecutive passing checks needed to pass the gate.")
                .validate(validators::int_in_range(1, 1000)),
        ))
        .attribute(replace(
            Attribute::number("unhealthy_threshold")
                .default(0)
                .description("Consecutive failing checks that fail the gate early; `0` keeps checking until the deadline.")
                .validate(validators::int_in_range(0, 1000)),
        ))
        .attribute(replace(
            Attribute::string("interval")
                .default("5s")
                .description("Time between the starts of two checks, e.g. `\"5s\"`.")
                .duration_within(duration::INTERVAL),
        ))
        .attribute(replace(
            Attribute::string("request_timeout")
                .optional()
                .computed()
                .description("How long one check may take before it counts as a timeout; at most `interval`. Defaults to `2s`, or to `interval` when that is shorter.")
                .duration_within(duration::INTERVAL),
        ))
        .attribute(replace(
            Attribute::string("initial_delay")
                .default("0s")
                .description("Wait before the first check.")
                .duration_within(duration::SPAN),
        ))
        .attribute(replace(
            Attribute::bool("insecure_skip_verify")
                .default(false)
                .description("Skip TLS certificate verification. Certificates are verified by default."),
        ))
        .attribute(replace(
            Attribute::string("ca_cert_pem")
                .optional()
                .description("An extra CA certificate (PEM) to trust, e.g. for an internal CA.")
                .validate(validators::pem_certificates),
        ))
        .attribute(replace(
            Attribute::string_map("triggers")
                .optional()
                .description("Arbitrary values; any change runs the gate again, e.g. `{ release = var.release }`."),
        ))
        .attribute(Attribute::string("id").computed().use_state_for_unknown().description("Identifier of this gate run."))
        .attribute(Attribute::string("passed_at").computed().description("When the gate passed (RFC 3339)."))
        .attribute(Attribute::number("attempts").computed().description("Checks made until the gate passed."))
        .attribute(Attribute::number("last_status_code").computed().description("HTTP status of the last check."))
        .attribute(Attribute::number("last_latency_ms").computed().description("Duration of the last check, in milliseconds."))
        .block("timeouts", crate::tfplugin::schema::Nesting::Single, timeouts_block(&[("create", DEFAULT_DEADLINE)])),
    )
}

/// The gate's settings, read from a known configuration or plan.
struct Gate {
    check: Check,
    policy: Policy,
}

impl Gate {
    fn from_config(config: &Value) -> Result<Gate, (AttributePath, String)> {
        let s = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
        let d = |name: &str, default: &str| -> Result<Duration, (AttributePath, String)> {
            duration::parse(&s(name).unwrap_or_else(|| default.into()))
                .map_err(|e| (AttributePath::attr(name), e))
        };
        let n = |name: &str, default: i64| {
            config.get(name).and_then(Value::as_i64).unwrap_or(default) as u32
        };
        let url = s("url").unwrap_or_default();
        let url =
            reqwest::Url::parse(&url).map_err(|e| (AttributePath::attr("url"), e.to_string()))?;
        let expected_status =
            StatusMatcher::parse(&s("expected_status").unwrap_or_else(|| "200-299".into()))
                .map_err(|e| (AttributePath::attr("expected_status"), e))?;
        let body_regex = match s("body_regex") {
            Some(r) => Some(
                regex::Regex::new(&r)
                    .map_err(|e| (AttributePath::attr("body_regex"), e.to_string()))?,
            ),
            None => None,
        };
        let method = Method::parse(&s("method").unwrap_or_else(|| "GET".into()))
            .map_err(|e| (AttributePath::attr("method"), e))?;
        let deadline = common::timeout(config, "create", DEFAULT_DEADLINE)
            .map_err(|e| (AttributePath::attr("timeouts").then_attr("create"), e))?;
        Ok(Gate {
            check: Check {
                url,
                method,
                headers: common::request_headers(config),
                expected_status,
                body_regex,
                request_timeout: d("request_timeout", "2s")?,
                tls: TlsOptions {
                    insecure_skip_verify: config
                        .get("insecure_skip_verify")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    ca_cert_pem: s("ca_cert_pem"),
                },
            },
            policy: Policy {
                healthy_threshold: n("healthy_threshold", 3),
                unhealthy_threshold: n("unhealthy_threshold", 0),
                interval: d("interval", "5s")?,
                initial_delay: d("initial_delay", "0s")?,
                deadline,
            },
        })
    }
}

#[tonic::async_trait]
impl Resource for HealthGate {
    fn type_name(&self) -> &'static str {
        "immutable_health_gate"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    /// Checks that need several attributes; skipped while any of them is unknown.
    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let dur = |name: &str, default: &str| match config.get(name) {
            Some(Value::String(s)) => duration::parse(s).ok(),
            Some(Value::Null) | None => duration::parse(default).ok(),
            _ => None,
        };
        let (Some(interval), Some(delay)) = (dur("interval", "5s"), dur("initial_delay", "0s"))
        else {
            return;
        };
        let explicit_timeout = config
            .get("request_timeout")
            .and_then(Value::as_str)
            .and_then(|s| duration::parse(s).ok());
        if let Some(timeout) = explicit_timeout.filter(|t| *t > interval) {
            diags.attribute_error(
                AttributePath::attr("request_timeout"),
                "request_timeout longer than interval",
                format!(
                    "request_timeout ({}) must not be longer than interval ({}): checks would overlap. Shorten request_timeout or lengthen interval.",
                    duration::format(timeout),
                    duration::format(interval)
                ),
            );
        }
        let threshold = match config.get("healthy_threshold") {
            Some(Value::Null) | None => 3,
            Some(v) => match v.as_i64() {
                Some(n) if n >= 1 => n as u32,
                _ => return,
            },
        };
        if config.get("timeouts").is_some_and(Value::contains_unknown) {
            return;
        }
        let Ok(deadline) = common::timeout(config, "create", DEFAULT_DEADLINE) else {
            return;
        };
        let minimum = interval.saturating_mul(threshold - 1).saturating_add(delay);
        if deadline < minimum {
            diags.attribute_error(
                AttributePath::attr("timeouts").then_attr("create"),
                "Deadline too short for the gate to pass",
                format!(
                    "{threshold} consecutive checks {} apart after an initial delay of {} take at least {}, longer than the deadline of {}. Lengthen timeouts.create or lower healthy_threshold.",
                    duration::format(interval),
                    duration::format(delay),
                    duration::format(minimum),
                    duration::format(deadline)
                ),
            );
        }
    }

    /// Plans the default `request_timeout`: 2s, or `interval` when that is shorter.
    async fn modify_plan(
        &self,
        _ctx: &Ctx,
        _prior: &Value,
        config: &Value,
        planned: &mut Value,
        _diags: &mut Diagnostics,
    ) {
        if config.get("request_timeout").is_some_and(|v| !v.is_null()) {
            return;
        }
        let interval = planned
            .get("interval")
            .and_then(Value::as_str)
            .and_then(|s| duration::parse(s).ok());
        if let (Some(interval), Some(slot)) = (interval, planned.get_mut("request_timeout")) {
            *slot = duration::format(interval.min(DEFAULT_REQUEST_TIMEOUT)).into();
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, diags: &mut Diagnostics) -> Value {
        let gate = match Gate::from_config(planned) {
            Ok(gate) => gate,
            Err((path, message)) => {
                diags.attribute_error(path, "Invalid health gate", message);
                return Value::Null;
            }
        };
        let checks = [gate.check];
        match probe::run_gate(&self.http, &checks, &gate.policy, &ctx.stop).await {
            probe::GateResult::Passed(report) => {
                let mut state = planned.clone();
                let last = report.last.as_ref();
                let set = |state: &mut Value, name: &str, value: Value| {
                    if let Some(slot) = state.get_mut(name) {
                        *slot = value;
                    }
                };
                set(&mut state, "id", common::new_id("gate").into());
                set(
                    &mut state,
                    "passed_at",
                    common::rfc3339(report.passed_at.unwrap_or_else(SystemTime::now)).into(),
                );
                set(&mut state, "attempts", i64::from(report.attempts).into());
                set(
                    &mut state,
                    "last_status_code",
                    last.and_then(|a| a.status)
                        .map_or(Value::Null, |s| i64::from(s).into()),
                );
                set(
                    &mut state,
                    "last_latency_ms",
                    last.map_or(Value::Null, |a| (a.latency.as_millis() as i64).into()),
                );
                state
            }
            probe::GateResult::Failed { why, report } => {
                diags.error(
                    format!("Health gate failed: {}", probe::redact_url(&checks[0].url)),
                    probe::failure_detail(&checks, &gate.policy, &why, &report),
                );
                Value::Null
            }
        }
    }

    async fn read(&self, _ctx: &Ctx, state: &Value, _diags: &mut Diagnostics) -> Value {
        state.clone()
    }

    /// Only `timeouts` can change without replacement; it matters for the next run only.
    async fn update(
        &self,
        _ctx: &Ctx,
        _prior: &Value,
        planned: &Value,
        _diags: &mut Diagnostics,
    ) -> Value {
        planned.clone()
    }

    async fn delete(&self, _ctx: &Ctx, _prior: &Value, _diags: &mut Diagnostics) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gate's own checks see what the schema's validators let through, and sum and
    /// multiply it: even the longest duration there is must give a diagnostic, not an
    /// overflow.
    #[test]
    fn the_deadline_check_saturates_on_the_longest_durations() {
        let gate = HealthGate {
            http: Arc::new(HttpClients::new()),
        };
        let config = Value::Object(
            [
                ("interval".to_string(), "9300000000000000000s".into()),
                (
                    "initial_delay".to_string(),
                    format!("{}h", "9".repeat(30)).into(),
                ),
            ]
            .into(),
        );
        let mut diags = Diagnostics::default();
        gate.validate(&config, &mut diags);
        let [diag] = &diags.0[..] else {
            panic!("{diags:?}")
        };
        assert_eq!(diag.summary, "Deadline too short for the gate to pass");
        assert_eq!(
            diag.attribute,
            Some(AttributePath::attr("timeouts").then_attr("create"))
        );
    }
}
