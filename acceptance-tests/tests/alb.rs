//! Tests of the ALB emulator's control plane (`acceptance_tests::alb`) in front of a real moto,
//! driven by the AWS SDK for Rust against the emulator's endpoint, with real test apps on
//! loopback as targets: health from real checks, (id, port) keying, AWS's validation and
//! read-back shape, throttling, and the listener model the data plane routes by.
//!
//! Each test starts an emulator of its own (so settings and counters are its own) in front of
//! the shared moto, and creates its own VPC (EC2 calls go through the emulator untouched),
//! load balancer and target groups ([`acceptance_tests::alb::testenv`]). Every wait is bounded.

use std::time::{Duration, Instant};

use acceptance_tests::alb::dataplane::TARGET_GROUP_HEADER;
use acceptance_tests::alb::testenv::{
    fixed, forward, local, on, path, plain_forward, provider_client, row, with_stickiness,
    with_stickiness_off, Row, TestEnv as Env, HOST,
};
use acceptance_tests::alb::{self, Bucket, Settings, Throttling};
use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::proxy::Fault;
use acceptance_tests::{elb, moto};
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use elbv2::types::{
    Action, ProtocolEnum, QueryStringConditionConfig, QueryStringKeyValuePair, RuleCondition,
    TargetDescription, TargetGroupStickinessConfig,
};

fn enabled() -> bool {
    if std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    eprintln!("skipped: set TF_ACC=1 to run acceptance tests");
    false
}

/// The suite's settings without throttling, so that polling loops are never slowed down.
fn unthrottled() -> Settings {
    Settings {
        throttling: None,
        ..Settings::default()
    }
}

fn code<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    result: Result<impl std::fmt::Debug, SdkError<E, R>>,
) -> (String, String) {
    match result {
        Ok(out) => panic!("expected a refusal, got {out:?}"),
        Err(SdkError::ServiceError(e)) => (
            e.err().code().unwrap_or_default().to_string(),
            e.err().message().unwrap_or_default().to_string(),
        ),
        Err(e) => panic!("expected a service error, got {}", DisplayErrorContext(e)),
    }
}

fn state_is(state: &'static str, reason: &'static str) -> impl Fn(&[Row]) -> bool {
    move |rows| rows.len() == 1 && rows[0].2 == state && rows[0].3 == reason
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_new_target_is_missing_then_registering_then_checking_then_healthy_after_one_pass() {
    if !enabled() {
        return;
    }
    let settings = Settings {
        registration_lag: Duration::from_millis(300),
        // 10 AWS seconds: 500 ms.
        registration_time: Duration::from_secs(10),
        ..unthrottled()
    };
    let env = Env::new("alb-initial", settings).await;
    let tg = env.group("tg", &env.vpc).await;
    env.listener(&env.lb, 80, plain_forward(&tg)).await;
    let app = TestApp::start("v1").await;
    app.set(Behavior::Down);
    let registered = Instant::now();
    env.register(&tg, &[on(&app)]).await;
    assert_eq!(env.health(&tg).await, [], "hidden at first");

    let rows = env.until(&tg, LONG, |rows| !rows.is_empty()).await;
    assert!(registered.elapsed() >= Duration::from_millis(300));
    assert_eq!(rows, [local(&app, "initial", "Elb.RegistrationInProgress")]);
    // Refused connections: one failure is under the unhealthy threshold (2), so initial.
    let checking = state_is("initial", "Elb.InitialHealthChecking");
    env.until(&tg, LONG, checking).await;
    app.set(Behavior::Healthy);
    // With checks at 250 ms a second failure may come first (unhealthy): wait for healthy.
    env.until(&tg, LONG, state_is("healthy", "")).await;
    assert!(app.requests() >= 1);
    let described = env.describe(&tg, None).await;
    let port = app.port().to_string();
    assert_eq!(described[0].health_check_port(), Some(port.as_str()));
}

#[tokio::test]
async fn unhealthy_with_each_reason_then_healthy_after_the_threshold() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-unhealthy", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    env.listener(&env.lb, 80, plain_forward(&tg)).await;
    let failing = TestApp::start("failing").await;
    let slow = TestApp::start("slow").await;
    let down = TestApp::start("down").await;
    failing.set(Behavior::Failing(503));
    // The timeout is 2 s, 100 ms at the default scale.
    slow.set(Behavior::Slow(Duration::from_millis(600)));
    down.set(Behavior::Down);
    // 10.0.0.1 is never contacted: it fails as a timeout.
    let outside = ("10.0.0.1", Some(80));
    env.register(&tg, &[on(&failing), on(&slow), on(&down), outside])
        .await;
    let mut expected = vec![
        row("10.0.0.1", 80, "unhealthy", "Target.Timeout"),
        local(&failing, "unhealthy", "Target.ResponseCodeMismatch"),
        local(&slow, "unhealthy", "Target.Timeout"),
        local(&down, "unhealthy", "Target.FailedHealthChecks"),
    ];
    expected.sort();
    env.until(&tg, LONG, |rows| rows == expected).await;
    let described = env.describe(&tg, Some(on(&failing))).await;
    assert_eq!(
        described[0].target_health().unwrap().description(),
        Some("Health checks failed with these codes: [503]")
    );

    for app in [&failing, &slow, &down] {
        app.set(Behavior::Healthy);
    }
    let recovering = Instant::now();
    let all_healthy = |rows: &[Row]| rows.iter().filter(|r| r.2 == "healthy").count() == 3;
    let rows = env.until(&tg, LONG, all_healthy).await;
    // Three passes in a row at 250 ms intervals: not before the second interval.
    assert!(recovering.elapsed() >= Duration::from_millis(450));
    assert_eq!(rows[0], row("10.0.0.1", 80, "unhealthy", "Target.Timeout"));
}

