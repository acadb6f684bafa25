//! RegisterTargets, DeregisterTargets and DescribeTargetHealth, answered by the emulator
//! itself: moto keys targets by id alone and reports them all healthy at once; here they are
//! keyed by (id, port) and their health comes from the checks (see [`super::health`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy::{Exchange, Reply};

use super::checks::CheckSettings;
use super::form::{self, Form};
use super::health::{not_registered, TargetHealth};
use super::state::TargetKey;
use super::xml::{self, Described};
use super::{AwsError, Core};

/// AWS's default deregistration delay.
const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);

fn target_group_arn(form: &Form) -> Result<String, AwsError> {
    form::get(form, "TargetGroupArn")
        .filter(|arn| !arn.is_empty())
        .map(str::to_string)
        .ok_or_else(|| AwsError::sender("ValidationError", "A target group ARN must be specified"))
}

/// A `Targets` list entry: its id, and its port when one is given.
fn listed_targets(form: &Form) -> Result<Vec<(String, Option<u16>)>, AwsError> {
    form::members(form, "Targets")
        .into_values()
        .map(|fields| {
            let id = form::get(&fields, "Id")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    AwsError::sender("ValidationError", "A target ID must be specified")
                })?;
            let port = match form::get(&fields, "Port") {
                None => None,
                Some(text) => match text.parse::<u16>() {
                    Ok(port) if port >= 1 => Some(port),
                    _ => {
                        return Err(AwsError::sender(
                            "ValidationError",
                            format!(
                                "Port {text} of target {id} must be between 1 and 65535, inclusive"
                            ),
                        ))
                    }
                },
            };
            Ok((id.to_string(), port))
        })
        .collect()
}

/// The targets of a RegisterTargets or DeregisterTargets, a missing port being the group's.
fn targets(form: &Form, settings: &CheckSettings) -> Result<Vec<TargetKey>, AwsError> {
    let listed = listed_targets(form)?;
    if listed.is_empty() {
        return Err(AwsError::sender(
            "ValidationError",
            "At least one target must be specified",
        ));
    }
    Ok(listed
        .into_iter()
        .map(|(id, port)| (id, port.unwrap_or(settings.group_port)))
        .collect())
}

impl Core {
    /// The group's settings as moto has them now (which also checks that it exists), kept
    /// for the health checker. The load balancers moto lists for it are met (their
    /// listeners read), so that a group whose listener was made in moto directly is in use.
    pub(super) async fn read_group(self: &Arc<Self>, arn: &str) -> Result<CheckSettings, AwsError> {
        let out = self
            .moto
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        let group = out.target_groups().first().ok_or_else(|| {
            AwsError::sender("TargetGroupNotFound", "One or more target groups not found")
        })?;
        let settings = CheckSettings::of(group);
        for load_balancer in group.load_balancer_arns() {
            self.ensure_known(load_balancer).await?;
        }
        self.state()
            .groups
            .entry(arn.to_string())
            .or_default()
            .settings = Some(settings.clone());
        Ok(settings)
    }

    /// The group's kept settings, read from moto when there are none.
    pub(super) async fn group_settings(
        self: &Arc<Self>,
        arn: &str,
    ) -> Result<CheckSettings, AwsError> {
        let kept = self
            .state()
            .groups
            .get(arn)
            .and_then(|g| g.settings.clone());
        match kept {
            Some(settings) => Ok(settings),
            None => self.read_group(arn).await,
        }
    }

