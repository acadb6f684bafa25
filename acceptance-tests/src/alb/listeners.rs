//! The listener and rule writes: validated as AWS does, normalised to AWS's read-back shape,
//! forwarded to moto, then read back into the emulator's model, which drives the health
//! checks (which groups are in use), the data plane, and the `LoadBalancerArns` of
//! DescribeTargetGroups.
//!
//! The model holds every listener of every load balancer the emulator has met (in a request,
//! or in moto's `LoadBalancerArns` of a group): all of a load balancer's listeners are read
//! the first time, so that "used by another load balancer" is judged on all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_elasticloadbalancingv2::types::Listener;

use crate::proxy::{Exchange, Reply};

use super::form;
use super::model::{ActionModel, ListenerModel, RuleModel};
use super::state::{Plane, State};
use super::validate::{self, Facts};
use super::xml;
use super::{AwsError, Core};

/// `...:listener-rule/app/NAME/ID/LISTENER/RULE` → `...:listener/app/NAME/ID/LISTENER` (AWS's
/// and moto's ARN layout).
fn listener_of_rule(rule: &str) -> Option<String> {
    let (head, tail) = rule.split_once(":listener-rule/")?;
    let (listener, _) = tail.rsplit_once('/')?;
    Some(format!("{head}:listener/{listener}"))
}

/// `...:listener/app/NAME/ID/LISTENER` → `...:loadbalancer/app/NAME/ID`.
fn load_balancer_of_listener(listener: &str) -> Option<String> {
    let (head, tail) = listener.split_once(":listener/")?;
    let (load_balancer, _) = tail.rsplit_once('/')?;
    Some(format!("{head}:loadbalancer/{load_balancer}"))
}

impl Core {
    /// CreateListener, ModifyListener, CreateRule, ModifyRule.
    pub(super) async fn write_actions(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let Some(list) = form::actions_list(exchange.action()) else {
            return Ok(exchange.forward().await);
        };
        let _writing = self.writes.lock().await;
        let mut groups = Vec::new();
        for action in form::actions(exchange.form(), list) {
            groups.extend(validate::check_action(&action)?);
        }
        if !groups.is_empty() {
            // Without a known load balancer (a listener that does not exist...), moto answers.
            if let Some(load_balancer) = self.load_balancer_of(exchange).await? {
                let facts = self.facts(load_balancer, &groups).await?;
                validate::check_groups(&groups, &facts)?;
            }
        }
        let body = form::encode(&form::normalise(exchange.form(), list));
        let written = Instant::now();
        let reply = exchange.forward_body(body).await;
        if reply.is_success() {
            self.after_write(exchange, &reply, written).await;
        }
        Ok(reply)
    }

    /// DeleteListener, DeleteRule, SetRulePriorities, DeleteLoadBalancer.
    pub(super) async fn write_listeners(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let _writing = self.writes.lock().await;
        let written = Instant::now();
        let reply = exchange.forward().await;
        if reply.is_success() {
            self.after_write(exchange, &reply, written).await;
        }
        Ok(reply)
    }

    /// ModifyTargetGroup, ModifyTargetGroupAttributes, DeleteTargetGroup: moto answers; the
    /// emulator reads the group's settings again, or forgets the group.
    pub(super) async fn write_target_group(&self, exchange: &Exchange) -> Result<Reply, AwsError> {
        let reply = exchange.forward().await;
        let Some(arn) = form::get(exchange.form(), "TargetGroupArn") else {
            return Ok(reply);
        };
        if reply.is_success() {
            let mut state = self.state();
            if exchange.action() == "DeleteTargetGroup" {
                if let Some(checker) = state.groups.remove(arn).and_then(|g| g.checker) {
                    checker.abort();
                }
            } else if let Some(group) = state.groups.get_mut(arn) {
                group.settings = None;
            }
        }
        Ok(reply)
    }

