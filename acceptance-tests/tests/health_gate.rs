//! `immutable_health_gate` through the real Terraform CLI, against real HTTP apps on
//! loopback.

use std::time::{Duration, Instant};

use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::checks::{PlanCheck, StateCheck};
use acceptance_tests::terraform::{clis, Needs, On, REQUIRED_PROVIDERS};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

const GATE: &str = "immutable_health_gate.app";

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
resource "immutable_health_gate" "app" {{
  url               = "{url}/health"
  healthy_threshold = 2
  interval          = "200ms"
  request_timeout   = "150ms"
{extra}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_passes_records_its_result_and_triggers_replace_it() {
    for tf in clis("health_gate_passes", Needs::Any, On::Each) {
        let app = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "gate-pass");
        ws.step(Step {
            config: config(&app.url(), r#"  triggers = { release = "v1" }"#),
            plan_checks: vec![PlanCheck::Create(GATE)],
            state_checks: vec![
                StateCheck::Equals(GATE, "attempts", json!(2)),
                StateCheck::Equals(GATE, "last_status_code", json!(200)),
                StateCheck::Equals(GATE, "method", json!("GET")),
                StateCheck::Equals(GATE, "expected_status", json!("200-299")),
                StateCheck::Set(GATE, "last_latency_ms"),
                StateCheck::Matches(GATE, "passed_at", r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
                StateCheck::Matches(GATE, "id", r"^gate-"),
            ],
            ..Step::default()
        })
        .await;
        let requests_after_create = app.requests();
        // Refresh and a plan with no change make no request: a gate is a recorded fact.
        ws.step(Step {
            config: config(&app.url(), r#"  triggers = { release = "v1" }"#),
            plan_only: true,
            plan_checks: vec![PlanCheck::NoOp(GATE)],
            ..Step::default()
        })
        .await;
        assert_eq!(
            app.requests(),
            requests_after_create,
            "plan and refresh must not probe"
        );
        ws.step(Step {
            config: config(&app.url(), r#"  triggers = { release = "v2" }"#),
            plan_checks: vec![
                PlanCheck::Replace(GATE),
                PlanCheck::TextContains("# forces replacement"),
            ],
            state_checks: vec![StateCheck::Equals(GATE, "triggers.release", json!("v2"))],
            ..Step::default()
        })
        .await;
        assert!(
            app.requests() > requests_after_create,
            "the replacement ran the gate again"
        );
        ws.destroy().await;
        assert!(StateCheck::Absent(GATE).check(&ws.state().await).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_fails_reports_a_tally_and_stores_nothing() {
    for tf in clis("health_gate_fails", Needs::Any, On::Each) {
        let app = TestApp::start("v3").await;
        app.set(Behavior::Failing(503));
        let ws = Workspace::new(&tf, "gate-fail");
        let started = Instant::now();
        let result = ws
            .step(Step {
                config: config(&app.url(), "  timeouts {\n    create = \"1s\"\n  }"),
                expect_error: Some(r"503 x\d+"),
                ..Step::default()
            })
            .await;
        assert!(started.elapsed() < Duration::from_secs(30));
        for needle in [
            "Health gate failed",
            "deadline of 1s",
            "Best run: 0 of the 2",
            "failing",
        ] {
            assert!(
                result.log.contains(needle),
                "missing {needle:?} in:\n{}",
                result.log
            );
        }
        assert!(
            StateCheck::Absent(GATE).check(&ws.state().await).is_ok(),
            "a failed gate is not stored"
        );
        // The next plan still wants to run the gate.
        ws.step(Step {
            config: config(&app.url(), ""),
            plan_only: true,
            expect_non_empty_plan: true,
            plan_checks: vec![PlanCheck::Create(GATE)],
            ..Step::default()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sensitive_header_never_shows_in_output_or_trace_logs() {
    const SECRET: &str = "s3cr3t-token-4711";
    for tf in clis("health_gate_sensitive_header", Needs::Any, On::Each) {
        let app = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "gate-secret");
        let result = ws
            .step(Step {
                config: config(
                    &app.url(),
                    &format!(r#"  headers = {{ Authorization = "Bearer {SECRET}" }}"#),
                ),
                plan_checks: vec![
                    PlanCheck::TextContains("(sensitive value)"),
                    PlanCheck::TextLacks(SECRET.into()),
                ],
                env: vec![("TF_LOG".into(), "trace".into())],
                ..Step::default()
            })
            .await;
        assert!(
            result.log.contains("provider.terraform-provider-immutable"),
            "trace logs include the provider's own lines"
        );
        assert!(
            !result.log.contains(SECRET),
            "the secret leaked into plan, apply or trace output"
        );
        let sent = app.last_headers();
        assert!(
            sent.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("authorization")
                    && v == &format!("Bearer {SECRET}")),
            "the header reached the app: {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_are_reported_at_validate_with_their_attribute() {
    let cases: &[(&str, &str)] = &[
        (r#"  expected_status = "2xx""#, "expected_status"),
        (r#"  body_regex = "(""#, "body_regex"),
        (r#"  method = "PUT""#, "method"),
        ("  healthy_threshold = 0", "healthy_threshold"),
        ("  unhealthy_threshold = -1", "unhealthy_threshold"),
        (r#"  initial_delay = "soon""#, "initial_delay"),
        (r#"  ca_cert_pem = "not a certificate""#, "ca_cert_pem"),
        (
            "  timeouts {\n    create = \"100ms\"\n  }",
            "timeouts.create",
        ),
    ];
    for tf in clis("health_gate_validation", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "gate-validate");
        ws.write_config(&config("ftp://example.com", ""));
        let out = ws.terraform(&["validate", "-no-color"], &[]).await;
        assert!(
            !out.success && out.stderr.contains("Invalid value for url"),
            "{}",
            out.text()
        );
        for (line, attribute) in cases {
            ws.write_config(&config("http://127.0.0.1:1", line));
            let out = ws.terraform(&["validate", "-no-color"], &[]).await;
            let text = out.text();
            assert!(!out.success, "{attribute}: validate passed:\n{text}");
            assert!(
                text.contains(attribute),
                "{attribute}: error does not name it:\n{text}"
            );
            assert!(!text.contains("panic"), "{text}");
        }
        ws.write_config(&config("http://127.0.0.1:1", "").replace("\"150ms\"", "\"1s\""));
        let out = ws.terraform(&["validate", "-no-color"], &[]).await;
        assert!(
            out.text().contains("request_timeout longer than interval"),
            "{}",
            out.text()
        );
        // Left out, request_timeout is 2s, or the interval when that is shorter.
        ws.step(Step {
            config: config("http://127.0.0.1:1", "")
                .replace("  request_timeout   = \"150ms\"\n", ""),
            plan_only: true,
            expect_non_empty_plan: true,
            plan_checks: vec![PlanCheck::change(
                GATE,
                "request_timeout",
                json!(null),
                json!("200ms"),
            )],
            ..Step::default()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_a_running_gate_with_an_interrupted_error() {
    for tf in clis("health_gate_interrupt", Needs::Any, On::Each) {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Failing(503));
        let ws = Workspace::new(&tf, "gate-interrupt");
        ws.write_config(&config(&app.url(), ""));
        let child = ws.spawn(&["apply", "-no-color", "-input=false", "-auto-approve"]);
        // Wait until the gate is probing, then interrupt as a terminal's Ctrl-C would.
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.requests() < 2 {
            assert!(Instant::now() < deadline, "the gate never started probing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let interrupted = Instant::now();
        Workspace::interrupt(&child);
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("terraform ends after Ctrl-C")
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(
            interrupted.elapsed() < Duration::from_secs(5),
            "took {:?}",
            interrupted.elapsed()
        );
        assert!(text.contains("interrupted"), "{text}");
        assert!(StateCheck::Absent(GATE).check(&ws.state().await).is_ok());
    }
}

/// A secret only `headers_wo` carries.
const TOKEN: &str = "wo-secret-5c1d8e";

/// The gate with `headers_wo` from an ephemeral variable (`TF_VAR_token`), as a pipeline
/// passes a secret: a literal would be in the plan's copy of the configuration.
fn write_only_config(url: &str, version: u32) -> String {
    std::env::set_var("TF_VAR_token", TOKEN);
    config(
        url,
        &format!("  headers_wo         = {{ Authorization = \"Bearer ${{var.token}}\" }}\n  headers_wo_version = {version}"),
    ) + EPHEMERAL_TOKEN
}

const EPHEMERAL_TOKEN: &str =
    "\nvariable \"token\" {\n  type      = string\n  ephemeral = true\n}\n";

#[tokio::test(flavor = "multi_thread")]
async fn headers_wo_reach_the_app_and_never_what_terraform_keeps() {
    // Write-only attributes came with Terraform 1.11.
    for tf in clis("health_gate_headers_wo", Needs::Since(1, 11), On::Each) {
        let app = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "gate-wo");
        ws.write_config(&write_only_config(&app.url(), 1));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false", "-out=tfplan"], &[])
            .await;
        assert!(plan.success, "{}", plan.text());
        let plan_json = ws.terraform(&["show", "-json", "tfplan"], &[]).await;
        let trace = [("TF_LOG".to_string(), "trace".to_string())];
        let apply = ws
            .terraform(&["apply", "-no-color", "-input=false", "tfplan"], &trace)
            .await;
        assert!(apply.success, "{}", apply.text());
        assert!(
            apply.stderr.contains("ApplyResourceChange"),
            "TF_LOG=trace logged the RPCs"
        );
        let shown = ws.terraform(&["show", "-json"], &[]).await;
        let state_file = std::fs::read_to_string(ws.dir().join("terraform.tfstate")).unwrap();
        for (what, text) in [
            ("the plan's JSON", plan_json.text()),
            ("TF_LOG=trace output of the apply", apply.text()),
            ("terraform show -json", shown.text()),
            ("the state file", state_file.clone()),
        ] {
            assert!(!text.contains(TOKEN), "the token is in {what}:\n{text}");
        }
        assert!(
            app.saw_header("authorization", TOKEN),
            "the gate sent the header"
        );
        let state: serde_json::Value = serde_json::from_str(&state_file).unwrap();
        let attrs = &state["resources"][0]["instances"][0]["attributes"];
        assert_eq!(attrs["headers_wo"], serde_json::Value::Null, "{attrs}");
        assert_eq!(attrs["headers_wo_version"], json!(1));
        // A new version is a change, and runs the gate again.
        let requests = app.requests();
        ws.step(Step {
            config: write_only_config(&app.url(), 2),
            plan_checks: vec![PlanCheck::Replace(GATE)],
            ..Step::default()
        })
        .await;
        assert!(
            app.requests() > requests,
            "the replacement ran the gate again"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_wo_is_refused_by_terraform_older_than_1_11() {
    // From 1.11 on, Terraform keeps write-only attributes out of state itself.
    for tf in clis("health_gate_headers_wo_old", Needs::Before(1, 11), On::Each) {
        let ws = Workspace::new(&tf, "gate-wo-old");
        // A literal: an ephemeral variable is itself refused before 1.10.
        let literal = config(
            "http://127.0.0.1:9",
            &format!("  headers_wo = {{ Authorization = \"Bearer {TOKEN}\" }}"),
        );
        ws.assert_refused_at_validate(&[(
            literal,
            r"headers_wo needs Terraform 1.11 or later.*Upgrade Terraform, or use the sensitive attribute",
        )])
        .await;
    }
}
