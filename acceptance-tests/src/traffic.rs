//! Traffic through a cut-over, measured, for the tests that release under load
//! (tests/traffic.rs, tests/analysis.rs). A steady, bounded stream of requests goes through
//! the ALB emulator's data plane (the listener's loopback port, routing each request by the
//! weights in force) while the real Terraform CLI applies, and [`Measured`] says what a user
//! of the service would see:
//!
//! * failed requests, and which release served each request;
//! * in every window in which the listener held one set of weights, the share of the new
//!   release within `Z` binomial standard errors of its weight (exactly 0 or 100% at weights
//!   0 and 100);
//! * afterwards, every request served by the expected release.
//!
//! When the weights changed: a [`Watcher`] polls the listener every [`POLL`] from moto directly
//! (not through the emulator, whose API throttling the provider's own calls share) and brackets
//! each write: it landed after the start of the last poll that still saw the old weights and
//! before the end of the first poll that saw the new ones. The data plane uses new weights
//! `weight_delay` (50 ms) after the write; each window keeps [`MARGIN`] inside the brackets, for
//! the emulator's read-back of the listener and the time from a request's start to its routing.
//!
//! Each load prints one `traffic-report:` line ([`Measured::print_line`]; docs/reliability.md's
//! table "Traffic through every cut-over" is made of them: `cargo nextest run ... --no-capture`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alb;
use crate::app::TestApp;
use crate::elb::{self, BlueGreenFixture};
use crate::hcl;
use crate::load::{Load, LoadReport, LoadSettings, Outcome};
use crate::terraform::{clis, Needs, On, Terraform};
use crate::workspace::{Output, Step, Workspace};
use aws_sdk_elasticloadbalancingv2 as elbv2;

/// The listener's forward weights by colour: `{blue: 20, green: 80}`.
pub type Weights = BTreeMap<String, i32>;

pub const APPLY: &[&str] = &["apply", "-no-color", "-input=false", "-auto-approve"];

/// Between two reads of the listener (and of the tags) from moto.
pub const POLL: Duration = Duration::from_millis(40);
/// Kept inside each window's brackets.
pub const MARGIN: Duration = Duration::from_millis(200);
/// Windows shorter than this (after the margins) are not share-checked: a canary that fails
/// at its step holds its weights for a few hundred milliseconds only.
pub const SHORTEST_CHECKED: Duration = Duration::from_millis(500);
/// Load before the apply starts, and after it ends.
pub const BASELINE: Duration = Duration::from_millis(500);
pub const TAIL: Duration = Duration::from_millis(1200);
pub const WORKERS: usize = 4;
pub const RATE: f64 = 150.0;
/// Standard errors a step's share may be off by.
pub const Z: f64 = 4.0;

pub fn weights(blue: i32, green: i32) -> Weights {
    BTreeMap::from([("blue".to_string(), blue), ("green".to_string(), green)])
}

/// The newest Terraform CLI (none without TF_ACC): what these tests measure is the
/// provider's, the same under every CLI, and each takes seconds of load.
pub fn cli(test: &str) -> Option<Terraform> {
    clis(test, Needs::Any, On::Newest).into_iter().next()
}

/// A baked-image fleet as in bluegreen.rs: the release's app handed over as `targets`,
/// checked directly on each target on `/health`.
pub fn fleet_config(fx: &BlueGreenFixture, release: &str, app: &TestApp, extra: &str) -> String {
    hcl::app(fx, release, app.port(), extra, "60s")
}

/// A value seen by the [`Watcher`], with the bracket in which it was written (since the load
/// started): after `after` (the start of the last poll that saw the value before), by `by` (the
/// end of the first poll that saw this one).
#[derive(Clone, Debug, PartialEq)]
pub struct Seen<T> {
    pub value: T,
    pub after: Duration,
    pub by: Duration,
}