#[tokio::test]
async fn a_group_no_listener_uses_is_unused_until_a_listener_forwards_to_it() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-unused", unthrottled()).await;
    let blue = env.group("blue", &env.vpc).await;
    let green = env.group("green", &env.vpc).await;
    let listener = env.listener(&env.lb, 80, plain_forward(&blue)).await;
    let app = TestApp::start("green").await;
    env.register(&green, &[on(&app)]).await;
    env.until(&green, LONG, state_is("unused", "Target.NotInUse"))
        .await;
    let described = env.describe(&green, None).await;
    assert_eq!(
        described[0].target_health().unwrap().description(),
        Some("Target group is not configured to receive traffic from the load balancer")
    );
    assert_eq!(app.requests(), 0, "an unused group is not checked");

    // At weight 0 it is in a listener rule, so it is checked.
    let weighted = forward(&[(&blue, Some(100)), (&green, Some(0))]);
    env.modify(&listener, weighted).await;
    assert_eq!(env.health(&green).await[0].2, "initial");
    env.until(&green, LONG, state_is("healthy", "")).await;

    env.modify(&listener, plain_forward(&blue)).await;
    env.until(&green, LONG, state_is("unused", "Target.NotInUse"))
        .await;
}

#[tokio::test]
async fn a_deregistered_target_drains_for_the_delay_then_is_gone() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-draining", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    env.listener(&env.lb, 80, plain_forward(&tg)).await;
    let app = TestApp::start("v1").await;
    env.register(&tg, &[on(&app)]).await;
    env.until(&tg, LONG, state_is("healthy", "")).await;

    // The delay is 10 s: 500 ms.
    let deregistered = Instant::now();
    env.deregister(&tg, &[on(&app)]).await;
    let draining = local(&app, "draining", "Target.DeregistrationInProgress");
    assert_eq!(env.health(&tg).await, [draining]);
    env.until(&tg, LONG, |rows| rows.is_empty()).await;
    assert!(deregistered.elapsed() >= Duration::from_millis(450));

    // Registering a draining target again makes it a new one.
    env.register(&tg, &[on(&app)]).await;
    env.until(&tg, LONG, state_is("healthy", "")).await;
    env.deregister(&tg, &[on(&app)]).await;
    env.register(&tg, &[on(&app)]).await;
    let rows = env.until(&tg, LONG, |rows| !rows.is_empty()).await;
    assert_eq!(rows[0].2, "initial");

    // DeregisterTargets of a target that is not registered succeeds (moto: InvalidTarget).
    env.deregister(&tg, &[("127.0.0.9", Some(1))]).await;
}

