//! The schema-driven part of planning, shared by every resource: defaults, computed
//! values that become unknown when something changes, and attributes whose change
//! replaces the resource. A resource's own `modify_plan` runs after this.

use super::diagnostics::AttributePath;
use super::schema::{Block, Nesting, PlanModifier};
use super::value::Value;

/// The plan after the schema's rules, and the attributes that force a replacement.
pub struct SchemaPlan {
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
}

/// Plans from Terraform's proposed new state (configuration merged with prior state).
/// `prior` is null on create.
pub fn plan_from_schema(
    block: &Block,
    prior: &Value,
    config: &Value,
    proposed: Value,
) -> SchemaPlan {
    let mut planned = proposed;
    apply_defaults(block, config, &mut planned);
    if prior.is_null() || &planned != prior {
        mark_computed_unknown(block, prior, config, &mut planned);
    }
    let mut requires_replace = Vec::new();
    if !prior.is_null() {
        find_replacements(
            block,
            prior,
            &planned,
            &AttributePath::default(),
            &mut requires_replace,
        );
    }
    SchemaPlan {
        planned,
        requires_replace,
    }
}

/// Pairs each nested block's values in `a` and `b` (same nesting), for a walk.
fn nested_pairs<'v>(
    block: &'v Block,
    a: &'v Value,
    b: &'v Value,
) -> impl Iterator<Item = (&'v Block, &'v str, Option<usize>, &'v Value, &'v Value)> {
    block.blocks.iter().flat_map(move |nested| {
        let av = a.get(&nested.name).unwrap_or(&Value::Null);
        let bv = b.get(&nested.name).unwrap_or(&Value::Null);
        let pairs: Vec<_> = match (nested.nesting, av, bv) {
            (Nesting::Single, _, _) => vec![(None, av, bv)],
            (Nesting::List, Value::List(x), Value::List(y)) => x
                .iter()
                .zip(y)
                .enumerate()
                .map(|(i, (x, y))| (Some(i), x, y))
                .collect(),
            _ => Vec::new(),
        };
        pairs
            .into_iter()
            .map(move |(i, x, y)| (&nested.block, nested.name.as_str(), i, x, y))
    })
}

fn apply_defaults(block: &Block, config: &Value, planned: &mut Value) {
    if !matches!(planned, Value::Object(_)) {
        return;
    }
    for attribute in &block.attributes {
        let Some(default) = &attribute.default else {
            continue;
        };
        if config.get(&attribute.name).is_none_or(Value::is_null) {
            if let Some(slot) = planned.get_mut(&attribute.name) {
                *slot = default.clone();
            }
        }
    }
    for nested in &block.blocks {
        let config = config.get(&nested.name).unwrap_or(&Value::Null);
        let Some(planned) = planned.get_mut(&nested.name) else {
            continue;
        };
        match (nested.nesting, planned) {
            // A single block left out of the configuration is planned absent. Terraform
            // 1.0's proposed new state keeps the prior block, and then refuses the plan
            // ("planned for existence but config wants absence").
            (Nesting::Single, planned) if config.is_null() => *planned = Value::Null,
            (Nesting::Single, planned) => apply_defaults(&nested.block, config, planned),
            (Nesting::List, Value::List(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let config = match config {
                        Value::List(c) => c.get(i).unwrap_or(&Value::Null),
                        _ => &Value::Null,
                    };
                    apply_defaults(&nested.block, config, item);
                }
            }
            _ => {}
        }
    }
}

/// Computed attributes the configuration leaves out will be set by apply, so they are
/// unknown in the plan, unless they keep their prior value by design.
fn mark_computed_unknown(block: &Block, prior: &Value, config: &Value, planned: &mut Value) {
    for attribute in block
        .attributes
        .iter()
        .filter(|a| a.computed && a.default.is_none())
    {
        if !config.get(&attribute.name).is_none_or(Value::is_null) {
            continue;
        }
        let keep = attribute.has(PlanModifier::UseStateForUnknown)
            && prior.get(&attribute.name).is_some_and(|v| !v.is_null());
        if let Some(slot) = planned.get_mut(&attribute.name) {
            *slot = if keep {
                prior.get(&attribute.name).cloned().unwrap_or(Value::Null)
            } else {
                Value::Unknown
            };
        }
    }
}

