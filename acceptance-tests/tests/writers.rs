//! A second writer on one listener: the live listener decides, not the state. A plan made
//! before another pipeline cut over is refused at apply before anything is written, and
//! the next plan lands the release on the colour that is standby now. Under load, no
//! request fails.

use std::time::Duration;

use acceptance_tests::app::TestApp;
use acceptance_tests::checks::StateCheck;
use acceptance_tests::terraform::{clis, Needs, On};
use acceptance_tests::traffic::{self, flat, fleet_config, v1_live, Traffic, TAIL};
use acceptance_tests::workspace::{Step, Workspace};
use serde_json::json;

const DEPLOYMENT: &str = "immutable_bluegreen_deployment.app";

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_made_before_another_pipeline_cut_over_is_refused_before_any_write() {
    for tf in clis("writers_stale_plan", Needs::Any, On::Newest) {
        let (fx, ws, v1) = v1_live(&tf, "stale-plan").await;
        let (v2, v3) = (TestApp::start("v2").await, TestApp::start("v3").await);
        // Pipeline A plans v2 onto blue, the standby colour.
        ws.write_config(&fleet_config(&fx, "v2", &v2, ""));
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false", "-out=tfplan"], &[])
            .await;
        assert!(plan.success, "{}", plan.text());
        // Pipeline B, from a copy of the same state, releases v3 onto blue first.
        let other = Workspace::new(&tf, "stale-plan-b");
        std::fs::copy(
            ws.dir().join("terraform.tfstate"),
            other.dir().join("terraform.tfstate"),
        )
        .unwrap();
        let load = Traffic::start(&fx, Duration::from_secs(40), None).await;
        other
            .step(Step {
                config: fleet_config(&fx, "v3", &v3, ""),
                ..Step::default()
            })
            .await;
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(100, 0));
        let blue_before = fx.targets(&fx.blue_tg_arn).await;
        // Pipeline A applies its plan: blue serves now, so it must write nothing.
        let applied = ws
            .terraform(&["apply", "-no-color", "-input=false", "tfplan"], &[])
            .await;
        let text = flat(&applied.text());
        assert!(!applied.success, "{text}");
        assert!(
            text.contains("The listener changed since this plan was made")
                && text.contains("Nothing was changed; traffic was not moved"),
            "{text}"
        );
        assert!(text.contains("blue 100% (v3, generation 2)"), "{text}");
        assert_eq!(fx.weights(&fx.listener_arn).await, traffic::weights(100, 0));
        assert_eq!(
            fx.targets(&fx.blue_tg_arn).await,
            blue_before,
            "nothing registered into or removed from the colour that serves"
        );
        // Its next plan starts from what serves: v2 lands on green, now standby.
        ws.step(Step {
            config: fleet_config(&fx, "v2", &v2, ""),
            state_checks: vec![
                StateCheck::Equals(DEPLOYMENT, "active_color", json!("green")),
                StateCheck::Equals(DEPLOYMENT, "active_release", json!("v2")),
                StateCheck::Equals(DEPLOYMENT, "previous_release", json!("v3")),
            ],
            ..Step::default()
        })
        .await;
        let seen = load.finish(TAIL).await;
        seen.assert_none_failed();
        seen.print_line(
            "a-stale-plan-after-another-pipeline",
            "writers::a_plan_made_before_another_pipeline_cut_over_is_refused_before_any_write",
        );
        drop((v1, v2, v3));
    }
}
