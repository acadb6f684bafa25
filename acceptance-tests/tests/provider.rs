//! The provider as Terraform loads it: its schema, its configuration block, and the
//! promise that configurations using only health gates make no AWS call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use acceptance_tests::app::TestApp;
use acceptance_tests::checks::StateCheck;
use acceptance_tests::terraform::{clis, Needs, On, REQUIRED_PROVIDERS};
use acceptance_tests::workspace::{Step, Workspace};

#[tokio::test(flavor = "multi_thread")]
async fn schema_lists_every_resource_and_data_source_with_descriptions() {
    for tf in clis("provider_schema", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "schema");
        ws.write_config(REQUIRED_PROVIDERS);
        let out = ws.terraform(&["providers", "schema", "-json"], &[]).await;
        assert!(out.success, "{}", out.text());
        let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let provider =
            &schema["provider_schemas"]["registry.terraform.io/immutable-infra/immutable"];
        let attrs = &provider["provider"]["block"]["attributes"];
        for name in ["region", "profile", "max_retries"] {
            assert!(
                attrs[name]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "provider.{name}"
            );
        }
        let gate = &provider["resource_schemas"]["immutable_health_gate"]["block"];
        for name in [
            "url",
            "headers",
            "expected_status",
            "healthy_threshold",
            "passed_at",
        ] {
            assert!(
                gate["attributes"][name]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "gate.{name}"
            );
        }
        assert_eq!(gate["attributes"]["headers"]["sensitive"], true);
        assert!(gate["block_types"]["timeouts"].is_object());
        let deployment = &provider["resource_schemas"]["immutable_bluegreen_deployment"]["block"];
        for name in [
            "listener_arn",
            "release",
            "targets",
            "active_color",
            "traffic_weights",
            "generation",
        ] {
            assert!(
                deployment["attributes"][name]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "deployment.{name}"
            );
        }
        for block in ["health_check", "traffic", "timeouts"] {
            assert!(
                deployment["block_types"][block].is_object(),
                "deployment block {block}"
            );
        }
        let slots = &provider["data_source_schemas"]["immutable_bluegreen_slots"]["block"];
        for name in [
            "listener_arn",
            "release",
            "active_color",
            "standby_color",
            "blue_release",
            "green_release",
        ] {
            assert!(slots["attributes"][name].is_object(), "slots.{name}");
        }
        if tf.at_least(1, 14) {
            let rollback = &provider["action_schemas"]["immutable_rollback"]["block"];
            let list =
                &provider["list_resource_schemas"]["immutable_bluegreen_deployment"]["block"];
            for (what, name) in [
                (rollback, "listener_arn"),
                (rollback, "timeout"),
                (list, "load_balancer_arn"),
                (list, "tags"),
            ] {
                assert!(
                    what["attributes"][name]["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{name} in {provider}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_provider_settings_are_reported_at_validate() {
    let cases = [
        (r#"region = "US West""#, "region"),
        ("max_retries = -1", "max_retries"),
        (r#"endpoints { elbv2 = "localhost:5055" }"#, "elbv2"),
        (r#"assume_role { role_arn = "deployer" }"#, "role_arn"),
    ];
    for tf in clis("provider_validation", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "provider-validate");
        for (setting, attribute) in cases {
            ws.write_config(&format!(
                "{REQUIRED_PROVIDERS}\nprovider \"immutable\" {{\n  {setting}\n}}\n\n\
                 resource \"immutable_health_gate\" \"g\" {{\n  url = \"http://127.0.0.1:1/\"\n}}\n"
            ));
            let out = ws.terraform(&["validate", "-no-color"], &[]).await;
            assert!(!out.success, "{setting}: validate passed");
            assert!(
                out.text().contains(attribute),
                "{setting}: error does not name {attribute}:\n{}",
                out.text()
            );
        }
    }
}

/// A TCP listener that counts the connections made to it.
async fn counting_listener() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_gates_alone_make_no_aws_call() {
    for tf in clis("provider_no_aws", Needs::Any, On::Each) {
        let app = TestApp::start("v1").await;
        let (elbv2, connections) = counting_listener().await;
        let ws = Workspace::new(&tf, "no-aws");
        ws.step(Step {
            config: format!(
                r#"{REQUIRED_PROVIDERS}
provider "immutable" {{
  region = "us-west-2"
  endpoints {{
    elbv2 = "{elbv2}"
  }}
}}

resource "immutable_health_gate" "app" {{
  url               = "{}/"
  healthy_threshold = 1
}}
"#,
                app.url()
            ),
            state_checks: vec![StateCheck::Set("immutable_health_gate.app", "passed_at")],
            ..Step::default()
        })
        .await;
        ws.destroy().await;
        assert_eq!(
            connections.load(Ordering::SeqCst),
            0,
            "the ELBv2 endpoint was contacted"
        );
    }
}
