//! What a gate found, and the error text a user reads when it fails: enough to tell a
//! crashed app from a slow one, a wrong status from a TLS problem, without a rerun.

use std::time::{Duration, SystemTime};

use super::{redact_url, Attempt, Check, FailReason, Outcome, Policy};
use crate::duration::format as fmt_duration;

/// How many URLs a failure names before summing up the rest.
const URLS_SHOWN: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Requests that completed (with a response or an error).
    pub attempts: u32,
    pub rounds: u32,
    /// The longest run of consecutive passing rounds.
    pub best_streak: u32,
    /// Outcome labels with their counts, most frequent first.
    pub tally: Vec<(String, u32)>,
    /// The last attempt, or the failing one of the last round.
    pub last: Option<Attempt>,
    pub passed_at: Option<SystemTime>,
    pub elapsed: Duration,
}

impl Report {
    /// E.g. `503 x57, timeout x3, connection refused x2`.
    pub fn tally_text(&self) -> String {
        let entries: Vec<String> = self
            .tally
            .iter()
            .map(|(label, count)| format!("{label} x{count}"))
            .collect();
        entries.join(", ")
    }
}

/// The detail of the error diagnostic of a failed gate: the URLs (redacted), why and
/// when it ended, the best run of passes against the threshold, the tally, and the last
/// response with an excerpt of its body. Expectations are those of the first check (the
/// checks of one gate share them). Header values never appear.
pub fn failure_detail(
    checks: &[Check],
    policy: &Policy,
    why: &FailReason,
    report: &Report,
) -> String {
    let of = if checks.is_empty() {
        String::new()
    } else {
        format!(" of {}", urls(checks))
    };
    let elapsed = fmt_duration(report.elapsed);
    let mut lines = vec![match why {
        FailReason::Deadline => format!(
            "The health checks{of} did not pass within the deadline of {}.",
            fmt_duration(policy.deadline)
        ),
        FailReason::Unhealthy => format!(
            "The health checks{of} failed {} in a row (unhealthy_threshold = {}) after {elapsed}.",
            match policy.unhealthy_threshold {
                1 => "once".to_string(),
                n => format!("{n} times"),
            },
            policy.unhealthy_threshold
        ),
        FailReason::Interrupted => format!(
            "The health checks{of} were interrupted after {elapsed}: Terraform asked the provider to stop."
        ),
        FailReason::Setup(error) => {
            return format!("The health checks{of} could not start: {error}")
        }
    }];
    if let Some(check) = checks.first() {
        let body = match &check.body_regex {
            Some(regex) => format!(" and a body matching {:?}", regex.as_str()),
            None => String::new(),
        };
        lines.push(format!(
            "Expected: status {}{body} from {} {}, within {} per request.",
            check.expected_status,
            check.method,
            if checks.len() == 1 {
                "the URL"
            } else {
                "each URL"
            },
            fmt_duration(check.request_timeout)
        ));
    }
    if policy.healthy_threshold != Policy::WATCH {
        lines.push(format!(
            "Best run: {} of the {} consecutive passing checks needed.",
            report.best_streak,
            policy.healthy_threshold.max(1)
        ));
    }
    lines.push(if report.attempts == 0 {
        "Outcomes: no check completed.".to_string()
    } else {
        format!(
            "Outcomes: {} ({} requests in {} rounds over {elapsed}).",
            report.tally_text(),
            report.attempts,
            report.rounds
        )
    });
    if let Some(last) = &report.last {
        let from = if checks.len() > 1 {
            format!(" from {}", last.url)
        } else {
            String::new()
        };
        lines.push(format!("Last response{from}: {}", describe(last)));
    }
    lines.join("\n")
}

/// The redacted URLs of the checks, e.g. `http://a/health, http://b/health and 4 more`.
fn urls(checks: &[Check]) -> String {
    let mut urls: Vec<String> = checks.iter().map(|c| redact_url(&c.url)).collect();
    urls.dedup();
    if urls.len() > URLS_SHOWN {
        let more = urls.len() - URLS_SHOWN;
        urls.truncate(URLS_SHOWN);
        return format!("{} and {more} more", urls.join(", "));
    }
    urls.join(", ")
}

