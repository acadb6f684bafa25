//! Canary analysis: what the new colour does to the real traffic it serves, measured
//! while it serves it. A health endpoint says "I am up"; a metric says the release fails
//! 4% of checkouts. Prometheus queries are measured every `interval` and must stay within
//! `min`/`max`; CloudWatch alarms must stay out of `ALARM`. The rollout engine runs the
//! analysis at each traffic step and through the bake, beside the HTTP checks, and a
//! failure is a check failure: traffic moves back.

pub mod alarms;
pub mod prometheus;

use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use self::alarms::AlarmSource;
use self::prometheus::{Prometheus, Sample};
use crate::probe::{HttpClients, TlsOptions};
use crate::redact;

/// The `analysis` block, decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub prometheus: Option<PrometheusSettings>,
    pub metrics: Vec<MetricSettings>,
    pub alarms: Vec<String>,
    pub alarm_interval: Duration,
}

#[derive(Clone, PartialEq)]
pub struct PrometheusSettings {
    /// May hold `user:password@`.
    pub address: String,
    /// The values are secrets (tokens).
    pub headers: Vec<(String, String)>,
    pub tls: TlsOptions,
}

/// Shows the address redacted and header names only.
impl fmt::Debug for PrometheusSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSettings")
            .field("address", &redact::redact_url_text(&self.address))
            .field("headers", &redact::headers(&self.headers))
            .field("tls", &self.tls)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricSettings {
    pub name: String,
    /// PromQL, with `{color}`, `{release}` and the router's own placeholders.
    pub query: String,
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub interval: Duration,
    /// Failed measurements allowed; one more fails the analysis.
    pub failure_limit: u32,
    pub no_data: NoData,
}

/// What an empty answer (no series, or NaN) counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// Neither pass nor failure, but a step (or the bake) that ends with no number from
    /// the metric fails: an empty result never counts as a pass.
    Wait,
    /// A failed measurement.
    Fail,
    /// A passing measurement, for queries with no series when nothing is wrong (such as
    /// a count of errors).
    Pass,
}

impl NoData {
    pub const NAMES: [&'static str; 3] = ["wait", "fail", "pass"];

    pub fn parse(text: &str) -> Option<NoData> {
        match text {
            "wait" => Some(NoData::Wait),
            "fail" => Some(NoData::Fail),
            "pass" => Some(NoData::Pass),
            _ => None,
        }
    }
}

/// The placeholders every query may use; a router adds its own.
pub const PLACEHOLDERS: [&str; 2] = ["color", "release"];

/// The `{name}` placeholders of a query: braces around a bare identifier, which PromQL's
/// own braces (label matchers such as `{code="500"}`) never are.
pub fn placeholders(query: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('}') else { break };
        let name = &rest[..close];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push(name);
        }
    }
    found
}

/// One metric of one release, its query filled in.
struct Metric {
    settings: MetricSettings,
    query: String,
}

/// What one measurement saw.
#[derive(Clone, Debug)]
struct Measurement {
    when: String,
    seen: Result<Sample, String>,
    verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
    Waiting,
}

/// The analysis of one release on one colour: what it queries, and everything it saw so
/// far (failed measurements count across the steps and the bake).
pub struct Analysis<'a> {
    prometheus: Option<Prometheus>,
    metrics: Vec<Metric>,
    alarms: Option<(&'a dyn AlarmSource, Vec<String>, Duration)>,
    seen: Mutex<Vec<Vec<Measurement>>>,
}

/// How many measurements a report lists per metric (the latest ones).
const REPORT_LINES: usize = 20;