#[tokio::test]
async fn targets_are_keyed_by_id_and_port() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-keys", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    let (a, b) = (TestApp::start("a").await, TestApp::start("b").await);
    // Without a port: the group's (80).
    let portless = ("127.0.0.2", None);
    env.register(&tg, &[on(&a), on(&b), portless]).await;
    let rows = env.until(&tg, LONG, |rows| rows.len() == 3).await;
    let mut expected = vec![
        local(&a, "unused", "Target.NotInUse"),
        local(&b, "unused", "Target.NotInUse"),
        row("127.0.0.2", 80, "unused", "Target.NotInUse"),
    ];
    expected.sort();
    assert_eq!(rows, expected);

    env.deregister(&tg, &[on(&a), portless]).await;
    let rows = env.health(&tg).await;
    assert_eq!(rows.iter().filter(|r| r.2 == "draining").count(), 2);
    assert!(rows.contains(&local(&b, "unused", "Target.NotInUse")));

    for port in [0, 65536, 70000] {
        let target = TargetDescription::builder().id(HOST).port(port).build();
        let refused = env
            .elb
            .register_targets()
            .target_group_arn(&tg)
            .targets(target)
            .send()
            .await;
        assert_eq!(code(refused).0, "ValidationError", "port {port}");
    }
    let missing = tg.replace(&env.name, "gone");
    let refused = env
        .elb
        .describe_target_health()
        .target_group_arn(&missing)
        .send()
        .await;
    assert_eq!(code(refused).0, "TargetGroupNotFound");
    let codes: Vec<String> = env
        .emulator
        .refusals()
        .into_iter()
        .map(|r| r.code)
        .collect();
    assert_eq!(codes[..3], ["ValidationError"; 3]);
    assert_eq!(codes[3..], ["TargetGroupNotFound"]);
}

