//! ELBv2 API throttling as AWS does it: a token bucket per API family, per account and region.
//! A request takes one token; an empty bucket answers `Throttling` / "Rate exceeded".
//!
//! The sizes are settable ([`Throttling`]); the defaults are the stricter of the two sources in
//! shared/aws-elbv2-behaviour.md (AWS's page: Describe* 40 at 10/s; the AWS Load Balancer
//! Controller: Modify* 20 at 3/s, Register/Deregister 20 at 4/s).

use std::collections::HashMap;
use std::time::Instant;

/// The API families AWS throttles separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `Describe*`.
    Describe,
    /// `RegisterTargets` and `DeregisterTargets`.
    Registration,
    /// Every other call: `Create*`, `Delete*`, `Modify*`, `Add*`, `Remove*`, `Set*`.
    Modify,
}

impl Family {
    pub fn of(action: &str) -> Family {
        match action {
            "RegisterTargets" | "DeregisterTargets" => Family::Registration,
            a if a.starts_with("Describe") => Family::Describe,
            _ => Family::Modify,
        }
    }
}

/// One bucket's size: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: u32,
    pub per_second: f64,
}

/// The bucket sizes per family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttling {
    pub describe: Bucket,
    pub modify: Bucket,
    pub registration: Bucket,
}

impl Default for Throttling {
    fn default() -> Self {
        Throttling {
            describe: Bucket {
                burst: 40,
                per_second: 10.0,
            },
            modify: Bucket {
                burst: 20,
                per_second: 3.0,
            },
            registration: Bucket {
                burst: 20,
                per_second: 4.0,
            },
        }
    }
}

impl Throttling {
    fn bucket(&self, family: Family) -> Bucket {
        match family {
            Family::Describe => self.describe,
            Family::Modify => self.modify,
            Family::Registration => self.registration,
        }
    }
}

/// The buckets' levels, created full on first use.
#[derive(Debug)]
pub struct Buckets {
    sizes: Throttling,
    levels: HashMap<(String, String, Family), Level>,
}

#[derive(Debug)]
struct Level {
    tokens: f64,
    at: Instant,
}

impl Buckets {
    pub fn new(sizes: Throttling) -> Buckets {
        Buckets {
            sizes,
            levels: HashMap::new(),
        }
    }

    /// Takes a token for a call of `family` by `account` in `region` at `now`; false when the
    /// bucket is empty (the call is throttled and takes nothing).
    pub fn take(&mut self, account: &str, region: &str, family: Family, now: Instant) -> bool {
        let size = self.sizes.bucket(family);
        let level = self
            .levels
            .entry((account.to_string(), region.to_string(), family))
            .or_insert(Level {
                tokens: f64::from(size.burst),
                at: now,
            });
        let refill = now.saturating_duration_since(level.at).as_secs_f64() * size.per_second;
        level.tokens = (level.tokens + refill).min(f64::from(size.burst));
        level.at = now;
        if level.tokens >= 1.0 {
            level.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn families() {
        assert_eq!(Family::of("DescribeTargetHealth"), Family::Describe);
        assert_eq!(Family::of("RegisterTargets"), Family::Registration);
        assert_eq!(Family::of("DeregisterTargets"), Family::Registration);
        for action in [
            "ModifyListener",
            "CreateRule",
            "AddTags",
            "SetRulePriorities",
        ] {
            assert_eq!(Family::of(action), Family::Modify);
        }
    }

    #[test]
    fn a_bucket_bursts_then_refills_at_its_rate() {
        let mut buckets = Buckets::new(Throttling::default());
        let t0 = Instant::now();
        let take = |b: &mut Buckets, family, at| b.take("acct", "us-east-1", family, at);
        assert_eq!(
            (0..25)
                .filter(|_| take(&mut buckets, Family::Modify, t0))
                .count(),
            20
        );
        // 3 per second: one token after a third of a second, not before.
        assert!(!take(
            &mut buckets,
            Family::Modify,
            t0 + Duration::from_millis(300)
        ));
        assert!(take(
            &mut buckets,
            Family::Modify,
            t0 + Duration::from_millis(340)
        ));
        assert!(!take(
            &mut buckets,
            Family::Modify,
            t0 + Duration::from_millis(350)
        ));
        // Other families, accounts and regions have their own buckets.
        assert!(take(&mut buckets, Family::Describe, t0));
        assert!(buckets.take("other", "us-east-1", Family::Modify, t0));
        assert!(buckets.take("acct", "eu-west-1", Family::Modify, t0));
        // A long pause refills up to the burst only.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            (0..50)
                .filter(|_| take(&mut buckets, Family::Modify, later))
                .count(),
            20
        );
    }
}