impl<'a> Analysis<'a> {
    /// `bindings` fill the placeholders, e.g. `("color", "green")`.
    pub fn new(
        settings: &Settings,
        http: &HttpClients,
        alarm_source: Option<&'a dyn AlarmSource>,
        bindings: &[(&str, String)],
    ) -> Result<Self, String> {
        let prometheus = match &settings.prometheus {
            Some(p) => Some(Prometheus {
                // A base URL: the API's path is joined onto whatever path it has.
                address: reqwest::Url::parse(&format!("{}/", p.address.trim_end_matches('/')))
                    .map_err(|e| format!("analysis.prometheus.address: {e}"))?,
                client: http.get(&p.tls)?,
                headers: p.headers.clone(),
            }),
            None => None,
        };
        let metrics = settings
            .metrics
            .iter()
            .map(|m| Metric {
                settings: m.clone(),
                query: bindings.iter().fold(m.query.clone(), |q, (name, value)| {
                    q.replace(&format!("{{{name}}}"), &promql_string_escaped(value))
                }),
            })
            .collect::<Vec<_>>();
        let alarms = match (alarm_source, settings.alarms.is_empty()) {
            (Some(source), false) => {
                Some((source, settings.alarms.clone(), settings.alarm_interval))
            }
            (None, false) => return Err("analysis.cloudwatch_alarms: no CloudWatch client".into()),
            _ => None,
        };
        Ok(Analysis {
            prometheus,
            seen: Mutex::new(vec![Vec::new(); metrics.len()]),
            metrics,
            alarms,
        })
    }

    /// Before any traffic moves: every query is answered (no data is fine), and every
    /// alarm exists and is not in `ALARM` already.
    pub async fn preflight(&self) -> Result<(), String> {
        let failed = |what: String| format!("Analysis cannot start: {what}");
        for metric in &self.metrics {
            if let Err(e) = self.query(metric).await {
                return Err(failed(format!(
                    "metric {:?}: {e}\nQuery: {}",
                    metric.settings.name, metric.query
                )));
            }
        }
        if let Some(firing) = self.firing_alarms().await.map_err(failed)? {
            return Err(failed(format!("{firing} before traffic moved")));
        }
        Ok(())
    }

    /// Measures for `period`; `when` says where traffic is, for the report ("at 20% on
    /// green"). Fails at the first metric past its `failure_limit` or alarm in `ALARM`.
    pub async fn watch(&self, period: Duration, when: &str) -> Result<(), String> {
        let start = Instant::now();
        let metrics = self
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| self.watch_metric(i, m, start, period, when));
        let metrics = futures_util::future::try_join_all(metrics);
        let alarms = self.watch_alarms(start, period, when);
        tokio::try_join!(metrics, alarms).map(|_| ())
    }

    async fn watch_metric(
        &self,
        index: usize,
        metric: &Metric,
        start: Instant,
        period: Duration,
        when: &str,
    ) -> Result<(), String> {
        let interval = metric.settings.interval;
        let mut numbers = 0;
        for at in measurement_times(period, interval) {
            tokio::time::sleep_until(crate::duration::later(start, at)).await;
            let seen = self.query(metric).await;
            let verdict = judge(&metric.settings, &seen);
            tracing::info!(metric = %metric.settings.name, ?seen, ?verdict, when, "analysis measurement");
            if matches!(seen, Ok(Sample::Number(_))) {
                numbers += 1;
            }
            let failures = {
                let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                all[index].push(Measurement {
                    when: format!("{when}, +{}", crate::duration::format(at)),
                    seen,
                    verdict,
                });
                all[index]
                    .iter()
                    .filter(|m| m.verdict == Verdict::Failed)
                    .count()
            };
            if failures > metric.settings.failure_limit as usize {
                return Err(self.report(
                    index,
                    metric,
                    &format!(
                        "Analysis failed {when}: metric {:?} failed {failures} measurement{}, more than its failure_limit of {}.",
                        metric.settings.name,
                        if failures == 1 { "" } else { "s" },
                        metric.settings.failure_limit
                    ),
                ));
            }
        }
        if numbers == 0 && metric.settings.no_data == NoData::Wait {
            return Err(self.report(
                index,
                metric,
                &format!(
                    "Analysis failed {when}: metric {:?} returned no data in {} (no_data = \"wait\": an empty result never counts as a pass).",
                    metric.settings.name,
                    crate::duration::format(period)
                ),
            ));
        }
        Ok(())
    }

    async fn watch_alarms(
        &self,
        start: Instant,
        period: Duration,
        when: &str,
    ) -> Result<(), String> {
        let Some((_, _, interval)) = &self.alarms else {
            return Ok(());
        };
        let times = std::iter::once(Duration::ZERO).chain(measurement_times(period, *interval));
        for at in times {
            tokio::time::sleep_until(crate::duration::later(start, at)).await;
            let firing = self
                .firing_alarms()
                .await
                .map_err(|e| format!("Analysis failed {when}: {e}"))?;
            if let Some(firing) = firing {
                return Err(format!("Analysis failed {when}: {firing}."));
            }
        }
        Ok(())
    }

    /// The alarms in `ALARM`, in words; an error when one is missing or CloudWatch fails.
    async fn firing_alarms(&self) -> Result<Option<String>, String> {
        let Some((source, names, _)) = &self.alarms else {
            return Ok(None);
        };
        let found = source.alarms(names).await?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !found.iter().any(|a| &a.name == *n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "CloudWatch has no alarm named {} (analysis.cloudwatch_alarms)",
                missing.join(", ")
            ));
        }
        let firing: Vec<String> = found
            .iter()
            .filter(|a| a.firing())
            .map(|a| format!("{:?} ({})", a.name, a.reason))
            .collect();
        Ok((!firing.is_empty())
            .then(|| format!("CloudWatch alarm {} is in ALARM", firing.join(", "))))
    }

    async fn query(&self, metric: &Metric) -> Result<Sample, String> {
        let Some(prometheus) = &self.prometheus else {
            return Err("no prometheus block".into());
        };
        // A query slower than its interval would hold back the next measurement.
        let timeout = metric
            .settings
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        prometheus.query(&metric.query, timeout).await
    }

    /// The failure report: the headline, the query as sent, the threshold and the latest
    /// measurements.
    fn report(&self, index: usize, metric: &Metric, headline: &str) -> String {
        let s = &metric.settings;
        let mut out = String::from(headline);
        let address = self
            .prometheus
            .as_ref()
            .map(|p| redact::redact_url(&p.address))
            .unwrap_or_default();
        let _ = write!(out, "\nQuery sent to {address}: {}", metric.query);
        let _ = write!(
            out,
            "\nPasses when: {}; measured every {}.",
            bounds(s),
            crate::duration::format(s.interval)
        );
        let all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = &all[index];
        let _ = write!(
            out,
            "\nMeasurements ({} in all{}):",
            seen.len(),
            if seen.len() > REPORT_LINES {
                format!(", the last {REPORT_LINES}")
            } else {
                String::new()
            }
        );
        for m in seen.iter().skip(seen.len().saturating_sub(REPORT_LINES)) {
            let value = match &m.seen {
                Ok(Sample::Number(n)) => number(*n),
                Ok(Sample::NoData) => "no data".into(),
                Err(e) => format!("error: {e}"),
            };
            let verdict = match m.verdict {
                Verdict::Passed => "passed",
                Verdict::Failed => "FAILED",
                Verdict::Waiting => "waiting for data",
            };
            let _ = write!(out, "\n  {}: {value} ({verdict})", m.when);
        }
        out
    }
}

