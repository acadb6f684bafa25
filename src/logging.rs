//! Logs in the form Terraform reads from a plugin's stderr.
//!
//! go-plugin parses every stderr line of a plugin as an hclog JSON record
//! (`@level`, `@message`, `@timestamp`, `@module`, other keys as key/value pairs) and
//! re-logs it at that level under `TF_LOG`. A line that does not parse is logged as plain
//! text at debug level, so the format here has to be exact, the timestamp included:
//! Go parses it with the layout `2006-01-02T15:04:05.000000Z07:00`.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The `@module` of every line; Terraform shows it after the provider's name.
const MODULE: &str = "provider";

/// Installs the global subscriber at the level Terraform asked for: `TF_LOG_PROVIDER`,
/// else `TF_LOG`. With neither set Terraform discards provider logs, so none are made.
pub fn init() {
    let level = level_from_env(
        std::env::var("TF_LOG_PROVIDER").ok().as_deref(),
        std::env::var("TF_LOG").ok().as_deref(),
    );
    tracing_subscriber::registry()
        .with(HclogLayer.with_filter(targets(level)))
        .init();
}

/// The provider's own events at the chosen level; its libraries' (hyper, rustls, the AWS
/// SDK) at most at info, so that `TF_LOG=trace` stays readable.
fn targets(level: LevelFilter) -> Targets {
    Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_default(level.min(LevelFilter::INFO))
}

/// Maps Terraform's log level names to a filter; `JSON` is Terraform's trace-in-JSON mode.
fn level_from_env(provider: Option<&str>, global: Option<&str>) -> LevelFilter {
    let chosen = provider.filter(|v| !v.is_empty()).or(global);
    match chosen.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") | Some("JSON") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("INFO") => LevelFilter::INFO,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR") => LevelFilter::ERROR,
        Some("") | Some("OFF") | None => LevelFilter::OFF,
        // Terraform treats any other non-empty value as TRACE.
        Some(_) => LevelFilter::TRACE,
    }
}

/// A `tracing` layer that writes one hclog JSON record per event to stderr, with the
/// fields of the enclosing spans (such as `tf_rpc` and `tf_resource_type`) included.
struct HclogLayer;

/// Span fields, kept in the span's extensions until its events are written.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for HclogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = JsonVisitor(Map::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let line = format_record(event, ctx, SystemTime::now());
        let mut stderr = std::io::stderr().lock();
        // A closed stderr means Terraform has gone; there is nobody left to tell.
        let _ = stderr.write_all(line.as_bytes());
    }
}

fn format_record<S>(event: &Event<'_>, ctx: Context<'_, S>, now: SystemTime) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut record = Map::new();
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(fields) = span.extensions().get::<SpanFields>() {
                record.extend(fields.0.clone());
            }
        }
    }
    let mut fields = JsonVisitor(Map::new());
    event.record(&mut fields);
    let message = fields
        .0
        .remove("message")
        .unwrap_or(Value::String(String::new()));
    record.extend(fields.0);
    record.insert(
        "@level".into(),
        level_name(*event.metadata().level()).into(),
    );
    record.insert("@message".into(), message);
    record.insert("@module".into(), MODULE.into());
    record.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_micros(now).to_string().into(),
    );
    let mut line = Value::Object(record).to_string();
    line.push('\n');
    line
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Collects an event's or span's fields as JSON values.
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn libraries_log_at_most_at_info() {
        let filter = targets(LevelFilter::TRACE);
        assert!(filter.would_enable("terraform_provider_immutable::probe", &Level::TRACE));
        assert!(!filter.would_enable("hyper_util::client", &Level::DEBUG));
        assert!(filter.would_enable("hyper_util::client", &Level::INFO));
        assert!(!targets(LevelFilter::WARN).would_enable("aws_config", &Level::INFO));
    }

    #[test]
    fn provider_level_wins_over_global_level() {
        assert_eq!(
            level_from_env(Some("warn"), Some("TRACE")),
            LevelFilter::WARN
        );
        assert_eq!(level_from_env(None, Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level_from_env(Some(""), Some("INFO")), LevelFilter::INFO);
        assert_eq!(level_from_env(None, Some("JSON")), LevelFilter::TRACE);
        assert_eq!(level_from_env(None, Some("yes")), LevelFilter::TRACE);
        assert_eq!(level_from_env(None, None), LevelFilter::OFF);
        assert_eq!(level_from_env(Some("off"), None), LevelFilter::OFF);
    }

    /// Captures the records the layer would write, with a fixed clock.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            ctx: Context<'_, S>,
        ) {
            HclogLayer.on_new_span(attrs, id, ctx)
        }
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
            self.0.lock().unwrap().push(format_record(event, ctx, at));
        }
    }

    #[test]
    fn records_are_hclog_json_with_span_fields() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc", tf_rpc = "PlanResourceChange");
            let _guard = span.enter();
            tracing::debug!(
                attempt = 3,
                url = "http://127.0.0.1/",
                "health check passed"
            );
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with('\n'));
        let record: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(record["@level"], "debug");
        assert_eq!(record["@message"], "health check passed");
        assert_eq!(record["@module"], "provider");
        assert_eq!(record["@timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(record["attempt"], 3);
        assert_eq!(record["url"], "http://127.0.0.1/");
        assert_eq!(record["tf_rpc"], "PlanResourceChange");
    }
}
