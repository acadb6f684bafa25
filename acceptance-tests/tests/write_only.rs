//! Write-only secrets in a deployment's `health_check` (Terraform 1.11+): the checks send
//! `headers_wo`, and nothing Terraform keeps (the plan, the state, `terraform show`) holds
//! it; a new `headers_wo_version` is a settings change that moves no traffic.

use acceptance_tests::alb;
use acceptance_tests::app::TestApp;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::hcl;
use acceptance_tests::terraform::{clis, Needs, On};
use acceptance_tests::workspace::{Step, Workspace};

const TOKEN: &str = "wo-deploy-secret-93b2";

/// The fleet deployment with `headers_wo` from an ephemeral variable (`TF_VAR_token`), as
/// a pipeline passes a secret: a literal would be in the plan's copy of the configuration.
fn config(fx: &BlueGreenFixture, release: &str, app: &TestApp, version: u32) -> String {
    std::env::set_var("TF_VAR_token", TOKEN);
    hcl::app(fx, release, app.port(), "", "60s").replace(
        "  health_check {\n",
        &format!("  health_check {{\n    headers_wo         = {{ Authorization = \"Bearer ${{var.token}}\" }}\n    headers_wo_version = {version}\n"),
    ) + "\nvariable \"token\" {\n  type      = string\n  ephemeral = true\n}\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_checks_with_headers_wo_and_keeps_them_nowhere() {
    // Write-only attributes came with Terraform 1.11.
    for tf in clis("write_only_deployment", Needs::Since(1, 11), On::Each) {
        let fx = BlueGreenFixture::create(alb::shared(), "wo-deploy").await;
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "wo-deploy");
        ws.step(Step {
            config: config(&fx, "v1", &v1, 1),
            ..Step::default()
        })
        .await;
        assert!(
            v1.saw_header("authorization", TOKEN),
            "the checks sent headers_wo"
        );
        let weights = fx.weights(&fx.listener_arn).await;
        // A new version: a settings change, planned, that writes nothing to the listener.
        ws.write_config(&config(&fx, "v1", &v1, 2));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false", "-out=tfplan"], &[])
            .await;
        assert!(
            plan.success && plan.text().contains("headers_wo_version = 1 -> 2"),
            "{}",
            plan.text()
        );
        let plan_json = ws.terraform(&["show", "-json", "tfplan"], &[]).await;
        let apply = ws
            .terraform(&["apply", "-no-color", "-input=false", "tfplan"], &[])
            .await;
        assert!(apply.success, "{}", apply.text());
        assert_eq!(fx.weights(&fx.listener_arn).await, weights);
        let shown = ws.terraform(&["show", "-json"], &[]).await;
        let state = std::fs::read_to_string(ws.dir().join("terraform.tfstate")).unwrap();
        for (what, text) in [
            ("the plan's JSON", plan_json.text()),
            ("terraform show -json", shown.text()),
            ("the state file", state),
        ] {
            assert!(!text.contains(TOKEN), "the token is in {what}:\n{text}");
        }
        ws.destroy().await;
    }
}
