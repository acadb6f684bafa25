//! The AWS Query form of ELBv2 requests: the lists in it (`Targets.member.1.Id=...`), the
//! forward actions of CreateListener, ModifyListener, CreateRule and ModifyRule, and the form
//! written back after the emulator normalised those actions the way AWS stores them.

use std::collections::BTreeMap;

/// A decoded form: `(key, value)` pairs in order (see [`crate::proxy::decode_form`]).
pub type Form = [(String, String)];

/// The first value of `key`.
pub fn get<'a>(form: &'a Form, key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The members of the list `list` (e.g. `Targets`), by index: for `Targets.member.2.Id=x`,
/// member 2 holds `("Id", "x")`. A member that is a plain value (`Names.member.1=x`) holds
/// `("", "x")`. Indices that are not numbers are ignored (AWS refuses them; moto ignores them).
pub fn members(form: &Form, list: &str) -> BTreeMap<u32, Vec<(String, String)>> {
    let prefix = format!("{list}.member.");
    let mut out: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for (key, value) in form {
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(index) = index.parse() {
            out.entry(index)
                .or_default()
                .push((field.to_string(), value.clone()));
        }
    }
    out
}

/// The form, encoded again for the body of a request.
pub fn encode(form: &Form) -> String {
    let mut out = String::new();
    for (key, value) in form {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&escape(key));
        out.push('=');
        out.push_str(&escape(value));
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a request keeps its actions: `DefaultActions` for listeners, `Actions` for rules.
pub fn actions_list(action: &str) -> Option<&'static str> {
    match action {
        "CreateListener" | "ModifyListener" => Some("DefaultActions"),
        "CreateRule" | "ModifyRule" => Some("Actions"),
        _ => None,
    }
}

/// One action of a request, as given (nothing checked yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionInput {
    /// Its index in the list (`DefaultActions.member.N`).
    pub index: u32,
    pub kind: Option<String>,
    pub target_group_arn: Option<String>,
    /// Present when any `ForwardConfig.*` field is given.
    pub forward: Option<ForwardInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardInput {
    /// In member order.
    pub groups: Vec<GroupInput>,
    pub stickiness_enabled: Option<String>,
    pub stickiness_duration: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInput {
    /// Its index in `ForwardConfig.TargetGroups.member.N`.
    pub index: u32,
    pub arn: Option<String>,
    pub weight: Option<String>,
}

impl ActionInput {
    pub fn is_forward(&self) -> bool {
        self.kind.as_deref() == Some("forward")
    }
}

/// The actions under `list` (see [`actions_list`]), in index order.
pub fn actions(form: &Form, list: &str) -> Vec<ActionInput> {
    members(form, list)
        .into_iter()
        .map(|(index, fields)| {
            let field = |name: &str| get(&fields, name).map(str::to_string);
            let has_forward = fields.iter().any(|(k, _)| k.starts_with("ForwardConfig."));
            let forward = has_forward.then(|| ForwardInput {
                groups: members(&fields, "ForwardConfig.TargetGroups")
                    .into_iter()
                    .map(|(index, group)| GroupInput {
                        index,
                        arn: get(&group, "TargetGroupArn").map(str::to_string),
                        weight: get(&group, "Weight").map(str::to_string),
                    })
                    .collect(),
                stickiness_enabled: field("ForwardConfig.TargetGroupStickinessConfig.Enabled"),
                stickiness_duration: field(
                    "ForwardConfig.TargetGroupStickinessConfig.DurationSeconds",
                ),
            });
            ActionInput {
                index,
                kind: field("Type"),
                target_group_arn: field("TargetGroupArn"),
                forward,
            }
        })
        .collect()
}

/// The form with every single-group forward written as AWS reads it back: both
/// `TargetGroupArn` and a one-group `ForwardConfig` with a weight (1 when none was given).
/// moto stores and echoes what it gets, so its DescribeListeners then answers what AWS does.
/// Call it on validated actions only (a `TargetGroupArn` with a config that holds another
/// group is refused before).
pub fn normalise(form: &Form, list: &str) -> Vec<(String, String)> {
    let mut out = form.to_vec();
    for action in actions(form, list) {
        if !action.is_forward() {
            continue;
        }
        let at = |field: &str| format!("{list}.member.{}.{field}", action.index);
        let group = "ForwardConfig.TargetGroups.member.1";
        match (&action.target_group_arn, &action.forward) {
            (Some(arn), None) => {
                out.push((at(&format!("{group}.TargetGroupArn")), arn.clone()));
                out.push((at(&format!("{group}.Weight")), "1".into()));
            }
            (arn, Some(forward)) if forward.groups.len() == 1 => {
                let only = &forward.groups[0];
                let Some(config_arn) = &only.arn else {
                    continue;
                };
                if arn.is_none() {
                    out.push((at("TargetGroupArn"), config_arn.clone()));
                }
                if only.weight.is_none() {
                    let index = only.index;
                    out.push((
                        at(&format!("ForwardConfig.TargetGroups.member.{index}.Weight")),
                        "1".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::decode_form;

    fn form(body: &str) -> Vec<(String, String)> {
        decode_form(body.as_bytes())
    }

    #[test]
    fn reads_lists_by_index() {
        let f = form("Targets.member.2.Id=b&Targets.member.1.Id=a&Targets.member.1.Port=80&Names.member.1=n&Targets.member.x.Id=z");
        let targets = members(&f, "Targets");
        assert_eq!(targets.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(get(&targets[&1], "Port"), Some("80"));
        assert_eq!(get(&targets[&2], "Id"), Some("b"));
        assert_eq!(get(&members(&f, "Names")[&1], ""), Some("n"));
        assert_eq!(encode(&form("A=x%2Fy&B=1 2")), "A=x%2Fy&B=1%202");
    }

    #[test]
    fn reads_forward_actions() {
        let f = form(
            "DefaultActions.member.1.Type=forward\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=blue\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight=90\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=green\
             &DefaultActions.member.1.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds=0\
             &DefaultActions.member.2.Type=fixed-response",
        );
        let actions = actions(&f, "DefaultActions");
        assert_eq!(actions.len(), 2);
        let forward = actions[0].forward.as_ref().unwrap();
        assert_eq!(forward.groups.len(), 2);
        assert_eq!(forward.groups[0].weight.as_deref(), Some("90"));
        assert_eq!(forward.groups[1].weight, None);
        assert_eq!(forward.stickiness_duration.as_deref(), Some("0"));
        assert!(!actions[1].is_forward());
    }

    #[test]
    fn normalises_single_group_forwards() {
        let plain = form("Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn=tg");
        let normal = normalise(&plain, "Actions");
        let action = &actions(&normal, "Actions")[0];
        assert_eq!(action.target_group_arn.as_deref(), Some("tg"));
        let groups = &action.forward.as_ref().unwrap().groups;
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].arn.as_deref(), Some("tg"));
        assert_eq!(groups[0].weight.as_deref(), Some("1"));

        let config = form(
            "Actions.member.1.Type=forward\
             &Actions.member.1.ForwardConfig.TargetGroups.member.3.TargetGroupArn=tg",
        );
        let action = &actions(&normalise(&config, "Actions"), "Actions")[0];
        assert_eq!(action.target_group_arn.as_deref(), Some("tg"));
        assert_eq!(
            action.forward.as_ref().unwrap().groups[0].weight.as_deref(),
            Some("1")
        );

        let weighted = form(
            "Actions.member.1.Type=forward\
             &Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=a\
             &Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=1\
             &Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=b\
             &Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=2",
        );
        assert_eq!(normalise(&weighted, "Actions"), weighted);
    }
}
