//! The `analysis` block both deployment resources share: its schema beside the typed
//! model it decodes into ([`crate::analysis::Settings`]) and its checks at
//! `terraform validate`. A default lives in one constant, quoted by the schema's
//! description and used by the decoder.

use std::time::Duration;

use crate::analysis::{MetricSettings, NoData, PrometheusSettings, Settings};
use crate::duration;
use crate::probe::TlsOptions;
use crate::resources::common;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::schema::{Attribute, Block, Nesting};
use crate::tfplugin::value::{Type, Value};
use crate::validators::{self, DurationAttribute};

const INTERVAL: &str = "10s";
const FAILURE_LIMIT: i64 = 0;
const NO_DATA: &str = "wait";
const CLOUDWATCH_INTERVAL: &str = "10s";

/// What a resource's queries may name, and whether it can watch CloudWatch alarms.
pub struct Terms {
    /// Every placeholder a query may hold, `color` and `release` among them.
    pub placeholders: &'static [&'static str],
    pub cloudwatch: bool,
}

/// `analysis { prometheus { ... } metric { ... } ... }`.
pub fn analysis_block(terms: &Terms) -> Block {
    let placeholders: Vec<String> = terms
        .placeholders
        .iter()
        .map(|p| format!("`{{{p}}}`"))
        .collect();
    let metric = Block::new("A Prometheus query measured every `interval` while the new colour takes traffic; a measurement outside `min`/`max`, a query error or an unreachable Prometheus is a failed measurement, and more than `failure_limit` of them fail the release.")
        .attribute(Attribute::string("name").required().description("A name for the report, e.g. `error-rate`.").validate(validators::non_empty))
        .attribute(Attribute::string("query").required().description(&format!("PromQL that returns one number (a scalar, or a vector of one sample: aggregate with `sum(...)` or `max(...)`; several samples are an error). May hold {}, replaced before it is sent. No series, or NaN (such as 0/0 when nothing was served), is no data: see `no_data`.", placeholders.join(", "))).validate(validators::placeholders_among(terms.placeholders)))
        .attribute(Attribute::number("max").optional().description("The highest passing value. Give `max`, `min` or both."))
        .attribute(Attribute::number("min").optional().description("The lowest passing value."))
        .attribute(Attribute::string("interval").optional().description(&format!("Between measurements; the first is one interval after traffic moves. A step shorter than this is measured once, at its end. Defaults to `{INTERVAL}`.")).duration_within(duration::INTERVAL))
        .attribute(Attribute::number("failure_limit").optional().description(&format!("Failed measurements allowed across the steps and the bake; one more fails the release. Defaults to `{FAILURE_LIMIT}`.")).validate(validators::int_in_range(0, 1000)))
        .attribute(Attribute::string("no_data").optional().description(&format!("What an empty result counts as: `wait` (neither, but a step or bake that ends with no number from this metric fails), `fail` (a failed measurement) or `pass` (for queries that have no series when nothing is wrong). Defaults to `{NO_DATA}`: an empty result never counts as a pass.")).validate(validators::one_of(&NoData::NAMES)));
    let prometheus = Block::new("The Prometheus server the metrics are queried from.")
        .attribute(
            Attribute::string("address")
                .required()
                .description(
                    "Base URL of Prometheus's HTTP API, e.g. `http://prometheus.internal:9090`.",
                )
                .validate(validators::http_url),
        )
        .attribute(
            Attribute::string_map("headers")
                .optional()
                .sensitive()
                .description("Request headers, e.g. `Authorization`. Sensitive, but stored in the state: on Terraform 1.11 or later prefer `headers_wo`."),
        )
        .attributes(common::write_only_headers())
        .attribute(
            Attribute::bool("insecure_skip_verify")
                .optional()
                .description("Skip TLS verification. Defaults to `false`."),
        )
        .attribute(
            Attribute::string("ca_cert_pem")
                .optional()
                .description("Extra CA certificates (PEM) to trust for `address`.")
                .validate(validators::pem_certificates),
        );
    let mut block = Block::new("Canary analysis: what the new colour does to the real traffic it serves. Runs from the first traffic step to the end of `traffic.bake_time`, beside the HTTP checks: at each step for its `step_interval`, and through the bake. A failure is a check failure: traffic moves back.")
        .block("prometheus", Nesting::Single, prometheus)
        .block("metric", Nesting::List, metric);
    if terms.cloudwatch {
        block = block
            .attribute(Attribute::new("cloudwatch_alarms", Type::list(Type::String)).optional().description("CloudWatch alarms (metric or composite) that fail the release when in `ALARM` during the analysis, or before traffic moves. Read with the provider's AWS settings (`endpoints.cloudwatch`)."))
            .attribute(Attribute::string("cloudwatch_interval").optional().description(&format!("Between reads of `cloudwatch_alarms`. Defaults to `{CLOUDWATCH_INTERVAL}`.")).duration_within(duration::INTERVAL));
    }
    block
}