fn find_replacements(
    block: &Block,
    prior: &Value,
    planned: &Value,
    path: &AttributePath,
    out: &mut Vec<AttributePath>,
) {
    for attribute in &block.attributes {
        if !attribute.has(PlanModifier::RequiresReplace) {
            continue;
        }
        let before = prior.get(&attribute.name).unwrap_or(&Value::Null);
        let after = planned.get(&attribute.name).unwrap_or(&Value::Null);
        if before != after {
            out.push(path.then_attr(&attribute.name));
        }
    }
    for (nested, name, index, before, after) in nested_pairs(block, prior, planned) {
        let mut at = path.then_attr(name);
        if let Some(i) = index {
            at = at.then_index(i);
        }
        if before.is_null() != after.is_null()
            && nested
                .attributes
                .iter()
                .any(|a| a.has(PlanModifier::RequiresReplace))
        {
            out.push(at);
        } else {
            find_replacements(nested, before, after, &at, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::schema::Attribute;

    fn block() -> Block {
        Block::new("")
            .attribute(Attribute::string("url").required().requires_replace())
            .attribute(
                Attribute::string("method")
                    .default("GET")
                    .requires_replace(),
            )
            .attribute(Attribute::string("id").computed().use_state_for_unknown())
            .attribute(Attribute::string("passed_at").computed())
            .block(
                "timeouts",
                Nesting::Single,
                Block::new("").attribute(Attribute::string("create").optional().requires_replace()),
            )
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn state(url: &str, create: Option<&str>) -> Value {
        obj(&[
            ("url", url.into()),
            ("method", "GET".into()),
            ("id", "gate-1".into()),
            ("passed_at", "2026-11-29T00:00:00Z".into()),
            (
                "timeouts",
                create.map_or(Value::Null, |c| obj(&[("create", c.into())])),
            ),
        ])
    }

    fn config(url: &str, create: Option<&str>) -> Value {
        obj(&[
            ("url", url.into()),
            ("method", Value::Null),
            ("id", Value::Null),
            ("passed_at", Value::Null),
            (
                "timeouts",
                create.map_or(Value::Null, |c| obj(&[("create", c.into())])),
            ),
        ])
    }

    #[test]
    fn create_plans_defaults_and_unknown_computed_values() {
        let cfg = config("http://a", None);
        let plan = plan_from_schema(&block(), &Value::Null, &cfg, cfg.clone());
        assert_eq!(plan.planned.get("method"), Some(&Value::from("GET")));
        assert_eq!(plan.planned.get("id"), Some(&Value::Unknown));
        assert_eq!(plan.planned.get("passed_at"), Some(&Value::Unknown));
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn no_change_plans_the_prior_state() {
        let prior = state("http://a", None);
        // Terraform's proposed state carries computed values over from the prior state.
        let plan = plan_from_schema(&block(), &prior, &config("http://a", None), prior.clone());
        assert_eq!(plan.planned, prior);
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn changes_replace_and_keep_stable_computed_values() {
        let prior = state("http://a", None);
        let mut proposed = prior.clone();
        *proposed.get_mut("url").unwrap() = "http://b".into();
        let plan = plan_from_schema(&block(), &prior, &config("http://b", None), proposed);
        assert_eq!(plan.requires_replace, vec![AttributePath::attr("url")]);
        assert_eq!(plan.planned.get("id"), Some(&Value::from("gate-1")));
        assert_eq!(plan.planned.get("passed_at"), Some(&Value::Unknown));
    }

    #[test]
    fn a_single_block_left_out_of_the_config_is_planned_absent() {
        // Terraform 1.0 proposes the prior block for a block the config no longer has.
        let prior = state("http://a", Some("5m"));
        let plan = plan_from_schema(&block(), &prior, &config("http://a", None), prior.clone());
        assert_eq!(plan.planned.get("timeouts"), Some(&Value::Null));
    }

    #[test]
    fn nested_block_changes_are_found() {
        let prior = state("http://a", Some("5m"));
        let mut proposed = prior.clone();
        *proposed.get_mut("timeouts").unwrap() = obj(&[("create", "10m".into())]);
        let plan = plan_from_schema(&block(), &prior, &config("http://a", Some("10m")), proposed);
        let paths: Vec<String> = plan
            .requires_replace
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths, ["timeouts.create"]);
    }
}