/// A placeholder's value as it may stand inside a PromQL string (`release="{release}"`).
fn promql_string_escaped(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A measured value for people: four decimals at most.
fn number(n: f64) -> String {
    let text = format!("{n:.4}");
    match text.trim_end_matches('0').trim_end_matches('.') {
        "" | "-" => "0".into(),
        "-0" => "0".into(),
        short => short.to_string(),
    }
}

/// `max`/`min` in words.
fn bounds(s: &MetricSettings) -> String {
    match (s.min, s.max) {
        (Some(min), Some(max)) => format!("{min} <= value <= {max}"),
        (Some(min), None) => format!("value >= {min}"),
        (None, Some(max)) => format!("value <= {max}"),
        (None, None) => "any value".into(),
    }
}

fn judge(s: &MetricSettings, seen: &Result<Sample, String>) -> Verdict {
    match seen {
        Err(_) => Verdict::Failed,
        Ok(Sample::NoData) => match s.no_data {
            NoData::Wait => Verdict::Waiting,
            NoData::Fail => Verdict::Failed,
            NoData::Pass => Verdict::Passed,
        },
        Ok(Sample::Number(n)) => {
            let within = s.max.is_none_or(|max| *n <= max) && s.min.is_none_or(|min| *n >= min);
            if within {
                Verdict::Passed
            } else {
                Verdict::Failed
            }
        }
    }
}

/// When, from the start of a period, a metric is measured: every `interval`, and once at
/// the end when the period is shorter than one interval.
fn measurement_times(period: Duration, interval: Duration) -> impl Iterator<Item = Duration> {
    let count = if interval.is_zero() {
        0
    } else {
        (period.as_nanos() / interval.as_nanos()).max(1) as u32
    };
    (1..=count).map(move |k| (interval * k).min(period))
}

#[cfg(test)]
mod tests;
