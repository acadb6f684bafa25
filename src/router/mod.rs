//! Traffic routers: what the blue/green deployment needs from a load balancer, behind one
//! narrow trait. ELBv2 (Application Load Balancer listeners) is the one implementation
//! today; another router (e.g. a service mesh) can be added without touching the
//! resource logic.

pub mod elbv2;
pub mod pace;

use std::collections::BTreeMap;
use std::fmt;

/// How a listener splits traffic: (target group ARN, weight) pairs. ELBv2 weights are
/// 0 to 999 and relative to their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Weights(pub Vec<(String, u32)>);

impl Weights {
    /// The weight of one target group; 0 when the listener does not forward to it.
    pub fn of(&self, target_group: &str) -> u32 {
        self.0
            .iter()
            .filter(|(tg, _)| tg == target_group)
            .map(|(_, w)| *w)
            .sum()
    }
}

/// A target registered in a target group: an instance ID, IP address or Lambda ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
}

/// A target and what the load balancer's own health checks say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub target: Target,
    /// `healthy`, `initial`, `unhealthy`, `unused`, `draining` or `unavailable`.
    pub state: String,
    /// e.g. `Target.ResponseCodeMismatch`, when not healthy.
    pub reason: Option<String>,
    /// The load balancer's words for it, e.g. "Health checks failed with these codes: [503]".
    pub description: Option<String>,
}

impl TargetHealth {
    pub fn is_healthy(&self) -> bool {
        self.state == "healthy"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterError {
    /// The listener or target group does not exist (any more).
    NotFound(String),
    /// Anything else, already phrased for the user: the operation, the service's error
    /// code and message, or why the endpoint could not be reached.
    Failed(String),
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::NotFound(what) => write!(f, "{what} not found"),
            RouterError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RouterError {}

/// What the deployment asks of a load balancer.
#[tonic::async_trait]
pub trait TrafficRouter: Send + Sync {
    /// The listener's default forward weights. `NotFound` when the listener is gone.
    async fn weights(&self, listener: &str) -> Result<Weights, RouterError>;

    /// Makes the listener's default action a weighted forward to these target groups.
    async fn set_weights(&self, listener: &str, weights: &Weights) -> Result<(), RouterError>;

    async fn target_health(&self, target_group: &str) -> Result<Vec<TargetHealth>, RouterError>;

    async fn register(&self, target_group: &str, targets: &[Target]) -> Result<(), RouterError>;

    async fn deregister(&self, target_group: &str, targets: &[Target]) -> Result<(), RouterError>;

    /// The tags of each resource, in the order given.
    async fn tags(&self, arns: &[&str]) -> Result<Vec<BTreeMap<String, String>>, RouterError>;

    async fn add_tags(&self, arn: &str, tags: &BTreeMap<String, String>)
        -> Result<(), RouterError>;

    async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), RouterError>;

    /// Makes the load balancer health-check `target_group` while `listener` still sends
    /// it no request: ELBv2 checks only the groups that a listener action uses, so a
    /// release's group that no action names would stay `unused` and never pass its gate.
    /// Returns what [`Self::stop_keeping_checked`] undoes once the group is part of the
    /// listener's forward; `None` when the group is already in use.
    async fn keep_checked(
        &self,
        listener: &str,
        target_group: &str,
    ) -> Result<Option<String>, RouterError>;

    async fn stop_keeping_checked(&self, handle: &str) -> Result<(), RouterError>;

    /// What stands in the way of `listener` forwarding to each of `target_groups`, in
    /// their order (`None`: nothing), checked once before anything is written. Reads the
    /// listener as it is before the release.
    async fn check_target_groups(
        &self,
        listener: &str,
        target_groups: &[&str],
    ) -> Result<Vec<Option<String>>, RouterError>;
}

/// Sets the weights and reads them back: the write is done only when the listener says
/// so. Two calls, the least a verified cut-over can take.
pub async fn shift(
    router: &dyn TrafficRouter,
    listener: &str,
    weights: &Weights,
) -> Result<Weights, RouterError> {
    router.set_weights(listener, weights).await?;
    verify(router, listener, weights).await
}

/// Reads the listener's weights and checks they are the ones written.
pub async fn verify(
    router: &dyn TrafficRouter,
    listener: &str,
    weights: &Weights,
) -> Result<Weights, RouterError> {
    let actual = router.weights(listener).await?;
    let mut want = weights.0.clone();
    let mut got = actual.0.clone();
    want.sort();
    got.sort();
    if want == got {
        Ok(actual)
    } else {
        Err(RouterError::Failed(format!(
            "the listener did not take the new weights: set {:?}, read back {:?}",
            weights.0, actual.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_groups_weight_is_zero_when_not_forwarded_to() {
        let w = Weights(vec![("blue".into(), 900), ("green".into(), 100)]);
        assert_eq!(w.of("blue"), 900);
        assert_eq!(w.of("green"), 100);
        assert_eq!(w.of("other"), 0);
        assert_eq!(Weights::default().of("blue"), 0);
    }
}
