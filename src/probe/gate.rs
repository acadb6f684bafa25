//! A gate: rounds of checks until enough consecutive rounds pass, too many fail, the
//! deadline comes or Terraform asks the provider to stop.

use std::time::SystemTime;

use reqwest::Client;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{probe_once, Attempt, Check, HttpClients, Policy, Report};
use crate::duration::later;

/// Why a gate failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The deadline came before `healthy_threshold` consecutive rounds passed.
    Deadline,
    /// `unhealthy_threshold` consecutive rounds failed.
    Unhealthy,
    /// Terraform asked the provider to stop (Ctrl-C).
    Interrupted,
    /// The checks could not be sent at all: there are none, or `ca_cert_pem` holds no
    /// certificate.
    Setup(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateResult {
    Passed(Report),
    Failed { why: FailReason, report: Report },
}

impl GateResult {
    pub fn report(&self) -> &Report {
        match self {
            GateResult::Passed(report) | GateResult::Failed { report, .. } => report,
        }
    }
}

/// Runs a gate over `checks`. Each round probes every check at once and passes when
/// all of them pass. Rounds start `interval` apart (start to start, so a slow answer
/// does not stretch the cadence), the first one after `initial_delay`: against a
/// healthy endpoint, threshold 3 and interval 1s, the gate passes after about 2s.
/// `stop` ends it at once; the deadline ends it even in the middle of a round.
pub async fn run_gate(
    clients: &HttpClients,
    checks: &[Check],
    policy: &Policy,
    stop: &CancellationToken,
) -> GateResult {
    let started = Instant::now();
    let deadline = later(started, policy.deadline);
    let mut progress = Progress::new(policy, started);
    // Passing a gate with nothing checked would move traffic on no evidence.
    if checks.is_empty() {
        return progress.fail(FailReason::Setup("there is no endpoint to check".into()));
    }
    let clients = match checks
        .iter()
        .map(|c| clients.get(&c.tls))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(clients) => clients,
        Err(e) => return progress.fail(FailReason::Setup(e)),
    };
    let mut next_round = later(started, policy.initial_delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return progress.fail(FailReason::Interrupted),
            _ = sleep_until(next_round.min(deadline)) => {}
        }
        if next_round >= deadline {
            return progress.fail(FailReason::Deadline);
        }
        next_round = later(Instant::now(), policy.interval);
        let attempts = tokio::select! {
            biased;
            _ = stop.cancelled() => return progress.fail(FailReason::Interrupted),
            _ = sleep_until(deadline) => return progress.fail(FailReason::Deadline),
            attempts = probe_all(&clients, checks) => attempts,
        };
        if let Some(result) = progress.record(attempts) {
            return result;
        }
    }
}

/// Probes every check at once; the attempts come back in the order of the checks.
async fn probe_all(clients: &[Client], checks: &[Check]) -> Vec<Attempt> {
    let mut tasks = JoinSet::new();
    for (i, (client, check)) in clients.iter().zip(checks).enumerate() {
        let (client, check) = (client.clone(), check.clone());
        tasks.spawn(async move { (i, probe_once(&client, &check).await) });
    }
    let mut attempts = tasks.join_all().await;
    attempts.sort_by_key(|(i, _)| *i);
    attempts.into_iter().map(|(_, attempt)| attempt).collect()
}

/// The running count of a gate.
struct Progress {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    started: Instant,
    attempts: u32,
    rounds: u32,
    streak: u32,
    failed_rounds_in_a_row: u32,
    best_streak: u32,
    /// In order of first appearance; sorted by count for the report.
    tally: Vec<(String, u32)>,
    last: Option<Attempt>,
}

impl Progress {
    fn new(policy: &Policy, started: Instant) -> Self {
        Progress {
            healthy_threshold: policy.healthy_threshold.max(1),
            unhealthy_threshold: policy.unhealthy_threshold,
            started,
            attempts: 0,
            rounds: 0,
            streak: 0,
            failed_rounds_in_a_row: 0,
            best_streak: 0,
            tally: Vec::new(),
            last: None,
        }
    }

