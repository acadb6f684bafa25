//! `immutable_bluegreen_deployment` and `immutable_bluegreen_slots` through the real
//! Terraform CLI, against the ALB emulator (moto behind it) and real HTTP apps on loopback: every step
//! checks the plan, the state and the listener's actual forward weights.

use std::collections::BTreeMap;

use acceptance_tests::alb;
use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::checks::{PlanCheck, StateCheck};
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::hcl;
use acceptance_tests::terraform::{clis, Needs, On, REQUIRED_PROVIDERS};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

const DEPLOYMENT: &str = "immutable_bluegreen_deployment.app";

fn weights(blue: i32, green: i32) -> BTreeMap<String, i32> {
    BTreeMap::from([("blue".to_string(), blue), ("green".to_string(), green)])
}

fn provider(fx: &BlueGreenFixture) -> String {
    hcl::provider(&fx.endpoint, "max_retries = 1")
}

/// A baked-image fleet: the release's app (one loopback port) handed over as `targets`,
/// checked directly on each target with `path`.
fn fleet_config(fx: &BlueGreenFixture, release: &str, app: &TestApp, extra: &str) -> String {
    hcl::app(fx, release, app.port(), extra, "20s")
}

#[tokio::test(flavor = "multi_thread")]
async fn baked_image_fleet_release_rollback_and_failed_release() {
    for tf in clis("bluegreen_baked_fleet", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "fleet").await;
        let (v1, v2, v3) = (
            TestApp::start("v1").await,
            TestApp::start("v2").await,
            TestApp::start("v3").await,
        );
        let ws = Workspace::new(&tf, "bg-fleet");

        // Blue serves before the provider arrives, so the first release lands on green.
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            plan_checks: vec![
                PlanCheck::Create(DEPLOYMENT),
                PlanCheck::change(DEPLOYMENT, "active_color", json!(null), json!("green")),
                PlanCheck::change(DEPLOYMENT, "generation", json!(null), json!(1)),
                PlanCheck::change(
                    DEPLOYMENT,
                    "traffic_weights",
                    json!(null),
                    json!({"blue": 0, "green": 100}),
                ),
            ],
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!("green")),
                StateCheck::Equals(DEPLOYMENT, "green_release", json!("v1")),
                StateCheck::Equals(DEPLOYMENT, "active_release", json!("v1")),
                StateCheck::Equals(DEPLOYMENT, "id", json!(fx.listener_arn)),
                StateCheck::Matches(DEPLOYMENT, "deployed_at", r"^\d{4}-"),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        assert_eq!(
            fx.targets(&fx.green_tg_arn)
                .await
                .iter()
                .map(|t| t.1)
                .collect::<Vec<_>>(),
            vec![v1.port() as i32]
        );
        assert_eq!(
            fx.tags(&fx.green_tg_arn)
                .await
                .get("immutable:release")
                .map(String::as_str),
            Some("v1")
        );

        // v2 lands on blue; the plan shows the flip with known values.
        ws.step(Step {
            config: fleet_config(&fx, "v2", &v2, ""),
            plan_checks: vec![
                PlanCheck::UpdateInPlace(DEPLOYMENT),
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("blue")),
                PlanCheck::change(DEPLOYMENT, "generation", json!(1), json!(2)),
                PlanCheck::change(DEPLOYMENT, "previous_release", json!(null), json!("v1")),
                PlanCheck::change(DEPLOYMENT, "blue_release", json!(null), json!("v2")),
                PlanCheck::change(
                    DEPLOYMENT,
                    "traffic_weights",
                    json!({"blue": 0, "green": 100}),
                    json!({"blue": 100, "green": 0}),
                ),
                PlanCheck::TextContains(r#"active_color            = "green" -> "blue""#),
            ],
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!("blue")),
                StateCheck::Equals(DEPLOYMENT, "previous_release", json!("v1")),
                StateCheck::Equals(
                    DEPLOYMENT,
                    "traffic_weights",
                    json!({"blue": 100, "green": 0}),
                ),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        assert_eq!(
            fx.tags(&fx.blue_tg_arn)
                .await
                .get("immutable:generation")
                .map(String::as_str),
            Some("2")
        );

        // Rollback to v1: flips back to the still-warm green without re-registering.
        let green_targets = fx.targets(&fx.green_tg_arn).await;
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            plan_checks: vec![
                PlanCheck::change(DEPLOYMENT, "active_color", json!("blue"), json!("green")),
                PlanCheck::change(DEPLOYMENT, "active_release", json!("v2"), json!("v1")),
            ],
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "generation", json!(3)),
                StateCheck::Equals(DEPLOYMENT, "previous_release", json!("v2")),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        assert_eq!(
            fx.targets(&fx.green_tg_arn).await,
            green_targets,
            "rollback re-registered nothing"
        );

        // Import recovers the deployment from the listener and the tags.
        ws.import_verify(
            DEPLOYMENT,
            &format!("{},{},{}", fx.listener_arn, fx.blue_tg_arn, fx.green_tg_arn),
            &[
                "targets",
                "health_check",
                "timeouts",
                "deployed_at",
                "traffic",
            ],
        )
        .await;

        // A broken v3 fails its gate (its 503s, seen by the HTTP checks or the load balancer's):
        // traffic stays on v1, blue gets v2's fleet back so that the rollback to v2 stays
        // instant, state unchanged, and the next plan still shows the pending release.
        // (Timeouts of 5 s: taking the lease takes 2 s before the gate starts.)
        v3.set(Behavior::Failing(503));
        let failed = ws
            .step(Step {
                config: fleet_config(&fx, "v3", &v3, "").replace("\"20s\"", "\"5s\""),
                expect_error: Some(
                    r"(?s)not deployed to blue.*(503 x\d+|unhealthy \(Target.ResponseCodeMismatch\)).*holds its previous fleet again",
                ),
                ..Step::default()
            })
            .await;
        // (A target registered again shows up after a moment, as in AWS.)
        let mut blue = Vec::new();
        for _ in 0..30 {
            blue = fx.targets(&fx.blue_tg_arn).await;
            blue.retain(|t| t.2 != "draining");
            if !blue.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            blue.iter().map(|t| t.1).collect::<Vec<_>>(),
            vec![v2.port() as i32],
            "blue holds v2's fleet again (v3's target drains)"
        );
        assert_eq!(
            fx.tags(&fx.blue_tg_arn)
                .await
                .get("immutable:release")
                .map(String::as_str),
            Some("v2")
        );
        assert!(
            flat(&failed.log)
                .to_lowercase()
                .contains("traffic was not moved"),
            "{}",
            failed.log
        );
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        let state = ws.state().await;
        for check in [
            StateCheck::Equals(DEPLOYMENT, "active_color", json!("green")),
            StateCheck::Equals(DEPLOYMENT, "release", json!("v1")),
            StateCheck::Equals(DEPLOYMENT, "generation", json!(3)),
            // The truth about the standby colour: it holds v2 again.
            StateCheck::Equals(DEPLOYMENT, "blue_release", json!("v2")),
        ] {
            check.check(&state).unwrap();
        }
        ws.step(Step {
            config: fleet_config(&fx, "v3", &v3, ""),
            plan_only: true,
            expect_non_empty_plan: true,
            plan_checks: vec![PlanCheck::change(
                DEPLOYMENT,
                "active_color",
                json!("green"),
                json!("blue"),
            )],
            ..Step::default()
        })
        .await;

        // The rollback to v2 after the failed release is still instant: blue kept its fleet.
        let serving = |mut targets: Vec<(String, i32, String)>| {
            targets.retain(|t| t.2 != "draining");
            targets
        };
        let blue_before = serving(fx.targets(&fx.blue_tg_arn).await);
        ws.step(Step {
            config: fleet_config(&fx, "v2", &v2, ""),
            plan_checks: vec![
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("blue")),
                PlanCheck::change(DEPLOYMENT, "active_release", json!("v1"), json!("v2")),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        assert_eq!(
            serving(fx.targets(&fx.blue_tg_arn).await),
            blue_before,
            "the rollback registered nothing"
        );

        // Destroy leaves the listener serving the active colour and removes the tags.
        ws.destroy().await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        assert!(!fx
            .tags(&fx.blue_tg_arn)
            .await
            .contains_key("immutable:release"));
        drop((v1, v2, v3));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_planned_and_restored_and_a_deleted_listener_leaves_state() {
    for tf in clis("bluegreen_drift", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "drift").await;
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "bg-drift");
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));

        // Someone moves traffic by hand: the plan shows it and apply puts it back.
        fx.set_weights(&fx.listener_arn, 100, 0).await;
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            plan_checks: vec![
                PlanCheck::UpdateInPlace(DEPLOYMENT),
                PlanCheck::change(
                    DEPLOYMENT,
                    "traffic_weights",
                    json!({"blue": 100, "green": 0}),
                    json!({"blue": 0, "green": 100}),
                ),
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("green")),
                PlanCheck::change(DEPLOYMENT, "generation", json!(1), json!(1)),
            ],
            state_checks: vec![StateCheck::Equals(
                DEPLOYMENT,
                "traffic_weights",
                json!({"blue": 0, "green": 100}),
            )],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));

        // A settings-only change flips nothing.
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, "").replace("\"200ms\"", "\"300ms\""),
            plan_checks: vec![
                PlanCheck::UpdateInPlace(DEPLOYMENT),
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("green")),
                PlanCheck::Change {
                    address: DEPLOYMENT,
                    path: "deployed_at",
                    before: ws_value(&ws, "deployed_at").await,
                    after: Some(ws_value(&ws, "deployed_at").await),
                },
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));

        // The listener is deleted by hand: refresh drops the deployment from state, and a
        // plan to create it again says the listener is missing.
        fx.delete_listener(&fx.listener_arn).await;
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            refresh_only: true,
            state_checks: vec![StateCheck::Absent(DEPLOYMENT)],
            ..Step::default()
        })
        .await;
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            expect_error: Some("(?s)Cannot read the listener.*not found"),
            ..Step::default()
        })
        .await;
    }
}

