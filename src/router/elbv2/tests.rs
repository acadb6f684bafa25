//! The ELBv2 router against the ALB emulator (under `TF_ACC`), and its pure parts.

use super::*;
use crate::router::{shift, Color, Record, Split, TrafficRouter};
use acceptance_tests::elb::BlueGreenFixture;
use elbv2::config::retry::RetryConfig;
use elbv2::config::{BehaviorVersion, Region};
use elbv2::types::{
    AuthenticateCognitoActionConfig, AuthenticateOidcActionConfig, FixedResponseActionConfig,
    TargetGroupStickinessConfig,
};

/// Tests against the emulator run only under `TF_ACC`, like the acceptance tests: they
/// need moto installed (`bash scripts/tools.sh`).
fn acceptance() -> bool {
    let on = std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty());
    if !on {
        eprintln!("skipped: set TF_ACC=1 to run the ELBv2 tests against the ALB emulator");
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
async fn fixture(name: &str) -> (BlueGreenFixture, Elbv2) {
    let alb = acceptance_tests::alb::shared();
    let fx = BlueGreenFixture::create(alb, name).await;
    let router = Elbv2::new(client(&alb.endpoint(), 3));
    (fx, router)
}

/// A router whose every call would fail with "cannot reach": a loopback port that was
/// just free, one attempt. Any other result proves no request was made.
fn unreachable_router() -> (Elbv2, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    (Elbv2::new(client(&endpoint, 1)), endpoint)
}

#[test]
fn a_client_without_timeouts_gets_the_providers() {
    let (router, _) = unreachable_router();
    let timeouts = router.client.config().timeout_config().cloned().unwrap();
    assert_eq!(
        timeouts.operation_timeout(),
        Some(crate::aws::OPERATION_TIMEOUT)
    );
    assert_eq!(
        timeouts.operation_attempt_timeout(),
        Some(crate::aws::ATTEMPT_TIMEOUT)
    );
}

/// An endpoint that accepts connections (the kernel's backlog does) and never answers:
/// the call ends at the client's operation timeout, as "cannot reach", naming the endpoint.
#[tokio::test]
async fn an_endpoint_that_never_answers_fails_the_call_at_its_timeout() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hung.local_addr().unwrap());
    let timeouts = elbv2::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_millis(300))
        .operation_timeout(std::time::Duration::from_secs(1))
        .build();
    let client = client(&endpoint, 5);
    let client = elbv2::Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .build(),
    );
    let router = Elbv2::new(client);
    let started = std::time::Instant::now();
    let error = failed(
        router
            .weights("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/b/c")
            .await,
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.starts_with(&format!("cannot reach the ELBv2 API ({endpoint}): "))
            && error.contains("timeout"),
        "{error}"
    );
}

/// A read of the listener from an endpoint that never answers, with the provider's own
/// timeouts (30 s a call), in an operation whose deadline is `deadline` away and whose
/// stop fires after `stop_after`: how long it took, and its error.
async fn a_hung_read_within(
    deadline: std::time::Duration,
    stop_after: std::time::Duration,
) -> (std::time::Duration, String) {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let router = Elbv2::new(client(&format!("http://{}", hung.local_addr().unwrap()), 3));
    let stop = tokio_util::sync::CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(stop_after).await;
        cancel.cancel();
    });
    let started = tokio::time::Instant::now();
    let budget = crate::budget::Budget::new(started + deadline, stop, "the resource's `timeouts`");
    let read = router.weights("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/b/c");
    let error = failed(crate::budget::within(budget, read).await);
    (started.elapsed(), error)
}

#[tokio::test]
async fn a_call_that_never_answers_ends_within_a_second_of_ctrl_c() {
    let (took, error) = a_hung_read_within(
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_millis(200),
    )
    .await;
    assert!(took < std::time::Duration::from_millis(1200), "{took:?}");
    assert_eq!(
        error,
        "interrupted while waiting for ELBv2 DescribeListeners on \
         arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/b/c: Terraform asked the provider to stop"
    );
}

#[tokio::test]
async fn a_call_that_never_answers_ends_at_the_operations_deadline() {
    let (took, error) = a_hung_read_within(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(3600),
    )
    .await;
    assert!(
        took >= std::time::Duration::from_millis(500) && took < std::time::Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        error.starts_with("the time the resource's `timeouts` allows ran out while waiting for ELBv2 DescribeListeners on arn:"),
        "{error}"
    );
}

