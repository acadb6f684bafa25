//! What AWS refuses in the forward actions of CreateListener, ModifyListener, CreateRule and
//! ModifyRule, and moto accepts (see shared/aws-elbv2-behaviour.md): weights, group counts,
//! stickiness, and groups that are missing, in another VPC or bound to another load balancer.
//!
//! The checks are pure: [`check_action`] needs only the request, [`check_groups`] the facts
//! that the control plane looked up in moto and in its own view of the listeners.

use std::collections::{BTreeMap, BTreeSet};

use super::form::{ActionInput, ForwardInput};
use super::AwsError;

/// AWS's quota of target groups per forward action (not adjustable).
pub const MAX_GROUPS: usize = 5;
pub const MAX_WEIGHT: i64 = 999;
/// Seven days, AWS's longest group stickiness.
pub const MAX_STICKINESS_SECONDS: i64 = 604_800;

const WEIGHT_MESSAGE: &str =
    "The weight for each target group must be between 0 and 999, inclusive";

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::sender("ValidationError", message)
}

/// Checks one action on its own and returns the target groups it forwards to (none for an
/// action that is not a forward).
pub fn check_action(action: &ActionInput) -> Result<Vec<String>, AwsError> {
    if !action.is_forward() {
        return Ok(Vec::new());
    }
    let Some(forward) = &action.forward else {
        return match &action.target_group_arn {
            Some(arn) => Ok(vec![arn.clone()]),
            None => Err(invalid(
                "A target group ARN or a forward config must be specified for a forward action",
            )),
        };
    };
    let mut arns = Vec::with_capacity(forward.groups.len());
    for group in &forward.groups {
        match &group.arn {
            Some(arn) => arns.push(arn.clone()),
            None => return Err(invalid("A target group ARN must be specified")),
        }
    }
    if arns.is_empty() {
        return Err(invalid(
            "A forward config must contain at least one target group",
        ));
    }
    if let Some(arn) = &action.target_group_arn {
        // AWS documents this rule; the message is ours.
        if arns.len() != 1 || arns[0] != *arn {
            return Err(invalid(format!(
                "You cannot specify a target group ARN ({arn}) together with a forward config \
                 that does not hold exactly that one target group"
            )));
        }
    }
    if arns.len() > MAX_GROUPS {
        // The quota is documented, the error for breaking it is not (to confirm on a real
        // account): ValidationError is our choice.
        return Err(invalid(format!(
            "A forward action can have at most {MAX_GROUPS} target groups"
        )));
    }
    check_weights(forward)?;
    let mut seen = BTreeSet::new();
    if let Some(twice) = arns.iter().find(|arn| !seen.insert(*arn)) {
        // What AWS does with a duplicated group is unknown: we refuse it, as the provider must.
        return Err(invalid(format!(
            "Target group {twice} is listed more than once in the forward config"
        )));
    }
    check_stickiness(forward)?;
    Ok(arns)
}

fn check_weights(forward: &ForwardInput) -> Result<(), AwsError> {
    let several = forward.groups.len() > 1;
    let mut weights = Vec::new();
    for group in &forward.groups {
        match &group.weight {
            None if several => return Err(invalid(WEIGHT_MESSAGE)),
            None => {}
            Some(text) => match text.parse::<i64>() {
                Ok(w) if (0..=MAX_WEIGHT).contains(&w) => weights.push(w),
                _ => return Err(invalid(WEIGHT_MESSAGE)),
            },
        }
    }
    if weights.len() == forward.groups.len() && weights.iter().all(|w| *w == 0) {
        // What AWS does with all-zero weights is unknown: we refuse them, as the provider must.
        return Err(invalid(
            "At least one target group of a forward action must have a weight above 0",
        ));
    }
    Ok(())
}

fn check_stickiness(forward: &ForwardInput) -> Result<(), AwsError> {
    let message = || {
        invalid(format!(
            "The target group stickiness duration must be between 1 and \
             {MAX_STICKINESS_SECONDS} seconds"
        ))
    };
    match &forward.stickiness_duration {
        Some(text) => match text.parse::<i64>() {
            Ok(s) if (1..=MAX_STICKINESS_SECONDS).contains(&s) => Ok(()),
            _ => Err(message()),
        },
        None if forward.stickiness_enabled.as_deref() == Some("true") => Err(message()),
        None => Ok(()),
    }
}

/// What the checks of [`check_groups`] need to know.
#[derive(Debug, Default)]
pub struct Facts {
    /// The load balancer the listener belongs to, and its VPC.
    pub load_balancer: String,
    pub vpc: String,
    /// Each existing target group asked about, with its VPC.
    pub group_vpcs: BTreeMap<String, String>,
    /// Each target group with the load balancers whose listeners use it now.
    pub users: BTreeMap<String, BTreeSet<String>>,
}

