//! The health of one registered target, as AWS reports it in DescribeTargetHealth: a pure
//! state machine driven by check results and the clock (passed in, so tests use a fake one).
//!
//! * Registered: hidden for a moment (eventual consistency), then `initial` /
//!   `Elb.RegistrationInProgress` for the registration time, then `initial` /
//!   `Elb.InitialHealthChecking` until a check passes: ONE pass makes a new target healthy.
//! * `unhealthy` after the unhealthy threshold of consecutive failures, with the reason of the
//!   last one; `healthy` again after the healthy threshold of consecutive passes.
//! * `unused` / `Target.NotInUse` while no listener action uses the group; when it comes into
//!   use (again) the target starts over as a new one.
//! * `draining` for the deregistration delay after DeregisterTargets, then gone.

use std::time::{Duration, Instant};

/// Why a health check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The target answered with a status the matcher does not accept.
    Status(u16),
    /// No answer within the timeout (or a target the emulator must not contact).
    Timeout,
    /// The connection failed (refused, reset, bad TLS...).
    Connection,
}

impl Failure {
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Status(_) => "Target.ResponseCodeMismatch",
            Failure::Timeout => "Target.Timeout",
            Failure::Connection => "Target.FailedHealthChecks",
        }
    }

    pub fn description(&self) -> String {
        match self {
            Failure::Status(code) => format!("Health checks failed with these codes: [{code}]"),
            Failure::Timeout => "Request timed out".into(),
            Failure::Connection => "Health checks failed".into(),
        }
    }
}

/// A group's thresholds of consecutive results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// The emulator's times, already scaled to the test's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long `Elb.RegistrationInProgress` lasts.
    pub registration: Duration,
    /// How long a new target is missing from DescribeTargetHealth.
    pub hidden: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Initial,
    Healthy,
    Unhealthy(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    registered: Instant,
    /// Where the registration time counts from: the registration, or when the group last came
    /// into use.
    since: Instant,
    status: Status,
    passes: u32,
    fails: u32,
    draining_until: Option<Instant>,
}

/// What DescribeTargetHealth says of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<String>,
}

impl View {
    fn new(state: &'static str, reason: &'static str, description: impl Into<String>) -> View {
        View {
            state,
            reason: Some(reason),
            description: Some(description.into()),
        }
    }
}

impl TargetHealth {
    pub fn new(now: Instant) -> TargetHealth {
        TargetHealth {
            registered: now,
            since: now,
            status: Status::Initial,
            passes: 0,
            fails: 0,
            draining_until: None,
        }
    }

    /// RegisterTargets of a target already there: a draining one starts over as new, any
    /// other keeps its state.
    pub fn register_again(&mut self, now: Instant) {
        if self.draining_until.is_some() {
            *self = TargetHealth::new(now);
        }
    }

    /// Its group came into use, or stopped being used: it starts over as initial.
    pub fn restart(&mut self, now: Instant) {
        if self.draining_until.is_none() {
            self.since = now;
            self.status = Status::Initial;
            self.passes = 0;
            self.fails = 0;
        }
    }

    /// DeregisterTargets: draining for `delay`, then gone (a second call keeps the first end).
    pub fn deregister(&mut self, now: Instant, delay: Duration) {
        self.draining_until.get_or_insert(now + delay);
    }

    pub fn draining(&self) -> bool {
        self.draining_until.is_some()
    }

    /// Deregistered and past the deregistration delay: to forget.
    pub fn gone(&self, now: Instant) -> bool {
        self.draining_until.is_some_and(|end| now >= end)
    }

    /// Whether health checks count for it now (registered, past the registration time).
    pub fn checkable(&self, now: Instant, registration: Duration) -> bool {
        self.draining_until.is_none() && now >= self.since + registration
    }

    pub fn healthy(&self) -> bool {
        self.draining_until.is_none() && self.status == Status::Healthy
    }

    /// The result of one health check.
    pub fn record(&mut self, result: Result<(), Failure>, thresholds: Thresholds) {
        match result {
            Ok(()) => {
                self.passes += 1;
                self.fails = 0;
                let recovered = self.passes >= thresholds.healthy;
                if self.status == Status::Initial || recovered {
                    self.status = Status::Healthy;
                }
            }
            Err(failure) => {
                self.fails += 1;
                self.passes = 0;
                if matches!(self.status, Status::Unhealthy(_)) || self.fails >= thresholds.unhealthy
                {
                    self.status = Status::Unhealthy(failure);
                }
            }
        }
    }

    /// What DescribeTargetHealth says of it at `now`; `None` while it is hidden or once gone.
    pub fn view(&self, now: Instant, in_use: bool, timing: Timing) -> Option<View> {
        if self.gone(now) {
            return None;
        }
        if self.draining_until.is_some() {
            return Some(View::new(
                "draining",
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress",
            ));
        }
        if now < self.registered + timing.hidden {
            return None;
        }
        if !in_use {
            return Some(View::new(
                "unused",
                "Target.NotInUse",
                "Target group is not configured to receive traffic from the load balancer",
            ));
        }
        if now < self.since + timing.registration {
            return Some(View::new(
                "initial",
                "Elb.RegistrationInProgress",
                "Target registration is in progress",
            ));
        }
        Some(match &self.status {
            Status::Initial => View::new(
                "initial",
                "Elb.InitialHealthChecking",
                "Initial health checks in progress",
            ),
            Status::Healthy => View {
                state: "healthy",
                reason: None,
                description: None,
            },
            Status::Unhealthy(failure) => {
                View::new("unhealthy", failure.reason(), failure.description())
            }
        })
    }
}

