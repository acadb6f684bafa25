//! What a load saw: one [`Sample`] per request, and the figures tests assert on (failures by
//! kind, the share each release served in a time window, latency percentiles).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;

use super::connection::Transport;

/// The response header in which the ALB emulator names the target that served a request.
pub const TARGET_HEADER: &str = "x-alb-target";

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete HTTP answer with this status.
    Status(u16),
    /// No complete answer.
    Transport(Transport),
}

impl Outcome {
    /// Anything but a 2xx answer is a failure: what a user of the service would see as one.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Outcome::Status(200..=299))
    }
}

/// `503`, `connection reset`: the key of a failure tally.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(status) => write!(f, "{status}"),
            Outcome::Transport(transport) => write!(f, "{transport}"),
        }
    }
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When it started, since the load's start.
    pub start: Duration,
    /// Until its answer was read in full, or until it failed.
    pub latency: Duration,
    pub outcome: Outcome,
    /// The release that answered: `"version"` of the JSON body, when there is one.
    pub release: Option<String>,
    /// The [`TARGET_HEADER`] of the answer (`id:port`), behind the ALB emulator.
    pub target: Option<String>,
}

impl Sample {
    pub(super) fn of(
        start: Duration,
        latency: Duration,
        result: Result<Response<Bytes>, Transport>,
    ) -> Sample {
        match result {
            Ok(response) => Sample {
                start,
                latency,
                outcome: Outcome::Status(response.status().as_u16()),
                release: release_of(response.body()),
                target: response
                    .headers()
                    .get(TARGET_HEADER)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            },
            Err(transport) => Sample {
                start,
                latency,
                outcome: Outcome::Transport(transport),
                release: None,
                target: None,
            },
        }
    }
}

/// `{"version":"v2",...}` → `v2`; anything else (a load balancer's own page) → none.
fn release_of(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(json.get("version")?.as_str()?.to_string())
}

/// A moment a test marked during the load ([`super::Load::mark`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub label: String,
    /// Since the load's start.
    pub at: Duration,
}

/// Counts by kind, e.g. failures: `502 x3, connection reset x1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<String, u64>);

impl Tally {
    /// The count of one kind (`"503"`, `"timeout"`), 0 when absent.
    pub fn count(&self, kind: &str) -> u64 {
        self.0.get(kind).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(kind, n)| (kind.as_str(), *n))
    }
}

impl FromIterator<String> for Tally {
    fn from_iter<I: IntoIterator<Item = String>>(kinds: I) -> Self {
        let mut tally = BTreeMap::new();
        for kind in kinds {
            *tally.entry(kind).or_insert(0) += 1;
        }
        Tally(tally)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (kind, n) in &self.0 {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{kind} x{n}")?;
        }
        Ok(())
    }
}

/// The share of one release among the requests started in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub release: String,
    pub window: Range<Duration>,
    /// Requests started in the window.
    pub started: u64,
    /// Of those, the ones a release answered (whatever the status): the share's denominator,
    /// so that transport failures, counted apart, do not skew a traffic split.
    pub answered: u64,
    /// Of those, the ones `release` answered.
    pub served: u64,
}

impl Share {
    /// `served / answered`, 0 when nothing was answered.
    pub fn fraction(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.served as f64 / self.answered as f64
        }
    }
}

/// A share held against an expected one, with a binomial tolerance: each answered request is
/// taken as an independent draw that goes to the release with the expected probability `p`, so
/// the observed share has a standard error of `sqrt(p (1 - p) / n)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareCheck {
    pub share: Share,
    pub expected: f64,
    /// How many standard errors the observed share may be off by.
    pub z: f64,
}

impl ShareCheck {
    pub fn standard_error(&self) -> f64 {
        let p = self.expected;
        (p * (1.0 - p) / self.share.answered.max(1) as f64).sqrt()
    }

    /// Whether the observed share is within `z` standard errors of the expected one. With an
    /// expected share of 0 or 1 that means exactly: a release at weight 0 must serve nothing.
    /// Never true without answered requests.
    pub fn within(&self) -> bool {
        let tolerance = self.z * self.standard_error();
        self.share.answered > 0
            && (self.share.fraction() - self.expected).abs() <= tolerance + 1e-12
    }
}

