//! The provider's own pace for ELBv2 calls: one set of token buckets per provider process,
//! shared by every resource in the apply, so that fifty deployments gating at once stay
//! inside the account's API buckets instead of being throttled and retried.
//!
//! ELBv2 throttles per account and region, with a bucket per API family (see the ELB API
//! throttling page): Describe* 40 tokens refilling 10/s in the stricter of the published
//! tables, Register/Deregister 20 at 4/s, the other writes 20 at 3/s. The provider paces
//! itself below those: three quarters of the burst (a new provider process, started right
//! after the last one used the account's bucket, finds most of it refilled, since the
//! last one drew below the refill rate) and 80% of the refill (the rest is left to
//! whatever else calls the API in the account). A deep burst matters: a wave of
//! deployments starting together needs many calls at once, and tokens that refill
//! while gates run cannot be banked beyond it.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// ELBv2's throttling families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Describe,
    Register,
    Modify,
}

impl Family {
    pub fn of(operation: &str) -> Family {
        if operation.starts_with("Describe") {
            Family::Describe
        } else if matches!(operation, "RegisterTargets" | "DeregisterTargets") {
            Family::Register
        } else {
            Family::Modify
        }
    }
}

/// A token bucket that hands out reservations: a caller takes a token at once and, when
/// the bucket is overdrawn, waits until its token would have refilled. Callers are served
/// in the order they asked, and a dropped wait leaves its token spent (erring slow).
#[derive(Debug)]
pub struct Bucket {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(burst: f64, per_second: f64) -> Bucket {
        Bucket {
            burst,
            per_second,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long the caller must wait for its token (zero when one was there).
    fn reserve(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *state;
        let refilled = tokens + now.saturating_duration_since(last).as_secs_f64() * self.per_second;
        let left = refilled.min(self.burst) - 1.0;
        *state = (left, now.max(last));
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.per_second)
        }
    }

    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The buckets of one provider process.
#[derive(Debug)]
pub struct Pacer {
    describe: Bucket,
    register: Bucket,
    modify: Bucket,
}

impl Pacer {
    fn aws_defaults() -> Pacer {
        let paced = |burst: f64, per_second: f64| Bucket::new(burst * 0.75, per_second * 0.8);
        Pacer {
            describe: paced(40.0, 10.0),
            register: paced(20.0, 4.0),
            modify: paced(20.0, 3.0),
        }
    }

    /// Waits until a call of `operation` (e.g. `"DescribeTargetHealth"`) may go out.
    pub async fn ready(&self, operation: &str) {
        match Family::of(operation) {
            Family::Describe => self.describe.acquire().await,
            Family::Register => self.register.acquire().await,
            Family::Modify => self.modify.acquire().await,
        }
    }
}

/// The process's pacer.
pub fn elbv2() -> &'static Pacer {
    static PACER: OnceLock<Pacer> = OnceLock::new();
    PACER.get_or_init(Pacer::aws_defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_fall_into_aws_families() {
        assert_eq!(Family::of("DescribeTargetHealth"), Family::Describe);
        assert_eq!(Family::of("DeregisterTargets"), Family::Register);
        assert_eq!(Family::of("ModifyListener"), Family::Modify);
        assert_eq!(Family::of("AddTags"), Family::Modify);
    }

    #[test]
    fn a_bucket_gives_its_burst_then_paces_at_its_rate() {
        let bucket = Bucket::new(3.0, 2.0);
        let start = Instant::now();
        let waits: Vec<Duration> = (0..5).map(|_| bucket.reserve(start)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(500));
        assert_eq!(waits[4], Duration::from_secs(1));
        // A second later one token has come back: the next caller waits for the one after.
        let later = bucket.reserve(start + Duration::from_secs(1));
        assert_eq!(later, Duration::from_millis(500));
        // After a long pause the bucket holds its burst again, no more.
        let idle = start + Duration::from_secs(60);
        let waits: Vec<Duration> = (0..4).map(|_| bucket.reserve(idle)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert!(waits[3] > Duration::ZERO);
    }
}