/// Polls the listener's weights, and optionally one target group's `immutable:generation`
/// tag, from moto directly.
pub struct Watcher {
    pub weights: Arc<Mutex<Vec<Seen<Weights>>>>,
    pub generations: Arc<Mutex<Vec<Seen<Option<String>>>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub fn start(fx: &BlueGreenFixture, origin: Instant, tags_of: Option<String>) -> Watcher {
        let moto = elb::client(&crate::moto::shared().endpoint());
        let colours = [
            (fx.blue_tg_arn.clone(), "blue".to_string()),
            (fx.green_tg_arn.clone(), "green".to_string()),
        ];
        let listener = fx.listener_arn.clone();
        let weights = Arc::new(Mutex::new(Vec::new()));
        let generations = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (weights, generations) = (weights.clone(), generations.clone());
            async move {
                let (mut weights_before, mut tags_before) = (None, None);
                loop {
                    let start = origin.elapsed();
                    if let Some(w) = read_weights(&moto, &listener, &colours).await {
                        record(
                            &weights,
                            w,
                            weights_before.unwrap_or(start),
                            origin.elapsed(),
                        );
                        weights_before = Some(start);
                    }
                    if let Some(tg) = &tags_of {
                        let start = origin.elapsed();
                        if let Some(g) = read_generation(&moto, tg).await {
                            record(
                                &generations,
                                g,
                                tags_before.unwrap_or(start),
                                origin.elapsed(),
                            );
                            tags_before = Some(start);
                        }
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        });
        Watcher {
            weights,
            generations,
            task,
        }
    }

    /// The first weights seen for which `done` holds, once seen (panics after 60 s).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Weights) -> bool) -> Seen<Weights> {
        self.wait_for_since(what, Duration::ZERO, done).await
    }

    /// As [`wait_for`](Self::wait_for), for weights first seen after `since` (since the
    /// load started): a change that came after it.
    pub async fn wait_for_since(
        &self,
        what: &str,
        since: Duration,
        done: impl Fn(&Weights) -> bool,
    ) -> Seen<Weights> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.weights.lock().unwrap().clone();
            if let Some(s) = seen.iter().find(|s| s.by > since && done(&s.value)) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the listener never had {what}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn stop(self) -> (Vec<Seen<Weights>>, Vec<Seen<Option<String>>>) {
        self.task.abort();
        let weights = self.weights.lock().unwrap().clone();
        let generations = self.generations.lock().unwrap().clone();
        (weights, generations)
    }
}

pub fn record<T: PartialEq>(log: &Mutex<Vec<Seen<T>>>, value: T, after: Duration, by: Duration) {
    let mut log = log.lock().unwrap();
    if log.last().map(|s| &s.value) != Some(&value) {
        log.push(Seen { value, after, by });
    }
}

/// The listener's default forward by colour, as moto stores it (a plain forward counts as
/// weight 1, as AWS shows it); `None` when the read fails.
pub async fn read_weights(
    moto: &elbv2::Client,
    listener: &str,
    colours: &[(String, String)],
) -> Option<Weights> {
    let out = moto
        .describe_listeners()
        .listener_arns(listener)
        .send()
        .await
        .ok()?;
    let colour = |arn: &str| {
        colours
            .iter()
            .find(|(a, _)| a == arn)
            .map_or(arn.to_string(), |(_, c)| c.clone())
    };
    Some(elb::forward_weights(
        out.listeners().first()?.default_actions(),
        colour,
    ))
}

/// The group's `immutable:generation` tag, as moto stores it; `None` when the read fails.
pub async fn read_generation(moto: &elbv2::Client, tg: &str) -> Option<Option<String>> {
    let out = moto.describe_tags().resource_arns(tg).send().await.ok()?;
    Some(
        out.tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .find(|t| t.key() == Some("immutable:generation"))
            .and_then(|t| t.value().map(str::to_string)),
    )
}

/// A load through the listener's data plane, and the watcher of its weights.
pub struct Traffic {
    pub load: Load,
    pub watcher: Watcher,
}

