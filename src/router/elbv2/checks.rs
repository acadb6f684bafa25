//! What a release needs from ELBv2 before its cut-over, besides the targets: the target
//! groups checked once, up front, for what AWS would refuse in the cut-over's
//! ModifyListener; and the release's group put under the load balancer's health checks
//! without sending it a request.
//!
//! # Health checks before the first cut-over
//! ELBv2 health-checks only the target groups that a listener action uses. A listener that
//! forwards to blue alone (the usual `aws_lb_listener`), or answers with a fixed response,
//! leaves the standby group `unused` (`Target.NotInUse`): its targets would never turn
//! healthy and the gate would wait until its timeout. So the provider adds a listener rule
//! that forwards to the standby group on a condition no real request meets (a header
//! carrying a random token), and deletes it once the group is in the listener's weighted
//! forward. The default action is not touched before the gate, and no request reaches the
//! group until its gate has passed.

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, HttpHeaderConditionConfig, ProtocolEnum,
    RuleCondition, TargetGroupTuple,
};

use super::Elbv2;
use crate::aws::Pages;
use crate::router::RouterError;

/// The header of the warm-up rule's condition; the provider recognises its own rules by it.
const WARM_UP_HEADER: &str = "X-Immutable-Warm-Up";
/// Rule priorities run from 1 to 50000; the warm-up rule takes the last free one, after
/// every rule of the user's.
const LOWEST_PRIORITY: i32 = 50_000;

/// Whether an action forwards (at any weight) to the target group.
fn forwards_to(action: &Action, target_group: &str) -> bool {
    action.target_group_arn() == Some(target_group)
        || action.forward_config().is_some_and(|c| {
            c.target_groups()
                .iter()
                .any(|t| t.target_group_arn() == Some(target_group))
        })
}

fn is_warm_up(rule: &elbv2::types::Rule) -> bool {
    rule.conditions().iter().any(|c| {
        c.http_header_config()
            .and_then(HttpHeaderConditionConfig::http_header_name)
            .is_some_and(|name| name.eq_ignore_ascii_case(WARM_UP_HEADER))
    })
}