/// The block, decoded; `None` when it is left out.
pub fn settings(config: &Value) -> Result<Option<Settings>, String> {
    let Some(block) = present(config.get("analysis")) else {
        return Ok(None);
    };
    let text = |v: &Value, attr: &str| {
        present(v.get(attr))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let interval = |v: &Value, attr: &str, default: &str| -> Result<Duration, String> {
        duration::parse(&text(v, attr).unwrap_or_else(|| default.to_string()))
    };
    let prometheus = present(block.get("prometheus")).map(|p| PrometheusSettings {
        address: text(p, "address").unwrap_or_default(),
        headers: common::request_headers(p),
        tls: TlsOptions {
            insecure_skip_verify: present(p.get("insecure_skip_verify"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ca_cert_pem: text(p, "ca_cert_pem"),
        },
    });
    let metrics = items(block.get("metric"))
        .iter()
        .map(|m| {
            Ok(MetricSettings {
                name: text(m, "name").unwrap_or_default(),
                query: text(m, "query").unwrap_or_default(),
                max: present(m.get("max")).and_then(Value::as_f64),
                min: present(m.get("min")).and_then(Value::as_f64),
                interval: interval(m, "interval", INTERVAL)?,
                failure_limit: present(m.get("failure_limit"))
                    .and_then(Value::as_i64)
                    .unwrap_or(FAILURE_LIMIT) as u32,
                no_data: NoData::parse(&text(m, "no_data").unwrap_or_else(|| NO_DATA.to_string()))
                    .unwrap_or(NoData::Wait),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let alarms = items(block.get("cloudwatch_alarms"))
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    Ok(Some(Settings {
        prometheus,
        metrics,
        alarms,
        alarm_interval: interval(block, "cloudwatch_interval", CLOUDWATCH_INTERVAL)?,
    }))
}

/// What `terraform validate` checks across the block's attributes: something to watch,
/// a threshold per metric, and traffic steps or a bake for it to run in.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    let Some(block) = present(config.get("analysis")) else {
        return;
    };
    let at = AttributePath::attr("analysis");
    let metrics = items(block.get("metric"));
    let has_alarms = present(block.get("cloudwatch_alarms"))
        .is_some_and(|a| !matches!(a, Value::List(l) if l.is_empty()));
    if metrics.is_empty() && !has_alarms && !block.contains_unknown() {
        diags.attribute_error(at.clone(), "Analysis with nothing to measure", "Give analysis at least one metric block (with a prometheus block), or cloudwatch_alarms where the resource has them.");
    }
    if !metrics.is_empty() && present(block.get("prometheus")).is_none() {
        diags.attribute_error(at.then_attr("prometheus"), "analysis.metric needs a prometheus block", "Say where the metrics are queried: prometheus { address = \"http://prometheus:9090\" }.");
    }
    for (i, metric) in metrics.iter().enumerate() {
        let number = |attr: &str| present(metric.get(attr)).and_then(Value::as_f64);
        let unknown = |attr: &str| metric.get(attr).is_some_and(Value::is_unknown);
        let here = at.then_attr("metric").then_index(i);
        if number("max").is_none() && number("min").is_none() && !unknown("max") && !unknown("min")
        {
            diags.attribute_error(here.then_attr("max"), "A metric needs max or min", format!("analysis.metric[{i}] has no threshold: give max (e.g. max = 0.01 for an error rate), min, or both."));
        }
        if let (Some(min), Some(max)) = (number("min"), number("max")) {
            if min > max {
                diags.attribute_error(here.then_attr("min"), "min is above max", format!("analysis.metric[{i}]: min = {min} is above max = {max}, so no value could pass."));
            }
        }
    }
    let traffic = present(config.get("traffic"));
    let field = |attr: &str| traffic.and_then(|t| t.get(attr));
    if field("strategy").is_some_and(Value::is_unknown)
        || field("bake_time").is_some_and(Value::is_unknown)
    {
        return;
    }
    let steps = field("strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s != "all_at_once");
    let bake = field("bake_time")
        .and_then(Value::as_str)
        .and_then(|b| duration::parse(b).ok())
        .is_some_and(|b| !b.is_zero());
    if !steps && !bake {
        diags.attribute_error(at, "Analysis that would never run", "Analysis runs at the traffic steps and through the bake, and this release has neither: set traffic.strategy to \"canary\" or \"linear\", or a traffic.bake_time.");
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn items(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::List(items)) => items,
        _ => &[],
    }
}