    /// Counts a round; returns the gate's result once it has one.
    fn record(&mut self, attempts: Vec<Attempt>) -> Option<GateResult> {
        self.rounds += 1;
        for attempt in &attempts {
            self.attempts += 1;
            let label = attempt.outcome.label();
            match self.tally.iter_mut().find(|(l, _)| *l == label) {
                Some((_, count)) => *count += 1,
                None => self.tally.push((label, 1)),
            }
        }
        // The failure, if any, is what a report should show.
        let failure = attempts.iter().position(|a| !a.outcome.passed());
        self.last = match failure {
            Some(i) => attempts.into_iter().nth(i),
            None => attempts.into_iter().last(),
        };
        let threshold = self.healthy_threshold;
        if failure.is_none() {
            self.streak += 1;
            self.failed_rounds_in_a_row = 0;
            self.best_streak = self.best_streak.max(self.streak);
            tracing::info!(
                streak = self.streak,
                threshold,
                "{}/{threshold} consecutive health checks passed",
                self.streak
            );
            if self.streak >= threshold {
                return Some(GateResult::Passed(self.report(Some(SystemTime::now()))));
            }
        } else {
            self.streak = 0;
            self.failed_rounds_in_a_row += 1;
            if let Some(last) = &self.last {
                tracing::info!(
                    url = %last.url,
                    outcome = %last.outcome,
                    failed_in_a_row = self.failed_rounds_in_a_row,
                    "health check failed ({}): 0/{threshold} consecutive health checks passed",
                    last.outcome.label()
                );
            }
            if self.unhealthy_threshold > 0
                && self.failed_rounds_in_a_row >= self.unhealthy_threshold
            {
                return Some(self.fail(FailReason::Unhealthy));
            }
        }
        None
    }

    fn fail(&self, why: FailReason) -> GateResult {
        GateResult::Failed {
            why,
            report: self.report(None),
        }
    }