#[tokio::test]
async fn forward_actions_are_validated_as_aws_does() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-validate", unthrottled()).await;
    let mut groups = Vec::new();
    for i in 0..6 {
        groups.push(env.group(&format!("g{i}"), &env.vpc).await);
    }
    let g: Vec<&str> = groups.iter().map(String::as_str).collect();
    let start = forward(&[(g[0], Some(100)), (g[1], Some(0))]);
    let listener = env.listener(&env.lb, 80, start.clone()).await;
    // Another VPC's group, and a group another load balancer's listener uses.
    let other_vpc = env.ec2_vpc().await;
    let foreign = env.group("foreign", &other_vpc).await;
    let other_lb = env.load_balancer("lb2", &env.vpc).await;
    let taken = env.group("taken", &env.vpc).await;
    env.listener(&other_lb, 80, plain_forward(&taken)).await;

    let weight = "The weight for each target group must be between 0 and 999, inclusive";
    let sticky = |seconds| {
        let stickiness = TargetGroupStickinessConfig::builder()
            .enabled(true)
            .duration_seconds(seconds)
            .build();
        with_stickiness(forward(&[(g[0], Some(1)), (g[1], Some(1))]), stickiness)
    };
    let mut both = plain_forward(g[0]);
    both.forward_config = forward(&[(g[1], Some(1))]).forward_config;
    let six: Vec<(&str, Option<i32>)> = g.iter().map(|arn| (*arn, Some(1))).collect();
    let gone = g[1].replace(&env.name, "gone");
    let pair = |a: &str, wa, b: &str, wb| forward(&[(a, wa), (b, wb)]);
    let invalid = "ValidationError";
    let cases: Vec<(Action, &str, Option<&str>)> = vec![
        (pair(g[0], Some(1000), g[1], Some(0)), invalid, Some(weight)),
        (pair(g[0], Some(-5), g[1], Some(5)), invalid, Some(weight)),
        (pair(g[0], Some(50), g[1], None), invalid, Some(weight)),
        (forward(&six), invalid, None),
        (pair(g[0], Some(0), g[1], Some(0)), invalid, None),
        (pair(g[0], Some(1), g[0], Some(2)), invalid, None),
        (sticky(0), invalid, None),
        (sticky(604_801), invalid, None),
        (both, invalid, None),
        (
            pair(g[0], Some(1), &gone, Some(1)),
            "TargetGroupNotFound",
            None,
        ),
        (
            pair(g[0], Some(1), &foreign, Some(1)),
            "InvalidConfigurationRequest",
            None,
        ),
        (
            pair(g[0], Some(1), &taken, Some(1)),
            "TargetGroupAssociationLimit",
            None,
        ),
    ];
    for (action, want, message) in &cases {
        let refused = env
            .elb
            .modify_listener()
            .listener_arn(&listener)
            .default_actions(action.clone())
            .send()
            .await;
        let (got, text) = code(refused);
        assert_eq!(&got, want, "{action:?}: {text}");
        if let Some(message) = message {
            assert_eq!(&text, message);
        }
    }
    // None of them reached moto.
    let out = env
        .elb
        .describe_listeners()
        .listener_arns(&listener)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.listeners()[0].default_actions(),
        [with_stickiness_off(start)]
    );
    // Accepted: five groups, a stickiness of a week.
    env.modify(&listener, forward(&six[..5])).await;
    env.modify(&listener, sticky(604_800)).await;

    // The same checks on CreateListener, CreateRule and ModifyRule.
    let create = env
        .elb
        .create_listener()
        .load_balancer_arn(&env.lb)
        .protocol(ProtocolEnum::Http)
        .port(81)
        .default_actions(forward(&[(g[0], Some(1000))]))
        .send()
        .await;
    assert_eq!(code(create).0, invalid);
    let rule = env.rule(&listener, 10, path("/api/*"), plain_forward(&taken));
    assert_eq!(code(rule.await).0, "TargetGroupAssociationLimit");
    let rule = env.rule(&listener, 10, path("/api/*"), plain_forward(g[2]));
    let rule = rule.await.unwrap();
    let modify = env
        .elb
        .modify_rule()
        .rule_arn(rule)
        .actions(forward(&[(&foreign, None)]))
        .send()
        .await;
    assert_eq!(code(modify).0, "InvalidConfigurationRequest");

    let refusals = env.emulator.refusals();
    assert_eq!(refusals.len(), cases.len() + 3);
    assert!(refusals.iter().all(|r| !r.from_provider));
    assert_eq!(refusals[0].action, "ModifyListener");
    assert_eq!(refusals[cases.len()].action, "CreateListener");

    // A provider's request is marked as such, and seen process-wide.
    let provider = provider_client(&env.emulator.endpoint());
    let refused = provider
        .modify_listener()
        .listener_arn(&listener)
        .default_actions(pair(g[0], Some(1), g[1], None))
        .send()
        .await;
    assert_eq!(code(refused).0, invalid);
    assert!(env.emulator.refusals().last().unwrap().from_provider);
    let process = alb::provider_refusals();
    assert!(process
        .iter()
        .any(|r| r.message == weight && r.from_provider));
}

