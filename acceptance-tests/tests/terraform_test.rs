//! `terraform test` on the example release module (examples/testing/) as a team runs it on
//! its own: the module's tests/release.tftest.hcl, with a variables file for the test world
//! (the ALB emulator with moto behind it, a listener and two colour target groups, and one
//! real test app per release), on the newest CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use acceptance_tests::alb;
use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::elb::{BlueGreenFixture, REGION};
use acceptance_tests::terraform::{clis, workspace_root, Needs, On, Terraform};
use acceptance_tests::workspace::{Output, Workspace};

/// `variable` blocks in test files are Terraform 1.13's.
const NEEDS: Needs = Needs::Since(1, 13);

/// The test world and the module copied into a workspace, initialised.
struct World {
    fx: BlueGreenFixture,
    v1: TestApp,
    v2: TestApp,
    ws: Workspace,
}

impl World {
    async fn start(tf: &Terraform, name: &str) -> World {
        let fx = BlueGreenFixture::create(alb::shared(), name).await;
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(tf, name);
        ws.copy_module(&workspace_root().join("examples/testing"));
        let service = alb::shared()
            .listener_url(&fx.listener_arn)
            .expect("the emulator serves the fixture's listener");
        // What a team's release.tfvars holds, plus the test world's endpoint and its pace
        // (AWS's health check seconds scaled to tens of milliseconds).
        let tfvars = format!(
            r#"listener_arn           = "{}"
blue_target_group_arn  = "{}"
green_target_group_arn = "{}"
service_url            = "{service}/health"
elbv2_endpoint         = "{}"
check_interval         = "200ms"
healthy_threshold      = 2
timeout                = "10s"

fleets = {{
  v1 = [{{ id = "127.0.0.1", port = {} }}]
  v2 = [{{ id = "127.0.0.1", port = {} }}]
}}
"#,
            fx.listener_arn,
            fx.blue_tg_arn,
            fx.green_tg_arn,
            fx.endpoint,
            v1.port(),
            v2.port(),
        );
        std::fs::write(ws.dir().join("release.tfvars"), tfvars).expect("write release.tfvars");
        let init = ws
            .terraform(&["init", "-no-color", "-input=false"], &[])
            .await;
        assert!(init.success, "terraform init failed:\n{}", init.text());
        World { fx, v1, v2, ws }
    }

    async fn terraform_test(&self) -> Output {
        self.ws
            .terraform(
                &["test", "-no-color", "-var-file=release.tfvars"],
                &[("AWS_REGION".into(), REGION.into())],
            )
            .await
    }

    /// The `immutable:` tags left on the colour target groups.
    async fn records(&self) -> Vec<(String, String)> {
        let mut records = Vec::new();
        for arn in [&self.fx.blue_tg_arn, &self.fx.green_tg_arn] {
            let tags = self.fx.tags(arn).await;
            records.extend(
                tags.into_iter()
                    .filter(|(k, _)| k.starts_with("immutable:")),
            );
        }
        records
    }

    /// The ports registered in a colour's target group, draining ones left out.
    async fn ports(&self, tg_arn: &str) -> Vec<u16> {
        let targets = self.fx.targets(tg_arn).await;
        targets
            .iter()
            .filter(|t| t.2 != "draining")
            .map(|t| t.1 as u16)
            .collect()
    }
}

fn weights(blue: i32, green: i32) -> BTreeMap<String, i32> {
    BTreeMap::from([("blue".to_string(), blue), ("green".to_string(), green)])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_module_passes_its_own_terraform_test() {
    for tf in clis("terraform_test_passes", NEEDS, On::Newest) {
        let world = World::start(&tf, "tftest-pass").await;
        let out = world.terraform_test().await;
        let text = out.text();
        assert!(out.success, "terraform test failed:\n{text}");
        for run in [
            "refuses_an_empty_release",
            "refuses_a_target_group_as_the_listener",
            "first_release",
            "second_release",
        ] {
            assert!(
                text.contains(&format!("run \"{run}\"... pass")),
                "{run} did not pass:\n{text}"
            );
        }
        assert!(text.contains("Success! 4 passed, 0 failed."), "{text}");
        // Users copy the example: nothing in it is deprecated on the newest CLI.
        assert!(!text.contains("Warning:"), "{text}");

        // The fixture's listener started on blue, so v1 went to green and v2 to blue. The
        // teardown destroyed the deployment, which removes its records (the target groups'
        // tags) and leaves v2 serving, v1 registered beside it.
        let fx = &world.fx;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        assert_eq!(world.records().await, []);
        assert_eq!(world.ports(&fx.blue_tg_arn).await, [world.v2.port()]);
        assert_eq!(world.ports(&fx.green_tg_arn).await, [world.v1.port()]);
        let url = alb::shared().listener_url(&fx.listener_arn).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for _ in 0..10 {
            let body = client
                .get(&url)
                .send()
                .await
                .expect("the listener answers")
                .text()
                .await
                .unwrap();
            assert!(body.contains(r#""version":"v2""#), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_release_fails_the_terraform_test_and_traffic_stays() {
    for tf in clis("terraform_test_fails", NEEDS, On::Newest) {
        let world = World::start(&tf, "tftest-fail").await;
        world.v2.set(Behavior::Failing(503));
        let out = world.terraform_test().await;
        let text = out.text();
        assert!(
            !out.success,
            "terraform test passed with v2 failing:\n{text}"
        );
        assert!(text.contains("run \"first_release\"... pass"), "{text}");
        assert!(text.contains("run \"second_release\"... fail"), "{text}");
        assert!(text.contains("not deployed to blue"), "{text}");
        assert!(text.contains("Failure! 3 passed, 1 failed."), "{text}");
        // v2 never took traffic: v1 still serves from green, and blue is empty again.
        let fx = &world.fx;
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        assert_eq!(world.records().await, []);
        assert_eq!(world.ports(&fx.green_tg_arn).await, [world.v1.port()]);
        assert!(world.ports(&fx.blue_tg_arn).await.is_empty());
    }
}