    fn report(&self, passed_at: Option<SystemTime>) -> Report {
        let mut tally = self.tally.clone();
        // Stable: equal counts keep the order in which they first appeared.
        tally.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        Report {
            attempts: self.attempts,
            rounds: self.rounds,
            best_streak: self.best_streak,
            tally,
            last: self.last.clone(),
            passed_at,
            elapsed: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::test_support::check;
    use crate::probe::{failure_detail, Outcome};
    use acceptance_tests::app::{Behavior, TestApp};

    fn policy(healthy: u32, unhealthy: u32, interval_ms: u64, deadline_ms: u64) -> Policy {
        Policy {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            interval: Duration::from_millis(interval_ms),
            initial_delay: Duration::ZERO,
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    async fn gate(checks: &[Check], policy: &Policy) -> GateResult {
        run_gate(
            &HttpClients::new(),
            checks,
            policy,
            &CancellationToken::new(),
        )
        .await
    }

    fn failed(result: GateResult) -> (FailReason, Report) {
        match result {
            GateResult::Failed { why, report } => (why, report),
            GateResult::Passed(report) => panic!("passed: {report:?}"),
        }
    }

    #[tokio::test]
    async fn a_healthy_endpoint_passes_after_threshold_minus_one_intervals() {
        let app = TestApp::start("v1").await;
        let result = gate(&[check(&app.url())], &policy(3, 0, 200, 5000)).await;
        let GateResult::Passed(report) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            (report.rounds, report.attempts, report.best_streak),
            (3, 3, 3)
        );
        assert_eq!(report.tally_text(), "200 x3");
        assert!(report.passed_at.is_some());
        assert!(
            report.elapsed >= Duration::from_millis(390)
                && report.elapsed < Duration::from_millis(900),
            "{:?}",
            report.elapsed
        );
    }

    #[tokio::test]
    async fn the_initial_delay_comes_first() {
        let app = TestApp::start("v1").await;
        let policy = Policy {
            initial_delay: Duration::from_millis(300),
            ..policy(1, 0, 100, 5000)
        };
        let report = gate(&[check(&app.url())], &policy).await.report().clone();
        assert!(report.elapsed >= Duration::from_millis(300), "{report:?}");
        assert_eq!(report.rounds, 1);
    }

    #[tokio::test]
    async fn a_failing_endpoint_fails_at_the_deadline_with_a_tally() {
        let app = TestApp::start("v3").await;
        app.set(Behavior::Failing(503));
        let (why, report) = failed(gate(&[check(&app.url())], &policy(3, 0, 100, 1000)).await);
        assert_eq!(why, FailReason::Deadline);
        assert!(
            report.elapsed >= Duration::from_millis(1000)
                && report.elapsed < Duration::from_millis(1300),
            "{:?}",
            report.elapsed
        );
        assert!((9..=11).contains(&report.rounds), "{report:?}");
        assert_eq!(report.tally, vec![("503".to_string(), report.attempts)]);
        assert_eq!(report.best_streak, 0);
        assert_eq!(report.last.as_ref().unwrap().status, Some(503));
    }

    #[tokio::test]
    async fn unhealthy_threshold_fails_early() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Failing(500));
        let (why, report) = failed(gate(&[check(&app.url())], &policy(3, 2, 100, 10_000)).await);
        assert_eq!(why, FailReason::Unhealthy);
        assert_eq!((report.rounds, report.attempts), (2, 2));
        assert!(report.elapsed < Duration::from_millis(500), "{report:?}");
    }

    #[tokio::test]
    async fn flapping_never_reaches_three_in_a_row() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Flapping {
            healthy: 2,
            failing: 1,
        });
        let (why, report) = failed(gate(&[check(&app.url())], &policy(3, 0, 50, 1000)).await);
        assert_eq!(why, FailReason::Deadline);
        assert_eq!(report.best_streak, 2);
        assert_eq!(report.tally[0].0, "200");
        assert_eq!(report.tally[1].0, "503");
        assert!(
            report.tally_text().starts_with("200 x"),
            "{}",
            report.tally_text()
        );
    }

    #[tokio::test]
    async fn an_app_slow_to_start_passes_once_it_is_up() {
        let app = TestApp::start("v2").await;
        app.set(Behavior::HealthyAfter(Duration::from_millis(500)));
        let result = gate(&[check(&app.url())], &policy(2, 0, 100, 5000)).await;
        let GateResult::Passed(report) = result else {
            panic!("{result:?}")
        };
        assert!(report.elapsed >= Duration::from_millis(500), "{report:?}");
        assert!(
            report.tally_text().contains("503 x"),
            "{}",
            report.tally_text()
        );
    }

    #[tokio::test]
    async fn the_stop_token_interrupts_a_gate_at_once() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Slow(Duration::from_secs(30)));
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
        let check = Check {
            request_timeout: Duration::from_secs(60),
            ..check(&app.url())
        };
        let started = std::time::Instant::now();
        let result = run_gate(
            &HttpClients::new(),
            &[check],
            &policy(3, 0, 1000, 60_000),
            &stop,
        )
        .await;
        assert_eq!(failed(result).0, FailReason::Interrupted);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn rounds_reuse_one_keep_alive_connection() {
        let app = TestApp::start("v1").await;
        let clients = HttpClients::new();
        let checks = [check(&app.url())];
        for _ in 0..2 {
            let result = run_gate(
                &clients,
                &checks,
                &policy(4, 0, 50, 5000),
                &CancellationToken::new(),
            )
            .await;
            assert!(matches!(result, GateResult::Passed(_)), "{result:?}");
        }
        assert_eq!(app.requests(), 8);
        assert_eq!(app.connections(), 1, "across rounds and gates");
    }

    #[tokio::test]
    async fn a_round_passes_only_when_every_check_passes() {
        let (good, bad) = (TestApp::start("v1").await, TestApp::start("v1").await);
        bad.set(Behavior::Down);
        let checks = [check(&good.url()), check(&bad.url())];
        let (why, report) = failed(gate(&checks, &policy(1, 2, 50, 5000)).await);
        assert_eq!(why, FailReason::Unhealthy);
        assert_eq!(report.tally_text(), "200 x2, connection refused x2");
        let last = report.last.unwrap();
        assert_eq!(last.outcome, Outcome::ConnectionRefused);
        assert_eq!(last.url, format!("{}/", bad.url()));
    }

    #[tokio::test]
    async fn a_gate_over_no_checks_fails() {
        let (why, report) = failed(gate(&[], &policy(1, 0, 50, 5000)).await);
        assert_eq!(
            why,
            FailReason::Setup("there is no endpoint to check".into())
        );
        let detail = failure_detail(&[], &policy(1, 0, 50, 5000), &why, &report);
        assert_eq!(
            detail,
            "The health checks could not start: there is no endpoint to check"
        );
    }

    #[tokio::test]
    async fn a_bad_ca_fails_the_gate_before_any_request() {
        let mut check = check("https://127.0.0.1:1/");
        check.tls.ca_cert_pem = Some("nonsense".into());
        let (why, report) = failed(gate(&[check.clone()], &policy(1, 0, 50, 5000)).await);
        assert!(
            matches!(&why, FailReason::Setup(e) if e.contains("ca_cert_pem")),
            "{why:?}"
        );
        assert_eq!(report.attempts, 0);
        let detail = failure_detail(&[check], &policy(1, 0, 50, 5000), &why, &report);
        assert!(detail.contains("could not start"), "{detail}");
    }
}
