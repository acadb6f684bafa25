//! [`TrafficRouter`] for Application Load Balancer listeners, through the ELBv2 API.
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
//! refused, DNS, TLS, timeouts), and `NotFound` when the listener or target group the call is
//! about no longer exists. No request content is ever quoted, so credentials cannot leak.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;
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

use super::{pace, RouterError, Target, TargetHealth, TrafficRouter, Weights};

/// Weights ELBv2 accepts in a forward action's target group tuple.
const MAX_WEIGHT: u32 = 999;
/// Target groups one ALB forward action may list.
const MAX_TARGET_GROUPS: usize = 5;

/// The ELBv2 implementation of [`TrafficRouter`]. Cheap to clone: the SDK client is
/// reference-counted, and clones share the recorded endpoint.
#[derive(Clone, Debug)]
pub struct Elbv2Router {
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

impl Elbv2Router {
    /// Wraps a client, e.g. [`crate::aws::Aws::elbv2`]'s, keeping its whole configuration
    /// (region, credentials, endpoint override, retries) and adding only the interceptor that
    /// records which endpoint requests go to.
    pub fn new(client: elbv2::Client) -> Elbv2Router {
        let endpoint = Arc::new(OnceLock::new());
        let config = client
            .config()
            .to_builder()
            .interceptor(EndpointRecorder(Arc::clone(&endpoint)))
            .build();
        Elbv2Router {
            client: elbv2::Client::from_conf(config),
            endpoint,
            known_actions: Arc::default(),
            load_balancers: Arc::default(),
        }
    }

    /// The listener's default actions, as DescribeListeners reports them.
    async fn default_actions(&self, listener: &str) -> Result<Vec<Action>, RouterError> {
        tracing::debug!(
            operation = "DescribeListeners",
            arn = listener,
            "ELBv2 call"
        );
        pace::elbv2().ready("DescribeListeners").await;
        let out = self
            .client
            .describe_listeners()
            .listener_arns(listener)
            .send()
            .await
            .map_err(|e| self.error("DescribeListeners", "listener", listener, e))?;
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
                error_chain(&err)
            )),
        }
    }

    fn unreachable(&self, err: &dyn StdError) -> RouterError {
        let endpoint = match self.endpoint.get() {
            Some(endpoint) => format!(" ({endpoint})"),
            None => String::new(),
        };
        // The SDK's own top line ("dispatch failure") adds nothing to "cannot reach".
        let cause = err.source().map_or_else(|| err.to_string(), error_chain);
        RouterError::Failed(format!("cannot reach the ELBv2 API{endpoint}: {cause}"))
    }
}

