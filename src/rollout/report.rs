//! Why the router's health checks kept a gate shut, in words.

use super::*;

impl Rollout<'_> {
    /// Why the router's view kept the gate shut, member by member, in words.
    pub(super) fn member_health_failure(
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
}
