//! Traffic through every cut-over, measured. A steady, bounded stream of requests goes through
//! the ALB emulator's data plane (the listener's loopback port, routing each request by the
//! weights in force) while the real Terraform CLI releases, rolls back, fails a gate, fails at
//! a step or while baking, is interrupted, or deregisters the previous fleet. Each test asserts
//! what a user of the service would see:
//!
//! * no failed request while the releases involved are healthy;
//! * no request served by a release whose gate never passed;
//! * in every window in which the listener held one set of weights, the share of the new
//!   release within `Z` binomial standard errors of its weight (exactly 0 or 100% at weights
//!   0 and 100);
//! * afterwards, every request served by the expected release.
//!
//! When the weights changed: a [`Watcher`] polls the listener every [`POLL`] from moto directly
//! (not through the emulator, whose API throttling the provider's own calls share) and brackets
//! each write: it landed after the start of the last poll that still saw the old weights and
//! before the end of the first poll that saw the new ones. The data plane uses new weights
//! `weight_delay` (50 ms) after the write; each window keeps [`MARGIN`] inside the brackets, for
//! the emulator's read-back of the listener and the time from a request's start to its routing.
//!
//! Each test prints one `traffic-report:` line per load (docs/reliability.md's table "Traffic
//! through every cut-over" is made of them: `cargo nextest run ... --no-capture`). One Terraform
//! CLI per test (the first found), to keep the suite fast. The measuring is in
//! `acceptance_tests::traffic`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use acceptance_tests::alb;
use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::elb::{BlueGreenFixture, Start};
use acceptance_tests::hcl;
use acceptance_tests::traffic::*;
use acceptance_tests::workspace::{Step, Workspace};

