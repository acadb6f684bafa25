//! The rollout engine: what one apply does to move traffic to the standby colour, in the
//! contract's order, and how it backs out, for any [`TrafficRouter`]. Put the release's
//! targets in the standby colour, record the release there, point the test route at it,
//! wait for the router's own health checks and the HTTP checks, shift traffic (at once,
//! canary, or linear steps with checks running between them), verify each shift by
//! reading the router back, bake.
//!
//! Whatever fails, traffic ends on one colour: before the first shift the router is
//! untouched; after it, traffic goes back to the previous colour (always for a partial
//! shift, and at 100% when `auto_rollback` is on), or, when no colour served before (a
//! first release), the router's routing is put back exactly as it was. A weight write
//! that fails is read back: it may have gone through.

mod observe;
mod rollback;

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use observe::{observe, Observed};
pub use rollback::RolledBack;

use crate::analysis::Analysis;
use crate::probe::{
    self, Check, FailReason, GateResult, HttpClients, Method, Policy, StatusMatcher, TlsOptions,
};
use crate::router::{
    shift, verify, Color, MemberHealth, MemberState, Record, Routing, Split, Target, TrafficRouter,
};
use crate::text::capitalised;

/// How long new weights are given to take effect everywhere (every load balancer node)
/// before the fleet they moved away from is removed. AWS publishes no figure for it
/// (docs/guides/aws-emulation.md, "to confirm on a real account").
const WEIGHTS_SETTLE: Duration = Duration::from_secs(5);

/// How the standby colour is checked before and while it takes traffic.
#[derive(Clone)]
pub struct Health {
    pub endpoint: Option<Endpoint>,
    pub method: Method,
    pub headers: Vec<(String, String)>,
    pub expected_status: StatusMatcher,
    pub body_regex: Option<regex::Regex>,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub interval: Duration,
    pub request_timeout: Duration,
    pub insecure_skip_verify: bool,
    /// The router must report at least this many healthy members in the colour.
    pub min_healthy_targets: u32,
}

/// What the HTTP checks request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// One URL; `{color}` is replaced by the colour's name.
    Url(String),
    /// Every IP target of the colour, directly: `protocol://ip:port/path`.
    Targets {
        path: String,
        protocol: String,
        port: Option<u16>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    AllAtOnce,
    Canary { percent: u32, interval: Duration },
    Linear { step: u32, interval: Duration },
}

impl Strategy {
    /// The shares of traffic held before 100%, and how long each is held.
    fn steps(self) -> (Vec<u32>, Duration) {
        match self {
            Strategy::AllAtOnce => (vec![], Duration::ZERO),
            Strategy::Canary { percent, interval } => (vec![percent], interval),
            Strategy::Linear { step, interval } => (
                (1..).map(|i| i * step).take_while(|p| *p < 100).collect(),
                interval,
            ),
        }
    }
}

/// One release moving onto a colour.
#[derive(Clone, Debug)]
pub struct Release {
    pub color: Color,
    pub release: String,
    /// The fleet to put in the colour, when the provider manages it (`targets`). This is a
    /// sync, so a rollback to a colour that still holds its fleet adds nothing.
    pub targets: Option<Vec<Target>>,
    /// False when the colour's record already names this release.
    pub record_release: bool,
    pub strategy: Strategy,
    pub bake_time: Duration,
    pub auto_rollback: bool,
    pub retain_previous: bool,
    pub generation: i64,
    /// A rollback to the colour that served within `rollback_window`: when the colour
    /// still holds the release and its fleet, one HTTP check and no steps.
    pub quick_rollback: bool,
}

/// How a cut-over ended.
#[derive(Debug)]
pub enum Outcome {
    /// All traffic on the new colour, verified; the split as read back.
    Done(Split),
    /// Failed before any traffic moved; the router is as it was. `holds_release` tells
    /// whether the colour now holds the failed release (its record, and its fleet when the
    /// fleet adds itself); a fleet given as `targets` is put back as it was, so that the
    /// rollback to the release before stays instant.
    NotMoved { error: String, holds_release: bool },
    /// Failed after traffic moved, and traffic is back on the previous colour.
    RolledBack(String, Split),
    /// Failed at 100% with `auto_rollback` off: traffic stays on the new colour.
    Kept(String, Split),
    /// Failed, and so did moving traffic back: the split may be partial.
    Stuck(String),
}

