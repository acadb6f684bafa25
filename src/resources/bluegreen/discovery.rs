//! `list "immutable_bluegreen_deployment"` (Terraform 1.14+ `terraform query`): finds the
//! listeners that already are blue/green deployments, i.e. whose default action forwards
//! to two target groups, at least one carrying the provider's `immutable:release` tag. Each is
//! returned with its identity and, with `include_resource`, the state an import gives, so
//! that `-generate-config-out` writes blocks that import with no changes.
//!
//! The colours are the forward's order (the provider writes blue first): the tags do not
//! say which group is which.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::deployment::BlueGreenDeployment;
use crate::rollout::Observed;
use crate::router::elbv2::{record_of, Listener, TwoWayListener, RELEASE_TAG};
use crate::router::Split;
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::{Ctx, Finds, Found, ListResource};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::Value;
use crate::validators;

/// ARNs one DescribeTags call takes.
const TAGS_PER_CALL: usize = 20;

pub struct Discovery {
    pub deployment: Arc<BlueGreenDeployment>,
}

fn schema() -> Schema {
    Schema::new(
        Block::new("Finds Application Load Balancer listeners that are blue/green deployments: their default action forwards to two target groups, at least one carrying the provider's `immutable:release` tag. Blue is the first group of the forward.")
            .attribute(
                Attribute::string("load_balancer_arn")
                    .optional()
                    .description("Only this load balancer's listeners. Unset: every load balancer in the provider's region.")
                    .validate(validators::elb_arn("loadbalancer")),
            )
            .attribute(
                Attribute::string_map("tags")
                    .optional()
                    .description("Only deployments whose two target groups both carry every one of these tags, e.g. `{ team = \"payments\" }`."),
            ),
    )
}

/// Whether the provider recorded a release in either group (after the first release only
/// one holds one), and both carry every wanted tag.
fn matches(tags: &[&BTreeMap<String, String>; 2], wanted: &BTreeMap<String, String>) -> bool {
    tags.iter().any(|t| t.contains_key(RELEASE_TAG))
        && tags
            .iter()
            .all(|t| wanted.iter().all(|(k, v)| t.get(k) == Some(v)))
}

/// What `terraform query` shows: the listener and what each colour serves.
fn display_name(found: &TwoWayListener, state: &Value) -> String {
    let text = |name: &str| state.get(name).and_then(Value::as_str).unwrap_or("?");
    let listener = found
        .listener
        .split_once(":listener/")
        .map_or(found.listener.as_str(), |(_, path)| path);
    format!(
        "{listener}: {} serves on {} ({} warm on {})",
        text("active_release"),
        text("active_color"),
        state
            .get("previous_release")
            .and_then(Value::as_str)
            .unwrap_or("nothing"),
        text("standby_color"),
    )
}

#[tonic::async_trait]
impl ListResource for Discovery {
    fn type_name(&self) -> &'static str {
        "immutable_bluegreen_deployment"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn list(
        &self,
        ctx: &Ctx,
        config: &Value,
        found: &mut Finds<'_>,
        diags: &mut Diagnostics,
    ) {
        let api = self.deployment.shared.elbv2().await;
        let load_balancer = config.get("load_balancer_arn").and_then(Value::as_str);
        let wanted: BTreeMap<String, String> = match config.get("tags") {
            Some(Value::Map(tags)) => tags
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let candidates = match api.two_way_listeners(load_balancer).await {
            Ok(candidates) => candidates,
            Err(e) => {
                diags.error("Cannot list the listeners", e.to_string());
                return;
            }
        };
        for batch in candidates.chunks(TAGS_PER_CALL / 2) {
            if found.is_done() || ctx.stop.is_cancelled() {
                return;
            }
            let arns: Vec<&str> = batch
                .iter()
                .flat_map(|c| c.target_groups.iter().map(String::as_str))
                .collect();
            let tags = match api.tags(&arns).await {
                Ok(tags) => tags,
                Err(e) => {
                    diags.error("Cannot read the target groups' tags", e.to_string());
                    return;
                }
            };
            for (candidate, pair) in batch.iter().zip(tags.chunks(2)) {
                let [blue_tags, green_tags] = pair else {
                    continue;
                };
                if !matches(&[blue_tags, green_tags], &wanted) {
                    continue;
                }
                let [blue, green] = candidate.target_groups.clone();
                let listener = Listener {
                    api: api.clone(),
                    listener: candidate.listener.clone(),
                    blue,
                    green,
                };
                // What the listing read is what an import would read again.
                let observed = Observed::new(
                    Split {
                        blue: candidate.weights[0],
                        green: candidate.weights[1],
                    },
                    [record_of(blue_tags), record_of(green_tags)],
                );
                match self.deployment.adopt(&listener, Some(observed)).await {
                    Ok(state) => {
                        let display_name = display_name(candidate, &state);
                        if !found.send(Found {
                            display_name,
                            state,
                        }) {
                            return;
                        }
                    }
                    Err(e) => diags.warning(
                        format!("Skipped {}", candidate.listener),
                        format!(
                            "It forwards to two tagged target groups, but cannot be imported: {e}"
                        ),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_release_and_every_wanted_tag_on_both_groups() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let tagged = tags(&[(RELEASE_TAG, "v1"), ("team", "web")]);
        let untagged = tags(&[("team", "web")]);
        let none = BTreeMap::new();
        assert!(matches(&[&tagged, &tagged], &none));
        assert!(matches(&[&tagged, &untagged], &none));
        assert!(!matches(&[&untagged, &untagged], &none));
        assert!(matches(&[&tagged, &tagged], &tags(&[("team", "web")])));
        assert!(!matches(&[&tagged, &tagged], &tags(&[("team", "api")])));
    }
}