/// Checks the groups of a request's forwards against what exists.
pub fn check_groups(arns: &[String], facts: &Facts) -> Result<(), AwsError> {
    if arns.iter().any(|arn| !facts.group_vpcs.contains_key(arn)) {
        return Err(AwsError::sender(
            "TargetGroupNotFound",
            "One or more target groups not found",
        ));
    }
    for arn in arns {
        if facts.group_vpcs.get(arn) != Some(&facts.vpc) {
            return Err(AwsError::sender(
                "InvalidConfigurationRequest",
                format!(
                    "The target group {arn} is in another VPC than load balancer {}",
                    facts.load_balancer
                ),
            ));
        }
    }
    let bound: Vec<&str> = arns
        .iter()
        .filter(|arn| {
            facts
                .users
                .get(*arn)
                .is_some_and(|lbs| lbs.iter().any(|lb| *lb != facts.load_balancer))
        })
        .map(String::as_str)
        .collect();
    if !bound.is_empty() {
        return Err(AwsError::sender(
            "TargetGroupAssociationLimit",
            format!(
                "The following target groups cannot be associated with more than one load \
                 balancer: {}",
                bound.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::form::GroupInput;

    fn forward(groups: &[(&str, Option<&str>)]) -> ActionInput {
        ActionInput {
            index: 1,
            kind: Some("forward".into()),
            target_group_arn: None,
            forward: Some(ForwardInput {
                groups: groups
                    .iter()
                    .zip(1..)
                    .map(|((arn, weight), index)| GroupInput {
                        index,
                        arn: Some(arn.to_string()),
                        weight: weight.map(str::to_string),
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn code(result: Result<impl std::fmt::Debug, AwsError>) -> String {
        result.expect_err("should be refused").code
    }

    #[test]
    fn weights() {
        assert_eq!(
            check_action(&forward(&[("a", Some("100")), ("b", Some("0"))])).unwrap(),
            ["a", "b"]
        );
        assert!(check_action(&forward(&[("a", None)])).is_ok());
        for bad in [
            forward(&[("a", Some("1000")), ("b", Some("0"))]),
            forward(&[("a", Some("-5")), ("b", Some("5"))]),
            forward(&[("a", Some("5")), ("b", None)]),
            forward(&[("a", Some("x"))]),
        ] {
            let err = check_action(&bad).unwrap_err();
            assert_eq!(err.code, "ValidationError");
            assert_eq!(err.message, WEIGHT_MESSAGE);
        }
        assert_eq!(
            code(check_action(&forward(&[
                ("a", Some("0")),
                ("b", Some("0"))
            ]))),
            "ValidationError"
        );
        assert_eq!(
            code(check_action(&forward(&[
                ("a", Some("1")),
                ("a", Some("2"))
            ]))),
            "ValidationError"
        );
    }

    #[test]
    fn counts_shapes_and_stickiness() {
        let six: Vec<(String, Option<&str>)> =
            (0..6).map(|i| (format!("tg{i}"), Some("1"))).collect();
        let six: Vec<(&str, Option<&str>)> = six.iter().map(|(a, w)| (a.as_str(), *w)).collect();
        assert_eq!(code(check_action(&forward(&six))), "ValidationError");
        assert!(check_action(&forward(&six[..5])).is_ok());

        let mut both = forward(&[("a", Some("1"))]);
        both.target_group_arn = Some("a".into());
        assert!(check_action(&both).is_ok());
        both.target_group_arn = Some("b".into());
        assert_eq!(code(check_action(&both)), "ValidationError");
        let mut two = forward(&[("a", Some("1")), ("b", Some("1"))]);
        two.target_group_arn = Some("a".into());
        assert_eq!(code(check_action(&two)), "ValidationError");

        let plain = ActionInput {
            kind: Some("forward".into()),
            target_group_arn: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(check_action(&plain).unwrap(), ["a"]);
        let fixed = ActionInput {
            kind: Some("fixed-response".into()),
            ..Default::default()
        };
        assert!(check_action(&fixed).unwrap().is_empty());

        let sticky = |enabled: Option<&str>, duration: Option<&str>| {
            let mut action = forward(&[("a", Some("1"))]);
            let config = action.forward.as_mut().unwrap();
            config.stickiness_enabled = enabled.map(str::to_string);
            config.stickiness_duration = duration.map(str::to_string);
            check_action(&action)
        };
        assert!(sticky(Some("true"), Some("604800")).is_ok());
        assert!(sticky(Some("false"), None).is_ok());
        assert_eq!(code(sticky(Some("false"), Some("0"))), "ValidationError");
        assert_eq!(
            code(sticky(Some("true"), Some("604801"))),
            "ValidationError"
        );
        assert_eq!(code(sticky(Some("true"), None)), "ValidationError");
    }

    #[test]
    fn groups_must_exist_share_the_vpc_and_stay_on_one_load_balancer() {
        let facts = Facts {
            load_balancer: "lb1".into(),
            vpc: "vpc-1".into(),
            group_vpcs: [("a", "vpc-1"), ("b", "vpc-1"), ("c", "vpc-2")]
                .map(|(g, v)| (g.to_string(), v.to_string()))
                .into(),
            users: [
                ("a".to_string(), ["lb1".to_string()].into()),
                ("b".to_string(), ["lb2".to_string()].into()),
            ]
            .into(),
        };
        let arns = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_groups(&arns(&["a"]), &facts).is_ok());
        assert_eq!(
            code(check_groups(&arns(&["a", "zz"]), &facts)),
            "TargetGroupNotFound"
        );
        assert_eq!(
            code(check_groups(&arns(&["c"]), &facts)),
            "InvalidConfigurationRequest"
        );
        assert_eq!(
            code(check_groups(&arns(&["a", "b"]), &facts)),
            "TargetGroupAssociationLimit"
        );
    }
}