/// Why checks that run while traffic moves or bakes stopped early.
enum Halt {
    /// The checks failed: the release is bad.
    ChecksFailed(String),
    /// Ctrl-C or the timeout: nothing is known against the release, but the apply ends.
    Stopped(String),
}

impl Halt {
    fn into_message(self) -> String {
        match self {
            Halt::ChecksFailed(m) | Halt::Stopped(m) => m,
        }
    }
}

pub struct Rollout<'a> {
    pub router: &'a dyn TrafficRouter,
    /// A second route pointed at the standby colour before the gate (an ALB test
    /// listener, like CodeDeploy's test traffic route).
    pub test_route: Option<&'a dyn TrafficRouter>,
    pub http: &'a HttpClients,
    pub stop: &'a CancellationToken,
    pub health: &'a Health,
    /// When the whole apply must be done (`timeouts`).
    pub deadline: Instant,
    /// Canary analysis of the release, run beside the checks at each step and the bake.
    pub analysis: Option<&'a Analysis<'a>>,
}

/// What preparing a colour changed, to undo when the release fails before traffic moved.
#[derive(Debug, Default)]
struct Prepared {
    /// The fleet's targets taken out of the colour, and those put in (`targets` only).
    removed: Vec<Target>,
    added: Vec<Target>,
    /// The colour's record before, when the fleet is `targets`.
    record_before: Option<Record>,
    /// The router's handle for keeping the colour health-checked until it takes traffic.
    warm_up: Option<String>,
    /// The colour's record names the release.
    recorded: bool,
}

impl Prepared {
    /// Whether the colour's `targets` fleet or its record were changed, and so are put
    /// back when the release fails before traffic moved.
    fn changed_fleet(&self) -> bool {
        self.record_before.is_some()
            && (self.recorded || !self.added.is_empty() || !self.removed.is_empty())
    }
}

