//! What is left of an operation's time: every call that leaves the process (ELBv2,
//! CloudWatch, Prometheus, HAProxy's socket, SSH) ends at its own fixed timeout, at the
//! operation's deadline (the resource's `timeouts`) or at Ctrl-C, whichever comes first.
//!
//! The deadline and the stop token travel in a task-local [`Budget`], set once where a
//! release or a rollback starts ([`within`]), so that the calls deep in a router need no
//! extra argument. What must run after a Ctrl-C or a deadline, because it undoes what they
//! cut short (a back-out's writes, the read-back of a write cut off), runs [`exempt`]: its
//! calls then have their fixed timeouts only.

use std::fmt;
use std::future::{pending, Future};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    static BUDGET: Budget;
}

/// An operation's deadline and stop token.
#[derive(Clone)]
pub struct Budget {
    deadline: Option<Instant>,
    stop: Option<CancellationToken>,
    /// What set the deadline, for the error: "the resource's `timeouts`".
    limit: &'static str,
}

impl Budget {
    pub fn new(deadline: Instant, stop: CancellationToken, limit: &'static str) -> Budget {
        Budget {
            deadline: Some(deadline),
            stop: Some(stop),
            limit,
        }
    }
}

/// Why a call was cut off: the operation's deadline came, or Terraform asked the provider
/// to stop. Either way the call may or may not have reached the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    Stopped { what: String },
    Deadline { what: String, limit: &'static str },
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::Stopped { what } => write!(
                f,
                "interrupted while waiting for {what}: Terraform asked the provider to stop"
            ),
            Cut::Deadline { what, limit } => {
                write!(
                    f,
                    "the time {limit} allows ran out while waiting for {what}"
                )
            }
        }
    }
}

impl std::error::Error for Cut {}

/// Runs `operation` with `budget`: the calls it makes end at its deadline and stop token.
pub async fn within<F: Future>(budget: Budget, operation: F) -> F::Output {
    BUDGET.scope(budget, operation).await
}

/// Runs `cleanup` free of the budget it is called in: it undoes what a Ctrl-C or the
/// deadline cut short, so they must not cut it short too. Its calls keep their fixed
/// timeouts.
pub async fn exempt<F: Future>(cleanup: F) -> F::Output {
    let free = Budget {
        deadline: None,
        stop: None,
        limit: "",
    };
    BUDGET.scope(free, cleanup).await
}

/// Runs one call (`what`, e.g. "ELBv2 ModifyListener on arn:…") until it ends, the
/// budget's deadline comes or its stop token fires. Outside any budget, the call runs to
/// its own timeout.
pub async fn bounded<F: Future>(what: impl fmt::Display, call: F) -> Result<F::Output, Cut> {
    let Ok(budget) = BUDGET.try_with(Budget::clone) else {
        return Ok(call.await);
    };
    let stopped = async {
        match &budget.stop {
            Some(stop) => stop.cancelled().await,
            None => pending().await,
        }
    };
    let deadline = async {
        match budget.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => pending().await,
        }
    };
    tokio::select! {
        // A call asked for after the stop or the deadline is not sent at all.
        biased;
        () = stopped => Err(Cut::Stopped { what: what.to_string() }),
        () = deadline => Err(Cut::Deadline { what: what.to_string(), limit: budget.limit }),
        done = call => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    fn budget(deadline_in: Duration, stop: &CancellationToken) -> Budget {
        Budget::new(
            Instant::now() + deadline_in,
            stop.clone(),
            "the resource's `timeouts`",
        )
    }

    #[tokio::test]
    async fn a_call_that_never_returns_ends_at_the_deadline_saying_so() {
        let start = Instant::now();
        let stop = CancellationToken::new();
        let cut = within(budget(Duration::from_millis(300), &stop), async {
            bounded("ELBv2 DescribeTargetHealth", pending::<()>()).await
        })
        .await
        .unwrap_err();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(1),
            "{took:?}"
        );
        assert_eq!(
            cut.to_string(),
            "the time the resource's `timeouts` allows ran out while waiting for ELBv2 DescribeTargetHealth"
        );
    }

    #[tokio::test]
    async fn a_call_ends_within_a_second_of_the_stop() {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let start = std::time::Instant::now();
        let cut = within(budget(Duration::from_secs(3600), &stop), async {
            bounded("HAProxy's Runtime API", pending::<()>()).await
        })
        .await
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            cut.to_string(),
            "interrupted while waiting for HAProxy's Runtime API: Terraform asked the provider to stop"
        );
    }

    #[tokio::test]
    async fn a_call_asked_for_after_the_stop_is_never_sent() {
        let stop = CancellationToken::new();
        stop.cancel();
        let sent = AtomicBool::new(false);
        let result = within(budget(Duration::from_secs(60), &stop), async {
            bounded("ELBv2 ModifyListener", async {
                sent.store(true, Ordering::SeqCst)
            })
            .await
        })
        .await;
        assert!(matches!(result, Err(Cut::Stopped { .. })));
        assert!(!sent.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_exempt_cleanup_runs_after_the_stop_and_the_deadline() {
        let stop = CancellationToken::new();
        stop.cancel();
        let result = within(budget(Duration::ZERO, &stop), async {
            exempt(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bounded("ELBv2 ModifyListener", async { "written" }).await
            })
            .await
        })
        .await;
        assert_eq!(result, Ok("written"));
    }

    #[tokio::test]
    async fn a_call_outside_any_budget_runs_to_its_end() {
        let result = bounded("CloudWatch DescribeAlarms", async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            7
        })
        .await;
        assert_eq!(result, Ok(7));
    }
}
