//! Write-only secrets (Terraform 1.11+): a deployment's checks send `headers_wo`, and an
//! HAProxy deployment logs in over SSH with `private_key_wo`; nothing Terraform keeps (the
//! plan, the state, `terraform show`) holds either; a new `headers_wo_version` is a settings
//! change that moves no traffic.

use acceptance_tests::alb;
use acceptance_tests::app::TestApp;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::haproxy::{Haproxy, HaproxySettings};
use acceptance_tests::hcl;
use acceptance_tests::sshd::Sshd;
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

/// An HAProxy deployment over SSH whose key is `key` (HCL for the key attributes), with
/// the ephemeral variable `key` holding the private key (`TF_VAR_key`).
fn over_ssh(proxy: &Haproxy, sshd: &Sshd, release: &str, app: &TestApp, key: &str) -> String {
    std::env::set_var("TF_VAR_key", sshd.private_key());
    let ssh = format!(
        "  ssh {{\n    host     = \"127.0.0.1\"\n    port     = {}\n    user     = \"{}\"\n    host_key = \"{}\"\n{key}\n  }}\n",
        sshd.port(),
        sshd.user(),
        sshd.host_key_line().trim()
    );
    hcl::haproxy(
        &proxy.runtime_api(),
        proxy.backend(),
        release,
        &[app.port()],
        &ssh,
    ) + "\nvariable \"key\" {\n  type      = string\n  ephemeral = true\n}\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn over_ssh_a_release_logs_in_with_private_key_wo_and_keeps_it_nowhere() {
    for tf in clis("write_only_ssh", Needs::Since(1, 11), On::Each) {
        let sshd = Sshd::start();
        let proxy = Haproxy::start(HaproxySettings::default());
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let ws = Workspace::new(&tf, "wo-ssh");
        let wo = "    private_key_wo         = var.key\n    private_key_wo_version = 1";
        ws.assert_refused_at_validate(&[
            (
                over_ssh(
                    &proxy,
                    &sshd,
                    "v1",
                    &v1,
                    &format!(
                        "{wo}\n    private_key = <<-EOT\n{}\nEOT",
                        sshd.private_key().trim_end()
                    ),
                ),
                r"(?s)Two private keys.*ssh.private_key_wo",
            ),
            (
                over_ssh(&proxy, &sshd, "v1", &v1, ""),
                r"(?s)Missing private key.*ssh.private_key_wo",
            ),
        ])
        .await;
        // Each step ends with a plan that must be empty: a plan and a refresh, which are
        // given no key, take the state as it is.
        let first = ws
            .step(Step {
                config: over_ssh(&proxy, &sshd, "v1", &v1, wo),
                ..Step::default()
            })
            .await;
        assert!(proxy.weights_by_colour().0 > 0, "v1 serves from blue");
        let second = ws
            .step(Step {
                config: over_ssh(&proxy, &sshd, "v2", &v2, wo),
                ..Step::default()
            })
            .await;
        assert_eq!(proxy.weights_by_colour().0, 0, "v2 took all the traffic");
        assert!(proxy.weights_by_colour().1 > 0, "v2 serves from green");
        let key_line = sshd.private_key_line();
        let shown = ws.terraform(&["show", "-json"], &[]).await;
        let state = std::fs::read_to_string(ws.dir().join("terraform.tfstate")).unwrap();
        for (what, text) in [
            ("the first plan's JSON", first.plan.unwrap().to_string()),
            ("the second plan's JSON", second.plan.unwrap().to_string()),
            ("terraform show -json", shown.text()),
            ("the state file", state),
        ] {
            assert!(!text.contains(&key_line), "the key is in {what}:\n{text}");
        }
        // A destroy is given no key either: it says so and leaves HAProxy as it is.
        let destroyed = ws.destroy().await;
        assert!(
            destroyed.text().contains("The backend is left as it is"),
            "{}",
            destroyed.text()
        );
        assert!(proxy.weights_by_colour().1 > 0, "v2 still serves");
    }
}
