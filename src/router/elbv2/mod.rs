//! Blue/green on an Application Load Balancer listener: [`Listener`] is the
//! [`TrafficRouter`](super::TrafficRouter) (a listener and two target groups), built on
//! [`Elbv2`], the calls it makes to the ELBv2 API by ARN.
//!
//! # Retries and throttling
//! There is no retry loop here on purpose. The client comes from [`crate::aws`], which
//! configures the SDK's *standard* retry strategy with `max_attempts = max_retries + 1`.
//! That strategy (aws-smithy-runtime's `StandardRetryStrategy`, see the AWS SDK for Rust
//! guide "Configuring retries") classifies ELBv2's `Throttling` / "Rate exceeded" errors
//! (aws-runtime's `THROTTLING_ERRORS`), 5xx responses and connection-level failures as
//! retryable, and waits `min(initial_backoff * 2^attempt, max_backoff) * rand()` between
//! attempts: exponential backoff with full jitter (1 s initial, 20 s cap by default), gated
//! by a client-side retry token bucket. A second loop here would multiply the attempts and
//! defeat that bucket. Only what is still failing after those attempts reaches the caller.
//!
//! # Errors
//! Every failure becomes a one-line [`RouterError`] meant for the user:
//! `ELBv2 ModifyListener on <arn> failed: <Code>: <message>` when the service answered,
//! `cannot reach the ELBv2 API (<endpoint>): <cause>` when no answer came (connection
//! refused, DNS, TLS, timeouts), `NotFound` when the listener or target group the call is
//! about no longer exists, and [`budget::Cut`]'s sentence when the operation's deadline or
//! Ctrl-C cut the call off. No request content is ever quoted, so credentials cannot leak.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::config::http::HttpResponse;
use elbv2::config::interceptors::BeforeTransmitInterceptorContextRef;
use elbv2::config::{ConfigBag, Intercept, RuntimeComponents};
use elbv2::error::{ProvideErrorMetadata, SdkError};
use elbv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Tag, TargetDescription, TargetGroupTuple,
};

mod checks;
mod discovery;
mod listener;

pub use discovery::TwoWayListener;
pub use listener::{record_of, Listener, GENERATION_TAG, RELEASE_TAG, ROLLED_BACK_TAG};

use super::{pace, MemberHealth, MemberState, RouterError, Target};
use crate::budget;
use crate::error_chain::one_line;

/// Weights ELBv2 accepts in a forward action's target group tuple.
const MAX_WEIGHT: u32 = 999;
/// Target groups one ALB forward action may list.
const MAX_TARGET_GROUPS: usize = 5;

/// How a listener's forward splits traffic: (target group ARN, weight) pairs. ELBv2
/// weights are 0 to 999 and relative to their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Weights(pub Vec<(String, u32)>);

impl Weights {
    /// The weight of one target group; 0 when the listener does not forward to it.
    pub fn of(&self, target_group: &str) -> u32 {
        self.0
            .iter()
            .filter(|(tg, _)| tg == target_group)
            .map(|(_, w)| *w)
            .sum()
    }
}

/// The ELBv2 calls the provider makes, by ARN. Cheap to clone: the SDK client is
/// reference-counted, and clones share the recorded endpoint.
#[derive(Clone, Debug)]
pub struct Elbv2 {
    client: elbv2::Client,
    /// `scheme://host[:port]` of the first request sent, for "cannot reach" messages. The
    /// SDK offers no getter for the endpoint it resolves (override or regional default), so
    /// an interceptor records it from the outgoing request.
    endpoint: Arc<OnceLock<String>>,
    /// Each listener's default actions as last read or written. ModifyListener needs the
    /// actions that are not the forward (authentication steps, the forward's stickiness)
    /// to keep them; taking them from the read a cut-over starts with, rather than a fresh
    /// DescribeListeners, keeps the cut-over itself to a write and its read-back.
    known_actions: Arc<Mutex<HashMap<String, Vec<Action>>>>,
    /// Each listener's load balancer ARN, from the same reads.
    load_balancers: Arc<Mutex<HashMap<String, String>>>,
}

