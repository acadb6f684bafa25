//! The emulator's model of a listener: what moto stores (read back after every write that
//! changes it), plus what moto cannot keep, the history of default actions with the instants
//! from which the data plane uses them.

use std::collections::BTreeSet;
use std::time::Instant;

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Rule, RuleCondition};

use super::dataplane::RequestHead;

/// A listener's final action (authenticate actions before it are not emulated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionModel {
    /// Target groups with their weights.
    Forward(Vec<(String, u32)>),
    Fixed {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// Redirects and anything else the data plane does not serve.
    Other(String),
}

impl ActionModel {
    /// The final action of a list as ELBv2 returns it: the first forward, fixed response or
    /// redirect in `Order`.
    pub fn of(actions: &[Action]) -> ActionModel {
        let mut sorted: Vec<&Action> = actions.iter().collect();
        sorted.sort_by_key(|a| a.order().unwrap_or(i32::MAX));
        let last = sorted.into_iter().find(|a| {
            matches!(
                a.r#type(),
                Some(
                    ActionTypeEnum::Forward
                        | ActionTypeEnum::FixedResponse
                        | ActionTypeEnum::Redirect
                )
            )
        });
        let Some(action) = last else {
            return ActionModel::Other("no final action".into());
        };
        match action.r#type() {
            Some(ActionTypeEnum::Forward) => ActionModel::Forward(forward_groups(action)),
            Some(ActionTypeEnum::FixedResponse) => {
                let config = action.fixed_response_config();
                ActionModel::Fixed {
                    status: config
                        .and_then(|c| c.status_code())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(503),
                    content_type: config.and_then(|c| c.content_type()).map(str::to_string),
                    body: config
                        .and_then(|c| c.message_body())
                        .unwrap_or_default()
                        .to_string(),
                }
            }
            other => ActionModel::Other(format!("{other:?}")),
        }
    }

    /// The target groups it forwards to, weight 0 included.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        let groups: &[(String, u32)] = match self {
            ActionModel::Forward(groups) => groups,
            _ => &[],
        };
        groups.iter().map(|(arn, _)| arn.as_str())
    }
}

/// A forward's groups: the ForwardConfig when it has any (a missing weight counts 1, as AWS
/// shows it), else the plain `TargetGroupArn`.
fn forward_groups(action: &Action) -> Vec<(String, u32)> {
    let config: Vec<(String, u32)> = action
        .forward_config()
        .map(|c| c.target_groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|tg| {
            let weight = tg.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0));
            Some((tg.target_group_arn()?.to_string(), weight))
        })
        .collect();
    match action.target_group_arn() {
        Some(arn) if config.is_empty() => vec![(arn.to_string(), 1)],
        _ => config,
    }
}

/// A rule condition the data plane evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Header name (any case) and value patterns (any case).
    Header(String, Vec<String>),
    /// Path patterns (case sensitive).
    Path(Vec<String>),
    /// Host patterns (any case), matched against the `host` header without its port.
    Host(Vec<String>),
    /// Any other field: never matches, so that a rule the emulator cannot judge is skipped.
    Unsupported,
}

impl Condition {
    fn of(condition: &RuleCondition) -> Condition {
        // The legacy `Values` list, or the field's own config.
        let legacy = || condition.values().to_vec();
        let or_legacy = |values: Option<&[String]>| match values {
            Some(v) if !v.is_empty() => v.to_vec(),
            _ => legacy(),
        };
        match condition.field() {
            Some("path-pattern") => Condition::Path(or_legacy(
                condition.path_pattern_config().map(|c| c.values()),
            )),
            Some("host-header") => Condition::Host(or_legacy(
                condition.host_header_config().map(|c| c.values()),
            )),
            Some("http-header") => match condition.http_header_config() {
                Some(c) => Condition::Header(
                    c.http_header_name()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    c.values().to_vec(),
                ),
                None => Condition::Unsupported,
            },
            _ => Condition::Unsupported,
        }
    }