fn weights(pairs: &[(&str, u32)]) -> Weights {
    Weights(pairs.iter().map(|(a, w)| (a.to_string(), *w)).collect())
}

/// The fixture's colours behind one of its listeners.
fn listener_of(fx: &BlueGreenFixture, api: &Elbv2, listener: &str) -> Listener {
    Listener {
        api: api.clone(),
        listener: listener.to_string(),
        blue: fx.blue_tg_arn.clone(),
        green: fx.green_tg_arn.clone(),
    }
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
    let listener = listener_of(&fx, &router, &fx.listener_arn);
    for step in [
        Split::percent(Color::Green, 10),
        Split::all_on(Color::Green),
    ] {
        let read = shift(&listener, step).await.unwrap();
        assert_eq!(read, step);
        assert_eq!(listener.weights().await.unwrap(), step);
    }
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        BTreeMap::from([("blue".into(), 0), ("green".into(), 100)])
    );
    // The test listener (a plain forward to blue) is pointed at green the same way.
    let test_listener = listener_of(&fx, &router, &fx.test_listener_arn);
    shift(&test_listener, Split::all_on(Color::Green))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_colours_record_is_kept_in_its_target_groups_tags() {
    if !acceptance() {
        return;
    }
    let (fx, router) = fixture("records").await;
    let listener = listener_of(&fx, &router, &fx.listener_arn);
    let record = Record {
        release: Some("v7".into()),
        generation: Some(3),
        ..Record::default()
    };
    listener.set_record(Color::Green, &record).await.unwrap();
    assert_eq!(
        listener.records().await.unwrap(),
        [Record::default(), record]
    );
    let tags = router.tags(&[&fx.green_tg_arn]).await.unwrap();
    assert_eq!(tags[0].get(RELEASE_TAG).map(String::as_str), Some("v7"));
    listener
        .set_record(Color::Green, &Record::default())
        .await
        .unwrap();
    assert_eq!(
        listener.records().await.unwrap(),
        [Record::default(), Record::default()]
    );
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
                .user_pool_arn("arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc")
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

    let listener = listener_of(&fx, &router, &fx.listener_arn);
    shift(&listener, Split::all_on(Color::Green)).await.unwrap();

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
        if health.len() == 2 && health.iter().all(MemberHealth::is_healthy) {
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
    let states: Vec<_> = health.iter().map(|h| (h.target.port, h.state)).collect();
    assert!(
        states.contains(&(Some(a.port()), MemberState::Draining))
            && states.contains(&(Some(b.port()), MemberState::Healthy)),
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
    let router = Elbv2::new(client(&acceptance_tests::moto::shared().endpoint(), 3));
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

#[test]
fn every_target_state_is_explained_in_words() {
    let health = |state: &str, reason: Option<&str>, description: Option<&str>| {
        let target = Target {
            id: "10.0.1.5".into(),
            port: Some(8080),
            availability_zone: None,
        };
        member_health(target, state, reason, description)
    };
    let cases = [
        (
            health("initial", Some("Elb.RegistrationInProgress"), None),
            MemberState::Initial,
            "initial (Elb.RegistrationInProgress): still being registered",
        ),
        (
            health("initial", Some("Elb.InitialHealthChecking"), None),
            MemberState::Initial,
            "its first health checks have not passed yet",
        ),
        (
            health(
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
                Some("Health checks failed with these codes: [503]"),
            ),
            MemberState::Unhealthy,
            "outside the target group's matcher (\"Health checks failed with these codes: [503]\")",
        ),
        (
            health("unused", Some("Target.NotInUse"), None),
            MemberState::Unchecked,
            "not checked: its group is not in use",
        ),
        (
            health("draining", Some("Target.DeregistrationInProgress"), None),
            MemberState::Draining,
            "being deregistered: it takes no new requests",
        ),
    ];
    for (member, state, expected) in cases {
        assert_eq!(member.state, state);
        let text = member.detail.unwrap_or_default();
        assert!(text.contains(expected), "{text:?} lacks {expected:?}");
    }
    assert_eq!(health("healthy", None, None).detail, None);
}
