//! Resource identity (Terraform 1.12+): a deployment's identity is its three ARNs, kept in
//! the state beside it and accepted by `import { identity = { ... } }`. Older Terraform
//! ignores it, and imports by ID as before (tests/bluegreen.rs).

use acceptance_tests::alb;
use acceptance_tests::app::TestApp;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::hcl;
use acceptance_tests::terraform::{clis, Needs, On};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

const ADDRESS: &str = "immutable_bluegreen_deployment.app";

fn identity_in_state(ws: &Workspace) -> serde_json::Value {
    let text = std::fs::read_to_string(ws.dir().join("terraform.tfstate")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["resources"][0]["instances"][0]["identity"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_has_an_identity_and_imports_by_it() {
    // Resource identity came with Terraform 1.12.
    for tf in clis("identity_import", Needs::Since(1, 12), On::Each) {
        let fx = BlueGreenFixture::create(alb::shared(), "id-import").await;
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "id-import");
        let config = hcl::app(&fx, "v1", v1.port(), "", "60s");
        ws.step(Step {
            config: config.clone(),
            ..Step::default()
        })
        .await;
        let identity = json!({
            "listener_arn": fx.listener_arn,
            "blue_target_group_arn": fx.blue_tg_arn,
            "green_target_group_arn": fx.green_tg_arn,
        });
        assert_eq!(
            identity_in_state(&ws),
            identity,
            "apply returned the identity"
        );
        let forget = ws.terraform(&["state", "rm", ADDRESS], &[]).await;
        assert!(forget.success, "{}", forget.text());
        let weights = fx.weights(&fx.listener_arn).await;
        ws.write_config(&format!(
            "{config}\nimport {{\n  to = {ADDRESS}\n  identity = {{\n    listener_arn           = \"{}\"\n    blue_target_group_arn  = \"{}\"\n    green_target_group_arn = \"{}\"\n  }}\n}}\n",
            fx.listener_arn, fx.blue_tg_arn, fx.green_tg_arn
        ));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false"], &[])
            .await;
        let text = plan.text();
        assert!(plan.success, "{text}");
        let summary = text
            .lines()
            .find(|l| l.starts_with("Plan:"))
            .unwrap_or_default();
        println!("identity import: {summary}");
        assert!(text.contains("1 to import, 0 to add"), "{text}");
        let apply = ws
            .terraform(
                &["apply", "-no-color", "-input=false", "-auto-approve"],
                &[],
            )
            .await;
        assert!(apply.success, "{}", apply.text());
        assert_eq!(
            identity_in_state(&ws),
            identity,
            "import returned the identity"
        );
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            weights,
            "importing moved no traffic"
        );
        ws.destroy().await;
    }
}
