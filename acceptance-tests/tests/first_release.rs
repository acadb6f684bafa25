//! The first release of `immutable_bluegreen_deployment`, from every listener a user may
//! start with: a forward to one target group (the usual `aws_lb_listener`), a fixed
//! response, or a forward to both colours. The emulated load balancer health-checks only
//! target groups that a listener action uses, so each case passes only if the provider
//! has the release's group checked before its gate, without routing a request to it.

use acceptance_tests::alb;
use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::checks::StateCheck;
use acceptance_tests::elb::{BlueGreenFixture, Start};
use acceptance_tests::hcl;
use acceptance_tests::terraform::{clis, Needs, On};
use acceptance_tests::workspace::{Step, Workspace};
use aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum;
use serde_json::json;

const DEPLOYMENT: &str = "immutable_bluegreen_deployment.app";

fn config(fx: &BlueGreenFixture, release: &str, app: &TestApp) -> String {
    hcl::provider(&fx.endpoint, "")
        + &hcl::fleet(
            fx,
            "app",
            release,
            app.port(),
            2,
            "  timeouts {\n    create = \"15s\"\n  }\n",
        )
}

/// Creates the deployment on a listener that starts as `start` and checks where the
/// release went, that the load balancer calls its target healthy, and that the rule the
/// provider used to have it checked is gone.
async fn first_release_from(start: Start, live_app: bool, lands_on: &str) {
    let test = format!("first_release_{start:?}");
    for tf in clis(&test, Needs::Any, On::NewestAndOldest) {
        let fx =
            BlueGreenFixture::create_with(alb::shared(), &format!("first-{start:?}"), start).await;
        let (v0, v1) = (TestApp::start("v0").await, TestApp::start("v1").await);
        if live_app {
            fx.register(&fx.blue_tg_arn, &[("127.0.0.1", v0.port() as i32)])
                .await;
        }
        let ws = Workspace::new(&tf, &format!("first-{start:?}"));
        ws.step(Step {
            config: config(&fx, "v1", &v1),
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!(lands_on)),
                StateCheck::Equals(DEPLOYMENT, "active_release", json!("v1")),
            ],
            ..Step::default()
        })
        .await;
        let (tg, other) = if lands_on == "blue" {
            (&fx.blue_tg_arn, "green")
        } else {
            (&fx.green_tg_arn, "blue")
        };
        let weights = fx.weights(&fx.listener_arn).await;
        assert_eq!(weights.get(lands_on), Some(&100), "{weights:?}");
        assert_eq!(weights.get(other), Some(&0), "{weights:?}");
        let targets = fx.targets(tg).await;
        assert_eq!(
            targets,
            vec![("127.0.0.1".to_string(), v1.port() as i32, "healthy".into())],
            "the load balancer checked the release's group"
        );
        assert!(
            fx.rules(&fx.listener_arn).await.is_empty(),
            "the rule that had the group checked is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_release_from_a_forward_to_one_group() {
    first_release_from(Start::BlueOnly, true, "green").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_release_from_a_fixed_response() {
    first_release_from(Start::FixedResponse, false, "blue").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_release_from_a_forward_to_both_colours() {
    first_release_from(Start::BothColours, false, "green").await;
}

/// A first release that fails its gate leaves the fixed response in place and no rule
/// behind, and the release's group never served a request.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_first_release_leaves_the_fixed_response() {
    for tf in clis("first_release_failed", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create_with(alb::shared(), "first-failed", Start::FixedResponse)
            .await;
        let v1 = TestApp::start("v1").await;
        v1.set(Behavior::Failing(500));
        let ws = Workspace::new(&tf, "first-failed");
        ws.step(Step {
            config: config(&fx, "v1", &v1).replace("\"15s\"", "\"3s\""),
            expect_error: Some("(?s)not deployed to blue.*raffic was not moved"),
            ..Step::default()
        })
        .await;
        let actions = fx.default_actions(&fx.listener_arn).await;
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].r#type(), Some(&ActionTypeEnum::FixedResponse));
        assert!(fx.rules(&fx.listener_arn).await.is_empty());
        assert_eq!(alb::shared().served(&fx.blue_tg_arn), 0);
        let state = ws.state().await;
        assert!(
            acceptance_tests::checks::resource_values(&state, DEPLOYMENT).is_none(),
            "a failed create leaves nothing in state"
        );
    }
}

