//! The gate: the router's own health checks of a colour and the HTTP checks, before any
//! traffic moves to it.

use super::*;

impl Rollout<'_> {
    /// Waits for the router to report the colour healthy, then for the HTTP checks to
    /// pass; returns the checks, which keep running during the shift and bake.
    /// `quick`: one passing round of HTTP checks is enough.
    pub(super) async fn gate(&self, release: &Release, quick: bool) -> Result<Vec<Check>, String> {
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
    pub(super) async fn gate_color(
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

    pub(super) async fn http_gate(
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
    pub(super) async fn wait_for_member_health(
        &self,
        color: Color,
        required: &[Target],
    ) -> Result<Vec<MemberHealth>, String> {
        // Polls in a row in which the router called a member that is needed unhealthy:
        // `unhealthy_threshold` of them fail the gate early, as failed HTTP checks do.
        let mut unhealthy_polls = 0;
        loop {
            // Each call is bounded on its own (the SDK's timeouts, the Runtime API's), but
            // not by Ctrl-C or by what is left of `timeouts`.
            let health = tokio::select! {
                health = self.router.members(color) => health.map_err(|e| e.to_string())?,
                _ = self.stop.cancelled() => return Err(interrupted_gate(color)),
                _ = tokio::time::sleep_until(self.deadline) => return Err(format!(
                    "The timeout ran out while {} was asked for the health of {}. Traffic was not moved.",
                    self.router.checker(),
                    self.router.describe(color)
                )),
            };
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
}

fn interrupted_gate(color: Color) -> String {
    format!("Interrupted while checking the {color} colour; traffic was not moved.")
}