#[tokio::test]
async fn single_group_forwards_read_back_as_on_aws_and_load_balancer_arns_follow_the_listeners() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-shape", unthrottled()).await;
    let blue = env.group("blue", &env.vpc).await;
    let green = env.group("green", &env.vpc).await;
    let listener = env.listener(&env.lb, 80, plain_forward(&blue)).await;
    // What AWS answers for a plain forward: both forms, weight 1.
    let single = |arn: &str| {
        let mut action = plain_forward(arn);
        action.forward_config = forward(&[(arn, Some(1))]).forward_config;
        with_stickiness_off(action)
    };
    let read = || async {
        let out = env
            .elb
            .describe_listeners()
            .listener_arns(&listener)
            .send()
            .await
            .unwrap();
        out.listeners()[0].default_actions().to_vec()
    };
    assert_eq!(read().await, [single(&blue)]);
    env.modify(&listener, forward(&[(&green, None)])).await;
    assert_eq!(read().await, [single(&green)]);

    let rule = env.rule(&listener, 5, path("/b/*"), plain_forward(&blue));
    let rule = rule.await.unwrap();
    let rules = env
        .elb
        .describe_rules()
        .rule_arns(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(rules.rules()[0].actions(), [single(&blue)]);

    assert_eq!(env.users(&blue).await, [env.lb.as_str()]);
    assert_eq!(env.users(&green).await, [env.lb.as_str()]);
    env.elb.delete_rule().rule_arn(&rule).send().await.unwrap();
    // moto would still list the load balancer.
    assert_eq!(env.users(&blue).await, Vec::<String>::new());
    let by_lb = env
        .elb
        .describe_target_groups()
        .load_balancer_arn(&env.lb)
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = by_lb
        .target_groups()
        .iter()
        .filter_map(|g| g.target_group_arn())
        .collect();
    assert_eq!(arns, [green.as_str()]);

    env.modify(&listener, fixed("404")).await;
    assert_eq!(env.users(&green).await, Vec::<String>::new());
}

#[tokio::test]
async fn throttling_per_family_as_aws_does_it() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-throttle", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    let small = Bucket {
        burst: 5,
        per_second: 0.5,
    };
    let sizes = Throttling {
        describe: small,
        modify: small,
        registration: small,
    };
    env.emulator.set_throttling(Some(sizes));
    let describe = || {
        env.elb
            .describe_target_groups()
            .target_group_arns(&tg)
            .send()
    };
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(describe().await.map(|_| ()));
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 5);
    let (throttled, message) = code(outcomes.pop().unwrap());
    assert_eq!(
        (throttled.as_str(), message.as_str()),
        ("Throttling", "Rate exceeded")
    );
    assert_eq!(env.emulator.throttled().total, 3);
    assert_eq!(env.emulator.throttled().from_provider, 0);

    // Other families have buckets of their own; EC2 is never throttled.
    env.register(&tg, &[(HOST, Some(1))]).await;
    env.ec2_vpc().await;
    // The bucket refills at its rate: one token after 2 s (the next not before 4 s).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    describe().await.unwrap();
    assert!(describe().await.is_err());

    let provider = provider_client(&env.emulator.endpoint());
    let refused = provider
        .describe_target_groups()
        .target_group_arns(&tg)
        .send();
    assert_eq!(code(refused.await).0, "Throttling");
    assert_eq!(env.emulator.throttled().from_provider, 1);
    // The fault proxy counts every request, throttled or not.
    assert_eq!(env.emulator.proxy().calls_of("DescribeTargetGroups"), 11);

    env.emulator.set_throttling(None);
    for _ in 0..10 {
        describe().await.unwrap();
    }
}

#[tokio::test]
async fn faults_apply_in_front_of_the_emulator() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-faults", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    let proxy = env.emulator.proxy();
    proxy.set(Fault::Throttle { times: 1 });
    let throttled = env
        .elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send();
    assert_eq!(code(throttled.await).0, "Throttling");
    proxy.set(Fault::Status {
        code: 500,
        times: 1,
    });
    let target = TargetDescription::builder().id(HOST).port(1).build();
    let failed = env
        .elb
        .register_targets()
        .target_group_arn(&tg)
        .targets(target)
        .send();
    assert!(failed.await.is_err());
    // The faulted RegisterTargets never reached the emulator.
    assert_eq!(env.health(&tg).await, []);
    assert_eq!(proxy.calls_of("DescribeTargetHealth"), 2);
    // An injected throttle is the proxy's, not the emulator's.
    assert_eq!(env.emulator.throttled().total, 0);
}