#[tonic::async_trait]
impl TrafficRouter for Elbv2Router {
    /// The weights of the default action's `forward`. A tuple without a weight counts as 1
    /// (the documented default), and so does a forward given as a bare `TargetGroupArn`
    /// without a ForwardConfig: real AWS reads such an action back as a one-tuple
    /// ForwardConfig of weight 1, so reporting 1 keeps both spellings of the same listener
    /// equal. Weights are relative to their sum. A listener
    /// whose default action is no forward (redirect, fixed response) has empty weights.
    async fn weights(&self, listener: &str) -> Result<Weights, RouterError> {
        let actions = self.default_actions(listener).await?;
        let Some(forward) = actions
            .iter()
            .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        else {
            return Ok(Weights::default());
        };
        let tuples = forward
            .forward_config()
            .map(ForwardActionConfig::target_groups)
            .unwrap_or_default();
        if tuples.is_empty() {
            let single = forward.target_group_arn().map(|arn| (arn.to_string(), 1));
            return Ok(Weights(single.into_iter().collect()));
        }
        Ok(Weights(
            tuples
                .iter()
                .filter_map(|t| {
                    let weight = t.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0));
                    Some((t.target_group_arn()?.to_string(), weight))
                })
                .collect(),
        ))
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
    async fn set_weights(&self, listener: &str, weights: &Weights) -> Result<(), RouterError> {
        check_weights(listener, weights)?;
        let current = self.current_actions(listener).await?;
        let actions = default_actions_with(current, weights);
        tracing::debug!(
            operation = "ModifyListener",
            arn = listener,
            weights = ?weights.0,
            "ELBv2 call"
        );
        pace::elbv2().ready("ModifyListener").await;
        self.client
            .modify_listener()
            .listener_arn(listener)
            .set_default_actions(Some(actions.clone()))
            .send()
            .await
            .map_err(|e| self.error("ModifyListener", "listener", listener, e))?;
        self.remember(listener, &actions);
        Ok(())
    }

    async fn target_health(&self, target_group: &str) -> Result<Vec<TargetHealth>, RouterError> {
        tracing::debug!(
            operation = "DescribeTargetHealth",
            arn = target_group,
            "ELBv2 call"
        );
        pace::elbv2().ready("DescribeTargetHealth").await;
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| self.error("DescribeTargetHealth", "target group", target_group, e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| {
                let target = d.target();
                let health = d.target_health();
                TargetHealth {
                    target: Target {
                        id: target.and_then(|t| t.id()).unwrap_or_default().to_string(),
                        port: target
                            .and_then(|t| t.port())
                            .and_then(|p| u16::try_from(p).ok()),
                        availability_zone: target
                            .and_then(|t| t.availability_zone())
                            .map(str::to_string),
                    },
                    state: health
                        .and_then(|h| h.state())
                        .map_or("unknown", |s| s.as_str())
                        .to_string(),
                    reason: health
                        .and_then(|h| h.reason())
                        .map(|r| r.as_str().to_string()),
                    description: health.and_then(|h| h.description()).map(str::to_string),
                }
            })
            .collect())
    }

    async fn register(&self, target_group: &str, targets: &[Target]) -> Result<(), RouterError> {
        if targets.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            operation = "RegisterTargets",
            arn = target_group,
            count = targets.len(),
            "ELBv2 call"
        );
        pace::elbv2().ready("RegisterTargets").await;
        self.client
            .register_targets()
            .target_group_arn(target_group)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| self.error("RegisterTargets", "target group", target_group, e))?;
        Ok(())
    }

    async fn deregister(&self, target_group: &str, targets: &[Target]) -> Result<(), RouterError> {
        if targets.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            operation = "DeregisterTargets",
            arn = target_group,
            count = targets.len(),
            "ELBv2 call"
        );
        pace::elbv2().ready("DeregisterTargets").await;
        self.client
            .deregister_targets()
            .target_group_arn(target_group)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .map_err(|e| self.error("DeregisterTargets", "target group", target_group, e))?;
        Ok(())
    }

    /// One DescribeTags for all of them (it takes up to 20 ARNs).
    async fn tags(&self, arns: &[&str]) -> Result<Vec<BTreeMap<String, String>>, RouterError> {
        let Some(first) = arns.first() else {
            return Ok(Vec::new());
        };
        tracing::debug!(operation = "DescribeTags", arns = ?arns, "ELBv2 call");
        pace::elbv2().ready("DescribeTags").await;
        let out = self
            .client
            .describe_tags()
            .set_resource_arns(Some(arns.iter().map(|a| a.to_string()).collect()))
            .send()
            .await
            .map_err(|e| self.error("DescribeTags", noun_of(first), first, e))?;
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

    async fn add_tags(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), RouterError> {
        if tags.is_empty() {
            return Ok(());
        }
        let keys: Vec<&String> = tags.keys().collect();
        tracing::debug!(operation = "AddTags", arn, keys = ?keys, "ELBv2 call");
        pace::elbv2().ready("AddTags").await;
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| self.error("AddTags", noun_of(arn), arn, e))?;
        Ok(())
    }

    async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), RouterError> {
        if keys.is_empty() {
            return Ok(());
        }
        tracing::debug!(operation = "RemoveTags", arn, keys = ?keys, "ELBv2 call");
        pace::elbv2().ready("RemoveTags").await;
        self.client
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| self.error("RemoveTags", noun_of(arn), arn, e))?;
        Ok(())
    }

    async fn keep_checked(
        &self,
        listener: &str,
        target_group: &str,
    ) -> Result<Option<String>, RouterError> {
        self.warm_up(listener, target_group).await
    }

    async fn stop_keeping_checked(&self, handle: &str) -> Result<(), RouterError> {
        self.end_warm_up(handle).await
    }

    async fn check_target_groups(
        &self,
        listener: &str,
        target_groups: &[&str],
    ) -> Result<Vec<Option<String>>, RouterError> {
        self.preflight(listener, target_groups).await
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
/// [`Elbv2Router::set_weights`]).
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
        .map(|mut action| {
            if let Some(oidc) = action.authenticate_oidc_config.as_mut() {
                if oidc.client_secret.is_none() {
                    oidc.use_existing_client_secret = Some(true);
                }
            }
            action
        })
        .chain(std::iter::once(forward))
        .collect()
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

/// An error and its sources on one line, `a: b: c`, with repeats dropped (hyper and the
/// SDK often wrap an error in one that says the same). Hand-rolled rather than the SDK's
/// `DisplayErrorContext`, which appends the error's `Debug` form: the raw HTTP response,
/// far too much for a Terraform diagnostic.
fn error_chain(err: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Records `scheme://host[:port]` of outgoing requests (see [`Elbv2Router::endpoint`]).
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
mod tests {
    use super::*;
    use crate::router::shift;
    use acceptance_tests::elb::BlueGreenFixture;
    use elbv2::config::retry::RetryConfig;
    use elbv2::config::{BehaviorVersion, Region};
    use elbv2::types::{
        AuthenticateCognitoActionConfig, AuthenticateOidcActionConfig, FixedResponseActionConfig,
        TargetGroupStickinessConfig,
    };

    /// Tests against moto run only under `TF_ACC`, like the acceptance tests: they need
    /// moto installed (`bash scripts/tools.sh`).
    fn acceptance() -> bool {
        let on = std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty());
        if !on {
            eprintln!("skipped: set TF_ACC=1 to run the ELBv2 tests against moto");
        }
        on
    }

    fn client(endpoint: &str, max_attempts: u32) -> elbv2::Client {
        let config = elbv2::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .build();
        elbv2::Client::from_conf(config)
    }

    /// A fixture in the ALB emulator (moto behind it), and a router talking to it.
    async fn fixture(name: &str) -> (BlueGreenFixture, Elbv2Router) {
        let alb = acceptance_tests::alb::shared();
        let fx = BlueGreenFixture::create(alb, name).await;
        let router = Elbv2Router::new(client(&alb.endpoint(), 3));
        (fx, router)
    }

    /// A router whose every call would fail with "cannot reach": a loopback port that was
    /// just free, one attempt. Any other result proves no request was made.
    fn unreachable_router() -> (Elbv2Router, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        (Elbv2Router::new(client(&endpoint, 1)), endpoint)
    }

    fn weights(pairs: &[(&str, u32)]) -> Weights {
        Weights(pairs.iter().map(|(a, w)| (a.to_string(), *w)).collect())
    }

    fn failed(result: Result<impl std::fmt::Debug, RouterError>) -> String {
        match result {
            Err(RouterError::Failed(message)) => message,
            other => panic!("expected RouterError::Failed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reads_the_listener_weights() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("weights-read").await;
        let w = router.weights(&fx.listener_arn).await.unwrap();
        assert_eq!(w, weights(&[(&fx.blue_tg_arn, 100), (&fx.green_tg_arn, 0)]));
        // The test listener forwards to blue alone, the way AWS spells it (weight 1).
        let w = router.weights(&fx.test_listener_arn).await.unwrap();
        assert_eq!(w, weights(&[(&fx.blue_tg_arn, 1)]));
    }

    #[tokio::test]
    async fn set_weights_round_trips_and_shift_verifies() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("weights-set").await;
        let (blue, green) = (fx.blue_tg_arn.as_str(), fx.green_tg_arn.as_str());
        for step in [
            weights(&[(blue, 90), (green, 10)]),
            weights(&[(blue, 0), (green, 100)]),
        ] {
            let read = shift(&router, &fx.listener_arn, &step).await.unwrap();
            assert_eq!(read, step);
            assert_eq!(router.weights(&fx.listener_arn).await.unwrap(), step);
        }
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            BTreeMap::from([("blue".into(), 0), ("green".into(), 100)])
        );
        // The test listener (a plain forward to blue) is pointed at green the same way.
        let only_green = weights(&[(green, 1)]);
        shift(&router, &fx.test_listener_arn, &only_green)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn set_weights_keeps_stickiness_and_authentication() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("weights-keep").await;
        let sticky = TargetGroupStickinessConfig::builder()
            .enabled(true)
            .duration_seconds(3600)
            .build();
        let cognito = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateCognito)
            .order(1)
            .authenticate_cognito_config(
                AuthenticateCognitoActionConfig::builder()
                    .user_pool_arn(
                        "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc",
                    )
                    .user_pool_client_id("client")
                    .user_pool_domain("example")
                    .build(),
            )
            .build();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&fx.blue_tg_arn)
                            .weight(100)
                            .build(),
                    )
                    .target_group_stickiness_config(sticky.clone())
                    .build(),
            )
            .build();
        fx.client
            .modify_listener()
            .listener_arn(&fx.listener_arn)
            .default_actions(cognito)
            .default_actions(forward)
            .send()
            .await
            .unwrap();

        let to_green = weights(&[(&fx.blue_tg_arn, 0), (&fx.green_tg_arn, 100)]);
        shift(&router, &fx.listener_arn, &to_green).await.unwrap();

        let actions = fx.default_actions(&fx.listener_arn).await;
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(
            actions[0].r#type(),
            Some(&ActionTypeEnum::AuthenticateCognito)
        );
        assert_eq!(actions[0].order(), Some(1));
        assert_eq!(actions[1].r#type(), Some(&ActionTypeEnum::Forward));
        assert_eq!(actions[1].order(), Some(2));
        let stickiness = actions[1]
            .forward_config()
            .and_then(|c| c.target_group_stickiness_config());
        assert_eq!(stickiness, Some(&sticky));
    }

    #[tokio::test]
    async fn invalid_weights_are_rejected_before_any_call() {
        let (router, _) = unreachable_router();
        let listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2";
        let cases = [
            (weights(&[]), "no target group given"),
            (weights(&[("a", 0), ("b", 0)]), "every weight is 0"),
            (
                weights(&[("a", 1000), ("b", 0)]),
                "weight 1000 for a is out of range",
            ),
            (
                weights(&[("a", 1), ("a", 1)]),
                "target group a is listed twice",
            ),
            (
                weights(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1), ("f", 1)]),
                "6 target groups given",
            ),
        ];
        for (w, why) in cases {
            let message = failed(router.set_weights(listener, &w).await);
            assert!(
                message.starts_with(&format!(
                    "cannot set the weights of listener {listener}: {why}"
                )),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn empty_changes_make_no_call() {
        let (router, _) = unreachable_router();
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1";
        router.register(tg, &[]).await.unwrap();
        router.deregister(tg, &[]).await.unwrap();
        router.add_tags(tg, &BTreeMap::new()).await.unwrap();
        router.remove_tags(tg, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn registers_reports_health_and_deregisters() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("targets").await;
        // Two targets on one address, told apart by their ports as ELBv2 does.
        let (a, b) = (
            acceptance_tests::app::TestApp::start("a").await,
            acceptance_tests::app::TestApp::start("b").await,
        );
        let target = |port: u16| Target {
            id: "127.0.0.1".into(),
            port: Some(port),
            availability_zone: None,
        };
        let targets = [target(a.port()), target(b.port())];
        router.register(&fx.green_tg_arn, &targets).await.unwrap();
        // The load balancer checks them before calling them healthy.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let health = loop {
            let mut health = router.target_health(&fx.green_tg_arn).await.unwrap();
            health.sort_by(|x, y| x.target.cmp(&y.target));
            if health.len() == 2 && health.iter().all(TargetHealth::is_healthy) {
                break health;
            }
            assert!(std::time::Instant::now() < deadline, "{health:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let mut want = targets.to_vec();
        want.sort();
        assert_eq!(
            health.iter().map(|h| h.target.clone()).collect::<Vec<_>>(),
            want
        );

        router
            .deregister(&fx.green_tg_arn, &targets[..1])
            .await
            .unwrap();
        let health = router.target_health(&fx.green_tg_arn).await.unwrap();
        let states: Vec<_> = health
            .iter()
            .map(|h| (h.target.port, h.state.as_str()))
            .collect();
        assert!(
            states.contains(&(Some(a.port()), "draining"))
                && states.contains(&(Some(b.port()), "healthy")),
            "{health:?}"
        );
        assert!(router
            .target_health(&fx.blue_tg_arn)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn adds_reads_and_removes_tags() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("tags").await;
        let tg = fx.blue_tg_arn.as_str();
        assert!(router.tags(&[tg]).await.unwrap()[0].is_empty());
        let tags = BTreeMap::from([
            ("immutable:release".to_string(), "v1".to_string()),
            ("immutable:generation".to_string(), "3".to_string()),
        ]);
        router.add_tags(tg, &tags).await.unwrap();
        assert_eq!(router.tags(&[tg]).await.unwrap(), [tags]);
        router
            .remove_tags(tg, &["immutable:release".to_string()])
            .await
            .unwrap();
        assert_eq!(
            router.tags(&[tg]).await.unwrap(),
            [BTreeMap::from([(
                "immutable:generation".to_string(),
                "3".to_string()
            )])]
        );
        // Tags of the other colour are untouched.
        assert!(router.tags(&[&fx.green_tg_arn]).await.unwrap()[0].is_empty());
    }

    #[tokio::test]
    async fn deleted_listener_and_target_group_are_not_found() {
        if !acceptance() {
            return;
        }
        let (fx, router) = fixture("not-found").await;
        fx.delete_listener(&fx.listener_arn).await;
        let listener_gone = RouterError::NotFound(format!("listener {}", fx.listener_arn));
        assert_eq!(
            router.weights(&fx.listener_arn).await,
            Err(listener_gone.clone())
        );
        let w = weights(&[(&fx.green_tg_arn, 1)]);
        assert_eq!(
            router.set_weights(&fx.listener_arn, &w).await,
            Err(listener_gone)
        );

        // green is no longer behind any listener, so it can go.
        fx.delete_target_group(&fx.green_tg_arn).await;
        let tg_gone = RouterError::NotFound(format!("target group {}", fx.green_tg_arn));
        assert_eq!(
            router.target_health(&fx.green_tg_arn).await,
            Err(tg_gone.clone())
        );
        let target = Target {
            id: "10.0.1.10".into(),
            port: None,
            availability_zone: None,
        };
        assert_eq!(
            router.register(&fx.green_tg_arn, &[target]).await,
            Err(tg_gone.clone())
        );
        let tags = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert_eq!(router.add_tags(&fx.green_tg_arn, &tags).await, Err(tg_gone));
        // (moto answers DescribeTags for a deleted resource with no tags instead of
        // TargetGroupNotFound, so `tags` cannot be checked here.)
    }

    #[tokio::test]
    async fn service_errors_name_the_operation_code_and_message() {
        if !acceptance() {
            return;
        }
        let router = Elbv2Router::new(client(&acceptance_tests::moto::shared().endpoint(), 3));
        // An ARN that names no kind of resource: moto's "LoadBalancerNotFound" is then a
        // failure of the call, not a NotFound of what the caller asked about.
        let message = failed(router.remove_tags("not-an-arn", &["a".into()]).await);
        assert_eq!(
            message,
            "ELBv2 RemoveTags on not-an-arn failed: LoadBalancerNotFound: \
             The specified load balancer does not exist."
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_says_so() {
        let (router, endpoint) = unreachable_router();
        let listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2";
        let message = failed(router.weights(listener).await);
        assert!(
            message.starts_with(&format!("cannot reach the ELBv2 API ({endpoint}): ")),
            "{message}"
        );
        assert!(message.contains("onnection refused"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn new_default_actions_replace_the_routing_action_and_keep_authentication() {
        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example.com")
                    .client_id("app")
                    .build(),
            )
            .build();
        let maintenance = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .order(2)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .build(),
            )
            .build();
        let w = weights(&[("blue", 0), ("green", 100)]);
        let actions = default_actions_with(vec![oidc, maintenance], &w);
        assert_eq!(actions.len(), 2);
        let kept = actions[0].authenticate_oidc_config().unwrap();
        assert_eq!(kept.use_existing_client_secret(), Some(true));
        assert_eq!(kept.client_id(), Some("app"));
        let forward = &actions[1];
        assert_eq!(forward.r#type(), Some(&ActionTypeEnum::Forward));
        assert_eq!(forward.order(), Some(2));
        let tuples: Vec<_> = forward
            .forward_config()
            .unwrap()
            .target_groups()
            .iter()
            .map(|t| (t.target_group_arn().unwrap(), t.weight().unwrap()))
            .collect();
        assert_eq!(tuples, [("blue", 0), ("green", 100)]);
        assert!(forward.fixed_response_config().is_none());

        // Setting weights again replaces our own forward, keeping its Order.
        let again = default_actions_with(actions, &w);
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].order(), Some(2));
        // A lone forward without an Order (as moto stores the fixture's) stays without one.
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("blue")
            .build();
        assert_eq!(default_actions_with(vec![plain], &w)[0].order(), None);
    }

    #[test]
    fn origins_and_nouns() {
        assert_eq!(origin("http://127.0.0.1:5055/"), "http://127.0.0.1:5055");
        assert_eq!(
            origin("https://user:secret@vpce.example.com/?Action=X"),
            "https://vpce.example.com"
        );
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012";
        assert_eq!(noun_of(&format!("{arn}:listener/app/lb/1/2")), "listener");
        assert_eq!(noun_of(&format!("{arn}:targetgroup/tg/1")), "target group");
        assert_eq!(
            noun_of(&format!("{arn}:loadbalancer/app/lb/1")),
            "load balancer"
        );
        assert_eq!(noun_of("not-an-arn"), "resource");
    }
}