    /// moto's answer with `LoadBalancerArns` as the listeners use the groups now, and the
    /// `LoadBalancerArn` filter applied on that (moto's list only ever grows).
    pub(super) async fn describe_target_groups(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Reply, AwsError> {
        let filter = form::get(exchange.form(), "LoadBalancerArn").map(str::to_string);
        let reply = match &filter {
            Some(_) => {
                let unfiltered: Vec<(String, String)> = exchange
                    .form()
                    .iter()
                    .filter(|(k, _)| k != "LoadBalancerArn")
                    .cloned()
                    .collect();
                exchange.forward_body(form::encode(&unfiltered)).await
            }
            None => exchange.forward().await,
        };
        if !reply.is_success() {
            return Ok(reply);
        }
        let text = reply.text();
        let listed: BTreeSet<String> = xml::target_groups(&text)
            .into_iter()
            .flat_map(|(_, lbs)| lbs)
            .chain(filter.clone())
            .collect();
        for load_balancer in &listed {
            self.ensure_known(load_balancer).await?;
        }
        let state = self.state();
        if let Some(lb) = filter
            .as_ref()
            .filter(|lb| !state.known_load_balancers.contains(*lb))
        {
            return Err(AwsError::sender(
                "LoadBalancerNotFound",
                format!("Load balancer '{lb}' not found"),
            ));
        }
        let users = state.users();
        drop(state);
        let patched = xml::patch_target_groups(&text, |arn| {
            let lbs: Vec<String> = users.get(arn).into_iter().flatten().cloned().collect();
            match &filter {
                Some(lb) if !lbs.contains(lb) => None,
                _ => Some(lbs),
            }
        });
        Ok(Reply {
            body: patched.into(),
            ..reply
        })
    }

    /// The load balancer whose listener a write of actions changes, when it exists.
    async fn load_balancer_of(
        self: &Arc<Self>,
        exchange: &Exchange,
    ) -> Result<Option<String>, AwsError> {
        let param = |key| form::get(exchange.form(), key).map(str::to_string);
        let listener = match exchange.action() {
            "CreateListener" => return Ok(param("LoadBalancerArn")),
            "ModifyRule" => param("RuleArn").as_deref().and_then(listener_of_rule),
            _ => param("ListenerArn"),
        };
        let Some(listener) = listener else {
            return Ok(None);
        };
        if let Some(load_balancer) = load_balancer_of_listener(&listener) {
            self.ensure_known(&load_balancer).await?;
        }
        Ok(self
            .state()
            .listeners
            .get(&listener)
            .map(|l| l.load_balancer.clone()))
    }

    /// What [`validate::check_groups`] needs: the load balancer's VPC, the groups' VPCs (a
    /// group that does not exist is moto's `TargetGroupNotFound`), and who uses the groups.
    async fn facts(
        self: &Arc<Self>,
        load_balancer: String,
        groups: &[String],
    ) -> Result<Facts, AwsError> {
        let lbs = self
            .moto
            .describe_load_balancers()
            .load_balancer_arns(&load_balancer)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        let vpc = lbs
            .load_balancers()
            .first()
            .and_then(|lb| lb.vpc_id())
            .unwrap_or_default()
            .to_string();
        let unique: BTreeSet<String> = groups.iter().cloned().collect();
        let described = self
            .moto
            .describe_target_groups()
            .set_target_group_arns(Some(unique.into_iter().collect()))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        let mut group_vpcs = BTreeMap::new();
        for group in described.target_groups() {
            let Some(arn) = group.target_group_arn() else {
                continue;
            };
            group_vpcs.insert(
                arn.to_string(),
                group.vpc_id().unwrap_or_default().to_string(),
            );
            for user in group.load_balancer_arns() {
                self.ensure_known(user).await?;
            }
        }
        Ok(Facts {
            load_balancer,
            vpc,
            group_vpcs,
            users: self.state().users(),
        })
    }

    /// Reads every listener of a load balancer the emulator has not met yet. One that does not
    /// exist stays unknown.
    pub(super) async fn ensure_known(
        self: &Arc<Self>,
        load_balancer: &str,
    ) -> Result<(), AwsError> {
        {
            let state = self.state();
            if state.known_load_balancers.contains(load_balancer)
                || state.gone_load_balancers.contains(load_balancer)
            {
                return Ok(());
            }
        }
        let mut listeners = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .moto
                .describe_listeners()
                .load_balancer_arn(load_balancer)
                .set_marker(marker)
                .send()
                .await
                .map_err(AwsError::from_sdk);
            let page = match page {
                Err(e) if e.code == "LoadBalancerNotFound" => {
                    let gone = load_balancer.to_string();
                    self.state().gone_load_balancers.insert(gone);
                    return Ok(());
                }
                page => page?,
            };
            for listener in page.listeners() {
                listeners.push(self.model_of(listener).await?);
            }
            marker = page.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        {
            let mut state = self.state();
            for (arn, model) in listeners {
                state.listeners.entry(arn).or_insert(model);
            }
            state.known_load_balancers.insert(load_balancer.to_string());
        }
        self.sync();
        Ok(())
    }

    /// A listener with its rules, as moto has them now.
    async fn model_of(&self, listener: &Listener) -> Result<(String, ListenerModel), AwsError> {
        let arn = listener.listener_arn().unwrap_or_default().to_string();
        let mut model = ListenerModel::new(
            listener.load_balancer_arn().unwrap_or_default().to_string(),
            listener.port().unwrap_or_default(),
            listener
                .protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            ActionModel::of(listener.default_actions()),
            Instant::now(),
        );
        let mut rules = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .moto
                .describe_rules()
                .listener_arn(&arn)
                .set_marker(marker)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            rules.extend(page.rules().iter().filter_map(RuleModel::of));
            marker = page.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        model.set_rules(rules);
        Ok((arn, model))
    }

    /// Reads back what a successful write changed. A failure to read leaves the model as it
    /// was: the write itself succeeded, and its answer is what the client must get.
    async fn after_write(self: &Arc<Self>, exchange: &Exchange, reply: &Reply, written: Instant) {
        let param = |key| form::get(exchange.form(), key).map(str::to_string);
        let changed: Vec<String> = match exchange.action() {
            "CreateListener" => xml::first_text(&reply.text(), "ListenerArn")
                .into_iter()
                .collect(),
            "ModifyListener" | "CreateRule" => param("ListenerArn").into_iter().collect(),
            "ModifyRule" | "DeleteRule" => param("RuleArn")
                .as_deref()
                .and_then(listener_of_rule)
                .into_iter()
                .collect(),
            "SetRulePriorities" => form::members(exchange.form(), "RulePriorities")
                .values()
                .filter_map(|fields| listener_of_rule(form::get(fields, "RuleArn")?))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            "DeleteListener" => {
                if let Some(arn) = param("ListenerArn") {
                    self.state().listeners.remove(&arn);
                }
                Vec::new()
            }
            "DeleteLoadBalancer" => {
                if let Some(lb) = param("LoadBalancerArn") {
                    let mut state = self.state();
                    state.listeners.retain(|_, l| l.load_balancer != lb);
                    state.known_load_balancers.remove(&lb);
                    state.gone_load_balancers.insert(lb);
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        let effective = written + self.settings().weight_delay;
        for arn in changed {
            // A model that missed a write would route and health-check as if it never
            // happened: moto is asked again, a few times, and a last failure is said.
            let mut attempt = 0;
            while let Err(e) = self.refresh(&arn, effective).await {
                attempt += 1;
                if attempt == 5 {
                    eprintln!(
                        "alb emulator: listener {arn} not read again after a write: {} {}",
                        e.code, e.message
                    );
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
        }
        self.sync();
    }

    /// Reads one listener again; new default actions reach the data plane at `effective`.
    async fn refresh(self: &Arc<Self>, arn: &str, effective: Instant) -> Result<(), AwsError> {
        if let Some(load_balancer) = load_balancer_of_listener(arn) {
            self.ensure_known(&load_balancer).await?;
        }
        let described = self
            .moto
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
            .map_err(AwsError::from_sdk);
        let listener = match described {
            Err(e) if e.code == "ListenerNotFound" => None,
            described => described?.listeners().first().cloned(),
        };
        let fresh = match &listener {
            Some(listener) => Some(self.model_of(listener).await?),
            None => None,
        };
        let mut state = self.state();
        match fresh {
            None => {
                state.listeners.remove(arn);
            }
            Some((arn, fresh)) => match state.listeners.get_mut(&arn) {
                Some(model) => model.update(fresh, effective),
                None => {
                    state.listeners.insert(arn, fresh);
                }
            },
        }
        Ok(())
    }

    /// Makes the health checks and the data plane follow the model: a group that comes into
    /// use starts over (its targets initial) and gets a checker; one that goes out of use
    /// loses it; each listener gets a data plane port, which closes when it goes.
    pub(super) fn sync(self: &Arc<Self>) {
        let now = Instant::now();
        let mut guard = self.state();
        let State {
            listeners,
            groups,
            planes,
            ..
        } = &mut *guard;
        let used: BTreeSet<String> = listeners.values().flat_map(|l| l.groups()).collect();
        for arn in &used {
            let group = groups.entry(arn.clone()).or_default();
            if !group.in_use {
                group.in_use = true;
                group.targets.values_mut().for_each(|t| t.restart(now));
                let checker = self
                    .runtime
                    .spawn(super::checker::run(self.clone(), arn.clone()));
                group.checker = Some(checker.abort_handle());
            }
        }
        for (arn, group) in groups.iter_mut() {
            if group.in_use && !used.contains(arn) {
                group.in_use = false;
                group.targets.values_mut().for_each(|t| t.restart(now));
                if let Some(checker) = group.checker.take() {
                    checker.abort();
                }
            }
        }
        planes.retain(|arn, plane| {
            let keep = listeners.contains_key(arn);
            if !keep {
                plane.task.abort();
            }
            keep
        });
        for arn in listeners.keys() {
            if !planes.contains_key(arn) {
                if let Ok(plane) = self.open_plane(arn) {
                    planes.insert(arn.clone(), plane);
                }
            }
        }
    }

    /// Binds a loopback port for a listener's data plane and serves it.
    fn open_plane(self: &Arc<Self>, listener_arn: &str) -> std::io::Result<Plane> {
        let socket = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        socket.set_nonblocking(true)?;
        let port = socket.local_addr()?.port();
        let routes: Arc<dyn super::dataplane::RouteTable> = self.clone();
        let arn = listener_arn.to_string();
        let task = self.runtime.spawn(async move {
            if let Ok(socket) = tokio::net::TcpListener::from_std(socket) {
                super::dataplane::serve(socket, arn, routes).await;
            }
        });
        Ok(Plane {
            port,
            task: task.abort_handle(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_rules_listeners_and_load_balancers() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        let listener = listener_of_rule(rule).unwrap();
        assert_eq!(
            listener,
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2"
        );
        assert_eq!(
            load_balancer_of_listener(&listener).unwrap(),
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/lb/50dc6c495c0c9188"
        );
        assert_eq!(listener_of_rule("nonsense"), None);
        assert_eq!(load_balancer_of_listener("arn:x:listener/"), None);
    }
}
