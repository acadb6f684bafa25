//! Plan and state checks over `terraform show -json`, named after terraform-plugin-testing's.

use serde_json::Value;

/// A check of a saved plan (`terraform show -json tfplan`, plus the plan's text).
pub enum PlanCheck {
    NoOp(&'static str),
    Create(&'static str),
    UpdateInPlace(&'static str),
    /// Delete-then-create or create-then-delete.
    Replace(&'static str),
    Destroy(&'static str),
    /// An attribute (a dotted path, e.g. `traffic_weights.blue`) goes from `before` to
    /// `after`; `None` as `after` means "unknown until apply".
    Change {
        address: &'static str,
        path: &'static str,
        before: Value,
        after: Option<Value>,
    },
    /// The human-readable plan contains this text.
    TextContains(&'static str),
    /// The human-readable plan does not contain this text.
    TextLacks(String),
}

impl PlanCheck {
    /// `address`'s attribute at `path` goes from `before` to the known value `after`.
    pub fn change(address: &'static str, path: &'static str, before: Value, after: Value) -> Self {
        PlanCheck::Change {
            address,
            path,
            before,
            after: Some(after),
        }
    }

    pub fn check(&self, plan: &Value, text: &str) -> Result<(), String> {
        let actions = |address: &str| -> Result<Vec<String>, String> {
            let change = resource_change(plan, address)?;
            Ok(change["change"]["actions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default())
        };
        let expect = |address: &str, want: &[&[&str]]| -> Result<(), String> {
            let got = actions(address)?;
            if want
                .iter()
                .any(|w| got.iter().map(String::as_str).eq(w.iter().copied()))
            {
                Ok(())
            } else {
                Err(format!("{address}: expected actions {want:?}, got {got:?}"))
            }
        };
        match self {
            PlanCheck::NoOp(a) => expect(a, &[&["no-op"]]),
            PlanCheck::Create(a) => expect(a, &[&["create"]]),
            PlanCheck::UpdateInPlace(a) => expect(a, &[&["update"]]),
            PlanCheck::Replace(a) => expect(a, &[&["delete", "create"], &["create", "delete"]]),
            PlanCheck::Destroy(a) => expect(a, &[&["delete"]]),
            PlanCheck::Change {
                address,
                path,
                before,
                after,
            } => {
                let change = &resource_change(plan, address)?["change"];
                let got_before = lookup(&change["before"], path)
                    .cloned()
                    .unwrap_or(Value::Null);
                if &got_before != before {
                    return Err(format!(
                        "{address}.{path}: expected before = {before}, got {got_before}"
                    ));
                }
                let unknown = lookup(&change["after_unknown"], path) == Some(&Value::Bool(true));
                match after {
                    None if unknown => Ok(()),
                    None => Err(format!(
                        "{address}.{path}: expected unknown after apply, got {:?}",
                        lookup(&change["after"], path)
                    )),
                    Some(_) if unknown => {
                        Err(format!("{address}.{path}: expected {after:?}, got unknown"))
                    }
                    Some(want) => {
                        let got = lookup(&change["after"], path)
                            .cloned()
                            .unwrap_or(Value::Null);
                        if &got == want {
                            Ok(())
                        } else {
                            Err(format!(
                                "{address}.{path}: expected after = {want}, got {got}"
                            ))
                        }
                    }
                }
            }
            PlanCheck::TextContains(needle) => {
                if text.contains(needle) {
                    Ok(())
                } else {
                    Err(format!("plan text lacks {needle:?}:\n{text}"))
                }
            }
            PlanCheck::TextLacks(needle) => {
                if text.contains(needle.as_str()) {
                    Err(format!("plan text contains {needle:?}"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A check of the state after apply (`terraform show -json`).
pub enum StateCheck {
    /// The resource's attribute at a dotted path equals the value.
    Equals(&'static str, &'static str, Value),
    /// The attribute is set (not null).
    Set(&'static str, &'static str),
    /// The attribute is a string matching the regex.
    Matches(&'static str, &'static str, &'static str),
    /// The resource is not in state.
    Absent(&'static str),
}

impl StateCheck {
    pub fn check(&self, state: &Value) -> Result<(), String> {
        let attr = |address: &str, path: &str| -> Result<Value, String> {
            let values = resource_values(state, address)
                .ok_or_else(|| format!("{address} is not in state"))?;
            Ok(lookup(values, path).cloned().unwrap_or(Value::Null))
        };
        match self {
            StateCheck::Equals(a, p, want) => {
                let got = attr(a, p)?;
                if &got == want {
                    Ok(())
                } else {
                    Err(format!("{a}.{p}: expected {want}, got {got}"))
                }
            }
            StateCheck::Set(a, p) => match attr(a, p)? {
                Value::Null => Err(format!("{a}.{p} is null")),
                _ => Ok(()),
            },
            StateCheck::Matches(a, p, pattern) => {
                let got = attr(a, p)?;
                let re = regex::Regex::new(pattern).expect("valid regex");
                match got.as_str() {
                    Some(s) if re.is_match(s) => Ok(()),
                    _ => Err(format!("{a}.{p}: {got} does not match {pattern:?}")),
                }
            }
            StateCheck::Absent(a) => match resource_values(state, a) {
                None => Ok(()),
                Some(_) => Err(format!("{a} is still in state")),
            },
        }
    }
}

fn resource_change<'a>(plan: &'a Value, address: &str) -> Result<&'a Value, String> {
    plan["resource_changes"]
        .as_array()
        .and_then(|changes| changes.iter().find(|c| c["address"] == address))
        .ok_or_else(|| format!("the plan has no change for {address}"))
}

/// The attribute values of a resource in `terraform show -json` state output.
pub fn resource_values<'a>(state: &'a Value, address: &str) -> Option<&'a Value> {
    state["values"]["root_module"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == address)
        .map(|r| &r["values"])
}

/// Follows a dotted path (`a.b.0.c`) through objects and arrays.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Top-level attributes that differ between two objects, except the ignored ones.
pub fn diff_objects(a: &Value, b: &Value, ignore: &[&str]) -> Vec<String> {
    let keys = |v: &Value| {
        v.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut all = keys(a);
    all.extend(keys(b));
    all.sort();
    all.dedup();
    all.into_iter()
        .filter(|k| !ignore.contains(&k.as_str()) && a.get(k) != b.get(k))
        .map(|k| {
            format!(
                "{k}: {} != {}",
                a.get(&k).unwrap_or(&Value::Null),
                b.get(&k).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Value {
        json!({"resource_changes": [{
            "address": "immutable_bluegreen_deployment.app",
            "change": {
                "actions": ["update"],
                "before": {"active_color": "blue", "traffic_weights": {"blue": 100, "green": 0}},
                "after": {"active_color": "green", "traffic_weights": {"blue": 0, "green": 100}},
                "after_unknown": {"deployed_at": true}
            }
        }]})
    }

    #[test]
    fn plan_checks_read_actions_and_values() {
        let a = "immutable_bluegreen_deployment.app";
        assert!(PlanCheck::UpdateInPlace(a).check(&plan(), "").is_ok());
        assert!(PlanCheck::Replace(a).check(&plan(), "").is_err());
        let change = |path, before, after| PlanCheck::Change {
            address: a,
            path,
            before,
            after,
        };
        assert!(change("active_color", json!("blue"), Some(json!("green")))
            .check(&plan(), "")
            .is_ok());
        assert!(change("traffic_weights.green", json!(0), Some(json!(100)))
            .check(&plan(), "")
            .is_ok());
        assert!(change("active_color", json!("blue"), Some(json!("blue")))
            .check(&plan(), "")
            .is_err());
        assert!(change("deployed_at", Value::Null, None)
            .check(&plan(), "")
            .is_ok());
        assert!(PlanCheck::NoOp("missing.x").check(&plan(), "").is_err());
    }

    #[test]
    fn state_checks_and_diffs() {
        let state = json!({"values": {"root_module": {"resources": [
            {"address": "immutable_health_gate.g", "values": {"attempts": 3, "passed_at": "2026-11-29T00:00:00Z"}}
        ]}}});
        assert!(
            StateCheck::Equals("immutable_health_gate.g", "attempts", json!(3))
                .check(&state)
                .is_ok()
        );
        assert!(
            StateCheck::Equals("immutable_health_gate.g", "attempts", json!(4))
                .check(&state)
                .is_err()
        );
        assert!(
            StateCheck::Matches("immutable_health_gate.g", "passed_at", r"^\d{4}-")
                .check(&state)
                .is_ok()
        );
        assert!(StateCheck::Absent("immutable_health_gate.g")
            .check(&state)
            .is_err());
        let diff = diff_objects(
            &json!({"a": 1, "b": 2}),
            &json!({"a": 1, "b": 3, "c": 4}),
            &["c"],
        );
        assert_eq!(diff, vec!["b: 2 != 3".to_string()]);
    }
}
