//! Faults beyond a single failed release: a killed provider, a target group deleted by
//! hand, fifty deployments in one apply under throttling, and secrets that must never
//! leave their sensitive attribute. After each, the listener forwards all traffic to a
//! colour whose app is healthy, and the next plan shows what is pending.

use std::time::{Duration, Instant};

use acceptance_tests::alb::{self, Throttling};
use acceptance_tests::app::TestApp;
use acceptance_tests::checks::{resource_values, StateCheck};
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::hcl;
use acceptance_tests::proxy::{Fault, FaultProxy};
use acceptance_tests::terraform::{clis, Needs, On};
use acceptance_tests::traffic::{self, fleet_config, v1_live, Traffic, APPLY, TAIL};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

fn provider(endpoint: &str) -> String {
    hcl::provider(endpoint, "")
}

fn deployment(
    name: &str,
    fx: &BlueGreenFixture,
    release: &str,
    app: &TestApp,
    extra: &str,
) -> String {
    hcl::fleet(fx, name, release, app.port(), 1, extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_killed_mid_shift_is_converged_by_the_next_apply() {
    for tf in clis("faults_sigkill", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "sigkill").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "sigkill");
        let linear = "  traffic {\n    strategy      = \"linear\"\n    step_percent  = 50\n    step_interval = \"30s\"\n  }\n";
        let config =
            |release, app| provider(&fx.endpoint) + &deployment("app", &fx, release, app, linear);
        ws.step(Step {
            config: config("v1", &v1),
            ..Step::default()
        })
        .await;
        ws.write_config(&config("v2", &v2));
        let child = ws.spawn(&["apply", "-no-color", "-input=false", "-auto-approve"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while fx.weights(&fx.listener_arn).await.get("blue") != Some(&50) {
            assert!(Instant::now() < deadline, "the shift never reached 50%");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // SIGKILL this apply's provider, as the OOM killer would: the one in Terraform's
        // process group (other tests run providers of their own).
        let group = child.id().expect("terraform is running").to_string();
        let killed = std::process::Command::new("pkill")
            .args(["-KILL", "-g", &group, "-f", "terraform-provider-immutable"])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("plugin") || text.contains("provider"),
            "Terraform reports the crash: {text}"
        );
        // The next apply finishes the release.
        ws.step(Step {
            config: config("v2", &v2).replace("30s", "1s"),
            state_checks: vec![StateCheck::Equals(
                "immutable_bluegreen_deployment.app",
                "active_release",
                json!("v2"),
            )],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await.get("blue"), Some(&100));
    }
}

/// Terraform SIGKILLed (the OOM killer, a cancelled CI job) while its release holds half
/// the traffic, and while it bakes; the provider sent SIGTERM or SIGHUP while it bakes:
/// the provider backs out as Ctrl-C does, all traffic back on v1 within 10 s, then exits
/// within 10 s. Under load, no request fails.
#[tokio::test(flavor = "multi_thread")]
async fn terraform_killed_mid_shift_or_mid_bake_is_backed_out_and_the_provider_exits() {
    for tf in clis("faults_terraform_killed", Needs::Any, On::Newest) {
        let mid_shift = "  traffic {\n    strategy      = \"linear\"\n    step_percent  = 50\n    step_interval = \"60s\"\n  }\n";
        let mid_bake = "  traffic {\n    bake_time = \"60s\"\n  }\n";
        for (phase, traffic, reached, how) in [
            ("shift", mid_shift, 50, Death::TerraformKilled),
            ("bake", mid_bake, 100, Death::TerraformKilled),
            ("bake", mid_bake, 100, Death::ProviderSignalled("TERM")),
            ("bake", mid_bake, 100, Death::ProviderSignalled("HUP")),
        ] {
            let name = format!("tf-killed-{phase}");
            let (fx, ws, v1) = v1_live(&tf, &name).await;
            let v2 = TestApp::start("v2").await;
            ws.write_config(&fleet_config(&fx, "v2", &v2, traffic));
            let load = Traffic::start(&fx, Duration::from_secs(60), None).await;
            let mut child = ws.spawn(APPLY);
            let deadline = Instant::now() + Duration::from_secs(30);
            while fx.weights(&fx.listener_arn).await.get("blue") != Some(&reached) {
                assert!(
                    Instant::now() < deadline,
                    "{phase}: blue never reached {reached}%"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let group = child.id().expect("terraform is running").to_string();
            match how {
                Death::TerraformKilled => child.start_kill().expect("SIGKILL terraform"),
                Death::ProviderSignalled(signal) => {
                    let sent = std::process::Command::new("pkill")
                        .args([
                            &format!("-{signal}"),
                            "-g",
                            &group,
                            "-f",
                            "terraform-provider-immutable",
                        ])
                        .status()
                        .unwrap();
                    assert!(sent.success(), "SIG{signal} sent to the provider");
                }
            }
            let phase = format!("{how:?} mid-{phase}");
            let killed = Instant::now();
            while fx.weights(&fx.listener_arn).await != traffic::weights(0, 100) {
                assert!(
                    killed.elapsed() < Duration::from_secs(10),
                    "{phase}: traffic not back on v1 10 s after Terraform died: {:?}",
                    fx.weights(&fx.listener_arn).await
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let backed_out = killed.elapsed();
            while provider_running(&group) {
                assert!(
                    killed.elapsed() < Duration::from_secs(10),
                    "{phase}: the provider still runs 10 s after Terraform died"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let exited = killed.elapsed();
            let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                .await
                .expect("terraform ends once its provider is gone")
                .unwrap();
            assert!(
                !out.status.success(),
                "{phase}: the apply is not reported done"
            );
            let seen = load.finish(TAIL).await;
            seen.assert_none_failed();
            println!("{phase}: traffic back on v1 after {backed_out:.1?}, provider gone after {exited:.1?}");
            seen.print_line(
                &phase.replace(['(', ')', '"', ' '], "-"),
                "faults::terraform_killed_mid_shift_or_mid_bake_is_backed_out_and_the_provider_exits",
            );
            assert!(
                fx.rules(&fx.listener_arn).await.is_empty(),
                "{phase}: no warm-up rule left"
            );
            drop((v1, v2));
        }
    }
}

/// How the apply's processes die.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// Terraform SIGKILLed: nothing tells the provider, which finds its parent gone.
    TerraformKilled,
    /// The provider sent this signal (a service manager, a closed terminal).
    ProviderSignalled(&'static str),
}

/// Whether a provider process of this one runs in the process group.
fn provider_running(group: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-g", group, "-f", "terraform-provider-immutable"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_target_group_deleted_by_hand_fails_the_next_release_before_traffic_moves() {
    for tf in clis("faults_deleted_tg", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "deltg").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "deltg");
        let config =
            |release, app| provider(&fx.endpoint) + &deployment("app", &fx, release, app, "");
        ws.step(Step {
            config: config("v1", &v1),
            ..Step::default()
        })
        .await;
        // AWS refuses to delete a target group a listener forwards to, even at weight 0:
        // someone has to take blue off the listeners first.
        fx.client
            .modify_listener()
            .listener_arn(&fx.listener_arn)
            .default_actions(
                aws_sdk_elasticloadbalancingv2::types::Action::builder()
                    .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                    .target_group_arn(&fx.green_tg_arn)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        fx.delete_listener(&fx.test_listener_arn).await;
        fx.delete_target_group(&fx.blue_tg_arn).await;
        ws.step(Step {
            config: config("v2", &v2),
            expect_error: Some(
                "(?s)blue_target_group_arn.*target group .* does not exist.*traffic was not moved",
            ),
            ..Step::default()
        })
        .await;
        assert_eq!(
            fx.weights(&fx.listener_arn).await.get("green"),
            Some(&1),
            "green keeps all traffic"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_deployments_in_one_apply_survive_throttling() {
    const N: usize = 50;
    for tf in clis("faults_fifty", Needs::Any, On::Newest) {
        let app = TestApp::start("v1").await;
        // The fixtures' own hundreds of writes would take minutes at AWS's pace: this test
        // process's emulator throttles only the apply.
        alb::shared().set_throttling(None);
        let mut fixtures = Vec::new();
        for i in 0..N {
            fixtures.push(BlueGreenFixture::create(alb::shared(), &format!("fifty{i}")).await);
        }
        alb::shared().set_throttling(Some(Throttling::default()));
        let proxy = FaultProxy::start(&alb::shared().endpoint());
        let mut config = provider(&proxy.endpoint());
        for (i, fx) in fixtures.iter().enumerate() {
            config += &deployment(
                &format!("d{i}"),
                fx,
                "v1",
                &app,
                "  timeouts {\n    create = \"2m\"\n  }\n",
            );
        }
        let ws = Workspace::new(&tf, "fifty");
        proxy.set(Fault::Throttle { times: 40 });
        let started = Instant::now();
        ws.write_config(&config);
        let out = ws
            .terraform(
                &[
                    "apply",
                    "-no-color",
                    "-input=false",
                    "-auto-approve",
                    "-parallelism=10",
                ],
                &[],
            )
            .await;
        assert!(out.success, "{}", out.text());
        // Each deployment's own time is bounded by its 2m timeout (an apply that ran past it
        // would have failed); the whole apply, five waves of ten, within 3 minutes.
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            proxy.fault() == Fault::Pass,
            "the throttling burst was used up"
        );
        for fx in &fixtures {
            assert_eq!(fx.weights(&fx.listener_arn).await.get("green"), Some(&100));
        }
    }
}

/// Each paced deployment's HTTP gate: 21 passing checks 1 s apart.
const GATE: Duration = Duration::from_secs(20);

/// A workspace of `n` deployments on fixtures of their own, each gating for [`GATE`], planned
/// with `-parallelism`; the fixtures are made before throttling is switched on, since their
/// own writes would take minutes at AWS's pace.
async fn paced_pipeline(
    tf: &acceptance_tests::terraform::Terraform,
    name: &str,
    n: usize,
    parallelism: usize,
    app: &TestApp,
) -> (Workspace, Vec<BlueGreenFixture>) {
    let mut fixtures = Vec::new();
    for i in 0..n {
        fixtures.push(BlueGreenFixture::create(alb::shared(), &format!("{name}{i}")).await);
    }
    let mut config = provider(&alb::shared().endpoint());
    for (i, fx) in fixtures.iter().enumerate() {
        config += &deployment(&format!("d{i}"), fx, "v1", app, "").replace(
            "healthy_threshold = 1\n    interval          = \"200ms\"",
            "healthy_threshold = 21\n    interval          = \"1s\"",
        );
    }
    let ws = Workspace::new(tf, name);
    ws.write_config(&config);
    let plan = ws
        .terraform(
            &[
                "plan",
                "-no-color",
                "-input=false",
                &format!("-parallelism={parallelism}"),
                "-out=tfplan",
            ],
            &[],
        )
        .await;
    assert!(plan.success, "{}", plan.text());
    (ws, fixtures)
}

/// Applies a [`paced_pipeline`]'s plan: it succeeds, and no `Throttling` reaches the user.
/// Returns how long the apply took.
async fn apply_paced(ws: &Workspace, parallelism: usize) -> Duration {
    let parallelism = format!("-parallelism={parallelism}");
    let started = Instant::now();
    let apply = ws
        .terraform(
            &["apply", "-no-color", "-input=false", &parallelism, "tfplan"],
            &[],
        )
        .await;
    let took = started.elapsed();
    let text = apply.text();
    assert!(apply.success, "{text}");
    assert!(
        !text.contains("Throttling") && !text.contains("Rate exceeded"),
        "AWS's throttling reached the user: {text}"
    );
    took
}

/// Every deployment went live. Read with throttling off: the test's own reads are not the
/// provider's to pace.
async fn assert_all_live(fixtures: &[BlueGreenFixture]) {
    alb::shared().set_throttling(None);
    for fx in fixtures {
        assert_eq!(fx.weights(&fx.listener_arn).await.get("green"), Some(&100));
    }
}

/// The provider keeps inside AWS's default API buckets on its own: fifty deployments gating
/// ten at a time draw no `Throttling` answer, and the apply takes at most 1.5 times the
/// gates themselves (1.16 times before the lease; its two mutating calls per release and
/// the fences' reads made it 1.32 to 1.44).
#[tokio::test(flavor = "multi_thread")]
async fn fifty_deployments_pace_their_calls_inside_the_aws_buckets() {
    const N: usize = 50;
    const PARALLELISM: usize = 10;
    let Some(tf) = clis("faults_pacing", Needs::Any, On::Newest)
        .into_iter()
        .next()
    else {
        return;
    };
    let app = TestApp::start("v1").await;
    alb::shared().set_throttling(None);
    let (ws, fixtures) = paced_pipeline(&tf, "pace", N, PARALLELISM, &app).await;
    alb::shared().set_throttling(Some(Throttling::default()));
    let took = apply_paced(&ws, PARALLELISM).await;
    let throttled = alb::shared().throttled();
    let gates_alone = GATE * (N / PARALLELISM) as u32;
    eprintln!(
        "pacing: {N} deployments, -parallelism={PARALLELISM}: apply {took:?}, gates alone {gates_alone:?} ({:.2}x), provider calls throttled: {}",
        took.as_secs_f64() / gates_alone.as_secs_f64(),
        throttled.from_provider
    );
    assert_eq!(
        throttled.from_provider, 0,
        "the provider was throttled: {throttled:?}"
    );
    assert!(
        took.as_secs_f64() <= gates_alone.as_secs_f64() * 1.5,
        "the apply took {took:?}, more than 1.5 times the {gates_alone:?} its gates need"
    );
    assert_all_live(&fixtures).await;
}

/// AWS's buckets are the account's, not the process's: four pipelines (four states, four
/// provider processes) applying 25 deployments each at once against one account all
/// succeed, no `Throttling` reaches a user, and the slowest takes at most 2.3 times what
/// its gates alone need: 100 releases of six mutating calls each (record, warm-up rule and
/// its removal, the cut-over, the lease and its return) need 200 s of an account's bucket
/// of other writes (3 a second), whatever the pacing (docs/benchmarks.md, section 8).
/// Their calls may be throttled on the way (each process learns the account's pace from
/// those answers); the SDK retries them.
#[tokio::test(flavor = "multi_thread")]
async fn four_pipelines_in_one_account_share_its_buckets() {
    const PIPELINES: usize = 4;
    const N: usize = 25;
    const PARALLELISM: usize = 5;
    let Some(tf) = clis("faults_pipelines", Needs::Any, On::Newest)
        .into_iter()
        .next()
    else {
        return;
    };
    let app = TestApp::start("v1").await;
    alb::shared().set_throttling(None);
    let mut pipelines = Vec::new();
    for p in 0..PIPELINES {
        pipelines.push(paced_pipeline(&tf, &format!("pipe{p}x"), N, PARALLELISM, &app).await);
    }
    alb::shared().set_throttling(Some(Throttling::default()));
    let [(a, _), (b, _), (c, _), (d, _)] = &pipelines[..] else {
        unreachable!("{PIPELINES} pipelines")
    };
    let (a, b, c, d) = tokio::join!(
        apply_paced(a, PARALLELISM),
        apply_paced(b, PARALLELISM),
        apply_paced(c, PARALLELISM),
        apply_paced(d, PARALLELISM)
    );
    let took = [a, b, c, d].into_iter().max().unwrap();
    let throttled = alb::shared().throttled();
    let gates_alone = GATE * (N / PARALLELISM) as u32;
    eprintln!(
        "pipelines: {PIPELINES} applies of {N} deployments, -parallelism={PARALLELISM}, started together: slowest {took:?} ({a:?}, {b:?}, {c:?}, {d:?}), gates alone {gates_alone:?} ({:.2}x), provider calls throttled (each retried): {}",
        took.as_secs_f64() / gates_alone.as_secs_f64(),
        throttled.from_provider
    );
    assert!(
        took.as_secs_f64() <= gates_alone.as_secs_f64() * 2.3,
        "the slowest apply took {took:?}, more than 2.3 times the {gates_alone:?} its gates need"
    );
    for (_, fixtures) in &pipelines {
        assert_all_live(fixtures).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_headers_stay_in_their_sensitive_attribute() {
    const SECRET: &str = "tok-3a7f9c1e-never-show";
    for tf in clis("faults_secrets", Needs::Any, On::Each) {
        let fx = BlueGreenFixture::create(alb::shared(), "secret").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        // A failing app that echoes the request, as a debug endpoint does: the report
        // quotes its body.
        v2.set(acceptance_tests::app::Behavior::Echo(401));
        let ws = Workspace::new(&tf, "secret");
        let headers = format!("  health_check {{\n    path = \"/health\"\n    healthy_threshold = 1\n    interval = \"200ms\"\n    request_timeout = \"150ms\"\n    headers = {{ Authorization = \"Bearer {SECRET}\" }}\n  }}\n");
        let config = |release, app: &TestApp| {
            provider(&fx.endpoint) + &deployment("app", &fx, release, app, "").replace(
                "  health_check {\n    path              = \"/health\"\n    healthy_threshold = 1\n    interval          = \"200ms\"\n    request_timeout   = \"150ms\"\n  }\n",
                &headers,
            )
        };
        let trace = vec![("TF_LOG".to_string(), "trace".to_string())];
        let ok = ws
            .step(Step {
                config: config("v1", &v1),
                env: trace.clone(),
                ..Step::default()
            })
            .await;
        // A failing release puts the checks' outcome in an error: still no secret.
        // Before every call was bounded, this apply never ended.
        let failed = tokio::time::timeout(
            Duration::from_secs(120),
            ws.step(Step {
                config: config("v2", &v2).replace(
                    "interval = \"200ms\"",
                    "interval = \"200ms\"\n    unhealthy_threshold = 2",
                ),
                env: trace,
                expect_error: Some("401"),
                ..Step::default()
            }),
        )
        .await
        .expect("the apply ended");
        assert!(
            failed.log.contains("authorization: REDACTED"),
            "the echoed body is quoted, masked: {}",
            failed
                .log
                .lines()
                .filter(|l| l.contains("401"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        for (what, text) in [("first apply", &ok.log), ("failed apply", &failed.log)] {
            assert!(
                !text.contains(SECRET),
                "the secret leaked into the {what}'s output or trace logs"
            );
        }
        assert!(
            v1.saw_header("authorization", SECRET),
            "the header was sent"
        );
        // In state, the secret is only under the sensitive attribute.
        let state = ws.state().await;
        let mut values = resource_values(&state, "immutable_bluegreen_deployment.app")
            .unwrap()
            .clone();
        values["health_check"]["headers"] = json!(null);
        assert!(!values.to_string().contains(SECRET));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_flapping_around_the_threshold_never_gets_traffic() {
    for tf in clis("faults_flapping", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "flap").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "flap");
        let config = |release, app: &TestApp, timeout: &str| {
            provider(&fx.endpoint)
                + &deployment(
                    "app",
                    &fx,
                    release,
                    app,
                    &format!("  timeouts {{\n    update = \"{timeout}\"\n  }}\n"),
                )
                .replace("healthy_threshold = 1", "healthy_threshold = 3")
        };
        ws.step(Step {
            config: config("v1", &v1, "30s"),
            ..Step::default()
        })
        .await;
        // Two good answers, then a bad one: never three in a row. (The load balancer checks
        // another path, whose cycle of its own never fails it twice in a row: it calls the
        // target healthy, and the HTTP gate alone must keep the release out.)
        fx.set_health_check_path(&fx.blue_tg_arn, "/lb-health")
            .await;
        v2.set(acceptance_tests::app::Behavior::Flapping {
            healthy: 2,
            failing: 1,
        });
        ws.step(Step {
            config: config("v2", &v2, "3s"),
            expect_error: Some(r"(?s)Best run: 2 of the 3.*503"),
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await.get("green"), Some(&100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn elbv2_going_down_right_after_the_listener_write_leaves_traffic_on_the_gated_colour() {
    for tf in clis("faults_down_mid_shift", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "downmid").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "downmid");
        let config = |release, app| {
            provider(&proxy.endpoint()).replace("region", "max_retries = 1\n  region")
                + &deployment("app", &fx, release, app, "")
        };
        ws.step(Step {
            config: config("v1", &v1),
            ..Step::default()
        })
        .await;
        // The endpoint dies right after the listener takes the new weights: the read-back
        // and the attempt to move traffic back both fail.
        proxy.set(Fault::DownAfter {
            action: "ModifyListener".into(),
            count: 1,
        });
        ws.step(Step {
            config: config("v2", &v2),
            expect_error: Some("(?s)cannot reach the ELBv2 API.*Check the listener"),
            ..Step::default()
        })
        .await;
        // All traffic is on blue, whose app passed the gate moments before.
        assert_eq!(fx.weights(&fx.listener_arn).await.get("blue"), Some(&100));
        // With the endpoint back, the next apply converges on the release.
        proxy.set(Fault::Pass);
        ws.step(Step {
            config: config("v2", &v2),
            state_checks: vec![
                StateCheck::Equals(
                    "immutable_bluegreen_deployment.app",
                    "active_color",
                    json!("blue"),
                ),
                StateCheck::Equals(
                    "immutable_bluegreen_deployment.app",
                    "traffic_weights",
                    json!({"blue": 100, "green": 0}),
                ),
            ],
            ..Step::default()
        })
        .await;
    }
}

/// An ELBv2 endpoint that takes the cut-over's ModifyListener and never answers it, with
/// `timeouts { create/update = "20s" }`: the call ends when the resource's timeout runs
/// out, before its own 30 s operation timeout, so the apply fails within the timeout,
/// saying which call it was waiting for, with all traffic where it was.
#[tokio::test(flavor = "multi_thread")]
async fn an_elbv2_endpoint_that_never_answers_fails_the_apply_in_bounded_time() {
    for tf in clis("faults_hung_elbv2", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "hung").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "hung");
        let timeouts = "  timeouts {\n    create = \"20s\"\n    update = \"20s\"\n  }\n";
        let config = |release, app| {
            provider(&proxy.endpoint()) + &deployment("app", &fx, release, app, timeouts)
        };
        ws.step(Step {
            config: config("v1", &v1),
            ..Step::default()
        })
        .await;
        proxy.set(Fault::Hang {
            action: "ModifyListener".into(),
        });
        let started = Instant::now();
        // Before every call was bounded, this apply never ended.
        tokio::time::timeout(Duration::from_secs(120), ws.step(Step {
                config: config("v2", &v2),
                expect_error: Some(
                    r"(?s)the\s+time\s+the\s+resource's\s+`timeouts`\s+allows\s+ran\s+out\s+while\s+waiting\s+for\s+ELBv2\s+ModifyListener\s+on\s+arn:.*Read\s+back:\s+blue\s+0\s+/\s+green\s+100\..*Traffic\s+was\s+not\s+moved",
                ),
                ..Step::default()
            }))
            .await
            .expect("the apply ended");
        let took = started.elapsed();
        eprintln!("hung ModifyListener: the apply failed after {took:?}");
        assert!(took < Duration::from_secs(25), "the apply took {took:?}");
        assert!(proxy.calls_of("ModifyListener") >= 1, "the write was held");
        let weights = fx.weights(&fx.listener_arn).await;
        assert_eq!(
            (
                weights.get("green"),
                weights.get("blue").copied().unwrap_or(0)
            ),
            (Some(&100), 0),
            "all traffic stays on green: {weights:?}"
        );
    }
}

/// Ctrl-C while the cut-over's ModifyListener hangs (at 50% on the canary): the held call
/// ends at once rather than at its 30 s operation timeout, the listener is read back, and
/// the back-out's own write, sent after the Ctrl-C, moves all traffic back.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_a_write_hangs_ends_the_apply_at_once_and_moves_traffic_back() {
    for tf in clis("faults_hung_write_interrupted", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "hung-int").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "hung-int");
        ws.step(Step {
            config: provider(&proxy.endpoint()) + &deployment("app", &fx, "v1", &v1, ""),
            ..Step::default()
        })
        .await;
        let canary = hcl::canary(50, "3s");
        ws.write_config(
            &(provider(&proxy.endpoint()) + &deployment("app", &fx, "v2", &v2, &canary)),
        );
        let child = ws.spawn(APPLY);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fx.weights(&fx.listener_arn).await.get("blue") != Some(&50) {
            assert!(Instant::now() < deadline, "blue never reached 50%");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let writes = proxy.calls_of("ModifyListener");
        proxy.set(Fault::Hang {
            action: "ModifyListener".into(),
        });
        while proxy.calls_of("ModifyListener") == writes {
            assert!(Instant::now() < deadline, "the write of 100% never came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let interrupted = Instant::now();
        Workspace::interrupt(&child);
        proxy.set(Fault::Pass);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("terraform apply finished")
            .unwrap();
        let took = interrupted.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("hung ModifyListener, Ctrl-C: the apply ended {took:?} after it");
        assert!(!out.status.success(), "{text}");
        assert!(
            took < Duration::from_secs(5),
            "the apply took {took:?} after Ctrl-C"
        );
        assert!(
            flat.contains("interrupted while waiting for ELBv2 ModifyListener on arn:"),
            "{text}"
        );
        assert!(flat.contains("Read back: blue 50 / green 50."), "{text}");
        assert!(
            flat.contains("All traffic was moved back to green"),
            "{text}"
        );
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(0, 100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_server_errors_are_retried() {
    for tf in clis("faults_5xx", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "fivexx").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "fivexx");
        proxy.set(Fault::Status {
            code: 503,
            times: 3,
        });
        ws.step(Step {
            config: provider(&proxy.endpoint()) + &deployment("app", &fx, "v1", &v1, ""),
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await.get("green"), Some(&100));
        assert_eq!(
            proxy.fault(),
            Fault::Pass,
            "the burst was used up by retries"
        );
    }
}