/// What DescribeTargetHealth says of a target that is not registered.
pub fn not_registered() -> View {
    View::new(
        "unused",
        "Target.NotRegistered",
        "Target is not registered to the target group",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMING: Timing = Timing {
        registration: Duration::from_millis(200),
        hidden: Duration::from_millis(100),
    };
    const THRESHOLDS: Thresholds = Thresholds {
        healthy: 3,
        unhealthy: 2,
    };

    fn state(
        target: &TargetHealth,
        at: Instant,
        in_use: bool,
    ) -> Option<(&'static str, Option<&'static str>)> {
        target.view(at, in_use, TIMING).map(|v| (v.state, v.reason))
    }

    #[test]
    fn a_new_target_is_hidden_then_registering_then_checked_and_healthy_after_one_pass() {
        let t0 = Instant::now();
        let mut target = TargetHealth::new(t0);
        assert_eq!(state(&target, t0 + 50 * MS, true), None);
        assert_eq!(
            state(&target, t0 + 150 * MS, true),
            Some(("initial", Some("Elb.RegistrationInProgress")))
        );
        assert!(!target.checkable(t0 + 150 * MS, TIMING.registration));
        assert!(target.checkable(t0 + 200 * MS, TIMING.registration));
        assert_eq!(
            state(&target, t0 + 250 * MS, true),
            Some(("initial", Some("Elb.InitialHealthChecking")))
        );
        // One failure (under the unhealthy threshold) keeps it initial.
        target.record(Err(Failure::Timeout), THRESHOLDS);
        assert_eq!(
            state(&target, t0 + 250 * MS, true),
            Some(("initial", Some("Elb.InitialHealthChecking")))
        );
        target.record(Ok(()), THRESHOLDS);
        assert_eq!(state(&target, t0 + 250 * MS, true), Some(("healthy", None)));
        assert!(target.healthy());
    }

    #[test]
    fn unhealthy_after_the_threshold_with_the_last_reason_and_back_after_the_healthy_threshold() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut target = TargetHealth::new(t0);
        target.record(Ok(()), THRESHOLDS);
        target.record(Err(Failure::Status(503)), THRESHOLDS);
        assert_eq!(state(&target, later, true), Some(("healthy", None)));
        target.record(Err(Failure::Status(503)), THRESHOLDS);
        let view = target.view(later, true, TIMING).unwrap();
        assert_eq!(
            (view.state, view.reason),
            ("unhealthy", Some("Target.ResponseCodeMismatch"))
        );
        assert_eq!(
            view.description.as_deref(),
            Some("Health checks failed with these codes: [503]")
        );
        target.record(Err(Failure::Connection), THRESHOLDS);
        assert_eq!(
            state(&target, later, true),
            Some(("unhealthy", Some("Target.FailedHealthChecks")))
        );
        target.record(Ok(()), THRESHOLDS);
        target.record(Ok(()), THRESHOLDS);
        assert_eq!(state(&target, later, true).unwrap().0, "unhealthy");
        target.record(Ok(()), THRESHOLDS);
        assert_eq!(state(&target, later, true), Some(("healthy", None)));
    }

    #[test]
    fn unused_while_the_group_is_unused_and_initial_when_it_comes_into_use() {
        let t0 = Instant::now();
        let mut target = TargetHealth::new(t0);
        target.record(Ok(()), THRESHOLDS);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            state(&target, t1, false),
            Some(("unused", Some("Target.NotInUse")))
        );
        target.restart(t1);
        assert_eq!(
            state(&target, t1 + 10 * MS, true),
            Some(("initial", Some("Elb.RegistrationInProgress")))
        );
        assert!(!target.healthy());
    }

    #[test]
    fn draining_for_the_delay_then_gone_and_registering_again_starts_over() {
        let t0 = Instant::now();
        let mut target = TargetHealth::new(t0);
        target.record(Ok(()), THRESHOLDS);
        let t1 = t0 + Duration::from_secs(1);
        target.deregister(t1, 500 * MS);
        target.deregister(t1 + 400 * MS, 500 * MS);
        assert!(!target.healthy() && target.draining());
        assert!(!target.checkable(t1, TIMING.registration));
        assert_eq!(
            state(&target, t1 + 499 * MS, false),
            Some(("draining", Some("Target.DeregistrationInProgress")))
        );
        assert!(target.gone(t1 + 500 * MS));
        assert_eq!(state(&target, t1 + 500 * MS, true), None);

        target.register_again(t1 + 100 * MS);
        assert!(!target.draining());
        assert_eq!(
            state(&target, t1 + 250 * MS, true),
            Some(("initial", Some("Elb.RegistrationInProgress")))
        );
        // Registering a registered target changes nothing.
        target.record(Ok(()), THRESHOLDS);
        target.register_again(t1 + 2000 * MS);
        assert!(target.healthy());
    }
}