#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_takes_traffic_only_at_its_cut_over() {
    let Some(tf) = cli("traffic_first_release") else {
        return;
    };
    let fx = BlueGreenFixture::create_with(alb::shared(), "tr-first", Start::BlueOnly).await;
    let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
    // What was there before the provider: v1 behind a forward to blue alone.
    fx.register(&fx.blue_tg_arn, &[("127.0.0.1", i32::from(v1.port()))])
        .await;
    wait_healthy(&fx, &fx.blue_tg_arn).await;
    let ws = Workspace::new(&tf, "tr-first");
    ws.write_config(&fleet_config(&fx, "v2", &v2, ""));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), None).await;
    let (out, apply) = traffic.apply(&ws).await;
    let seen = traffic.finish(TAIL).await;
    seen.print_line(
        "first-release",
        "a_first_release_takes_traffic_only_at_its_cut_over",
    );
    assert!(out.success, "{}", out.text());
    // One write: the forward to blue alone becomes green 100, blue 0.
    assert_eq!(
        seen.sequence(),
        vec![BTreeMap::from([("blue".to_string(), 1)]), weights(0, 100)]
    );
    seen.assert_none_failed();
    // Nothing reached v2 before the cut-over (the warm-up rule had the load balancer
    // health-check green, and no request matched it), everything after.
    let cut = &seen.weights[1];
    let before = Duration::ZERO..(cut.after + seen.delay).saturating_sub(MARGIN);
    let early = seen.report.share_of("v2", before.clone());
    assert!(
        early.served == 0 && early.answered >= 100,
        "v2 served {} of {} requests before its cut-over ({before:?})\n{}",
        early.served,
        early.answered,
        seen.report
    );
    assert_eq!(seen.assert_shares("v2", "green"), 2);
    seen.assert_all_on("v2", seen.settled_after(apply.end));
    drop((v1, v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_all_at_once_release_fails_no_request() {
    let Some(tf) = cli("traffic_all_at_once") else {
        return;
    };
    let seen = release_v2(&tf, "tr-all", "", Duration::from_secs(40)).await;
    seen.print_line("all-at-once", "an_all_at_once_release_fails_no_request");
    assert_eq!(seen.sequence(), vec![weights(0, 100), weights(100, 0)]);
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_release_serves_its_share_at_each_step() {
    let Some(tf) = cli("traffic_canary") else {
        return;
    };
    let seen = release_v2(
        &tf,
        "tr-canary",
        &hcl::canary(20, "4s"),
        Duration::from_secs(45),
    )
    .await;
    seen.print_line("canary", "a_canary_release_serves_its_share_at_each_step");
    assert_eq!(
        seen.sequence(),
        vec![weights(0, 100), weights(20, 80), weights(100, 0)]
    );
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 3, "every step checked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linear_release_serves_its_share_at_each_step() {
    let Some(tf) = cli("traffic_linear") else {
        return;
    };
    let seen = release_v2(
        &tf,
        "tr-linear",
        &hcl::linear(25, "3s"),
        Duration::from_secs(50),
    )
    .await;
    seen.print_line("linear", "a_linear_release_serves_its_share_at_each_step");
    assert_eq!(
        seen.sequence(),
        vec![
            weights(0, 100),
            weights(25, 75),
            weights(50, 50),
            weights(75, 25),
            weights(100, 0)
        ]
    );
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 5, "every step checked");
}

/// How long the gate of a rollback to green took, bracketed: from the write of green's
/// generation tag (just before the gate) to the write of the weights putting green at 100.
fn gate_time(seen: &Measured) -> Range<Duration> {
    let tagged = seen.generations.get(1).unwrap_or_else(|| {
        panic!(
            "green's generation tag never changed: {:?}",
            seen.generations
        )
    });
    let moved = seen
        .weights
        .iter()
        .find(|s| s.value == weights(0, 100))
        .expect("all traffic moved to green");
    moved.after.saturating_sub(tagged.by)..moved.by.saturating_sub(tagged.after)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_fails_no_request_and_is_quicker_within_rollback_window() {
    let Some(tf) = cli("traffic_rollback") else {
        return;
    };
    let (fx, ws, v1) = v1_live(&tf, "tr-rollback").await;
    let v2 = TestApp::start("v2").await;
    // Five rounds of checks 200 ms apart make the normal gate last 800 ms at least; the
    // rollback window's gate is one round.
    let slow_gate = |release: &str, app: &TestApp, extra: &str| {
        fleet_config(&fx, release, app, extra)
            .replace("healthy_threshold = 2", "healthy_threshold = 5")
    };
    ws.step(Step {
        config: slow_gate("v2", &v2, ""),
        ..Step::default()
    })
    .await;
    assert_eq!(fx.weights(&fx.listener_arn).await, weights(100, 0));

    // Back to v1, still warm on green, gated like any release.
    ws.write_config(&slow_gate("v1", &v1, ""));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), Some(&fx.green_tg_arn)).await;
    let (out, apply) = traffic.apply(&ws).await;
    let normal = traffic.finish(TAIL).await;
    normal.print_line(
        "rollback",
        "a_rollback_fails_no_request_and_is_quicker_within_rollback_window",
    );
    assert!(out.success, "{}", out.text());
    assert_eq!(normal.sequence(), vec![weights(100, 0), weights(0, 100)]);
    normal.assert_none_failed();
    assert_eq!(normal.assert_shares("v1", "green"), 2);
    normal.assert_all_on("v1", normal.settled_after(apply.end));

    // v2 again, then back to v1 within rollback_window: one round of checks.
    ws.step(Step {
        config: slow_gate("v2", &v2, ""),
        ..Step::default()
    })
    .await;
    ws.write_config(&slow_gate("v1", &v1, "  rollback_window = \"1h\"\n"));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), Some(&fx.green_tg_arn)).await;
    let (out, apply) = traffic.apply(&ws).await;
    let quick = traffic.finish(TAIL).await;
    quick.print_line(
        "rollback-window",
        "a_rollback_fails_no_request_and_is_quicker_within_rollback_window",
    );
    assert!(out.success, "{}", out.text());
    assert_eq!(quick.sequence(), vec![weights(100, 0), weights(0, 100)]);
    quick.assert_none_failed();
    assert_eq!(quick.assert_shares("v1", "green"), 2);
    quick.assert_all_on("v1", quick.settled_after(apply.end));

    let (normal_gate, quick_gate) = (gate_time(&normal), gate_time(&quick));
    println!("gate: normal {normal_gate:?}, within rollback_window {quick_gate:?}");
    assert!(
        normal_gate.end >= Duration::from_millis(800),
        "five rounds 200 ms apart took {normal_gate:?}"
    );
    assert!(
        quick_gate.end < normal_gate.start,
        "within rollback_window the gate took {quick_gate:?}, the normal one {normal_gate:?}"
    );
    drop((v1, v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_fails_its_gate_serves_no_request() {
    let Some(tf) = cli("traffic_failed_gate") else {
        return;
    };
    let (fx, ws, v1) = v1_live(&tf, "tr-gate").await;
    let v3 = TestApp::start("v3").await;
    v3.set(Behavior::Failing(503));
    ws.write_config(&fleet_config(&fx, "v3", &v3, "").replace("\"60s\"", "\"3s\""));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), None).await;
    let (out, apply) = traffic.apply(&ws).await;
    let seen = traffic.finish(TAIL).await;
    seen.print_line(
        "failed-gate",
        "a_release_that_fails_its_gate_serves_no_request",
    );
    assert!(!out.success, "{}", out.text());
    assert!(
        flat(&out.text()).contains("not deployed to blue"),
        "{}",
        out.text()
    );
    assert_eq!(
        seen.sequence(),
        vec![weights(0, 100)],
        "the listener was never written"
    );
    assert_eq!(
        alb::shared().served(&fx.blue_tg_arn),
        0,
        "the data plane routed requests to v3's target group"
    );
    assert_eq!(seen.report.served_by().get("v3"), None, "{}", seen.report);
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v3", "blue"), 1);
    seen.assert_all_on("v1", seen.settled_after(apply.end));
    drop((v1, v3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_failing_at_its_step_fails_only_its_own_requests() {
    let canary = weights(20, 80);
    fail_mid_release(FailMidRelease {
        test: "a_canary_failing_at_its_step_fails_only_its_own_requests",
        name: "canary_failure",
        traffic: &hcl::canary(20, "4s"),
        fails_at: ("the canary weights", &canary),
        error: "Health checks failed at 20% on blue",
        sequence: vec![weights(0, 100), weights(20, 80), weights(0, 100)],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_failing_while_baking_fails_only_its_own_requests() {
    let all_on_blue = weights(100, 0);
    fail_mid_release(FailMidRelease {
        test: "a_release_failing_while_baking_fails_only_its_own_requests",
        name: "bake_failure",
        traffic: "  traffic {\n    bake_time = \"10s\"\n  }\n",
        fails_at: ("all traffic on blue", &all_on_blue),
        error: "while baking on blue",
        sequence: vec![weights(0, 100), weights(100, 0), weights(0, 100)],
    })
    .await;
}

/// A release v3 that passes its gate and starts failing once the listener shows
/// `fails_at`, after a second of healthy traffic there (so that its share is checked
/// too): traffic moves back to v1, and every failed request is v3's own.
struct FailMidRelease<'a> {
    /// The test's own name, and a short one for its report line and workspace.
    test: &'a str,
    name: &'a str,
    traffic: &'a str,
    fails_at: (&'a str, &'a Weights),
    error: &'a str,
    sequence: Vec<Weights>,
}

async fn fail_mid_release(case: FailMidRelease<'_>) {
    let Some(tf) = cli(&format!("traffic_{}", case.name)) else {
        return;
    };
    let (fx, ws, v1) = v1_live(&tf, &format!("tr-{}", case.name.replace('_', "-"))).await;
    let v3 = TestApp::start("v3").await;
    ws.write_config(&fleet_config(&fx, "v3", &v3, case.traffic));
    let traffic = Traffic::start(&fx, Duration::from_secs(45), None).await;
    let (what, at_weights) = case.fails_at;
    let ((out, apply), failing_from) = tokio::join!(traffic.apply(&ws), async {
        traffic.watcher.wait_for(what, |w| w == at_weights).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = traffic.load.mark("v3 failing");
        v3.set(Behavior::Failing(503));
        at
    });
    let seen = traffic.finish(TAIL).await;
    seen.print_line(&case.name.replace('_', "-"), case.test);
    assert!(!out.success, "{}", out.text());
    let text = flat(&out.text());
    assert!(text.contains(case.error), "{text}");
    assert!(
        text.contains("All traffic was moved back to green"),
        "{text}"
    );
    assert_eq!(seen.sequence(), case.sequence);
    assert_failures_only_from_v3(&seen, failing_from, apply.end);
    assert_eq!(seen.assert_shares("v3", "blue"), 3);
    drop((v1, v3));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_linear_shift_fails_no_request() {
    let Some(tf) = cli("traffic_ctrl_c") else {
        return;
    };
    let (fx, ws, v1) = v1_live(&tf, "tr-ctrl-c").await;
    let v2 = TestApp::start("v2").await;
    ws.write_config(&fleet_config(&fx, "v2", &v2, &hcl::linear(25, "3s")));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), None).await;
    traffic.load.mark("apply");
    let child = ws.spawn(APPLY);
    traffic
        .watcher
        .wait_for("the first linear step", |w| w == &weights(25, 75))
        .await;
    // Most of the step's interval, so that the step has a window of its own.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    traffic.load.mark("ctrl-c");
    Workspace::interrupt(&child);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("terraform apply ended after Ctrl-C")
        .unwrap();
    let end = traffic.load.mark("applied");
    let seen = traffic.finish(TAIL).await;
    seen.print_line(
        "ctrl-c-linear",
        "ctrl_c_during_a_linear_shift_fails_no_request",
    );
    let text = flat(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Interrupted at 25% on blue"), "{text}");
    assert!(
        text.contains("All traffic was moved back to green"),
        "{text}"
    );
    assert_eq!(
        seen.sequence(),
        vec![weights(0, 100), weights(25, 75), weights(0, 100)]
    );
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 3);
    seen.assert_all_on("v1", seen.settled_after(end));
    drop((v1, v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn deregistering_the_previous_fleet_fails_no_request() {
    let Some(tf) = cli("traffic_retain_previous") else {
        return;
    };
    let (fx, ws, v1) = v1_live(&tf, "tr-deregister").await;
    let v2 = TestApp::start("v2").await;
    ws.write_config(&fleet_config(&fx, "v2", &v2, "  retain_previous = false\n"));
    let traffic = Traffic::start(&fx, Duration::from_secs(40), None).await;
    let ((out, apply), deregistered) = tokio::join!(traffic.apply(&ws), async {
        // From the cut-over on (the provider makes few calls then: these go through the
        // emulator, which keeps the targets), until v1's target drains.
        traffic
            .watcher
            .wait_for("all traffic on blue", |w| w == &weights(100, 0))
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let green = fx.targets(&fx.green_tg_arn).await;
            if green.iter().any(|t| t.2 == "draining") {
                return traffic.load.mark("v1 draining");
            }
            assert!(Instant::now() < deadline, "v1 never drained: {green:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    // Well past the deregistration, which the apply waits for.
    let seen = traffic.finish(Duration::from_secs(3)).await;
    seen.print_line(
        "retain-previous-false",
        "deregistering_the_previous_fleet_fails_no_request",
    );
    assert!(out.success, "{}", out.text());
    let green = fx.targets(&fx.green_tg_arn).await;
    assert!(
        !green.is_empty() && green.iter().all(|t| t.2 == "draining"),
        "v1's fleet is deregistered: {green:?}"
    );
    assert_eq!(seen.sequence(), vec![weights(0, 100), weights(100, 0)]);
    // Not before the new weights had 5 s to settle.
    let cut = &seen.weights[1];
    assert!(
        deregistered >= cut.after + Duration::from_secs(5),
        "v1 was draining by {deregistered:?}, the weights were written after {:?}",
        cut.after
    );
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 2);
    seen.assert_all_on("v2", seen.settled_after(apply.end));
    drop((v1, v2));
}