    /// `deregistration_delay.timeout_seconds`, in AWS time.
    async fn deregistration_delay(&self, arn: &str) -> Result<Duration, AwsError> {
        let out = self
            .moto
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        Ok(out
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value()?.parse().ok())
            .map_or(DEFAULT_DEREGISTRATION_DELAY, Duration::from_secs))
    }

    pub(super) async fn register_targets(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let arn = target_group_arn(exchange.form())?;
        let settings = self.read_group(&arn).await?;
        let targets = targets(exchange.form(), &settings)?;
        let now = Instant::now();
        let mut state = self.state();
        let group = state.groups.entry(arn).or_default();
        group.prune(now);
        for key in targets {
            group
                .targets
                .entry(key)
                .and_modify(|t| t.register_again(now))
                .or_insert_with(|| TargetHealth::new(now));
        }
        Ok(Reply::xml(xml::response("RegisterTargets", "")))
    }

    /// Starts draining; a target that is not registered is no error (as on AWS).
    pub(super) async fn deregister_targets(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let arn = target_group_arn(exchange.form())?;
        let settings = self.read_group(&arn).await?;
        let targets = targets(exchange.form(), &settings)?;
        let delay = self
            .settings()
            .scaled(self.deregistration_delay(&arn).await?);
        let now = Instant::now();
        let mut state = self.state();
        if let Some(group) = state.groups.get_mut(&arn) {
            for key in targets {
                if let Some(target) = group.targets.get_mut(&key) {
                    target.deregister(now, delay);
                }
            }
            group.prune(now);
        }
        Ok(Reply::xml(xml::response("DeregisterTargets", "")))
    }

    pub(super) async fn describe_target_health(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let arn = target_group_arn(exchange.form())?;
        let settings = self.read_group(&arn).await?;
        let asked = listed_targets(exchange.form())?;
        let timing = self.settings().timing();
        let now = Instant::now();
        let mut state = self.state();
        let group = state.groups.entry(arn).or_default();
        group.prune(now);
        let in_use = group.in_use;
        let describe = |(id, port): &TargetKey, target: &TargetHealth| {
            target.view(now, in_use, timing).map(|view| Described {
                id: id.clone(),
                port: *port,
                health_check_port: settings.port_for(*port),
                state: view.state,
                reason: view.reason,
                description: view.description,
            })
        };
        let mut described: Vec<Described> = Vec::new();
        if asked.is_empty() {
            described.extend(group.targets.iter().filter_map(|(k, t)| describe(k, t)));
        }
        for (id, port) in asked {
            let found: Vec<Described> = group
                .targets
                .iter()
                .filter(|((i, p), _)| *i == id && port.is_none_or(|port| port == *p))
                .filter_map(|(k, t)| describe(k, t))
                .collect();
            if found.is_empty() {
                let port = port.unwrap_or(settings.group_port);
                let view = not_registered();
                described.push(Described {
                    id,
                    port,
                    health_check_port: settings.port_for(port),
                    state: view.state,
                    reason: view.reason,
                    description: view.description,
                });
            }
            described.extend(found);
        }
        Ok(Reply::xml(xml::target_health(&described)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::decode_form;
    use aws_sdk_elasticloadbalancingv2::types::TargetGroup;

    #[test]
    fn targets_take_the_group_port_and_refuse_bad_ports() {
        let settings = CheckSettings::of(&TargetGroup::builder().port(8080).build());
        let form = decode_form(b"Targets.member.1.Id=127.0.0.1&Targets.member.2.Id=127.0.0.1&Targets.member.2.Port=9000");
        assert_eq!(
            targets(&form, &settings).unwrap(),
            [
                ("127.0.0.1".to_string(), 8080),
                ("127.0.0.1".to_string(), 9000)
            ]
        );
        for bad in ["0", "65536", "70000", "-1", "x"] {
            let form = decode_form(
                format!("Targets.member.1.Id=a&Targets.member.1.Port={bad}").as_bytes(),
            );
            assert_eq!(
                targets(&form, &settings).unwrap_err().code,
                "ValidationError",
                "{bad}"
            );
        }
        assert_eq!(targets(&[], &settings).unwrap_err().code, "ValidationError");
        let no_id = decode_form(b"Targets.member.1.Port=80");
        assert_eq!(
            targets(&no_id, &settings).unwrap_err().code,
            "ValidationError"
        );
        assert_eq!(target_group_arn(&[]).unwrap_err().code, "ValidationError");
    }
}