    pub fn matches(&self, request: &RequestHead<'_>) -> bool {
        let header = |name: &'static str| header_values(request, name);
        match self {
            Condition::Header(name, patterns) => header_values(request, name)
                .any(|value| patterns.iter().any(|p| wildcard(p, value, true))),
            Condition::Path(patterns) => patterns.iter().any(|p| wildcard(p, request.path, false)),
            Condition::Host(patterns) => header("host").any(|host| {
                let host = host.rsplit_once(':').map_or(host, |(name, port)| {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        name
                    } else {
                        host
                    }
                });
                patterns.iter().any(|p| wildcard(p, host, true))
            }),
            Condition::Unsupported => false,
        }
    }
}

/// The values of a header (any case), in order.
fn header_values<'a>(request: &'a RequestHead<'_>, name: &'a str) -> impl Iterator<Item = &'a str> {
    request
        .headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// ALB's patterns: `*` any run of characters, `?` exactly one.
pub fn wildcard(pattern: &str, text: &str, any_case: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if any_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (fold(pattern), fold(text));
    // Classic two-pointer match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleModel {
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub action: ActionModel,
}

impl RuleModel {
    /// A non-default rule as DescribeRules returns it (`None` for the default rule, which is
    /// the listener's default actions).
    pub fn of(rule: &Rule) -> Option<RuleModel> {
        if rule.is_default() == Some(true) {
            return None;
        }
        Some(RuleModel {
            priority: rule.priority()?.parse().ok()?,
            conditions: rule.conditions().iter().map(Condition::of).collect(),
            action: ActionModel::of(rule.actions()),
        })
    }

    pub fn matches(&self, request: &RequestHead<'_>) -> bool {
        self.conditions.iter().all(|c| c.matches(request))
    }
}

#[derive(Debug, Clone)]
pub struct ListenerModel {
    pub load_balancer: String,
    pub port: i32,
    pub protocol: String,
    /// The default action with the instant the data plane uses it from, oldest first; the
    /// last is what the control plane answers.
    defaults: Vec<(Instant, ActionModel)>,
    /// By priority.
    pub rules: Vec<RuleModel>,
}

impl ListenerModel {
    pub fn new(
        load_balancer: String,
        port: i32,
        protocol: String,
        default: ActionModel,
        now: Instant,
    ) -> ListenerModel {
        ListenerModel {
            load_balancer,
            port,
            protocol,
            defaults: vec![(now, default)],
            rules: Vec::new(),
        }
    }

    /// What moto now stores for it: a changed default action applies to the data plane from
    /// `effective`.
    pub fn update(&mut self, fresh: ListenerModel, effective: Instant) {
        if self.current() != fresh.current() {
            self.defaults.push((effective, fresh.current().clone()));
        }
        self.port = fresh.port;
        self.protocol = fresh.protocol;
        self.set_rules(fresh.rules);
    }

    pub fn set_rules(&mut self, mut rules: Vec<RuleModel>) {
        rules.sort_by_key(|r| r.priority);
        self.rules = rules;
    }

    /// The default action the control plane answers.
    pub fn current(&self) -> &ActionModel {
        &self.defaults[self.defaults.len() - 1].1
    }

    /// The default action the data plane uses at `now`; older entries are dropped.
    pub fn effective(&mut self, now: Instant) -> &ActionModel {
        let in_force = self
            .defaults
            .iter()
            .rposition(|(from, _)| *from <= now)
            .unwrap_or(0);
        self.defaults.drain(..in_force);
        &self.defaults[0].1
    }

    /// The action a request gets at `now`: the first matching rule's, else the default.
    pub fn route(&mut self, request: &RequestHead<'_>, now: Instant) -> ActionModel {
        match self.rules.iter().find(|r| r.matches(request)) {
            Some(rule) => rule.action.clone(),
            None => self.effective(now).clone(),
        }
    }