impl Traffic {
    /// Starts the load (bounded by `longest`) and the watcher, and lets the load run for
    /// [`BASELINE`] before returning.
    pub async fn start(fx: &BlueGreenFixture, longest: Duration, tags_of: Option<&str>) -> Traffic {
        let url = alb::shared()
            .listener_url(&fx.listener_arn)
            .expect("the emulator serves the listener");
        let load = Load::start(
            &format!("{url}/"),
            LoadSettings {
                workers: WORKERS,
                rate_per_second: RATE,
                max_duration: longest,
                max_requests: (RATE * longest.as_secs_f64()) as u64,
                request_timeout: Duration::from_secs(5),
            },
        );
        let origin = Instant::now() - load.elapsed();
        let watcher = Watcher::start(fx, origin, tags_of.map(str::to_string));
        watcher.wait_for("weights", |_| true).await;
        tokio::time::sleep(BASELINE).await;
        Traffic { load, watcher }
    }

    /// `terraform apply` of the configuration written, marked in the load.
    pub async fn apply(&self, ws: &Workspace) -> (Output, Range<Duration>) {
        let start = self.load.mark("apply");
        let out = ws.terraform(APPLY, &[]).await;
        let end = self.load.mark("applied");
        (out, start..end)
    }

    /// Lets the load run for `tail`, then stops it and the watcher.
    pub async fn finish(self, tail: Duration) -> Measured {
        tokio::time::sleep(tail).await;
        let (weights, generations) = self.watcher.stop();
        Measured {
            report: self.load.stop().await,
            weights,
            generations,
            delay: alb::shared().settings().weight_delay,
        }
    }
}

/// What a load and the watcher saw.
pub struct Measured {
    pub report: LoadReport,
    pub weights: Vec<Seen<Weights>>,
    pub generations: Vec<Seen<Option<String>>>,
    /// The data plane's delay after a write.
    pub delay: Duration,
}

impl Measured {
    /// The weights in order, as seen.
    pub fn sequence(&self) -> Vec<Weights> {
        self.weights.iter().map(|s| s.value.clone()).collect()
    }

    /// Each set of weights with the window in which the data plane surely used it: from
    /// `MARGIN` after its write reached the data plane at the latest to `MARGIN` before the next
    /// write may have (the first from the start, the last until the end).
    pub fn windows(&self) -> Vec<(Weights, Range<Duration>)> {
        let n = self.weights.len();
        (0..n)
            .map(|k| {
                let start = if k == 0 {
                    Duration::ZERO
                } else {
                    self.weights[k].by + self.delay + MARGIN
                };
                let end = match self.weights.get(k + 1) {
                    Some(next) => (next.after + self.delay).saturating_sub(MARGIN),
                    None => self.report.elapsed(),
                };
                (self.weights[k].value.clone(), start..end)
            })
            .collect()
    }

    /// From `from` (e.g. the end of the apply), or from when the last write surely reached the
    /// data plane if that is later, to the end of the load.
    pub fn settled_after(&self, from: Duration) -> Range<Duration> {
        let last = self.weights.last().expect("weights seen");
        from.max(last.by + self.delay + MARGIN)..self.report.elapsed()
    }

    /// Checks the share of `release`, on `colour`, in every window long enough: its weight's
    /// share within `Z` standard errors (exactly at 0 and 100%). Returns how many windows were
    /// checked.
    pub fn assert_shares(&self, release: &str, colour: &str) -> usize {
        let mut checked = 0;
        for (weights, window) in self.windows() {
            if window.end < window.start + SHORTEST_CHECKED {
                continue;
            }
            let total: i32 = weights.values().sum();
            let expected = f64::from(weights.get(colour).copied().unwrap_or(0)) / f64::from(total);
            let check = self.report.share_within(release, window, expected, Z);
            println!("share at {weights:?}: {check}");
            assert!(
                check.within(),
                "{check}\nweights seen: {:?}\n{}",
                self.weights,
                self.report
            );
            checked += 1;
        }
        checked
    }

    /// Every request started in `window` was served by `release`, and there were some.
    pub fn assert_all_on(&self, release: &str, window: Range<Duration>) {
        let check = self.report.share_within(release, window, 1.0, Z);
        assert!(
            check.within() && check.share.answered >= 50,
            "not all on {release}: {check}\n{}",
            self.report
        );
    }

    pub fn assert_none_failed(&self) {
        assert_eq!(
            self.report.failed(),
            0,
            "failed requests: {}\nweights seen: {:?}\n{}",
            self.report.failures(),
            self.weights,
            self.report
        );
    }

