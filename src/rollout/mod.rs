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
//!
//! This file is the engine; beside it: `prepare` (the standby colour before its gate, and
//! putting it back), `gate` (member health and HTTP checks before traffic moves),
//! `checks` (the checks' URLs), `watch` (checks and analysis during steps and the bake),
//! `report` (why a gate stayed shut, in words), `rollback` (the rollback action) and
//! `observe` (what the router says now).

mod checks;
mod gate;
mod observe;
mod prepare;
mod report;
mod rollback;
mod watch;

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use observe::{observe, Observed};
pub use rollback::RolledBack;

use prepare::Prepared;
use watch::Halt;

use crate::analysis::Analysis;
use crate::budget::{self, Budget};
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
    /// Both colours' records (blue first) as the apply just read them, when it did: read
    /// once, not again to prepare.
    pub records: Option<[Record; 2]>,
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

impl Rollout<'_> {
    pub async fn run(&self, release: &Release) -> Outcome {
        let mut prepared = Prepared::default();
        let budget = Budget::new(
            self.deadline,
            self.stop.clone(),
            "the resource's `timeouts`",
        );
        let outcome = budget::within(budget, self.release(release, &mut prepared)).await;
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
        // The reads after a write run even after a Ctrl-C or the deadline: they say what
        // serves, which the report and the state need whatever cut the release short.
        let Err(e) = self.router.set_weights(split).await else {
            return budget::exempt(verify(self.router, split))
                .await
                .map_err(|e| (true, e.to_string()));
        };
        match budget::exempt(self.router.weights()).await {
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

    /// After a failure: when any traffic moved, all of it back on the previous colour, or,
    /// when that colour served nothing `before` (a first release), the routing put back
    /// exactly as it was: never a forward to a colour with no member. Its calls run after
    /// the Ctrl-C or the deadline that may have caused it, with their fixed timeouts.
    async fn back_out(
        &self,
        color: Color,
        before: &Routing,
        moved: bool,
        error: String,
    ) -> Outcome {
        budget::exempt(self.move_back(color, before, moved, error)).await
    }

    async fn move_back(
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

#[cfg(test)]
mod tests;