impl Elbv2 {
    /// Wraps a client, e.g. [`crate::aws::Aws::elbv2`]'s, keeping its whole configuration
    /// (region, credentials, endpoint override, retries) and adding the interceptor that
    /// records which endpoint requests go to. A client without an operation timeout gets
    /// [`crate::aws::timeouts`], so that no call of the router can hang for ever.
    pub fn new(client: elbv2::Client) -> Elbv2 {
        let endpoint = Arc::new(OnceLock::new());
        let bounded = client
            .config()
            .timeout_config()
            .is_some_and(|t| t.operation_timeout().is_some());
        let mut config = client.config().to_builder();
        if !bounded {
            config = config.timeout_config(crate::aws::timeouts());
        }
        let config = config
            .interceptor(EndpointRecorder(Arc::clone(&endpoint)))
            .build();
        Elbv2 {
            client: elbv2::Client::from_conf(config),
            endpoint,
            known_actions: Arc::default(),
            load_balancers: Arc::default(),
        }
    }

    /// The listener's default actions, as DescribeListeners reports them.
    async fn default_actions(&self, listener: &str) -> Result<Vec<Action>, RouterError> {
        let out = self
            .call(
                "DescribeListeners",
                "listener",
                listener,
                self.client
                    .describe_listeners()
                    .listener_arns(listener)
                    .send(),
            )
            .await?;
        match out.listeners().first() {
            Some(found) => {
                let actions = found.default_actions().to_vec();
                self.remember(listener, &actions);
                if let (Some(lb), Ok(mut known)) =
                    (found.load_balancer_arn(), self.load_balancers.lock())
                {
                    known.insert(listener.to_string(), lb.to_string());
                }
                Ok(actions)
            }
            None => Err(RouterError::NotFound(format!("listener {listener}"))),
        }
    }

    /// Every ELBv2 call goes out here: logged, paced, and ended at the operation's deadline
    /// or at Ctrl-C ([`budget::bounded`]) as well as at its own timeouts. `noun` and `arn`
    /// say what it is about, for [`Self::error`].
    async fn call<T, E>(
        &self,
        operation: &'static str,
        noun: &str,
        arn: &str,
        send: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, RouterError>
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        tracing::debug!(operation, arn, "ELBv2 call");
        let paced = async {
            pace::elbv2().ready(operation).await;
            send.await
        };
        match budget::bounded(format!("ELBv2 {operation} on {arn}"), paced).await {
            Ok(answer) => answer.map_err(|e| self.error(operation, noun, arn, e)),
            Err(cut) => Err(RouterError::Failed(cut.to_string())),
        }
    }

    fn remember(&self, listener: &str, actions: &[Action]) {
        if let Ok(mut known) = self.known_actions.lock() {
            known.insert(listener.to_string(), actions.to_vec());
        }
    }

    /// The listener's default actions as last seen, read afresh when never seen.
    async fn current_actions(&self, listener: &str) -> Result<Vec<Action>, RouterError> {
        let known = self
            .known_actions
            .lock()
            .ok()
            .and_then(|k| k.get(listener).cloned());
        match known {
            Some(actions) => Ok(actions),
            None => self.default_actions(listener).await,
        }
    }

    /// The listener's load balancer, read with its actions when not known yet.
    async fn load_balancer_of(&self, listener: &str) -> Result<String, RouterError> {
        let known = |router: &Self| {
            router
                .load_balancers
                .lock()
                .ok()
                .and_then(|k| k.get(listener).cloned())
        };
        if let Some(lb) = known(self) {
            return Ok(lb);
        }
        self.default_actions(listener).await?;
        known(self).ok_or_else(|| {
            RouterError::Failed(format!(
                "DescribeListeners did not say which load balancer {listener} belongs to"
            ))
        })
    }