fn describe(attempt: &Attempt) -> String {
    let latency = fmt_duration(attempt.latency);
    let what = match &attempt.outcome {
        Outcome::Passed { status } | Outcome::UnexpectedStatus(status) => {
            format!("{status} after {latency}")
        }
        Outcome::BodyMismatch(status) => {
            format!("{status} after {latency}, with a body not matching body_regex")
        }
        Outcome::Timeout => format!("none within {latency} (timeout)"),
        Outcome::ConnectionRefused => "connection refused".to_string(),
        Outcome::Tls(error) => format!("TLS error: {error}"),
        Outcome::Other(error) => error.clone(),
    };
    if attempt.body_excerpt.is_empty() {
        what
    } else {
        format!("{what}: {}", attempt.body_excerpt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::check;
    use crate::probe::{run_gate, GateResult, HttpClients};
    use acceptance_tests::app::{Behavior, TestApp};
    use tokio_util::sync::CancellationToken;

    fn report(tally: &[(&str, u32)], last: Option<Attempt>) -> Report {
        Report {
            attempts: tally.iter().map(|(_, n)| n).sum(),
            rounds: tally.iter().map(|(_, n)| n).sum(),
            best_streak: 2,
            tally: tally.iter().map(|(l, n)| (l.to_string(), *n)).collect(),
            last,
            passed_at: None,
            elapsed: Duration::from_secs(300),
        }
    }

    fn policy() -> Policy {
        Policy {
            healthy_threshold: 3,
            unhealthy_threshold: 0,
            interval: Duration::from_secs(5),
            initial_delay: Duration::ZERO,
            deadline: Duration::from_secs(300),
        }
    }

    #[test]
    fn tally_text_lists_counts_in_order() {
        let r = report(
            &[("503", 57), ("timeout", 3), ("connection refused", 2)],
            None,
        );
        assert_eq!(r.tally_text(), "503 x57, timeout x3, connection refused x2");
        assert_eq!(report(&[], None).tally_text(), "");
    }

    #[test]
    fn a_deadline_failure_says_everything_a_user_needs() {
        let checks = [check("https://user:pw@app.example.com/health?token=abc")];
        let last = Attempt {
            url: redact_url(&checks[0].url),
            outcome: Outcome::UnexpectedStatus(503),
            latency: Duration::from_millis(12),
            status: Some(503),
            body_excerpt: r#"{"status":"failing"}"#.into(),
        };
        let r = report(&[("503", 57), ("timeout", 3)], Some(last));
        let detail = failure_detail(&checks, &policy(), &FailReason::Deadline, &r);
        assert_eq!(
            detail,
            "The health checks of https://REDACTED@app.example.com/health?token=REDACTED did not pass within the deadline of 5m.\n\
             Expected: status 200-299 from GET the URL, within 1s per request.\n\
             Best run: 2 of the 3 consecutive passing checks needed.\n\
             Outcomes: 503 x57, timeout x3 (60 requests in 60 rounds over 5m).\n\
             Last response: 503 after 12ms: {\"status\":\"failing\"}"
        );
    }

    #[test]
    fn other_reasons_and_many_urls() {
        let checks: Vec<Check> = (1..=5)
            .map(|i| check(&format!("http://10.0.0.{i}:8080/health")))
            .collect();
        let last = Attempt {
            url: "http://10.0.0.4:8080/health".into(),
            outcome: Outcome::Timeout,
            latency: Duration::from_secs(1),
            status: None,
            body_excerpt: String::new(),
        };
        let policy = Policy {
            unhealthy_threshold: 2,
            ..policy()
        };
        let r = report(&[("timeout", 2)], Some(last));
        let detail = failure_detail(&checks, &policy, &FailReason::Unhealthy, &r);
        assert!(detail.starts_with("The health checks of http://10.0.0.1:8080/health, http://10.0.0.2:8080/health, http://10.0.0.3:8080/health and 2 more failed 2 times in a row (unhealthy_threshold = 2) after 5m."), "{detail}");
        assert!(detail.contains("from GET each URL"), "{detail}");
        assert!(
            detail.ends_with(
                "Last response from http://10.0.0.4:8080/health: none within 1s (timeout)"
            ),
            "{detail}"
        );
        let detail = failure_detail(
            &checks[..1],
            &policy,
            &FailReason::Interrupted,
            &report(&[], None),
        );
        assert!(detail.contains("were interrupted after 5m"), "{detail}");
        assert!(detail.contains("Outcomes: no check completed."), "{detail}");
    }

    #[tokio::test]
    async fn a_real_failure_names_the_tally_and_never_a_header_value() {
        let app = TestApp::start("v3").await;
        app.set(Behavior::Failing(503));
        let mut check = check(&format!("{}/health", app.url()));
        check.headers = vec![("Authorization".into(), "Bearer s3cr3t-t0ken".into())];
        check.body_regex = Some(regex::Regex::new("ok").unwrap());
        let policy = Policy {
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            interval: Duration::from_millis(50),
            initial_delay: Duration::ZERO,
            deadline: Duration::from_secs(5),
        };
        let checks = [check];
        let result = run_gate(
            &HttpClients::new(),
            &checks,
            &policy,
            &CancellationToken::new(),
        )
        .await;
        let GateResult::Failed { why, report } = result else {
            panic!("{result:?}")
        };
        assert!(app
            .last_headers()
            .contains(&("authorization".into(), "Bearer s3cr3t-t0ken".into())));
        let detail = failure_detail(&checks, &policy, &why, &report);
        assert!(detail.contains("503 x3"), "{detail}");
        assert!(detail.contains(r#"a body matching "ok""#), "{detail}");
        assert!(
            detail.contains(r#"Last response: 503 after "#)
                && detail.ends_with(r#"{"version":"v3","status":"failing"}"#),
            "{detail}"
        );
        assert!(!detail.contains("s3cr3t"), "{detail}");
        assert!(!format!("{report:?}").contains("s3cr3t"));
    }
}