#[tokio::test]
async fn the_data_plane_routes_by_rules_and_weights_and_fails_open() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-routes", unthrottled()).await;
    let blue = env.group("blue", &env.vpc).await;
    let green = env.group("green", &env.vpc).await;
    let start = forward(&[(&blue, Some(100)), (&green, Some(0))]);
    let listener = env.listener(&env.lb, 80, start).await;
    let blue_app = TestApp::start("blue").await;
    let green_app = TestApp::start("green").await;
    env.register(&blue, &[on(&blue_app)]).await;
    env.register(&green, &[on(&green_app)]).await;
    env.until(&blue, LONG, state_is("healthy", "")).await;
    env.until(&green, LONG, state_is("healthy", "")).await;
    let url = env.emulator.listener_url(&listener).expect("a data plane");
    let get = |path: &'static str| {
        let request = env.http.get(format!("{url}{path}"));
        async move {
            let response = request.send().await.unwrap();
            let group = response.headers().get(TARGET_GROUP_HEADER);
            let group = group.map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), group)
        }
    };
    for _ in 0..5 {
        assert_eq!(get("/").await, (200, Some(blue.clone())));
    }
    let flipped = forward(&[(&blue, Some(0)), (&green, Some(100))]);
    env.modify(&listener, flipped).await;
    // The data plane follows 50 ms after the write.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        assert_eq!(get("/").await, (200, Some(green.clone())));
    }
    assert_eq!(env.emulator.served(&blue), 5);
    assert_eq!(env.emulator.served(&green), 5);

    // Rules first, by priority; a condition the emulator cannot judge never matches.
    let any_query = QueryStringConditionConfig::builder()
        .values(QueryStringKeyValuePair::builder().value("*").build())
        .build();
    let query = RuleCondition::builder()
        .field("query-string")
        .query_string_config(any_query)
        .build();
    for (priority, condition, action) in [
        (20, path("/api/*"), plain_forward(&blue)),
        (10, path("/api/*"), fixed("418")),
        (5, query, fixed("500")),
    ] {
        let created = env.rule(&listener, priority, condition, action).await;
        created.unwrap_or_else(|e| panic!("CreateRule: {}", DisplayErrorContext(e)));
    }
    assert_eq!(get("/api/x").await, (418, None));
    assert_eq!(get("/other").await.1, Some(green.clone()));

    // A group whose only target is unhealthy still gets its share (fail open).
    green_app.set(Behavior::Failing(503));
    let unhealthy = state_is("unhealthy", "Target.ResponseCodeMismatch");
    env.until(&green, LONG, unhealthy).await;
    assert_eq!(get("/").await, (503, Some(green.clone())));

    // A draining target gets no new request; without targets the listener answers 503.
    env.deregister(&green, &[on(&green_app)]).await;
    assert_eq!(get("/").await, (503, None));
    assert_eq!(env.emulator.in_flight(&green), 0);
}

#[tokio::test]
async fn a_listener_made_in_moto_directly_is_met_and_https_checks_take_any_certificate() {
    if !enabled() {
        return;
    }
    let env = Env::new("alb-https", unthrottled()).await;
    let tg = env.group("tg", &env.vpc).await;
    env.elb
        .modify_target_group()
        .target_group_arn(&tg)
        .health_check_protocol(ProtocolEnum::Https)
        .send()
        .await
        .unwrap();
    // Behind the emulator's back: it meets the listener through the group's LoadBalancerArns.
    let listener = elb::client(&moto::shared().endpoint())
        .create_listener()
        .load_balancer_arn(&env.lb)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(plain_forward(&tg))
        .send()
        .await
        .unwrap();
    let listener = listener.listeners()[0].listener_arn().unwrap().to_string();
    // A certificate from a CA of its own, which ALB does not check.
    let (app, _ca) = TestApp::start_tls("tls").await;
    env.register(&tg, &[on(&app)]).await;
    env.until(&tg, LONG, state_is("healthy", "")).await;
    assert!(app.requests() >= 1);
    assert!(env.emulator.listener_url(&listener).is_some());
}