    /// Turns an SDK error into the user's one-line message. `noun` is what `arn` names
    /// ("listener", "target group", ...): its `<Noun>NotFound` error code becomes
    /// [`RouterError::NotFound`], while another missing resource (say, a target group named
    /// in ModifyListener) stays a failure of the call, with the service's own message.
    fn error<E>(
        &self,
        operation: &str,
        noun: &str,
        arn: &str,
        err: SdkError<E, HttpResponse>,
    ) -> RouterError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        match &err {
            SdkError::ServiceError(context) => {
                let service_error = context.err();
                let code = match service_error.code() {
                    Some(code) if Some(code) == not_found_code(noun) => {
                        return RouterError::NotFound(format!("{noun} {arn}"));
                    }
                    Some(code) => code.to_string(),
                    None => format!("HTTP {}", context.raw().status().as_u16()),
                };
                let message = service_error.message().unwrap_or("(no message)");
                RouterError::Failed(format!(
                    "ELBv2 {operation} on {arn} failed: {code}: {message}"
                ))
            }
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                self.unreachable(&err)
            }
            SdkError::TimeoutError(_) => self.unreachable(&err),
            // Construction failures, unreadable responses, and dispatch failures that are not
            // about the network (e.g. no credentials found): the chain says what went wrong.
            _ => RouterError::Failed(format!(
                "ELBv2 {operation} on {arn} failed: {}",
                one_line(&err)
            )),
        }
    }

    fn unreachable(&self, err: &(dyn StdError + 'static)) -> RouterError {
        let endpoint = match self.endpoint.get() {
            Some(endpoint) => format!(" ({endpoint})"),
            None => String::new(),
        };
        // The SDK's own top line ("dispatch failure") adds nothing to "cannot reach".
        let cause = err.source().map_or_else(|| err.to_string(), one_line);
        RouterError::Failed(format!("cannot reach the ELBv2 API{endpoint}: {cause}"))
    }
}

impl Elbv2 {
    /// The weights of the default action's `forward`. A tuple without a weight counts as 1
    /// (the documented default), and so does a forward given as a bare `TargetGroupArn`
    /// without a ForwardConfig: real AWS reads such an action back as a one-tuple
    /// ForwardConfig of weight 1, so reporting 1 keeps both spellings of the same listener
    /// equal. Weights are relative to their sum. A listener
    /// whose default action is no forward (redirect, fixed response) has empty weights.
    pub async fn weights(&self, listener: &str) -> Result<Weights, RouterError> {
        Ok(forward_weights(&self.default_actions(listener).await?))
    }

    /// Replaces the listener's routing action (its forward, redirect or fixed response)
    /// with a weighted forward, after checking the weights as real AWS would (moto accepts
    /// anything).
    ///
    /// Two things of the current default action are kept, because dropping them would
    /// silently change what users get:
    /// * the forward's target group stickiness: a user who enabled it wants clients to stay
    ///   on one group. (With it on, clients keep their group for its duration, so a cut-over
    ///   reaches them only as their stickiness expires.)
    /// * the actions before the routing action: `authenticate-oidc`, `authenticate-cognito`,
    ///   `jwt-validation`. Replacing the list outright would turn authentication off. OIDC's
    ///   client secret is never returned by DescribeListeners, so those actions are sent back
    ///   with `UseExistingClientSecret`.
    pub async fn set_weights(&self, listener: &str, weights: &Weights) -> Result<(), RouterError> {
        check_weights(listener, weights)?;
        // Read afresh, not as at preflight: another writer's change to the rest of the
        // action (an authentication step added since) is kept, not undone.
        let current = self.default_actions(listener).await?;
        tracing::debug!(weights = ?weights.0, "new weights");
        self.modify_listener(listener, default_actions_with(current, weights))
            .await
    }

    /// ModifyListener with these default actions, remembered once written.
    async fn modify_listener(
        &self,
        listener: &str,
        actions: Vec<Action>,
    ) -> Result<(), RouterError> {
        self.call(
            "ModifyListener",
            "listener",
            listener,
            self.client
                .modify_listener()
                .listener_arn(listener)
                .set_default_actions(Some(actions.clone()))
                .send(),
        )
        .await?;
        self.remember(listener, &actions);
        Ok(())
    }

