//! The rollback action (Terraform 1.14+): `terraform apply -invoke=action.immutable_rollback.NAME`
//! moves all traffic back to the warm colour under load, failing no request; the next plan
//! with the configuration unchanged moves no traffic and warns; naming the serving release
//! adopts the rollback; a new release deploys as usual.

use std::time::Duration;

use acceptance_tests::app::TestApp;
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::terraform::{clis, Needs, On, Terraform};
use acceptance_tests::traffic::{
    flat, fleet_config, v1_live, wait_healthy, weights, Traffic, APPLY, TAIL,
};
use acceptance_tests::workspace::{Step, Workspace};

const ROLLED_BACK_TAG: &str = "immutable:rolled-back-at";
const INVOKE: &[&str] = &[
    "apply",
    "-no-color",
    "-input=false",
    "-auto-approve",
    "-invoke=action.immutable_rollback.web",
];

/// Actions.
const ACTIONS: Needs = Needs::Since(1, 14);

/// The action block for the fixture's deployment; `extra` goes in its `config`.
fn action(fx: &BlueGreenFixture, extra: &str) -> String {
    format!(
        "\naction \"immutable_rollback\" \"web\" {{\n  config {{\n    listener_arn           = \"{}\"\n    blue_target_group_arn  = \"{}\"\n    green_target_group_arn = \"{}\"\n{extra}  }}\n}}\n",
        fx.listener_arn, fx.blue_tg_arn, fx.green_tg_arn
    )
}

/// v1 on green, then v2 released onto blue: v1 is the warm colour.
async fn v2_live_v1_warm(
    tf: &Terraform,
    name: &str,
    extra: &str,
) -> (BlueGreenFixture, Workspace, TestApp, TestApp) {
    let (fx, ws, v1) = v1_live(tf, name).await;
    let v2 = TestApp::start("v2").await;
    ws.step(Step {
        config: fleet_config(&fx, "v2", &v2, "") + &action(&fx, extra),
        ..Step::default()
    })
    .await;
    assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
    (fx, ws, v1, v2)
}

async fn plan(ws: &Workspace) -> (Option<i32>, String) {
    let out = ws
        .terraform(
            &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
            &[],
        )
        .await;
    (out.code, out.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rollback_action_moves_traffic_back_and_the_next_plans_are_safe() {
    for tf in clis("action_rollback", ACTIONS, On::Each) {
        let (fx, ws, v1, v2) = v2_live_v1_warm(&tf, "rb-action", "").await;
        wait_healthy(&fx, &fx.green_tg_arn).await;
        let traffic = Traffic::start(&fx, Duration::from_secs(30), None).await;
        traffic.load.mark("invoke");
        let out = ws.terraform(INVOKE, &[]).await;
        let invoked = traffic.load.mark("invoked");
        let seen = traffic.finish(TAIL).await;
        let text = out.text();
        println!("terraform apply -invoke:\n{text}");
        assert!(out.success, "{text}\n{}", seen.report);
        for step in [
            "Gating green (v1)",
            "Shifting all traffic from blue (v2) to green (v1)",
            "Verified:",
        ] {
            assert!(text.contains(step), "{step:?} not in:\n{text}");
        }
        seen.print_line(
            "rollback-action",
            "the_rollback_action_moves_traffic_back_and_the_next_plans_are_safe",
        );
        seen.assert_none_failed();
        seen.assert_all_on("v1", seen.settled_after(invoked));
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));
        assert!(fx.tags(&fx.blue_tg_arn).await.contains_key(ROLLED_BACK_TAG));

        // Invoked twice (a second responder): it would undo the rollback, so it refuses.
        let again = ws.terraform(INVOKE, &[]).await;
        let text = flat(&again.text());
        assert!(!again.success, "{text}");
        assert!(text.contains("rolling back again would undo it"), "{text}");
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(0, 100));

        // The configuration still says v2: no traffic moves, and the plan says why.
        let (code, text) = plan(&ws).await;
        assert_eq!(code, Some(0), "no change planned:\n{text}");
        let flat_text = flat(&text);
        for said in [
            "Warning: Release \"v2\" was rolled back",
            "moved all traffic back to \"v1\" (on green)",
            "set release = \"v1\"",
        ] {
            assert!(flat_text.contains(said), "{said:?} not in:\n{text}");
        }
        let apply = ws.terraform(APPLY, &[]).await;
        assert!(apply.success, "{}", apply.text());
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            weights(0, 100),
            "an unchanged apply moved no traffic"
        );
        let state = ws.state().await;
        let values = &state["values"]["root_module"]["resources"][0]["values"];
        assert_eq!(values["active_color"], "green", "{values}");
        assert_eq!(values["active_release"], "v1", "{values}");

        // Naming the release that serves adopts the rollback: nothing moves.
        ws.write_config(&(fleet_config(&fx, "v1", &v1, "") + &action(&fx, "")));
        let (code, text) = plan(&ws).await;
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("release") && !text.contains("traffic_weights"),
            "{text}"
        );
        assert!(!text.contains("was rolled back"), "{text}");
        let apply = ws.terraform(APPLY, &[]).await;
        assert!(apply.success, "{}", apply.text());
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            weights(0, 100),
            "adopting moved no traffic"
        );
        assert!(
            !fx.tags(&fx.blue_tg_arn).await.contains_key(ROLLED_BACK_TAG),
            "adopting cleared the mark"
        );
        let (code, text) = plan(&ws).await;
        assert_eq!(code, Some(0), "{text}");

        // A new release deploys as usual, onto the colour rolled back from.
        let v3 = TestApp::start("v3").await;
        ws.write_config(&(fleet_config(&fx, "v3", &v3, "") + &action(&fx, "")));
        let apply = ws.terraform(APPLY, &[]).await;
        assert!(apply.success, "{}", apply.text());
        assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));
        let state = ws.state().await;
        let values = &state["values"]["root_module"]["resources"][0]["values"];
        assert_eq!(values["active_release"], "v3", "{values}");
        assert_eq!(values["previous_release"], "v1", "{values}");
        ws.destroy().await;
        drop((v1, v2, v3));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_to_an_unhealthy_colour_moves_no_traffic() {
    for tf in clis("action_unhealthy", ACTIONS, On::Each) {
        let (fx, ws, v1, v2) = v2_live_v1_warm(&tf, "rb-unhealthy", "    timeout = \"3s\"\n").await;
        drop(v1);
        // The load balancer sees v1's fleet fail its checks.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while fx
            .targets(&fx.green_tg_arn)
            .await
            .iter()
            .any(|t| t.2 == "healthy")
        {
            assert!(tokio::time::Instant::now() < deadline, "v1 never unhealthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let out = ws.terraform(INVOKE, &[]).await;
        let text = out.text();
        println!("a rollback to an unhealthy colour:\n{text}");
        assert!(!out.success, "{text}");
        assert!(text.contains("Rollback failed"), "{text}");
        assert!(text.contains("Gating green (v1)"), "{text}");
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            weights(100, 0),
            "traffic stayed on v2"
        );
        assert!(!fx.tags(&fx.blue_tg_arn).await.contains_key(ROLLED_BACK_TAG));
        let (code, text) = plan(&ws).await;
        assert_eq!(code, Some(0), "{text}");
        ws.destroy().await;
        drop(v2);
    }
}
