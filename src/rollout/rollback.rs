//! Rolling back now, outside any release (the rollback action): all traffic back to the
//! warm colour at once, once the router reports it healthy. Nothing is registered or
//! removed; the colour traffic leaves is marked as rolled back, so that a later plan can
//! tell this apart from drift and does not move traffic back.

use std::time::SystemTime;

use super::{observe, Rollout};
use crate::budget::{self, Budget};
use crate::resources::common::rfc3339;
use crate::router::{shift, Color, Record, Split};

/// Where the rollback left traffic.
#[derive(Debug)]
pub struct RolledBack {
    pub to: Color,
    pub release: String,
    pub split: Split,
    pub generation: i64,
}

impl Rollout<'_> {
    /// Gates the warm colour on the router's health, marks the live one as rolled back,
    /// and moves all traffic. `say` hears each step. On failure traffic is where it was,
    /// and the error says so.
    pub async fn roll_back_now(&self, say: &(dyn Fn(String) + Sync)) -> Result<RolledBack, String> {
        let budget = Budget::new(self.deadline, self.stop.clone(), "the action's `timeout`");
        budget::within(budget, self.roll_back(say)).await
    }

    async fn roll_back(&self, say: &(dyn Fn(String) + Sync)) -> Result<RolledBack, String> {
        let router = self.router;
        let not_moved = "Traffic was not moved.";
        let observed = observe(router)
            .await
            .map_err(|e| format!("{e}. {not_moved}"))?;
        let from = observed.live.ok_or_else(|| {
            format!(
                "{} forwards to neither colour: there is no release to roll back from. {not_moved}",
                router.name()
            )
        })?;
        if observed.split.of(from.other()) > 0 {
            return Err(format!(
                "Traffic is split (blue {} / green {}): a release is moving it, and its own checks move it back. {not_moved}",
                observed.split.blue, observed.split.green
            ));
        }
        let to = from.other();
        let record = |c: Color| observed.records[c.index()].clone();
        let Some(release) = record(to).release else {
            return Err(format!(
                "{} records no release: there is nothing warm to roll back to. {not_moved}",
                router.describe(to)
            ));
        };
        if let Some(at) = record(to).rolled_back_at {
            return Err(format!(
                "Traffic was moved away from {to} ({release}) by a rollback at {at}: rolling back again would undo it. Adopt the rollback or ship a fix through the configuration. {not_moved}"
            ));
        }
        let from_release = record(from)
            .release
            .unwrap_or_else(|| "(unrecorded)".into());
        say(format!(
            "Gating {to} ({release}): waiting for {} to report it healthy",
            router.checker()
        ));
        self.check_color(to).await?;
        let generation = observed.generation + 1;
        // Marked before the shift: a rollback that lands is never taken for drift, even if
        // this process ends before it could say so. An unmoved split ignores the mark.
        let marked = Record {
            rolled_back_at: Some(rfc3339(SystemTime::now())),
            ..record(from)
        };
        let next = Record {
            generation: Some(generation),
            ..record(to)
        };
        for (color, record) in [(from, &marked), (to, &next)] {
            router
                .set_record(color, record)
                .await
                .map_err(|e| format!("Recording the rollback failed: {e}. {not_moved}"))?;
        }
        say(format!(
            "Shifting all traffic from {from} ({from_release}) to {to} ({release})"
        ));
        match shift(router, Split::all_on(to)).await {
            Ok(split) => {
                say(format!(
                    "Verified: {} sends all traffic to {to} ({release}), generation {generation}",
                    router.name()
                ));
                Ok(RolledBack {
                    to,
                    release,
                    split,
                    generation,
                })
            }
            // After a Ctrl-C or the deadline too: the records go back, whatever cut the shift.
            Err(e) => budget::exempt(async {
                let now = router.weights().await.map_or_else(
                    |e| format!("the split could not be read back: {e}"),
                    |s| format!("blue {} / green {}", s.blue, s.green),
                );
                for (color, record) in [(from, record(from)), (to, record(to))] {
                    if let Err(e) = router.set_record(color, &record).await {
                        tracing::warn!(%color, error = %e, "the rollback's records were not undone");
                    }
                }
                Err(format!(
                    "Moving traffic to {to} failed: {e}. Traffic now: {now}."
                ))
            })
            .await,
        }
    }
}