impl Rollout<'_> {
    pub async fn run(&self, release: &Release) -> Outcome {
        let mut prepared = Prepared::default();
        let outcome = self.release(release, &mut prepared).await;
        if let Some(handle) = &prepared.warm_up {
            if let Err(e) = self.router.end_warm_up(handle).await {
                tracing::warn!(error = %e, "ending the warm-up failed; it takes no request");
            }
        }
        match outcome {
            Outcome::NotMoved { error, .. } if prepared.changed_fleet() => {
                match self.restore(release, &prepared).await {
                    Ok(()) => Outcome::NotMoved {
                        error: format!(
                            "{error}\nThe {} colour holds {} again.",
                            release.color,
                            if prepared.removed.is_empty() {
                                "what it held before (no target)"
                            } else {
                                "its previous fleet"
                            }
                        ),
                        holds_release: false,
                    },
                    Err(e) => Outcome::NotMoved {
                        error: format!(
                            "{error}\nPutting the previous fleet back on {} failed: {e}",
                            release.color
                        ),
                        holds_release: true,
                    },
                }
            }
            other => other,
        }
    }

    async fn release(&self, release: &Release, prepared: &mut Prepared) -> Outcome {
        let color = release.color;
        let before = match self.router.routing().await {
            Ok(before) => before,
            Err(e) => {
                return Outcome::NotMoved {
                    error: format!(
                        "Reading {} failed: {e}\nTraffic was not moved.",
                        self.router.name()
                    ),
                    holds_release: false,
                }
            }
        };
        if let Err(error) = self.prepare(release, prepared).await {
            return Outcome::NotMoved {
                error: format!(
                    "Preparing the {color} colour failed: {error}\nTraffic was not moved."
                ),
                holds_release: prepared.recorded,
            };
        }
        if self.stop.is_cancelled() {
            return Outcome::NotMoved {
                error: format!(
                    "Interrupted while preparing the {color} colour; traffic was not moved."
                ),
                holds_release: true,
            };
        }
        let quick = release.quick_rollback
            && !release.record_release
            && prepared.added.is_empty()
            && prepared.removed.is_empty();
        if quick {
            tracing::info!(%color, "rollback within rollback_window: one check, all at once");
        }
        let checks = match self.gate(release, quick).await {
            Ok(checks) => checks,
            Err(error) => {
                return Outcome::NotMoved {
                    error,
                    holds_release: true,
                }
            }
        };
        let strategy = if quick || self.nothing_to_share_with(release).await {
            Strategy::AllAtOnce
        } else {
            release.strategy
        };
        let (steps, step_interval) = strategy.steps();
        if let Some(analysis) = self.analysis {
            let runs =
                !(steps.is_empty() || step_interval.is_zero()) || !release.bake_time.is_zero();
            if runs {
                if let Err(error) = analysis.preflight().await {
                    return Outcome::NotMoved {
                        error: format!("{error}\nTraffic was not moved."),
                        holds_release: true,
                    };
                }
            }
        }
        let mut moved = false;
        let mut last = before.split;
        for percent in steps {
            tracing::info!(%color, percent, "shifting traffic");
            let split = Split::percent(color, percent);
            if let Err((written, e)) = self.move_traffic(split, last).await {
                let error = format!("Shifting {percent}% of traffic to {color} failed: {e}");
                return self.back_out(color, &before, moved || written, error).await;
            }
            (moved, last) = (true, split);
            let when = format!("at {percent}% on {color}");
            if let Err(halt) = self.watch(&checks, step_interval, &when).await {
                return self
                    .back_out(color, &before, true, halt.into_message())
                    .await;
            }
        }
        tracing::info!(%color, "shifting all traffic");
        let split = match self.move_traffic(Split::all_on(color), last).await {
            Ok(split) => split,
            Err((written, e)) => {
                let error = format!("Shifting all traffic to {color} failed: {e}");
                return self.back_out(color, &before, moved || written, error).await;
            }
        };
        let baked = self
            .watch(
                &checks,
                release.bake_time,
                &format!("while baking on {color}"),
            )
            .await;
        // Traffic goes back unless checks failed and auto_rollback is off; then the
        // previous fleet stays, the only one known to be healthy.
        match baked {
            Ok(()) => {
                if let Err(e) = self.release_previous(release).await {
                    tracing::warn!(error = %e, "traffic moved, but removing the previous fleet failed");
                }
                Outcome::Done(split)
            }
            Err(Halt::ChecksFailed(e)) if !release.auto_rollback => Outcome::Kept(e, split),
            Err(halt) => {
                self.back_out(color, &before, true, halt.into_message())
                    .await
            }
        }
    }

    /// Whether the steps would share traffic with a colour that has no member: a first
    /// release, with nothing serving before it. It then goes all at once (HAProxy could
    /// not weight an empty colour, and a load balancer would send its share nowhere).
    async fn nothing_to_share_with(&self, release: &Release) -> bool {
        if release.strategy == Strategy::AllAtOnce {
            return false;
        }
        match self.router.members(release.color.other()).await {
            Ok(members) if members.is_empty() => {
                tracing::info!(color = %release.color, "nothing serves before this release: all at once");
                true
            }
            _ => false,
        }
    }

    /// Writes the split and reads it back. A write that fails may still have gone through
    /// (HAProxy runs the rest of a line after one command fails, an answer can be lost
    /// after the write), so it is read back too: a split that took is the write done;
    /// otherwise the error says whether traffic may have moved from `last`, the split
    /// before the write (then it must be moved back), and what the router reports now.
    async fn move_traffic(&self, split: Split, last: Split) -> Result<Split, (bool, String)> {
        let Err(e) = self.router.set_weights(split).await else {
            return verify(self.router, split)
                .await
                .map_err(|e| (true, e.to_string()));
        };
        match self.router.weights().await {
            Ok(now) if now.same_shares(&split) => {
                tracing::warn!(error = %e, "the weight write reported a failure, but it took effect");
                Ok(now)
            }
            Ok(now) => Err((
                !now.same_shares(&last),
                format!("{e}\nRead back: blue {} / green {}.", now.blue, now.green),
            )),
            Err(read) => Err((
                true,
                format!(
                    "{e}\nThe weights could not be read back ({read}): traffic may have moved."
                ),
            )),
        }
    }

    /// Puts the release's fleet in the colour (removing stale members first), records the
    /// release there, has the router health-check it, and points the test route at it.
    /// Records what it changed in `prepared`.
    async fn prepare(&self, release: &Release, prepared: &mut Prepared) -> Result<(), String> {
        let color = release.color;
        let router = self.router;
        if let Some(wanted) = &release.targets {
            let [blue, green] = router.records().await.map_err(|e| e.to_string())?;
            prepared.record_before = Some(match color {
                Color::Blue => blue,
                Color::Green => green,
            });
            let members = router.members(color).await.map_err(|e| e.to_string())?;
            let current: Vec<Target> = members.iter().map(|t| t.target.clone()).collect();
            // A draining member is on its way out (the fleet of a release that just failed
            // here): wanted again, it is added again.
            let staying: Vec<Target> = members
                .into_iter()
                .filter(|t| t.state != MemberState::Draining)
                .map(|t| t.target)
                .collect();
            let stale: Vec<Target> = current
                .iter()
                .filter(|t| !contains(wanted, t))
                .cloned()
                .collect();
            let new: Vec<Target> = wanted
                .iter()
                .filter(|t| !contains(&staying, t))
                .cloned()
                .collect();
            router
                .remove_members(color, &stale)
                .await
                .map_err(|e| e.to_string())?;
            prepared.removed = stale;
            router
                .add_members(color, &new)
                .await
                .map_err(|e| e.to_string())?;
            prepared.added = new;
        }
        // The release and the generation it will go live as, in one write before the gate,
        // so that after the gate only the split is written and read back.
        let record = Record {
            release: Some(release.release.clone()),
            generation: Some(release.generation),
            rolled_back_at: None,
        };
        router
            .set_record(color, &record)
            .await
            .map_err(|e| e.to_string())?;
        prepared.recorded = release.record_release;
        prepared.warm_up = router.warm_up(color).await.map_err(|e| {
            format!(
                "Having {} health-check {} failed: {e}",
                router.checker(),
                router.describe(color)
            )
        })?;
        if let Some(test_route) = self.test_route {
            shift(test_route, Split::all_on(color))
                .await
                .map_err(|e| format!("Pointing the test listener at {color} failed: {e}"))?;
        }
        Ok(())
    }

    /// Puts back the fleet and the record the colour had before [`Self::prepare`].
    async fn restore(&self, release: &Release, prepared: &Prepared) -> Result<(), String> {
        let color = release.color;
        let failed = |e: crate::router::RouterError| e.to_string();
        self.router
            .remove_members(color, &prepared.added)
            .await
            .map_err(failed)?;
        self.router
            .add_members(color, &prepared.removed)
            .await
            .map_err(failed)?;
        let before = prepared.record_before.clone().unwrap_or_default();
        self.router.set_record(color, &before).await.map_err(failed)
    }

    /// Waits for the router to report the colour healthy, then for the HTTP checks to
    /// pass; returns the checks, which keep running during the shift and bake.
    /// `quick`: one passing round of HTTP checks is enough.
    async fn gate(&self, release: &Release, quick: bool) -> Result<Vec<Check>, String> {
        let threshold = if quick {
            1
        } else {
            self.health.healthy_threshold
        };
        self.gate_color(
            release.color,
            release.targets.as_deref().unwrap_or_default(),
            threshold,
        )
        .await
    }

    /// Gates a colour that already serves (or served) traffic, before traffic is put
    /// back on it.
    pub async fn check_color(&self, color: Color) -> Result<(), String> {
        self.gate_color(color, &[], self.health.healthy_threshold)
            .await
            .map(|_| ())
    }

    /// The router's member health, and the HTTP checks. When the checks are known before
    /// the router's answer (a URL, or the fleet given as `targets`), both run at once and
    /// the gate opens when both have passed; otherwise the checks go to the members the
    /// router calls healthy, once it does. The first failure closes it.
    async fn gate_color(
        &self,
        color: Color,
        required: &[Target],
        healthy_threshold: u32,
    ) -> Result<Vec<Check>, String> {
        let up_front = match &self.health.endpoint {
            Some(Endpoint::Targets { port, .. }) => {
                !required.is_empty() && required.iter().all(|t| port.or(t.port).is_some())
            }
            _ => true,
        };
        if !up_front {
            let healthy = self.wait_for_member_health(color, required).await?;
            if self.stop.is_cancelled() {
                return Err(interrupted_gate(color));
            }
            let targets: Vec<Target> = healthy.into_iter().map(|t| t.target).collect();
            let checks = self.checks(color, &targets)?;
            return self.http_gate(color, checks, healthy_threshold).await;
        }
        let checks = self.checks(color, required)?;
        let members = self.wait_for_member_health(color, required);
        let http = self.http_gate(color, checks, healthy_threshold);
        tokio::pin!(members, http);
        let mut members_passed = false;
        let mut checks = None;
        loop {
            tokio::select! {
                // Ctrl-C ends both at once: the HTTP side's report says more.
                biased;
                passed = &mut http, if checks.is_none() => checks = Some(passed?),
                passed = &mut members, if !members_passed => members_passed = passed.map(|_| true)?,
            }
            if members_passed {
                if let Some(checks) = checks {
                    return Ok(checks);
                }
            }
        }
    }

    async fn http_gate(
        &self,
        color: Color,
        checks: Vec<Check>,
        healthy_threshold: u32,
    ) -> Result<Vec<Check>, String> {
        if checks.is_empty() {
            return Ok(checks);
        }
        let policy = Policy {
            healthy_threshold,
            unhealthy_threshold: self.health.unhealthy_threshold,
            interval: self.health.interval,
            initial_delay: Duration::ZERO,
            deadline: self.remaining(),
        };
        match probe::run_gate(self.http, &checks, &policy, self.stop).await {
            GateResult::Passed(_) => Ok(checks),
            GateResult::Failed { why, report } => {
                let headline = if why == FailReason::Interrupted {
                    interrupted_gate(color)
                } else {
                    format!(
                        "The {color} colour did not pass its health checks; traffic was not moved."
                    )
                };
                Err(format!(
                    "{headline}\n\n{}",
                    probe::failure_detail(&checks, &policy, &why, &report)
                ))
            }
        }
    }

    /// The router's own health checks: at least `min_healthy_targets` healthy, and every given
    /// target.
    async fn wait_for_member_health(
        &self,
        color: Color,
        required: &[Target],
    ) -> Result<Vec<MemberHealth>, String> {
        // Polls in a row in which the router called a member that is needed unhealthy:
        // `unhealthy_threshold` of them fail the gate early, as failed HTTP checks do.
        let mut unhealthy_polls = 0;
        loop {
            let health = self
                .router
                .members(color)
                .await
                .map_err(|e| e.to_string())?;
            let healthy: Vec<MemberHealth> =
                health.iter().filter(|t| t.is_healthy()).cloned().collect();
            let all_required = required
                .iter()
                .all(|r| healthy.iter().any(|h| h.target.matches(r)));
            if healthy.len() as u32 >= self.health.min_healthy_targets && all_required {
                return Ok(healthy);
            }
            let needed = |t: &&MemberHealth| {
                required.is_empty() || required.iter().any(|r| t.target.matches(r))
            };
            if health
                .iter()
                .filter(needed)
                .any(|t| t.state == MemberState::Unhealthy)
            {
                unhealthy_polls += 1;
            } else {
                unhealthy_polls = 0;
            }
            let given_up = self.health.unhealthy_threshold > 0
                && unhealthy_polls >= self.health.unhealthy_threshold;
            if given_up
                || crate::duration::later(Instant::now(), self.health.interval) > self.deadline
            {
                return Err(self.member_health_failure(color, &health, &healthy, required));
            }
            tokio::select! {
                _ = self.stop.cancelled() => return Err(interrupted_gate(color)),
                _ = tokio::time::sleep(self.health.interval) => {}
            }
        }
    }

    /// Why the router's view kept the gate shut, member by member, in words.
    fn member_health_failure(
        &self,
        color: Color,
        health: &[MemberHealth],
        healthy: &[MemberHealth],
        required: &[Target],
    ) -> String {
        let mut lines: Vec<String> = health
            .iter()
            .filter(|t| !t.is_healthy())
            .map(|t| {
                format!(
                    "{}: {}",
                    t.target,
                    t.detail.as_deref().unwrap_or("not healthy")
                )
            })
            .collect();
        lines.extend(
            required
                .iter()
                .filter(|r| !health.iter().any(|h| h.target.matches(r)))
                .map(|r| format!("{r}: not reported by {} (not registered, or the registration is not visible yet)", self.router.checker())),
        );
        let needed = if required.is_empty() {
            format!("at least {} healthy", self.health.min_healthy_targets)
        } else {
            format!(
                "at least {} healthy, and all of `targets`,",
                self.health.min_healthy_targets
            )
        };
        format!(
            "{} reports {} of {} targets healthy in {}; {needed} are needed before traffic can move ({}, so the provider refuses). Traffic was not moved.{}",
            capitalised(self.router.checker()),
            healthy.len(),
            health.len(),
            self.router.describe(color),
            self.router.none_healthy_means(),
            if lines.is_empty() {
                String::new()
            } else {
                format!("\n{}", lines.join("\n"))
            }
        )
    }

    /// The HTTP checks of a colour: its URL, or each of these IP targets.
    fn checks(&self, color: Color, targets: &[Target]) -> Result<Vec<Check>, String> {
        let check = |url: String| -> Result<Check, String> {
            Ok(Check {
                url: reqwest::Url::parse(&url)
                    .map_err(|e| format!("health check URL {url:?}: {e}"))?,
                method: self.health.method,
                headers: self.health.headers.clone(),
                expected_status: self.health.expected_status.clone(),
                body_regex: self.health.body_regex.clone(),
                request_timeout: self.health.request_timeout,
                tls: TlsOptions {
                    insecure_skip_verify: self.health.insecure_skip_verify,
                    ca_cert_pem: None,
                },
            })
        };
        match &self.health.endpoint {
            None => Ok(Vec::new()),
            Some(Endpoint::Url(template)) => {
                Ok(vec![check(template.replace("{color}", color.name()))?])
            }
            Some(Endpoint::Targets {
                path,
                protocol,
                port,
            }) => {
                let urls: Vec<String> = targets
                    .iter()
                    .filter_map(|t| {
                        let ip: std::net::IpAddr = t.id.parse().ok()?;
                        let port = port.or(t.port)?;
                        let host = match ip {
                            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                            v4 => v4.to_string(),
                        };
                        Some(format!(
                            "{}://{host}:{port}{path}",
                            protocol.to_ascii_lowercase()
                        ))
                    })
                    .collect();
                if urls.is_empty() {
                    return Err(format!(
                        "health_check.path probes IP targets directly, but {} has no healthy IP target with a port; use health_check.url instead. Traffic was not moved.",
                        self.router.describe(color)
                    ));
                }
                urls.into_iter().map(check).collect()
            }
        }
    }

    /// Keeps the checks and the analysis running for `period`: a failure of either ends
    /// it with [`Halt::ChecksFailed`]; Ctrl-C, or the apply's deadline coming first (the
    /// release is not done until the period is over), with [`Halt::Stopped`].
    async fn watch(&self, checks: &[Check], period: Duration, when: &str) -> Result<(), Halt> {
        if period.is_zero() {
            return Ok(());
        }
        let remaining = self.remaining();
        let cut_short = remaining < period;
        let period = period.min(remaining);
        let interrupted = || Halt::Stopped(format!("Interrupted {when}."));
        let analysis = async {
            match self.analysis {
                Some(analysis) => analysis
                    .watch(period, when)
                    .await
                    .map_err(Halt::ChecksFailed),
                None => Ok(()),
            }
        };
        let outcome = tokio::select! {
            _ = self.stop.cancelled() => Err(interrupted()),
            outcome = async { tokio::try_join!(self.watch_checks(checks, period, when), analysis) } => outcome.map(|_| ()),
        };
        match outcome {
            Ok(()) if cut_short => Err(Halt::Stopped(format!("The timeout ran out {when}."))),
            other => other,
        }
    }

    /// The HTTP checks for `period`: `unhealthy_threshold` consecutive failing rounds (at
    /// least one) fail it.
    async fn watch_checks(
        &self,
        checks: &[Check],
        period: Duration,
        when: &str,
    ) -> Result<(), Halt> {
        if checks.is_empty() {
            tokio::time::sleep(period).await;
            return Ok(());
        }
        let policy = Policy::watch(
            period,
            self.health.unhealthy_threshold,
            self.health.interval,
        );
        match probe::run_gate(self.http, checks, &policy, self.stop).await {
            GateResult::Failed {
                why: FailReason::Deadline,
                ..
            }
            | GateResult::Passed(_) => Ok(()),
            GateResult::Failed {
                why: FailReason::Interrupted,
                ..
            } => Err(Halt::Stopped(format!("Interrupted {when}."))),
            GateResult::Failed { why, report } => Err(Halt::ChecksFailed(format!(
                "Health checks failed {when}.\n\n{}",
                probe::failure_detail(checks, &policy, &why, &report)
            ))),
        }
    }

    /// After a failure: when any traffic moved, all of it back on the previous colour, or,
    /// when that colour served nothing `before` (a first release), the routing put back
    /// exactly as it was: never a forward to a colour with no member.
    async fn back_out(
        &self,
        color: Color,
        before: &Routing,
        moved: bool,
        error: String,
    ) -> Outcome {
        if !moved {
            return Outcome::NotMoved {
                error: format!("{error}\nTraffic was not moved."),
                holds_release: true,
            };
        }
        let previous = color.other();
        if before.split.of(previous) > 0 {
            tracing::warn!(%previous, "rolling back");
            return match shift(self.router, Split::all_on(previous)).await {
                Ok(split) => Outcome::RolledBack(
                    format!("{error}\nAll traffic was moved back to {previous}."),
                    split,
                ),
                Err(e) => Outcome::Stuck(format!(
                    "{error}\nMoving traffic back to {previous} failed as well: {e}\nCheck {} now.",
                    self.router.name()
                )),
            };
        }
        tracing::warn!(before = %before.described, "restoring the routing from before the release");
        let restored = match self.router.restore(before).await {
            Ok(()) => self.router.weights().await,
            Err(e) => Err(e),
        };
        match restored {
            Ok(split) if split.same_shares(&before.split) => Outcome::RolledBack(
                format!(
                    "{error}\n{} routes as before the release again: {}.",
                    capitalised(&self.router.name()),
                    before.described
                ),
                split,
            ),
            Ok(split) => Outcome::Stuck(format!(
                "{error}\nPutting back {} ({}) did not take: it reads blue {} / green {}.\nCheck {} now.",
                self.router.name(), before.described, split.blue, split.green, self.router.name()
            )),
            Err(e) => Outcome::Stuck(format!(
                "{error}\nPutting back {} ({}) failed as well: {e}\nCheck {} now.",
                self.router.name(), before.described, self.router.name()
            )),
        }
    }

    /// Unless the previous colour is retained, removes its fleet, once the new weights
    /// have had [`WEIGHTS_SETTLE`] (the bake time counts) to take effect: a request still
    /// sent by the old weights to a fleet already draining fails.
    async fn release_previous(&self, release: &Release) -> Result<(), String> {
        if release.retain_previous || release.targets.is_none() {
            return Ok(());
        }
        let settle = WEIGHTS_SETTLE.saturating_sub(release.bake_time);
        tokio::select! {
            _ = self.stop.cancelled() => return Err("interrupted before the previous fleet was removed; it stays at weight 0".into()),
            _ = tokio::time::sleep(settle) => {}
        }
        let previous = release.color.other();
        let targets: Vec<Target> = self
            .router
            .members(previous)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| t.target)
            .collect();
        self.router
            .remove_members(previous, &targets)
            .await
            .map_err(|e| e.to_string())
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

fn contains(list: &[Target], target: &Target) -> bool {
    list.iter().any(|t| t.matches(target))
}

fn interrupted_gate(color: Color) -> String {
    format!("Interrupted while checking the {color} colour; traffic was not moved.")
}

#[cfg(test)]
mod tests;
