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
//!
//! Those rates are a ceiling, not a share: other provider processes (other pipelines,
//! other states) draw on the same account buckets, and nothing tells one process how many
//! there are. So the pacer also listens to AWS (AIMD, as TCP does with a congested link):
//! a `Throttling` answer means the account's bucket of that family is empty, so the
//! process's own bucket is emptied too and its refill rate halved (once per
//! [`CUT_SPACING`]: the calls in flight when the bucket ran dry are one signal, not
//! many); the rate then climbs back linearly to the ceiling over [`RECOVERY`]. There is
//! one pacer, not a second limiter in the SDK (its adaptive retry mode): the SDK's limiter
//! has one rate for all of a service's calls, so a burst of Describe calls throttled would
//! slow the writes that end a gate, and measured with four pipelines it took 1.81 times
//! what the gates need, against this pacer's figure in docs/benchmarks.md.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::retry::ErrorKind;
use aws_sdk_elasticloadbalancingv2::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_elasticloadbalancingv2::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_elasticloadbalancingv2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::classifiers::RetryReason;
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

/// How long the refill rate takes to climb back from nothing to its ceiling (from [`CUT`]
/// of it, half as long).
pub const RECOVERY: Duration = Duration::from_secs(20);
/// What a throttle leaves of the refill rate. CUBIC's (and the SDK adaptive mode's) 0.7,
/// climbing back in 3 s, drew twice the throttles with four pipelines and was no faster.
const CUT: f64 = 0.5;
/// Throttles closer together than this are one signal: the rate is halved once for them.
pub const CUT_SPACING: Duration = Duration::from_secs(1);
/// The rate never falls below this share of the ceiling, so a process always makes progress.
const FLOOR: f64 = 0.1;

/// A token bucket that hands out reservations: a caller takes a token at once and, when
/// the bucket is overdrawn, waits until its token would have refilled. Callers are served
/// in the order they asked, and a dropped wait leaves its token spent (erring slow).
#[derive(Debug)]
pub struct Bucket {
    burst: f64,
    /// The refill rate with no throttle heard.
    ceiling: f64,
    state: Mutex<Level>,
}

#[derive(Debug)]
struct Level {
    tokens: f64,
    at: Instant,
    per_second: f64,
    cut_at: Option<Instant>,
}

impl Level {
    /// Refills for the time since the last look, and lets the rate climb back.
    fn advance(&mut self, now: Instant, burst: f64, ceiling: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(burst);
        self.per_second =
            (self.per_second + ceiling * elapsed / RECOVERY.as_secs_f64()).min(ceiling);
        self.at = now.max(self.at);
    }
}

impl Bucket {
    pub fn new(burst: f64, per_second: f64) -> Bucket {
        Bucket {
            burst,
            ceiling: per_second,
            state: Mutex::new(Level {
                tokens: burst,
                at: Instant::now(),
                per_second,
                cut_at: None,
            }),
        }
    }

    fn level(&self) -> std::sync::MutexGuard<'_, Level> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the caller must wait for its token (zero when one was there).
    fn reserve(&self, now: Instant) -> Duration {
        let mut level = self.level();
        level.advance(now, self.burst, self.ceiling);
        level.tokens -= 1.0;
        if level.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-level.tokens / level.per_second)
        }
    }

    /// AWS answered `Throttling`: the account's bucket is empty, so this one is too, and it
    /// refills at [`CUT`] times the rate (once per [`CUT_SPACING`]). The throttled call's
    /// retry is the SDK's (its backoff); counting it against this bucket as well made four
    /// pipelines slower. Returns the new rate.
    fn throttled(&self, now: Instant) -> f64 {
        let mut level = self.level();
        level.advance(now, self.burst, self.ceiling);
        level.tokens = level.tokens.min(0.0);
        if level
            .cut_at
            .is_none_or(|cut| now.saturating_duration_since(cut) >= CUT_SPACING)
        {
            level.per_second = (level.per_second * CUT).max(self.ceiling * FLOOR);
            level.cut_at = Some(now);
        }
        level.per_second
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

    fn bucket(&self, operation: &str) -> &Bucket {
        match Family::of(operation) {
            Family::Describe => &self.describe,
            Family::Register => &self.register,
            Family::Modify => &self.modify,
        }
    }

    /// Waits until a call of `operation` (e.g. `"DescribeTargetHealth"`) may go out.
    pub async fn ready(&self, operation: &str) {
        self.bucket(operation).acquire().await
    }

    /// AWS answered a call of `operation` with `Throttling`: slows that family down.
    pub fn throttled(&self, operation: &str) {
        let per_second = self.bucket(operation).throttled(Instant::now());
        tracing::debug!(
            operation,
            per_second,
            "ELBv2 throttled: this family's calls now paced at this rate"
        );
    }
}

/// Tells the process's pacer of every ELBv2 attempt that the SDK's retry classifiers call
/// throttled (`Throttling`, `ThrottlingException`, ...), whether or not it is retried.
#[derive(Debug)]
pub struct ThrottleFeedback;

impl Intercept for ThrottleFeedback {
    fn name(&self) -> &'static str {
        "ThrottleFeedback"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = components.retry_classifiers().any(|classifier| {
            matches!(
                classifier.classify_retry(context.inner()),
                RetryAction::RetryIndicated(RetryReason::RetryableError {
                    kind: ErrorKind::ThrottlingError,
                    ..
                })
            )
        });
        if let Some(operation) = cfg.load::<Metadata>().filter(|_| throttled) {
            elbv2().throttled(operation.name());
        }
        Ok(())
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

    #[test]
    fn a_throttle_empties_the_bucket_and_halves_its_rate_once_per_signal() {
        let bucket = Bucket::new(3.0, 2.0);
        let start = Instant::now();
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        // Two tokens are left, but the account's bucket is empty: they are gone.
        assert_eq!(bucket.throttled(start), 1.0);
        assert_eq!(bucket.reserve(start), Duration::from_secs(1));
        // The calls that were in flight with it are the same signal: no second cut.
        let rate = bucket.throttled(start + Duration::from_millis(500));
        assert!((rate - 1.05).abs() < 1e-9, "{rate}");
        // A throttle after the spacing is a new signal; the rate never falls below its floor.
        for second in 1..10 {
            bucket.throttled(start + Duration::from_secs(second) + Duration::from_millis(500));
        }
        assert!((bucket.level().per_second - 0.2).abs() < 1e-9);
    }

    #[test]
    fn the_rate_climbs_back_to_its_ceiling() {
        let bucket = Bucket::new(3.0, 2.0);
        let start = Instant::now();
        bucket.throttled(start);
        // Half of the recovery time later the rate is back at its ceiling, and the bucket
        // refilled meanwhile, up to its burst.
        let later = start + RECOVERY / 2;
        let waits: Vec<Duration> = (0..4).map(|_| bucket.reserve(later)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(500));
        // It climbs no higher.
        let idle = later + RECOVERY * 10;
        let waits: Vec<Duration> = (0..4).map(|_| bucket.reserve(idle)).collect();
        assert_eq!(waits[3], Duration::from_millis(500));
    }
}