    /// The requests that failed.
    pub fn failed(&self) -> Vec<&crate::load::Sample> {
        self.report
            .samples()
            .iter()
            .filter(|s| s.outcome.is_failure())
            .collect()
    }

    /// `traffic-report: scenario=... test=... requests=... failed=... served=v1:1,v2:2 p99_ms=...`
    pub fn print_line(&self, scenario: &str, test: &str) {
        let served: Vec<String> = self
            .report
            .served_by()
            .iter()
            .map(|(release, n)| format!("{release}:{n}"))
            .collect();
        println!(
            "traffic-report: scenario={scenario} test={test} requests={} failed={} served={} p99_ms={:.1}",
            self.report.total(),
            self.report.failed(),
            served.join(","),
            self.report.p99().as_secs_f64() * 1000.0
        );
        println!("{}", self.report);
        println!("weights seen: {:?}", self.weights);
    }
}

/// Terraform wraps error text; this undoes the wrapping for `contains` checks.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A fixture with v1 live on green (blue 0, green 100), released without load.
pub async fn v1_live(tf: &Terraform, name: &str) -> (BlueGreenFixture, Workspace, TestApp) {
    let fx = BlueGreenFixture::create(alb::shared(), name).await;
    let v1 = TestApp::start("v1").await;
    let ws = Workspace::new(tf, name);
    ws.step(Step {
        config: fleet_config(&fx, "v1", &v1, ""),
        ..Step::default()
    })
    .await;
    assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
    (fx, ws, v1)
}

/// Waits until the emulator calls every target of the group healthy.
pub async fn wait_healthy(fx: &BlueGreenFixture, tg: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = fx.targets(tg).await;
        if !targets.is_empty() && targets.iter().all(|t| t.2 == "healthy") {
            return;
        }
        assert!(Instant::now() < deadline, "never healthy: {targets:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// v1 live on green; v2 released onto blue under load with `traffic`; returns what was seen.
pub async fn release_v2(tf: &Terraform, name: &str, traffic: &str, longest: Duration) -> Measured {
    let (fx, ws, v1) = v1_live(tf, name).await;
    let v2 = TestApp::start("v2").await;
    ws.write_config(&fleet_config(&fx, "v2", &v2, traffic));
    let traffic = Traffic::start(&fx, longest, None).await;
    let (out, apply) = traffic.apply(&ws).await;
    let seen = traffic.finish(TAIL).await;
    assert!(out.success, "{}\n{}", out.text(), seen.report);
    seen.assert_all_on("v2", seen.settled_after(apply.end));
    drop((v1, v2));
    seen
}

/// After a release that failed while v3 served part of the traffic: the failed requests are
/// all v3's 503s, from when v3 was switched to failing until traffic was back on v1, and all
/// traffic is on v1 afterwards.
pub fn assert_failures_only_from_v3(seen: &Measured, failing_from: Duration, apply_end: Duration) {
    let failed = seen.failed();
    let foreign: Vec<_> = failed
        .iter()
        .filter(|s| s.release.as_deref() != Some("v3") || s.outcome != Outcome::Status(503))
        .collect();
    assert!(
        foreign.is_empty(),
        "failures not from v3: {foreign:?}\n{}",
        seen.report
    );
    // A request may have started just before the switch and reached v3 just after it.
    let early: Vec<_> = failed
        .iter()
        .filter(|s| s.start + s.latency < failing_from)
        .collect();
    assert!(
        early.is_empty(),
        "failures before v3 failed: {early:?}\n{}",
        seen.report
    );
    let back = seen.weights.last().expect("weights seen");
    assert_eq!(back.value, weights(0, 100), "traffic is back on green");
    let settled = back.by + seen.delay + MARGIN;
    let late: Vec<_> = failed.iter().filter(|s| s.start >= settled).collect();
    assert!(
        late.is_empty(),
        "failures after traffic was back on v1 ({settled:?}): {late:?}\n{}",
        seen.report
    );
    seen.assert_all_on("v1", seen.settled_after(apply_end));
}
