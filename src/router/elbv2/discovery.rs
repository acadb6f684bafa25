//! Finding the listeners that may be blue/green deployments, for `terraform query`: those
//! whose default action forwards to exactly two target groups.

use super::{forward_weights, Elbv2, RouterError};
use crate::aws::Pages;

/// A listener forwarding to two target groups, in the forward's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwoWayListener {
    pub listener: String,
    pub load_balancer: String,
    pub target_groups: [String; 2],
    /// The forward's weights, in the same order.
    pub weights: [u32; 2],
}

impl Elbv2 {
    /// The two-way listeners of one load balancer, or of every load balancer the
    /// credentials can see in the region. Each page is one paced call; markers are followed
    /// as [`Pages`] allows.
    pub async fn two_way_listeners(
        &self,
        load_balancer: Option<&str>,
    ) -> Result<Vec<TwoWayListener>, RouterError> {
        let load_balancers = match load_balancer {
            Some(arn) => vec![arn.to_string()],
            None => self.load_balancer_arns().await?,
        };
        let mut found = Vec::new();
        for load_balancer in load_balancers {
            let mut pages = Pages::new("ELBv2 DescribeListeners");
            let mut marker = None;
            loop {
                let out = self
                    .call(
                        "DescribeListeners",
                        "load balancer",
                        &load_balancer,
                        self.client
                            .describe_listeners()
                            .load_balancer_arn(&load_balancer)
                            .set_marker(marker)
                            .send(),
                    )
                    .await?;
                for listener in out.listeners() {
                    let weights = forward_weights(listener.default_actions());
                    if let ([(a, wa), (b, wb)], Some(arn)) =
                        (weights.0.as_slice(), listener.listener_arn())
                    {
                        if a != b {
                            found.push(TwoWayListener {
                                listener: arn.to_string(),
                                load_balancer: load_balancer.clone(),
                                target_groups: [a.clone(), b.clone()],
                                weights: [*wa, *wb],
                            });
                        }
                    }
                }
                marker = pages.next(out.next_marker()).map_err(RouterError::Failed)?;
                if marker.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn load_balancer_arns(&self) -> Result<Vec<String>, RouterError> {
        let mut arns = Vec::new();
        let mut pages = Pages::new("ELBv2 DescribeLoadBalancers");
        let mut marker = None;
        loop {
            let out = self
                .call(
                    "DescribeLoadBalancers",
                    "load balancers",
                    "the region",
                    self.client
                        .describe_load_balancers()
                        .set_marker(marker)
                        .send(),
                )
                .await?;
            arns.extend(
                out.load_balancers()
                    .iter()
                    .filter_map(|lb| lb.load_balancer_arn().map(str::to_string)),
            );
            marker = pages.next(out.next_marker()).map_err(RouterError::Failed)?;
            if marker.is_none() {
                return Ok(arns);
            }
        }
    }
}