/// A first release from a fixed response whose app fails in its bake, after it took all
/// the traffic: the listener answers the fixed response again (not a forward to the
/// empty colour, which would fail every request), and no rule is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_failing_in_its_bake_puts_the_fixed_response_back() {
    for tf in clis("first_release_bake_failed", Needs::Any, On::Newest) {
        let fx =
            BlueGreenFixture::create_with(alb::shared(), "first-bake", Start::FixedResponse).await;
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "first-bake");
        let hcl = config(&fx, "v1", &v1).replace(
            "  timeouts {",
            "  traffic {\n    bake_time = \"10s\"\n  }\n  timeouts {",
        );
        ws.write_config(&hcl);
        let child = ws.spawn(&["apply", "-no-color", "-input=false", "-auto-approve"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while fx.weights(&fx.listener_arn).await.get("blue") != Some(&100) {
            assert!(
                std::time::Instant::now() < deadline,
                "v1 never took the traffic"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        v1.set(Behavior::Failing(500));
        let out = child.wait_with_output().await.unwrap();
        let text = acceptance_tests::traffic::flat(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("routes as before the release again: a fixed response (404)"),
            "{text}"
        );
        let actions = fx.default_actions(&fx.listener_arn).await;
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0].r#type(), Some(&ActionTypeEnum::FixedResponse));
        assert!(fx.rules(&fx.listener_arn).await.is_empty());
    }
}

/// A listener adopted as it is, by import: forwarding to one group (read back as weight 1)
/// or at 999/0. Its weights read as 100/0, so no plan changes `traffic_weights`, the apply
/// of the adopted settings ends in no "inconsistent result", and the next plan is empty.
#[tokio::test(flavor = "multi_thread")]
async fn an_imported_listener_at_weight_1_or_999_plans_no_change() {
    for tf in clis(
        "first_release_imported_weights",
        Needs::Any,
        On::NewestAndOldest,
    ) {
        for (name, weights) in [("one-group", None), ("w999", Some((999, 0)))] {
            let fx = BlueGreenFixture::create_with(alb::shared(), name, Start::BlueOnly).await;
            let v1 = TestApp::start("v1").await;
            fx.register(&fx.blue_tg_arn, &[("127.0.0.1", v1.port() as i32)])
                .await;
            fx.add_tags(
                &fx.blue_tg_arn,
                &[("immutable:release", "v1"), ("immutable:generation", "1")],
            )
            .await;
            if let Some((blue, green)) = weights {
                fx.set_weights(&fx.listener_arn, blue, green).await;
            }
            let ws = Workspace::new(&tf, name);
            ws.write_config(&config(&fx, "v1", &v1));
            let id = format!("{},{},{}", fx.listener_arn, fx.blue_tg_arn, fx.green_tg_arn);
            let import = ws
                .terraform(
                    &["import", "-no-color", "-input=false", DEPLOYMENT, &id],
                    &[],
                )
                .await;
            assert!(import.success, "{}", import.text());
            // The settings the import cannot read (targets, health_check, timeouts) are
            // applied without moving traffic; then nothing is left to change.
            ws.step(Step {
                config: config(&fx, "v1", &v1),
                ..Step::default()
            })
            .await;
            ws.step(Step {
                config: config(&fx, "v1", &v1),
                plan_only: true,
                ..Step::default()
            })
            .await;
            let state = ws.state().await;
            let values = acceptance_tests::checks::resource_values(&state, DEPLOYMENT).unwrap();
            assert_eq!(
                values["traffic_weights"],
                json!({"blue": 100, "green": 0}),
                "{name}"
            );
        }
    }
}

/// Target groups the listener cannot forward to are refused before anything is written,
/// with an error on the attribute that names them, and the load balancer never sees a
/// request it would refuse (the harness fails any command that drew a refusal).
#[tokio::test(flavor = "multi_thread")]
async fn target_groups_the_listener_cannot_use_are_refused_up_front() {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
    for tf in clis("first_release_preflight", Needs::Any, On::Each) {
        let fx = BlueGreenFixture::create(alb::shared(), "preflight").await;
        let elsewhere = BlueGreenFixture::create(alb::shared(), "elsewhere").await;
        let tcp = fx
            .client
            .create_target_group()
            .name(format!("{}-tcp", fx.name))
            .protocol(ProtocolEnum::Tcp)
            .port(80)
            .vpc_id(&fx.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("CreateTargetGroup TCP");
        let tcp = tcp.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "preflight");
        for (green, expected) in [
            (
                &elsewhere.green_tg_arn,
                "(?s)green_target_group_arn.*is in VPC vpc-",
            ),
            (&tcp, "(?s)green_target_group_arn.*uses protocol TCP"),
        ] {
            let hcl = config(&fx, "v1", &v1).replace(&fx.green_tg_arn, green);
            ws.step(Step {
                config: hcl,
                expect_error: Some(expected),
                ..Step::default()
            })
            .await;
            assert!(fx.targets(green).await.is_empty(), "nothing registered");
            assert!(
                fx.rules(&fx.listener_arn).await.is_empty(),
                "no rule written"
            );
            assert_eq!(
                fx.weights(&fx.listener_arn).await,
                [("blue".to_string(), 100), ("green".to_string(), 0)].into(),
                "the listener is untouched"
            );
        }
    }
}