    /// The listener's default actions as the release found them (the preflight's read,
    /// made just before), and their routing action in words.
    pub async fn routing(&self, listener: &str) -> Result<(Vec<Action>, String), RouterError> {
        let actions = self.current_actions(listener).await?;
        let described = describe_routing(&actions);
        Ok((actions, described))
    }

    /// Puts back default actions read by [`Self::routing`], as they were.
    pub async fn restore_actions(
        &self,
        listener: &str,
        actions: &[Action],
    ) -> Result<(), RouterError> {
        tracing::debug!("restoring the default actions as they were");
        self.modify_listener(listener, actions.iter().cloned().map(resendable).collect())
            .await
    }

    pub async fn target_health(
        &self,
        target_group: &str,
    ) -> Result<Vec<MemberHealth>, RouterError> {
        let out = self
            .call(
                "DescribeTargetHealth",
                "target group",
                target_group,
                self.client
                    .describe_target_health()
                    .target_group_arn(target_group)
                    .send(),
            )
            .await?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| {
                let target = d.target();
                let health = d.target_health();
                member_health(
                    Target {
                        id: target.and_then(|t| t.id()).unwrap_or_default().to_string(),
                        port: target
                            .and_then(|t| t.port())
                            .and_then(|p| u16::try_from(p).ok()),
                        availability_zone: target
                            .and_then(|t| t.availability_zone())
                            .map(str::to_string),
                    },
                    health
                        .and_then(|h| h.state())
                        .map_or("unknown", |s| s.as_str()),
                    health.and_then(|h| h.reason()).map(|r| r.as_str()),
                    health.and_then(|h| h.description()),
                )
            })
            .collect())
    }

    pub async fn register(
        &self,
        target_group: &str,
        targets: &[Target],
    ) -> Result<(), RouterError> {
        if targets.is_empty() {
            return Ok(());
        }
        self.call(
            "RegisterTargets",
            "target group",
            target_group,
            self.client
                .register_targets()
                .target_group_arn(target_group)
                .set_targets(Some(descriptions(targets)))
                .send(),
        )
        .await?;
        Ok(())
    }

    pub async fn deregister(
        &self,
        target_group: &str,
        targets: &[Target],
    ) -> Result<(), RouterError> {
        if targets.is_empty() {
            return Ok(());
        }
        self.call(
            "DeregisterTargets",
            "target group",
            target_group,
            self.client
                .deregister_targets()
                .target_group_arn(target_group)
                .set_targets(Some(descriptions(targets)))
                .send(),
        )
        .await?;
        Ok(())
    }

    /// One DescribeTags for all of them (it takes up to 20 ARNs).
    pub async fn tags(&self, arns: &[&str]) -> Result<Vec<BTreeMap<String, String>>, RouterError> {
        let Some(first) = arns.first() else {
            return Ok(Vec::new());
        };
        let out = self
            .call(
                "DescribeTags",
                noun_of(first),
                first,
                self.client
                    .describe_tags()
                    .set_resource_arns(Some(arns.iter().map(|a| a.to_string()).collect()))
                    .send(),
            )
            .await?;
        let of = |arn: &str| -> BTreeMap<String, String> {
            out.tag_descriptions()
                .iter()
                .filter(|d| d.resource_arn() == Some(arn))
                .flat_map(|d| d.tags())
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        };
        Ok(arns.iter().map(|arn| of(arn)).collect())
    }

    pub async fn add_tags(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), RouterError> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let add = self
            .client
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(tags));
        self.call("AddTags", noun_of(arn), arn, add.send()).await?;
        Ok(())
    }

    pub async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), RouterError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.call(
            "RemoveTags",
            noun_of(arn),
            arn,
            self.client
                .remove_tags()
                .resource_arns(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send(),
        )
        .await?;
        Ok(())
    }
}

