//! One listener and its two colour target groups, as a [`TrafficRouter`]: the colours are
//! the target groups, the split is the default action's weighted forward, and a colour's
//! record is kept in tags on its target group.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::Action;

use super::{forward_weights, Elbv2, Weights};
use crate::router::{
    Color, MemberHealth, Record, RouterError, Routing, Split, Target, TrafficRouter,
};

/// Tag on a colour's target group naming the release it holds.
pub const RELEASE_TAG: &str = "immutable:release";
/// Tag on a colour's target group: the generation it went, or is about to go, live as.
pub const GENERATION_TAG: &str = "immutable:generation";
/// Tag on a colour's target group: when the rollback action moved traffic away from it.
pub const ROLLED_BACK_TAG: &str = "immutable:rolled-back-at";
/// Tag on the listener: the lease of the apply releasing to it (see [`crate::lease`]).
pub const LEASE_TAG: &str = "immutable:lease";

#[derive(Clone, Debug)]
pub struct Listener {
    pub api: Elbv2,
    pub listener: String,
    pub blue: String,
    pub green: String,
}

impl Listener {
    pub fn target_group(&self, color: Color) -> &str {
        match color {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }

    fn forward(&self, split: Split) -> Weights {
        Weights(
            Color::BOTH
                .into_iter()
                .map(|c| (self.target_group(c).to_string(), split.of(c)))
                .collect(),
        )
    }
}

/// A colour's record from its target group's tags.
pub fn record_of(tags: &BTreeMap<String, String>) -> Record {
    Record {
        release: tags.get(RELEASE_TAG).cloned(),
        generation: tags.get(GENERATION_TAG).and_then(|g| g.parse().ok()),
        rolled_back_at: tags.get(ROLLED_BACK_TAG).cloned(),
    }
}

#[tonic::async_trait]
impl TrafficRouter for Listener {
    fn name(&self) -> String {
        format!("the listener {}", self.listener)
    }

    fn checker(&self) -> &'static str {
        "the load balancer"
    }

    fn describe(&self, color: Color) -> String {
        format!("the {color} target group ({})", self.target_group(color))
    }

    fn none_healthy_means(&self) -> &'static str {
        "ALB sends traffic to all targets of a group when none is healthy"
    }

    fn placeholders(&self, color: Color) -> Vec<(&'static str, String)> {
        vec![("target_group_arn", self.target_group(color).to_string())]
    }

    async fn weights(&self) -> Result<Split, RouterError> {
        let forward = self.api.weights(&self.listener).await?;
        Ok(Split {
            blue: forward.of(&self.blue),
            green: forward.of(&self.green),
        })
    }

    async fn set_weights(&self, split: Split) -> Result<(), RouterError> {
        self.api
            .set_weights(&self.listener, &self.forward(split))
            .await
    }

    /// The default actions as they are: a fixed response, a redirect or a forward to
    /// other groups is put back as it was.
    async fn routing(&self) -> Result<Routing, RouterError> {
        let (actions, described) = self.api.routing(&self.listener).await?;
        let forward = forward_weights(&actions);
        let split = Split {
            blue: forward.of(&self.blue),
            green: forward.of(&self.green),
        };
        Ok(Routing::new(split, described, actions))
    }

    async fn restore(&self, routing: &Routing) -> Result<(), RouterError> {
        match routing.saved::<Vec<Action>>() {
            Some(actions) => self.api.restore_actions(&self.listener, actions).await,
            None => self.set_weights(routing.split).await,
        }
    }

    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError> {
        self.api.target_health(self.target_group(color)).await
    }

    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.api.register(self.target_group(color), targets).await
    }

    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.api.deregister(self.target_group(color), targets).await
    }

    /// One DescribeTags for both groups.
    async fn records(&self) -> Result<[Record; 2], RouterError> {
        let tags = self.api.tags(&[&self.blue, &self.green]).await?;
        let record = |i: usize| tags.get(i).map(record_of).unwrap_or_default();
        Ok([record(0), record(1)])
    }

    /// AddTags for the fields given, RemoveTags for those that are not: each only when
    /// needed, so a release's record is one call, or two when it ends a rollback's.
    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError> {
        let tg = self.target_group(color);
        let fields = [
            (RELEASE_TAG, record.release.clone()),
            (GENERATION_TAG, record.generation.map(|g| g.to_string())),
            (ROLLED_BACK_TAG, record.rolled_back_at.clone()),
        ];
        let set: BTreeMap<String, String> = fields
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect();
        let gone: Vec<String> = fields
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string())
            .collect();
        self.api.add_tags(tg, &set).await?;
        self.api.remove_tags(tg, &gone).await
    }

    async fn lease(&self) -> Result<Option<String>, RouterError> {
        let tags = self.api.tags(&[&self.listener]).await?;
        Ok(tags.first().and_then(|t| t.get(LEASE_TAG).cloned()))
    }

    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError> {
        match lease {
            Some(lease) => {
                let tags = BTreeMap::from([(LEASE_TAG.to_string(), lease.to_string())]);
                self.api.add_tags(&self.listener, &tags).await
            }
            None => {
                self.api
                    .remove_tags(&self.listener, &[LEASE_TAG.to_string()])
                    .await
            }
        }
    }

    /// One DescribeTags for the listener and both groups.
    async fn lease_and_records(&self) -> Result<(Option<String>, [Record; 2]), RouterError> {
        let tags = self
            .api
            .tags(&[&self.listener, &self.blue, &self.green])
            .await?;
        let record = |i: usize| tags.get(i).map(record_of).unwrap_or_default();
        let lease = tags.first().and_then(|t| t.get(LEASE_TAG).cloned());
        Ok((lease, [record(1), record(2)]))
    }

    /// ELBv2 reads are eventually consistent: a tag written is not seen by every reader at
    /// once, so the wait is seconds rather than the calls' own time.
    fn lease_settle(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn break_lease_command(&self) -> String {
        format!(
            "aws elbv2 remove-tags --resource-arns {} --tag-keys {LEASE_TAG}",
            self.listener
        )
    }

    async fn warm_up(&self, color: Color) -> Result<Option<String>, RouterError> {
        self.api
            .warm_up(&self.listener, self.target_group(color))
            .await
    }

    async fn end_warm_up(&self, handle: &str) -> Result<(), RouterError> {
        self.api.end_warm_up(handle).await
    }

    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError> {
        let problems = self
            .api
            .preflight(&self.listener, &[&self.blue, &self.green])
            .await?;
        Ok(Color::BOTH
            .into_iter()
            .zip(problems)
            .filter_map(|(color, problem)| Some((Some(color), problem?)))
            .collect())
    }
}