/// `v2 served 41 of 200 answered (20.5%) of 203 started in 1.20s..3.40s; expected 20.0% ±
/// 8.5% (3σ): within`, for an assertion's message.
impl fmt::Display for ShareCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.share;
        write!(
            f,
            "{} served {} of {} answered ({:.1}%) of {} started in {:.2?}..{:.2?}; \
             expected {:.1}% ± {:.1}% ({}σ): {}",
            s.release,
            s.served,
            s.answered,
            100.0 * s.fraction(),
            s.started,
            s.window.start,
            s.window.end,
            100.0 * self.expected,
            100.0 * self.z * self.standard_error(),
            self.z,
            if self.within() { "within" } else { "OUTSIDE" }
        )
    }
}

/// Everything a load recorded; see [`super::Load::stop`].
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// In order of start.
    samples: Vec<Sample>,
    marks: Vec<Mark>,
    connections: u64,
    elapsed: Duration,
}

impl LoadReport {
    pub(super) fn new(
        mut samples: Vec<Sample>,
        marks: Vec<Mark>,
        connections: u64,
        elapsed: Duration,
    ) -> Self {
        samples.sort_by_key(|s| s.start);
        LoadReport {
            samples,
            marks,
            connections,
            elapsed,
        }
    }

    /// Every request, in order of start.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// Requests started.
    pub fn total(&self) -> u64 {
        self.samples.len() as u64
    }

    /// Requests that failed: see [`Outcome::is_failure`].
    pub fn failed(&self) -> u64 {
        self.failed_samples().count() as u64
    }

    /// The failures by kind: `502 x3, connection reset x1`.
    pub fn failures(&self) -> Tally {
        self.failed_samples()
            .map(|s| s.outcome.to_string())
            .collect()
    }