/// Rejects what real ELBv2 would reject in ModifyListener, before any call: moto takes it
/// all, so without this the acceptance tests would pass on input that production refuses.
fn check_weights(listener: &str, weights: &Weights) -> Result<(), RouterError> {
    let fail = |why: String| {
        Err(RouterError::Failed(format!(
            "cannot set the weights of listener {listener}: {why}"
        )))
    };
    if weights.0.is_empty() {
        return fail("no target group given".into());
    }
    if weights.0.len() > MAX_TARGET_GROUPS {
        return fail(format!(
            "{} target groups given, an ELBv2 forward action takes at most {MAX_TARGET_GROUPS}",
            weights.0.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for (target_group, weight) in &weights.0 {
        if *weight > MAX_WEIGHT {
            return fail(format!(
                "weight {weight} for {target_group} is out of range (ELBv2 weights are 0 to {MAX_WEIGHT})"
            ));
        }
        if !seen.insert(target_group) {
            return fail(format!("target group {target_group} is listed twice"));
        }
    }
    if weights.0.iter().all(|(_, w)| *w == 0) {
        return fail("every weight is 0, so no target group would get traffic".into());
    }
    Ok(())
}

/// The new default actions: `current` with its routing action replaced by a forward at
/// `weights` (keeping the old forward's stickiness), and its other actions kept (see
/// [`Elbv2::set_weights`]).
fn default_actions_with(current: Vec<Action>, weights: &Weights) -> Vec<Action> {
    let is_routing = |a: &Action| {
        matches!(
            a.r#type(),
            Some(
                ActionTypeEnum::Forward | ActionTypeEnum::Redirect | ActionTypeEnum::FixedResponse
            )
        )
    };
    let (routing, kept): (Vec<Action>, Vec<Action>) = current.into_iter().partition(is_routing);
    let routing = routing.first();
    let stickiness = routing
        .and_then(Action::forward_config)
        .and_then(|c| c.target_group_stickiness_config())
        .cloned();
    // AWS requires an Order on every action of a multi-action list: take the old routing
    // action's, or else come after the kept actions.
    let order = routing
        .and_then(Action::order)
        .or_else(|| kept.iter().filter_map(Action::order).max().map(|o| o + 1));
    let tuples = weights
        .0
        .iter()
        .map(|(arn, weight)| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                // check_weights bounds every weight to 0..=999.
                .weight(*weight as i32)
                .build()
        })
        .collect();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .set_target_groups(Some(tuples))
                .set_target_group_stickiness_config(stickiness)
                .build(),
        )
        .set_order(order)
        .build();
    kept.into_iter()
        .map(resendable)
        .chain(std::iter::once(forward))
        .collect()
}

/// An action as read, made fit to send back: OIDC's client secret is never returned by
/// DescribeListeners, so the action keeps the one it has.
fn resendable(mut action: Action) -> Action {
    if let Some(oidc) = action.authenticate_oidc_config.as_mut() {
        if oidc.client_secret.is_none() {
            oidc.use_existing_client_secret = Some(true);
        }
    }
    action
}

/// The routing action of a list, in words: "a fixed response (503)", "a redirect", "a
/// forward to arn:...".
fn describe_routing(actions: &[Action]) -> String {
    let routing = actions.iter().find(|a| {
        matches!(
            a.r#type(),
            Some(
                ActionTypeEnum::Forward | ActionTypeEnum::Redirect | ActionTypeEnum::FixedResponse
            )
        )
    });
    match routing.and_then(Action::r#type) {
        Some(ActionTypeEnum::FixedResponse) => format!(
            "a fixed response ({})",
            routing
                .and_then(Action::fixed_response_config)
                .map_or("?", |c| c.status_code().unwrap_or("?"))
        ),
        Some(ActionTypeEnum::Redirect) => "a redirect".to_string(),
        Some(_) => {
            let weights = forward_weights(actions);
            let groups: Vec<String> = weights
                .0
                .iter()
                .map(|(tg, w)| format!("{tg} (weight {w})"))
                .collect();
            format!("a forward to {}", groups.join(", "))
        }
        None => "no routing action".to_string(),
    }
}

/// A target's health as ELBv2 reports it: its state, and in words what the state and
/// reason code mean for the release, with AWS's own description.
fn member_health(
    target: Target,
    state: &str,
    reason: Option<&str>,
    description: Option<&str>,
) -> MemberHealth {
    let (kind, meaning) = match (state, reason) {
        ("healthy", _) => (MemberState::Healthy, ""),
        ("initial", Some("Elb.RegistrationInProgress")) => {
            (MemberState::Initial, "still being registered")
        }
        ("initial", _) => (
            MemberState::Initial,
            "its first health checks have not passed yet",
        ),
        ("unhealthy", Some("Target.ResponseCodeMismatch")) => (
            MemberState::Unhealthy,
            "the health check got a status outside the target group's matcher",
        ),
        ("unhealthy", Some("Target.Timeout")) => {
            (MemberState::Unhealthy, "the health check timed out")
        }
        ("unhealthy", _) => (
            MemberState::Unhealthy,
            "failing the target group's health checks",
        ),
        ("unused", Some("Target.NotInUse")) => (
            MemberState::Unchecked,
            "not checked: its group is not in use (the load balancer health-checks only target groups that a listener's default action or rule forwards to)",
        ),
        ("unused", _) => (MemberState::Unchecked, "not checked by the load balancer"),
        ("draining", _) => (
            MemberState::Draining,
            "being deregistered: it takes no new requests",
        ),
        _ => (MemberState::Unknown, "not healthy"),
    };
    let detail = (kind != MemberState::Healthy).then(|| {
        let said = description
            .map(|d| format!(" (\"{d}\")"))
            .unwrap_or_default();
        match reason {
            Some(reason) => format!("{state} ({reason}): {meaning}{said}"),
            None => format!("{state}: {meaning}{said}"),
        }
    });
    MemberHealth {
        target,
        state: kind,
        detail,
    }
}

fn descriptions(targets: &[Target]) -> Vec<TargetDescription> {
    targets
        .iter()
        .map(|t| {
            TargetDescription::builder()
                .id(&t.id)
                .set_port(t.port.map(i32::from))
                .set_availability_zone(t.availability_zone.clone())
                .build()
        })
        .collect()
}

/// The weights of the `forward` among a listener's default actions (see
/// [`Elbv2::weights`]).
fn forward_weights(actions: &[Action]) -> Weights {
    let Some(forward) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Weights::default();
    };
    let tuples = forward
        .forward_config()
        .map(ForwardActionConfig::target_groups)
        .unwrap_or_default();
    if tuples.is_empty() {
        let single = forward.target_group_arn().map(|arn| (arn.to_string(), 1));
        return Weights(single.into_iter().collect());
    }
    Weights(
        tuples
            .iter()
            .filter_map(|t| {
                let weight = t.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0));
                Some((t.target_group_arn()?.to_string(), weight))
            })
            .collect(),
    )
}