/// An attribute of the deployment in the current state.
async fn ws_value(ws: &Workspace, attr: &str) -> serde_json::Value {
    let state = ws.state().await;
    acceptance_tests::checks::resource_values(&state, DEPLOYMENT)
        .and_then(|v| v.get(attr))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Plays an ECS-like fleet: `POST /deploy/<color>/<release>` starts an app serving that
/// release and registers it, alone, in the colour's target group, as an ECS service
/// attached to the colour's target group would.
struct Fleet {
    url: String,
    apps: std::sync::Arc<tokio::sync::Mutex<Vec<(String, String, TestApp)>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Fleet {
    async fn start(fx: &BlueGreenFixture) -> Fleet {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let apps = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let (client, blue, green) = (
            fx.client.clone(),
            fx.blue_tg_arn.clone(),
            fx.green_tg_arn.clone(),
        );
        let registry = apps.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                if let ["deploy", color, release] = parts.as_slice() {
                    let tg = if *color == "blue" { &blue } else { &green };
                    let app = TestApp::start(release).await;
                    let old: Vec<_> = client
                        .describe_target_health()
                        .target_group_arn(tg)
                        .send()
                        .await
                        .unwrap()
                        .target_health_descriptions()
                        .iter()
                        .filter_map(|d| d.target().cloned())
                        .collect();
                    if !old.is_empty() {
                        client
                            .deregister_targets()
                            .target_group_arn(tg)
                            .set_targets(Some(old))
                            .send()
                            .await
                            .unwrap();
                    }
                    let target =
                        aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                            .id("127.0.0.1")
                            .port(app.port() as i32)
                            .build();
                    client
                        .register_targets()
                        .target_group_arn(tg)
                        .targets(target)
                        .send()
                        .await
                        .unwrap();
                    registry
                        .lock()
                        .await
                        .push((color.to_string(), release.to_string(), app));
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        Fleet {
            url,
            apps,
            _server: server,
        }
    }

    async fn deployed(&self) -> Vec<(String, String)> {
        self.apps
            .lock()
            .await
            .iter()
            .map(|(c, r, _)| (c.clone(), r.clone()))
            .collect()
    }
}

fn ecs_config(fx: &BlueGreenFixture, fleet: &Fleet, release: &str) -> String {
    let service = |color: &str| {
        format!(
            r#"
resource "terraform_data" "{color}_service" {{
  triggers_replace = coalesce(data.immutable_bluegreen_slots.app.{color}_release, "none")
  provisioner "local-exec" {{
    command = "test ${{self.triggers_replace}} = none || curl -sf -X POST {}/deploy/{color}/${{self.triggers_replace}}"
  }}
}}
"#,
            fleet.url
        )
    };
    format!(
        r#"{}
locals {{
  release = "{release}"
}}

data "immutable_bluegreen_slots" "app" {{
  listener_arn           = "{l}"
  blue_target_group_arn  = "{b}"
  green_target_group_arn = "{g}"
  release                = local.release
}}
{}{}
resource "immutable_bluegreen_deployment" "app" {{
  listener_arn           = "{l}"
  blue_target_group_arn  = "{b}"
  green_target_group_arn = "{g}"
  release                = local.release

  health_check {{
    path              = "/health"
    body_regex        = "{release}"
    healthy_threshold = 2
    interval          = "200ms"
    request_timeout   = "150ms"
  }}

  depends_on = [terraform_data.blue_service, terraform_data.green_service]
}}
"#,
        provider(fx),
        service("blue"),
        service("green"),
        l = fx.listener_arn,
        b = fx.blue_tg_arn,
        g = fx.green_tg_arn,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn self_registering_fleet_takes_its_release_from_the_slots_data_source() {
    // The configuration uses `terraform_data`, which came with Terraform 1.4.
    for tf in clis("bluegreen_ecs", Needs::Since(1, 4), On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "ecs").await;
        let fleet = Fleet::start(&fx).await;
        let ws = Workspace::new(&tf, "bg-ecs");
        // One apply per release: the standby colour's service is updated first, then the
        // deployment gates it (the body must name the release) and cuts over.
        ws.step(Step {
            config: ecs_config(&fx, &fleet, "v1"),
            state_checks: vec![StateCheck::Equals(
                DEPLOYMENT,
                "active_color",
                json!("green"),
            )],
            ..Step::default()
        })
        .await;
        assert_eq!(
            fleet.deployed().await,
            vec![("green".to_string(), "v1".to_string())]
        );
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        ws.step(Step {
            config: ecs_config(&fx, &fleet, "v2"),
            plan_checks: vec![
                PlanCheck::Replace("terraform_data.blue_service"),
                PlanCheck::NoOp("terraform_data.green_service"),
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("blue")),
            ],
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!("blue")),
                StateCheck::Equals(DEPLOYMENT, "blue_release", json!("v2")),
                StateCheck::Equals(DEPLOYMENT, "green_release", json!("v1")),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(
            fleet.deployed().await,
            vec![
                ("green".to_string(), "v1".to_string()),
                ("blue".to_string(), "v2".to_string())
            ]
        );
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
    }
}

/// Polls the listener until `done` holds for its weights, or panics after 30 s.
async fn wait_for_weights(fx: &BlueGreenFixture, done: impl Fn(&BTreeMap<String, i32>) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let w = fx.weights(&fx.listener_arn).await;
        if done(&w) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "weights never reached the expected split: {w:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits for a spawned `terraform apply` and returns (success, output).
async fn finish(child: tokio::process::Child) -> (bool, String) {
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("terraform apply finished")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const APPLY: &[&str] = &["apply", "-no-color", "-input=false", "-auto-approve"];

/// v1 on green (live), then a second apply of v2 (landing on blue) with `extra`
/// settings, spawned so that the test can act while it runs.
async fn second_release(
    tf: &acceptance_tests::terraform::Terraform,
    name: &str,
    extra: &str,
) -> (
    BlueGreenFixture,
    Workspace,
    TestApp,
    TestApp,
    tokio::process::Child,
) {
    let fx = BlueGreenFixture::create(alb::shared(), name).await;
    let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
    let ws = Workspace::new(tf, name);
    ws.step(Step {
        config: fleet_config(&fx, "v1", &v1, ""),
        ..Step::default()
    })
    .await;
    ws.write_config(&fleet_config(&fx, "v2", &v2, extra));
    let child = ws.spawn(APPLY);
    (fx, ws, v1, v2, child)
}

/// After a failed or interrupted second release: all traffic on green (v1) and the
/// state still on v1, with v2 pending in the next plan.
async fn assert_back_on_v1(fx: &BlueGreenFixture, ws: &Workspace, v2: &TestApp) {
    assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
    let state = ws.state().await;
    StateCheck::Equals(DEPLOYMENT, "active_color", json!("green"))
        .check(&state)
        .unwrap();
    StateCheck::Equals(DEPLOYMENT, "release", json!("v1"))
        .check(&state)
        .unwrap();
    StateCheck::Equals(
        DEPLOYMENT,
        "traffic_weights",
        json!({"blue": 0, "green": 100}),
    )
    .check(&state)
    .unwrap();
    v2.set(Behavior::Healthy);
    let plan = ws
        .terraform(&["plan", "-no-color", "-detailed-exitcode"], &[])
        .await;
    assert_eq!(plan.code, Some(2), "v2 is still pending:\n{}", plan.text());
    assert!(
        plan.stdout
            .contains(r#"active_color            = "green" -> "blue""#),
        "{}",
        plan.stdout
    );
}

/// Fails the second release's app once `percent` of traffic is on it during a linear
/// shift, and checks that the release fails there and all traffic goes back.
async fn fail_during_linear_shift(test: &str, traffic: &str, percent: i32) {
    for tf in clis(test, Needs::Any, On::NewestAndOldest) {
        let (fx, ws, _v1, v2, child) = second_release(&tf, test, traffic).await;
        wait_for_weights(&fx, |w| w["blue"] == percent && w["green"] == 100 - percent).await;
        v2.set(Behavior::Failing(503));
        let (ok, out) = finish(child).await;
        assert!(!ok, "{out}");
        let failed_at = format!("Health checks failed at {percent}% on blue");
        assert!(flat(&out).contains(&failed_at), "{out}");
        assert!(
            flat(&out).contains("All traffic was moved back to green"),
            "{out}"
        );
        assert_back_on_v1(&fx, &ws, &v2).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_during_a_linear_shift_moves_traffic_back() {
    fail_during_linear_shift("bg-linear", &hcl::linear(50, "5s"), 50).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_while_baking_rolls_back() {
    let bake = "  traffic {\n    bake_time = \"10s\"\n  }\n";
    for tf in clis("bluegreen_bake_failure", Needs::Any, On::NewestAndOldest) {
        let (fx, ws, _v1, v2, child) = second_release(&tf, "bg-bake", bake).await;
        wait_for_weights(&fx, |w| w["blue"] == 100).await;
        v2.set(Behavior::Failing(500));
        let (ok, out) = finish(child).await;
        assert!(!ok, "{out}");
        assert!(flat(&out).contains("while baking on blue"), "{out}");
        assert_back_on_v1(&fx, &ws, &v2).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_gate_leaves_traffic_where_it_was() {
    for tf in clis("bluegreen_interrupt_gate", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "bg-int-gate").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "bg-int-gate");
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, ""),
            ..Step::default()
        })
        .await;
        v2.set(Behavior::Failing(503));
        ws.write_config(&fleet_config(&fx, "v2", &v2, ""));
        let child = ws.spawn(APPLY);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while v2.requests() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the gate never probed v2"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let interrupted = std::time::Instant::now();
        Workspace::interrupt(&child);
        let (ok, out) = finish(child).await;
        assert!(!ok, "{out}");
        assert!(
            interrupted.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            interrupted.elapsed()
        );
        assert!(flat(&out).contains("Interrupted"), "{out}");
        assert_back_on_v1(&fx, &ws, &v2).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_linear_shift_moves_traffic_back() {
    for tf in clis("bluegreen_interrupt_shift", Needs::Any, On::NewestAndOldest) {
        let (fx, ws, _v1, v2, child) =
            second_release(&tf, "bg-int-shift", &hcl::linear(50, "5s")).await;
        wait_for_weights(&fx, |w| w["blue"] == 50).await;
        let interrupted = std::time::Instant::now();
        Workspace::interrupt(&child);
        let (ok, out) = finish(child).await;
        assert!(!ok, "{out}");
        assert!(
            interrupted.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            interrupted.elapsed()
        );
        assert!(flat(&out).contains("Interrupted at 50% on blue"), "{out}");
        assert!(
            flat(&out).contains("All traffic was moved back to green"),
            "{out}"
        );
        assert_back_on_v1(&fx, &ws, &v2).await;
    }
}

/// Terraform wraps error text; this undoes the wrapping for `contains` checks.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_deployment_settings_are_reported_at_validate() {
    const L: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const B: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/73e2d6bc24d8a067";
    const G: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/83e2d6bc24d8a067";
    let config = |listener: &str, blue: &str, green: &str, body: &str| {
        format!(
            "{REQUIRED_PROVIDERS}\nresource \"immutable_bluegreen_deployment\" \"app\" {{\n  listener_arn = \"{listener}\"\n  blue_target_group_arn = \"{blue}\"\n  green_target_group_arn = \"{green}\"\n  release = \"v1\"\n{body}\n}}\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (config("not-an-arn", B, G, ""), "listener_arn"),
        (config(L, "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/lb/1", G, ""), "blue_target_group_arn"),
        (config(L, B, B, ""), "Blue and green are the same target group"),
        (config(L, B, G, "  traffic {\n    strategy = \"blue-green\"\n  }"), "traffic.strategy"),
        (config(L, B, G, "  traffic {\n    strategy = \"canary\"\n    canary_percent = 100\n  }"), "traffic.canary_percent"),
        (config(L, B, G, "  traffic {\n    step_percent = 10\n  }"), "traffic.step_percent needs strategy"),
        (config(L, B, G, "  traffic {\n    strategy = \"linear\"\n    step_interval = \"soon\"\n  }"), "traffic.step_interval"),
        (config(L, B, G, "  traffic {\n    strategy = \"linear\"\n  }"), "traffic.step_interval is required"),
        (config(L, B, G, "  health_check {\n    url = \"http://a/\"\n    path = \"/health\"\n  }"), "Conflicting health check endpoints"),
        (config(L, B, G, "  health_check {\n    path = \"health\"\n  }"), "health_check.path"),
        (config(L, B, G, "  health_check {\n    url = \"http://a/\"\n    port = 8080\n  }"), "health_check.port needs path"),
        (config(L, B, G, "  health_check {\n    expected_status = \"ok\"\n  }"), "health_check.expected_status"),
        (config(L, B, G, "  health_check {\n    min_healthy_targets = 0\n  }"), "health_check.min_healthy_targets"),
        (config(L, B, G, "  release = \"\""), "release"),
        (config(L, B, G, "  targets = [{ id = \"10.0.1.5\", port = 70000 }]"), "targets[0].port"),
        (config(L, B, G, "  targets = [{ id = \"10.0.1.5\", port = 80 }, { id = \"web-1.internal\" }]"), "targets[1].id"),
        (config(L, B, G, "  rollback_window = \"an hour\""), "rollback_window"),
        (config(L, B, G, "  timeouts {\n    update = \"30 minutes\"\n  }"), "timeouts.update"),
        (
            format!("{REQUIRED_PROVIDERS}\ndata \"immutable_bluegreen_slots\" \"s\" {{\n  listener_arn = \"{L}\"\n  blue_target_group_arn = \"{B}\"\n  green_target_group_arn = \"nope\"\n  release = \"v1\"\n}}\n"),
            "green_target_group_arn",
        ),
    ];
    for tf in clis("bluegreen_validation", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "bg-validate");
        for (hcl, expected) in &cases {
            ws.write_config(hcl);
            let out = ws.terraform(&["validate", "-no-color"], &[]).await;
            let text = out.text();
            assert!(!out.success, "validate passed for:\n{hcl}");
            assert!(
                text.contains(expected),
                "error does not mention {expected:?}:\n{text}"
            );
            assert!(!text.contains("panic"), "{text}");
        }
        ws.write_config(&config(L, B, G, "  health_check {\n    path = \"/health\"\n  }\n  traffic {\n    strategy = \"linear\"\n    step_percent = 25\n    step_interval = \"30s\"\n  }"));
        let out = ws.terraform(&["validate", "-no-color"], &[]).await;
        assert!(
            out.success,
            "a valid configuration failed validation:\n{}",
            out.text()
        );
    }
}

/// A duration past its bounds (a zero interval, an interval no clock can add, a timeout
/// of centuries) is refused by `terraform validate` with a diagnostic naming the attribute
/// and its range. A huge interval once panicked the health gate's validation, which
/// Terraform reports as "The ... request was cancelled", never as this diagnostic.
#[tokio::test(flavor = "multi_thread")]
async fn durations_past_their_bounds_are_refused_at_validate_naming_the_attribute() {
    const L: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const B: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/73e2d6bc24d8a067";
    const G: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/83e2d6bc24d8a067";
    const HUGE: &str = "9300000000000000000s";
    let deployment = |body: &str| {
        format!(
            "{REQUIRED_PROVIDERS}\nresource \"immutable_bluegreen_deployment\" \"app\" {{\n  listener_arn = \"{L}\"\n  blue_target_group_arn = \"{B}\"\n  green_target_group_arn = \"{G}\"\n  release = \"v1\"\n{body}\n}}\n"
        )
    };
    let cases: Vec<(String, String)> = vec![
        (
            deployment(&format!("  health_check {{\n    interval = \"{HUGE}\"\n  }}")),
            format!(r#"Invalid value for health_check\.interval .*"{HUGE}" is longer than 24h: give a duration above zero and at most 24h"#),
        ),
        (
            deployment("  health_check {\n    interval = \"0s\"\n  }"),
            r#"Invalid value for health_check\.interval .*"0s" is not above zero: give a duration above zero and at most 24h"#.to_string(),
        ),
        (
            deployment(&format!("  timeouts {{\n    update = \"{HUGE}\"\n  }}")),
            format!(r#"Invalid value for timeouts\.update .*"{HUGE}" is longer than 168h: give a duration above zero and at most 168h"#),
        ),
        (
            deployment("  traffic {\n    bake_time = \"200h\"\n  }"),
            r#"Invalid value for traffic\.bake_time .*"200h" is longer than 168h: give a duration from 0s to 168h"#.to_string(),
        ),
        (
            format!("{REQUIRED_PROVIDERS}\nresource \"immutable_health_gate\" \"gate\" {{\n  url = \"http://127.0.0.1:1/health\"\n  interval = \"{HUGE}\"\n}}\n"),
            format!(r#"Invalid value for interval .*"{HUGE}" is longer than 24h"#),
        ),
    ];
    let action = format!(
        "{REQUIRED_PROVIDERS}\naction \"immutable_rollback\" \"web\" {{\n  config {{\n    listener_arn = \"{L}\"\n    blue_target_group_arn = \"{B}\"\n    green_target_group_arn = \"{G}\"\n    timeout = \"{HUGE}\"\n  }}\n}}\n"
    );
    for tf in clis("bluegreen_duration_bounds", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "bg-durations");
        // Actions, and their validation, came with Terraform 1.14.
        let action_case = tf.at_least(1, 14).then(|| {
            (
                action.clone(),
                format!(r#"Invalid value for timeout .*"{HUGE}" is longer than 168h"#),
            )
        });
        for (hcl, expected) in cases.iter().chain(&action_case) {
            ws.write_config(hcl);
            let out = ws.terraform(&["validate", "-no-color"], &[]).await;
            let text = out.text();
            assert!(!out.success, "validate passed for:\n{hcl}");
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                regex::Regex::new(expected).unwrap().is_match(&flat),
                "{expected}:\n{text}"
            );
            for crash in ["panic", "request was cancelled", "Plugin did not respond"] {
                assert!(!text.contains(crash), "{text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_with_a_test_listener_and_without_retaining_the_previous_colour() {
    for tf in clis("bluegreen_canary", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "bg-canary").await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "bg-canary");
        let extra = format!(
            "  test_listener_arn = \"{}\"\n  retain_previous   = false\n  traffic {{\n    strategy       = \"canary\"\n    canary_percent = 20\n    step_interval  = \"3s\"\n  }}\n",
            fx.test_listener_arn
        );
        ws.step(Step {
            config: fleet_config(&fx, "v1", &v1, &extra),
            ..Step::default()
        })
        .await;
        assert_eq!(
            fx.weights(&fx.test_listener_arn).await,
            weights(0, 100),
            "the test listener points at the new colour"
        );
        ws.write_config(&fleet_config(&fx, "v2", &v2, &extra));
        let child = ws.spawn(APPLY);
        // The canary share appears on the listener before the rest follows.
        wait_for_weights(&fx, |w| w["blue"] == 20 && w["green"] == 80).await;
        let (ok, out) = finish(child).await;
        assert!(ok, "{out}");
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        assert_eq!(fx.weights(&fx.test_listener_arn).await, weights(100, 0));
        let green = fx.targets(&fx.green_tg_arn).await;
        assert!(
            green.iter().all(|t| t.2 == "draining"),
            "retain_previous = false deregisters the previous fleet: {green:?}"
        );
        assert_eq!(fx.targets(&fx.blue_tg_arn).await.len(), 1);
    }
}

/// The fleet configuration with the provider talking to ELBv2 through a fault proxy.
fn proxied(
    config: String,
    fx: &BlueGreenFixture,
    proxy: &acceptance_tests::proxy::FaultProxy,
    retries: u32,
) -> String {
    // Every AWS endpoint of the provider block (elbv2, cloudwatch) goes through the proxy.
    config
        .replace(
            &format!("= \"{}\"", fx.endpoint),
            &format!("= \"{}\"", proxy.endpoint()),
        )
        .replace("max_retries = 1", &format!("max_retries = {retries}"))
}

const WRITES: [&str; 5] = [
    "ModifyListener",
    "RegisterTargets",
    "DeregisterTargets",
    "AddTags",
    "RemoveTags",
];

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_and_settings_changes_write_nothing() {
    use acceptance_tests::proxy::{Fault, FaultProxy};
    for tf in clis("bluegreen_throttling", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "bg-throttle").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "bg-throttle");
        // Bursts of throttling from ELBv2 are absorbed by backoff and retries.
        proxy.set(Fault::Throttle { times: 2 });
        ws.step(Step {
            config: proxied(fleet_config(&fx, "v1", &v1, ""), &fx, &proxy, 5),
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));

        // A settings-only change calls no write API.
        proxy.reset_calls();
        ws.step(Step {
            config: proxied(
                fleet_config(&fx, "v1", &v1, "  auto_rollback = false\n"),
                &fx,
                &proxy,
                5,
            ),
            plan_checks: vec![PlanCheck::UpdateInPlace(DEPLOYMENT)],
            ..Step::default()
        })
        .await;
        let calls = proxy.calls();
        for write in WRITES {
            assert!(
                !calls.contains_key(write),
                "{write} called for a settings-only change: {calls:?}"
            );
        }

        // A release writes the listener once (read back once after).
        proxy.reset_calls();
        ws.step(Step {
            config: proxied(fleet_config(&fx, "v2", &v2, ""), &fx, &proxy, 5),
            ..Step::default()
        })
        .await;
        assert_eq!(proxy.calls_of("ModifyListener"), 1, "{:?}", proxy.calls());
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_elbv2_endpoint_during_apply_leaves_traffic_and_state_as_they_were() {
    use acceptance_tests::proxy::{Fault, FaultProxy};
    for tf in clis("bluegreen_endpoint_down", Needs::Any, On::Newest) {
        let fx = BlueGreenFixture::create(alb::shared(), "bg-down").await;
        let proxy = FaultProxy::start(&fx.endpoint);
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "bg-down");
        ws.step(Step {
            config: proxied(fleet_config(&fx, "v1", &v1, ""), &fx, &proxy, 1),
            ..Step::default()
        })
        .await;
        ws.write_config(&proxied(fleet_config(&fx, "v2", &v2, ""), &fx, &proxy, 1));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false", "-out=tfplan"], &[])
            .await;
        assert!(plan.success, "{}", plan.text());
        // The endpoint refuses connections between plan and apply.
        proxy.set(Fault::Down);
        let apply = ws
            .terraform(&["apply", "-no-color", "-input=false", "tfplan"], &[])
            .await;
        let text = flat(&apply.text());
        assert!(!apply.success, "{text}");
        assert!(text.contains("cannot reach the ELBv2 API"), "{text}");
        assert!(
            text.contains("Traffic was not moved") || text.contains("traffic was not moved"),
            "{text}"
        );
        proxy.set(Fault::Pass);
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        let state = ws.state().await;
        StateCheck::Equals(DEPLOYMENT, "release", json!("v1"))
            .check(&state)
            .unwrap();
        StateCheck::Equals(DEPLOYMENT, "active_color", json!("green"))
            .check(&state)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_baking_moves_traffic_back_even_without_auto_rollback() {
    let extra = "  auto_rollback = false\n  traffic {\n    bake_time = \"30s\"\n  }\n";
    for tf in clis("bluegreen_interrupt_bake", Needs::Any, On::NewestAndOldest) {
        let (fx, ws, _v1, v2, child) = second_release(&tf, "bg-int-bake", extra).await;
        wait_for_weights(&fx, |w| w["blue"] == 100).await;
        Workspace::interrupt(&child);
        let (ok, out) = finish(child).await;
        assert!(!ok, "{out}");
        assert!(
            flat(&out).contains("Interrupted while baking on blue"),
            "{out}"
        );
        assert_back_on_v1(&fx, &ws, &v2).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reordered_targets_are_not_a_release() {
    for tf in clis("bluegreen_reorder", Needs::Any, On::NewestAndOldest) {
        let fx = BlueGreenFixture::create(alb::shared(), "bg-reorder").await;
        let (app, twin) = (TestApp::start("v1").await, TestApp::start("v1").await);
        let ws = Workspace::new(&tf, "bg-reorder");
        // Two targets on one address, told apart by their ports as the load balancer does.
        let config = |first: u16, second: u16| {
            fleet_config(&fx, "v1", &app, "").replace(
                &format!("targets                = [{{ id = \"127.0.0.1\", port = {} }}]", app.port()),
                &format!("targets                = [{{ id = \"127.0.0.1\", port = {first} }}, {{ id = \"127.0.0.1\", port = {second} }}]"),
            )
        };
        ws.step(Step {
            config: config(app.port(), twin.port()),
            ..Step::default()
        })
        .await;
        assert_eq!(fx.targets(&fx.green_tg_arn).await.len(), 2);
        ws.step(Step {
            config: config(twin.port(), app.port()),
            plan_checks: vec![
                PlanCheck::UpdateInPlace(DEPLOYMENT),
                PlanCheck::change(DEPLOYMENT, "active_color", json!("green"), json!("green")),
                PlanCheck::change(DEPLOYMENT, "generation", json!(1), json!(1)),
            ],
            ..Step::default()
        })
        .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_at_a_later_linear_step_moves_traffic_back() {
    // 25% and 50% pass; the release fails while 75% of traffic is on it.
    let linear = "  traffic {\n    strategy      = \"linear\"\n    step_percent  = 25\n    step_interval = \"3s\"\n  }\n";
    fail_during_linear_shift("bg-linear75", linear, 75).await;
}