impl Elbv2 {
    pub async fn warm_up(
        &self,
        listener: &str,
        target_group: &str,
    ) -> Result<Option<String>, RouterError> {
        let actions = self.current_actions(listener).await?;
        if actions.iter().any(|a| forwards_to(a, target_group)) {
            return Ok(None);
        }
        let rules = self.rules(listener).await?;
        let uses =
            |r: &&elbv2::types::Rule| r.actions().iter().any(|a| forwards_to(a, target_group));
        if let Some(rule) = rules.iter().find(uses) {
            // One of ours left by an apply that was killed: reuse it, and delete it after
            // the cut-over. A rule of the user's: the group is in use already.
            return Ok(is_warm_up(rule)
                .then(|| rule.rule_arn().map(str::to_string))
                .flatten());
        }
        let taken: Vec<i32> = rules
            .iter()
            .filter_map(|r| r.priority()?.parse().ok())
            .collect();
        let Some(priority) = (1..=LOWEST_PRIORITY).rev().find(|p| !taken.contains(p)) else {
            return Err(RouterError::Failed(format!(
                "listener {listener} has no free rule priority for the rule that makes the load balancer health-check {target_group}"
            )));
        };
        let token: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
        let condition = RuleCondition::builder()
            .field("http-header")
            .http_header_config(
                HttpHeaderConditionConfig::builder()
                    .http_header_name(WARM_UP_HEADER)
                    .values(token)
                    .build(),
            )
            .build();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(target_group)
                            .weight(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let created = self
            .call(
                "CreateRule",
                "listener",
                listener,
                self.client
                    .create_rule()
                    .listener_arn(listener)
                    .priority(priority)
                    .conditions(condition)
                    .actions(forward)
                    .send(),
            )
            .await?;
        Ok(created
            .rules()
            .first()
            .and_then(|r| r.rule_arn())
            .map(str::to_string))
    }

    /// Every rule of the listener, page by page: the warm-up rule needs a free priority
    /// and must find a rule of its own left by a killed apply, wherever it is listed.
    async fn rules(&self, listener: &str) -> Result<Vec<elbv2::types::Rule>, RouterError> {
        let mut rules = Vec::new();
        let mut pages = Pages::new("ELBv2 DescribeRules");
        let mut marker = None;
        loop {
            let out = self
                .call(
                    "DescribeRules",
                    "listener",
                    listener,
                    self.client
                        .describe_rules()
                        .listener_arn(listener)
                        .set_marker(marker)
                        .send(),
                )
                .await?;
            rules.extend_from_slice(out.rules());
            marker = pages.next(out.next_marker()).map_err(RouterError::Failed)?;
            if marker.is_none() {
                return Ok(rules);
            }
        }
    }

    pub async fn end_warm_up(&self, rule: &str) -> Result<(), RouterError> {
        let deleted = self.client.delete_rule().rule_arn(rule).send();
        match self
            .call("DeleteRule", "listener rule", rule, deleted)
            .await
        {
            Ok(_) | Err(RouterError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn target_groups(
        &self,
        arns: &[&str],
    ) -> Result<Vec<elbv2::types::TargetGroup>, RouterError> {
        let first = arns.first().copied().unwrap_or_default();
        let out = self
            .call(
                "DescribeTargetGroups",
                "target group",
                first,
                self.client
                    .describe_target_groups()
                    .set_target_group_arns(Some(arns.iter().map(|a| a.to_string()).collect()))
                    .send(),
            )
            .await?;
        Ok(out.target_groups().to_vec())
    }

    /// Each group must exist, be in the load balancer's VPC, speak HTTP or HTTPS, and be
    /// used by no other load balancer: what ModifyListener would otherwise refuse mid-release.
    /// Four calls: the listener, its load balancer, the groups.
    pub async fn preflight(
        &self,
        listener: &str,
        target_groups: &[&str],
    ) -> Result<Vec<Option<String>>, RouterError> {
        // A fresh read of the listener: what a release that fails puts back
        // (`Elbv2::routing`).
        self.default_actions(listener).await?;
        let load_balancer = self.load_balancer_of(listener).await?;
        let lb = self
            .call(
                "DescribeLoadBalancers",
                "load balancer",
                &load_balancer,
                self.client
                    .describe_load_balancers()
                    .load_balancer_arns(&load_balancer)
                    .send(),
            )
            .await?;
        let vpc = lb
            .load_balancers()
            .first()
            .and_then(|l| l.vpc_id())
            .unwrap_or_default()
            .to_string();
        let groups = match self.target_groups(target_groups).await {
            Ok(groups) => groups,
            // Which of them is missing: one by one.
            Err(RouterError::NotFound(_)) => {
                let mut groups = Vec::new();
                for &arn in target_groups {
                    groups.extend(match self.target_groups(&[arn]).await {
                        Ok(found) => found,
                        Err(RouterError::NotFound(_)) => Vec::new(),
                        Err(e) => return Err(e),
                    });
                }
                groups
            }
            Err(e) => return Err(e),
        };
        let mut problems = Vec::new();
        for &arn in target_groups {
            let Some(group) = groups.iter().find(|g| g.target_group_arn() == Some(arn)) else {
                problems.push(Some(format!("target group {arn} does not exist")));
                continue;
            };
            let protocol = group.protocol();
            let other_lb = group
                .load_balancer_arns()
                .iter()
                .find(|a| **a != load_balancer);
            problems.push(if group.vpc_id().unwrap_or_default() != vpc {
                Some(format!(
                    "target group {arn} is in VPC {}, but the listener's load balancer is in {vpc}: a listener forwards only to target groups of its own VPC",
                    group.vpc_id().unwrap_or("(none)")
                ))
            } else if !matches!(protocol, Some(ProtocolEnum::Http | ProtocolEnum::Https)) {
                Some(format!(
                    "target group {arn} uses protocol {}: an Application Load Balancer listener forwards to HTTP or HTTPS target groups",
                    protocol.map_or("(none)", |p| p.as_str())
                ))
            } else {
                other_lb.map(|other| format!(
                    "target group {arn} is already used by another load balancer ({other}): a target group of an Application Load Balancer serves one load balancer"
                ))
            });
        }
        Ok(problems)
    }
}