/// What an ELBv2 ARN names, from its resource part
/// (`arn:aws:elasticloadbalancing:<region>:<account>:<kind>/...`).
fn noun_of(arn: &str) -> &'static str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    match resource.split('/').next() {
        Some("listener") => "listener",
        Some("listener-rule") => "listener rule",
        Some("targetgroup") => "target group",
        Some("loadbalancer") => "load balancer",
        _ => "resource",
    }
}

/// The error code ELBv2 answers with when the resource `noun` names does not exist.
fn not_found_code(noun: &str) -> Option<&'static str> {
    match noun {
        "listener" => Some("ListenerNotFound"),
        "listener rule" => Some("RuleNotFound"),
        "target group" => Some("TargetGroupNotFound"),
        "load balancer" => Some("LoadBalancerNotFound"),
        _ => None,
    }
}

/// Records `scheme://host[:port]` of outgoing requests (see [`Elbv2::endpoint`]).
/// Any `user:password@` in the URL is left out: it is a credential.
#[derive(Debug)]
struct EndpointRecorder(Arc<OnceLock<String>>);

impl Intercept for EndpointRecorder {
    fn name(&self) -> &'static str {
        "EndpointRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn StdError + Send + Sync>> {
        if self.0.get().is_none() {
            let _ = self.0.set(origin(context.request().uri()));
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL, without user info, path or query.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests;