    /// The target groups its actions use now, as the control plane sees them.
    pub fn groups(&self) -> BTreeSet<String> {
        self.rules
            .iter()
            .map(|r| &r.action)
            .chain([self.current()])
            .flat_map(ActionModel::groups)
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn head<'a>(path: &'a str, headers: &'a [(String, String)]) -> RequestHead<'a> {
        RequestHead {
            method: "GET",
            path,
            query: None,
            headers,
        }
    }

    fn forward(groups: &[(&str, u32)]) -> ActionModel {
        ActionModel::Forward(groups.iter().map(|(a, w)| (a.to_string(), *w)).collect())
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("/api/*", "/api/v1/x", false));
        assert!(!wildcard("/api/*", "/API/v1", false));
        assert!(wildcard("*.example.com", "A.Example.com", true));
        assert!(wildcard("/v?/x", "/v2/x", false));
        assert!(!wildcard("/v?/x", "/v22/x", false));
        assert!(wildcard("*", "", false));
        assert!(wildcard("a*b*c", "aXXbYYc", false));
        assert!(!wildcard("a*b*c", "aXXbYY", false));
    }

    #[test]
    fn rules_by_priority_then_the_default() {
        let now = Instant::now();
        let mut listener =
            ListenerModel::new("lb".into(), 80, "HTTP".into(), forward(&[("blue", 1)]), now);
        listener.set_rules(vec![
            RuleModel {
                priority: 20,
                conditions: vec![Condition::Path(vec!["/api/*".into()])],
                action: forward(&[("api", 1)]),
            },
            RuleModel {
                priority: 10,
                conditions: vec![
                    Condition::Path(vec!["/api/*".into()]),
                    Condition::Header("x-canary".into(), vec!["y*".into()]),
                ],
                action: forward(&[("canary", 1)]),
            },
            RuleModel {
                priority: 5,
                conditions: vec![Condition::Unsupported],
                action: forward(&[("never", 1)]),
            },
            RuleModel {
                priority: 30,
                conditions: vec![Condition::Host(vec!["*.test".into()])],
                action: ActionModel::Other("redirect".into()),
            },
        ]);
        let canary = [("X-Canary".to_string(), "YES".to_string())];
        let host = [("host".to_string(), "app.TEST:8080".to_string())];
        assert_eq!(
            listener.route(&head("/api/1", &canary), now),
            forward(&[("canary", 1)])
        );
        assert_eq!(
            listener.route(&head("/api/1", &[]), now),
            forward(&[("api", 1)])
        );
        assert_eq!(
            listener.route(&head("/", &host), now),
            ActionModel::Other("redirect".into())
        );
        assert_eq!(
            listener.route(&head("/", &[]), now),
            forward(&[("blue", 1)])
        );
        assert_eq!(
            listener.groups(),
            ["api", "blue", "canary", "never"].map(String::from).into()
        );
    }

    #[test]
    fn new_defaults_reach_the_data_plane_at_their_instant() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut listener =
            ListenerModel::new("lb".into(), 80, "HTTP".into(), forward(&[("blue", 1)]), t0);
        let fresh = |action| ListenerModel::new("lb".into(), 80, "HTTP".into(), action, t0);
        listener.update(fresh(forward(&[("blue", 50), ("green", 50)])), t1);
        listener.update(fresh(forward(&[("green", 1)])), t1 + Duration::from_secs(1));
        assert_eq!(listener.current(), &forward(&[("green", 1)]));
        assert_eq!(listener.effective(t0), &forward(&[("blue", 1)]));
        assert_eq!(
            listener.effective(t1),
            &forward(&[("blue", 50), ("green", 50)])
        );
        assert_eq!(
            listener.effective(t1 + Duration::from_secs(2)),
            &forward(&[("green", 1)])
        );
        assert_eq!(listener.defaults.len(), 1);
        // The same action again is no change.
        listener.update(fresh(forward(&[("green", 1)])), t1 + Duration::from_secs(9));
        assert_eq!(listener.defaults.len(), 1);
    }
}
