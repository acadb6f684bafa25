//! The checks and the analysis kept running while traffic moves and bakes.

use super::*;

/// Why checks that run while traffic moves or bakes stopped early.
pub(super) enum Halt {
    /// The checks failed: the release is bad.
    ChecksFailed(String),
    /// Ctrl-C or the timeout: nothing is known against the release, but the apply ends.
    Stopped(String),
}

impl Halt {
    pub(super) fn into_message(self) -> String {
        match self {
            Halt::ChecksFailed(m) | Halt::Stopped(m) => m,
        }
    }
}

impl Rollout<'_> {
    /// Keeps the checks and the analysis running for `period`: a failure of either ends
    /// it with [`Halt::ChecksFailed`]; Ctrl-C, or the apply's deadline coming first (the
    /// release is not done until the period is over), with [`Halt::Stopped`].
    pub(super) async fn watch(
        &self,
        checks: &[Check],
        period: Duration,
        when: &str,
    ) -> Result<(), Halt> {
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
        let timed_out = || Halt::Stopped(format!("The timeout ran out {when}."));
        match outcome {
            Ok(()) if cut_short => Err(timed_out()),
            // A measurement the deadline cut off (crate::budget) failed for want of time.
            Err(Halt::ChecksFailed(_)) if cut_short && Instant::now() >= self.deadline => {
                Err(timed_out())
            }
            other => other,
        }
    }

    /// The HTTP checks for `period`: `unhealthy_threshold` consecutive failing rounds (at
    /// least one) fail it.
    pub(super) async fn watch_checks(
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
}