    fn failed_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.outcome.is_failure())
    }

    /// Requests answered per release, whatever the status (a failing release still served).
    pub fn served_by(&self) -> BTreeMap<String, u64> {
        let mut served = BTreeMap::new();
        for release in self.samples.iter().filter_map(|s| s.release.as_ref()) {
            *served.entry(release.clone()).or_insert(0) += 1;
        }
        served
    }

    /// TCP connections the workers opened: with keep-alive and no failure, one per worker.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// From the start until the last request ended.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Requests started per second over [`elapsed`](Self::elapsed).
    pub fn rate(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency that this fraction (0..=1) of requests, failed ones included, did not
    /// exceed (nearest rank); zero without requests.
    pub fn percentile(&self, q: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let rank = (q.clamp(0.0, 1.0) * latencies.len() as f64).ceil() as usize;
        latencies
            .get(rank.saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// The share `release` served of the requests started in `window` (e.g. between two
    /// marks).
    pub fn share_of(&self, release: &str, window: Range<Duration>) -> Share {
        let started: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| window.contains(&s.start))
            .collect();
        let answered = started.iter().filter(|s| s.release.is_some());
        Share {
            release: release.to_string(),
            started: started.len() as u64,
            answered: answered.clone().count() as u64,
            served: answered
                .filter(|s| s.release.as_deref() == Some(release))
                .count() as u64,
            window,
        }
    }

    /// [`share_of`](Self::share_of) held against `expected` within `z` standard errors:
    /// `assert!(check.within(), "{check}")`.
    pub fn share_within(
        &self,
        release: &str,
        window: Range<Duration>,
        expected: f64,
        z: f64,
    ) -> ShareCheck {
        ShareCheck {
            share: self.share_of(release, window),
            expected,
            z,
        }
    }
}

/// One paragraph: `412 requests in 2.00s (206.0/s) over 4 connections; 3 failed (503 x3);
/// served by v1 x409, v2 x3; latency p50 412.0µs, p99 2.1ms`.
impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests in {:.2?} ({:.1}/s) over {} connections; {} failed",
            self.total(),
            self.elapsed,
            self.rate(),
            self.connections,
            self.failed()
        )?;
        if self.failed() > 0 {
            write!(f, " ({})", self.failures())?;
        }
        let served: Vec<String> = self
            .served_by()
            .iter()
            .map(|(release, n)| format!("{release} x{n}"))
            .collect();
        if served.is_empty() {
            f.write_str("; served by no release")?;
        } else {
            write!(f, "; served by {}", served.join(", "))?;
        }
        write!(
            f,
            "; latency p50 {:.1?}, p99 {:.1?}",
            self.p50(),
            self.p99()
        )?;
        for (i, mark) in self.marks.iter().enumerate() {
            let lead = if i == 0 { "; marks: " } else { ", " };
            write!(f, "{lead}{:?} at {:.2?}", mark.label, mark.at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn answered(start: u64, status: u16, release: &str) -> Sample {
        Sample {
            start: ms(start),
            latency: ms(1 + start % 10),
            outcome: Outcome::Status(status),
            release: Some(release.to_string()),
            target: None,
        }
    }

    fn broken(start: u64, transport: Transport) -> Sample {
        Sample {
            start: ms(start),
            latency: ms(100),
            outcome: Outcome::Transport(transport),
            release: None,
            target: None,
        }
    }

    /// 1000 requests, 1 ms apart: v1 until 500 ms, then one in five by v2; two failures.
    fn report() -> LoadReport {
        let mut samples: Vec<Sample> = (0..1000)
            .map(|i| answered(i, 200, if i >= 500 && i % 5 == 0 { "v2" } else { "v1" }))
            .collect();
        samples[10].outcome = Outcome::Status(502);
        samples[11] = broken(11, Transport::Io(std::io::ErrorKind::ConnectionReset));
        samples.reverse();
        let marks = vec![Mark {
            label: "shifted to 20%".into(),
            at: ms(500),
        }];
        LoadReport::new(samples, marks, 4, ms(1000))
    }

    #[test]
    fn counts_failures_by_kind_and_releases() {
        let report = report();
        assert_eq!(report.samples()[0].start, Duration::ZERO, "sorted by start");
        assert_eq!((report.total(), report.failed()), (1000, 2));
        assert_eq!(report.failures().to_string(), "502 x1, connection reset x1");
        assert_eq!(report.failures().count("502"), 1);
        assert_eq!(report.failures().count("503"), 0);
        assert_eq!(report.served_by()["v2"], 100);
        assert_eq!(report.served_by()["v1"], 899);
        assert!((report.rate() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let report = report();
        assert_eq!(report.percentile(0.0), ms(1));
        assert_eq!(report.p50(), ms(6));
        assert_eq!(report.p99(), ms(10));
        assert_eq!(report.percentile(1.0), ms(100));
        let empty = LoadReport::new(vec![], vec![], 0, ms(1));
        assert_eq!(empty.p99(), Duration::ZERO);
    }

    #[test]
    fn shares_in_windows_with_a_binomial_tolerance() {
        let report = report();
        let after = report.marks()[0].at..ms(1000);
        let share = report.share_of("v2", after.clone());
        assert_eq!(
            (share.started, share.answered, share.served),
            (500, 500, 100)
        );
        // Expected 20%: σ = sqrt(0.2 × 0.8 / 500) ≈ 1.79%.
        let check = report.share_within("v2", after.clone(), 0.2, 3.0);
        assert!(check.within(), "{check}");
        assert!((check.standard_error() - 0.01789).abs() < 1e-4);
        // 25% is 2.6σ away (σ ≈ 1.94% there): within 3σ, not within 2σ.
        assert!(report.share_within("v2", after.clone(), 0.25, 3.0).within());
        let off = report.share_within("v2", after.clone(), 0.25, 2.0);
        assert!(!off.within());
        assert!(off.to_string().contains("OUTSIDE"), "{off}");
        // At weight 0 nothing may go to the release; the failure is left out of the shares.
        let before = Duration::ZERO..ms(500);
        assert_eq!(report.share_of("v1", before.clone()).answered, 499);
        assert!(report.share_within("v2", before.clone(), 0.0, 3.0).within());
        assert!(!report
            .share_within("v2", ms(400)..ms(600), 0.0, 3.0)
            .within());
        assert!(!report
            .share_within("v2", ms(2000)..ms(3000), 0.0, 3.0)
            .within());
    }

    #[test]
    fn summarises_in_one_paragraph() {
        let text = report().to_string();
        assert!(
            text.starts_with(
                "1000 requests in 1.00s (1000.0/s) over 4 connections; 2 failed \
                 (502 x1, connection reset x1); served by v1 x899, v2 x100; latency p50 6.0ms"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(r#"marks: "shifted to 20%" at 500.00ms"#),
            "{text}"
        );
    }

    #[test]
    fn reads_the_release_from_a_json_body() {
        assert_eq!(
            release_of(br#"{"version":"v2","status":"ok"}"#).as_deref(),
            Some("v2")
        );
        assert_eq!(release_of(b"<html>503</html>"), None);
        assert_eq!(release_of(br#"{"version":2}"#), None);
        assert!(Outcome::Status(302).is_failure());
        assert!(!Outcome::Status(204).is_failure());
    }
}
