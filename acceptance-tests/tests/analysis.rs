//! Canary analysis on real metrics, with real Terraform: the releases serve the load that
//! goes through the ALB emulator's data plane, a real Prometheus (Debian's) scrapes what the
//! apps counted of it every second, and moto's CloudWatch holds the alarms. Each test asserts
//! the apply's outcome and report, the weights the listener held (as read from moto), and the
//! requests the data plane served and failed.

use std::time::Duration;

use acceptance_tests::app::{Faults, TestApp};
use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::prometheus::{Prometheus, TARGET_TIMEOUT};
use acceptance_tests::terraform::Terraform;
use acceptance_tests::traffic::*;
use acceptance_tests::workspace::Workspace;
use acceptance_tests::{hcl, moto};

/// The share of a release's requests that failed over the last 3 s (0 with no failure).
const ERROR_RATE: &str = r#"(sum(rate(app_requests_total{release="{release}",code=~"5.."}[3s])) or vector(0)) / sum(rate(app_requests_total{release="{release}"}[3s]))"#;
/// A release's p99 latency over the last 3 s, in seconds.
const P99: &str = r#"histogram_quantile(0.99, sum by (le) (rate(app_request_duration_seconds_bucket{release="{release}"}[3s])))"#;

/// PromQL in an HCL string.
fn quoted(query: &str) -> String {
    format!("\"{}\"", query.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `metric` block measured every second.
fn metric(name: &str, query: &str, threshold: &str) -> String {
    format!(
        "    metric {{\n      name     = \"{name}\"\n      query    = {}\n      {threshold}\n      interval = \"1s\"\n    }}\n",
        quoted(query)
    )
}

/// An `analysis` block on Prometheus at `address` with these `metric` blocks and more lines.
fn analysis(address: &str, metrics: &[String], extra: &str) -> String {
    format!(
        "  analysis {{\n    prometheus {{\n      address = \"{address}\"\n    }}\n{}{extra}  }}\n",
        metrics.concat()
    )
}

fn error_rate_below(max: f64) -> String {
    metric("error-rate", ERROR_RATE, &format!("max      = {max}"))
}

/// A Prometheus scraping `app`, once it has scraped it (Prometheus 2.42 takes up to 10 s
/// to start on a new target).
fn prometheus_scraping(app: &TestApp) -> Prometheus {
    let prom = Prometheus::start();
    prom.scrape(&format!("127.0.0.1:{}", app.port()), &[]);
    prom
}

fn wait_scraped(prom: &Prometheus, app: &TestApp) {
    prom.wait_for_target(&format!("127.0.0.1:{}", app.port()), TARGET_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
}

/// v1 live on green, and v2 (scraped by Prometheus) with these faults on its real traffic.
struct World {
    fx: BlueGreenFixture,
    ws: Workspace,
    v1: TestApp,
    v2: TestApp,
    prom: Prometheus,
}

async fn world(tf: &Terraform, name: &str, faults: Faults) -> World {
    let v2 = TestApp::start("v2").await;
    v2.set_faults(faults);
    let prom = prometheus_scraping(&v2);
    let (fx, ws, v1) = v1_live(tf, name).await;
    wait_scraped(&prom, &v2);
    World {
        fx,
        ws,
        v1,
        v2,
        prom,
    }
}

impl World {
    /// Releases v2 with `extra` (traffic, analysis) under load.
    async fn release_v2(&self, extra: &str) -> (acceptance_tests::workspace::Output, Measured) {
        self.ws
            .write_config(&fleet_config(&self.fx, "v2", &self.v2, extra));
        let traffic = Traffic::start(&self.fx, Duration::from_secs(50), None).await;
        let (out, _) = traffic.apply(&self.ws).await;
        (out, traffic.finish(TAIL).await)
    }
}

/// The apply failed with `report` in its error, traffic went to blue by `sequence` and is
/// back on v1 (green).
fn assert_moved_back(
    out: &acceptance_tests::workspace::Output,
    seen: &Measured,
    report: &[&str],
    sequence: Vec<Weights>,
) {
    assert!(!out.success, "{}", out.text());
    let raw = out.text();
    println!("the report: {}", &raw[raw.find("Error:").unwrap_or(0)..]);
    let text = flat(&raw);
    for part in report {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
    assert!(
        text.contains("All traffic was moved back to green"),
        "{text}"
    );
    assert_eq!(seen.sequence(), sequence);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_failing_5_percent_of_requests_is_stopped_at_its_canary_step() {
    let Some(tf) = cli("analysis_error_rate") else {
        return;
    };
    let w = world(
        &tf,
        "an-errors",
        Faults {
            error_share: 0.05,
            delay: Duration::ZERO,
        },
    )
    .await;
    let extra =
        hcl::canary(20, "10s") + &analysis(&w.prom.address(), &[error_rate_below(0.01)], "");
    let (out, seen) = w.release_v2(&extra).await;
    seen.print_line(
        "analysis-error-rate",
        "a_release_failing_5_percent_of_requests_is_stopped_at_its_canary_step",
    );
    assert_moved_back(
        &out,
        &seen,
        &[
            "Analysis failed at 20% on blue: metric \"error-rate\" failed 1 measurement, more than its failure_limit of 0.",
            &format!("Query sent to {}/: {}", w.prom.address(), flat(&ERROR_RATE.replace("{release}", "v2"))),
            "Passes when: value <= 0.01",
            "(FAILED)",
        ],
        vec![weights(0, 100), weights(20, 80), weights(0, 100)],
    );
    // Only v2's own injected failures, and none once traffic was back.
    assert!(
        seen.failed()
            .iter()
            .all(|s| s.release.as_deref() == Some("v2")),
        "{}",
        seen.report
    );
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_analysis_the_http_gate_lets_the_same_release_through() {
    let Some(tf) = cli("analysis_control") else {
        return;
    };
    let w = world(
        &tf,
        "an-control",
        Faults {
            error_share: 0.05,
            delay: Duration::ZERO,
        },
    )
    .await;
    let (out, seen) = w.release_v2(&hcl::canary(20, "3s")).await;
    seen.print_line(
        "analysis-control",
        "without_analysis_the_http_gate_lets_the_same_release_through",
    );
    assert!(out.success, "{}", out.text());
    assert_eq!(
        seen.sequence(),
        vec![weights(0, 100), weights(20, 80), weights(100, 0)]
    );
    let failed = seen.failed();
    assert!(
        !failed.is_empty(),
        "v2 fails 5% of its requests, and all traffic went to it:\n{}",
        seen.report
    );
    assert!(
        failed.iter().all(|s| s.release.as_deref() == Some("v2")),
        "{}",
        seen.report
    );
    let v2_errors = w
        .prom
        .query(r#"sum(app_requests_total{release="v2",code="500"})"#)
        .unwrap();
    assert!(
        v2_errors.unwrap_or(0.0) >= 1.0,
        "Prometheus saw v2's failures: {v2_errors:?}"
    );
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_release_is_stopped_at_a_linear_step() {
    let Some(tf) = cli("analysis_latency") else {
        return;
    };
    let w = world(
        &tf,
        "an-slow",
        Faults {
            error_share: 0.0,
            delay: Duration::from_millis(300),
        },
    )
    .await;
    let p99 = metric("p99-latency", P99, "max      = 0.2");
    let extra = hcl::linear(25, "10s") + &analysis(&w.prom.address(), &[p99], "");
    let (out, seen) = w.release_v2(&extra).await;
    seen.print_line(
        "analysis-latency",
        "a_slow_release_is_stopped_at_a_linear_step",
    );
    assert_moved_back(
        &out,
        &seen,
        &[
            "Analysis failed at 25% on blue: metric \"p99-latency\"",
            "Passes when: value <= 0.2",
        ],
        vec![weights(0, 100), weights(25, 75), weights(0, 100)],
    );
    seen.assert_none_failed();
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_release_passes_analysis_at_every_step_and_fails_no_request() {
    let Some(tf) = cli("analysis_healthy") else {
        return;
    };
    let w = world(&tf, "an-healthy", Faults::default()).await;
    let metrics = [
        error_rate_below(0.01),
        metric("p99-latency", P99, "max      = 0.2"),
    ];
    let extra = "  traffic {\n    strategy      = \"linear\"\n    step_percent  = 50\n    step_interval = \"4s\"\n    bake_time     = \"4s\"\n  }\n".to_string()
        + &analysis(&w.prom.address(), &metrics, "");
    let (out, seen) = w.release_v2(&extra).await;
    seen.print_line(
        "analysis-healthy",
        "a_healthy_release_passes_analysis_at_every_step_and_fails_no_request",
    );
    assert!(out.success, "{}\n{}", out.text(), seen.report);
    assert_eq!(
        seen.sequence(),
        vec![weights(0, 100), weights(50, 50), weights(100, 0)]
    );
    seen.assert_none_failed();
    assert_eq!(seen.assert_shares("v2", "blue"), 3);
    // What v2 served is what Prometheus counted of it (health checks besides).
    let served = seen.report.served_by().get("v2").copied().unwrap_or(0);
    assert!(served > 300, "{}", seen.report);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counted = w
        .prom
        .query(r#"sum(app_requests_total{release="v2",code="200"})"#)
        .unwrap()
        .unwrap_or(0.0);
    assert!(
        counted >= served as f64,
        "Prometheus counted {counted} of v2's {served} requests"
    );
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_unreachable_during_analysis_moves_traffic_back() {
    let Some(tf) = cli("analysis_unreachable") else {
        return;
    };
    let mut w = world(&tf, "an-unreachable", Faults::default()).await;
    let extra =
        hcl::canary(20, "10s") + &analysis(&w.prom.address(), &[error_rate_below(0.01)], "");
    w.ws.write_config(&fleet_config(&w.fx, "v2", &w.v2, &extra));
    let traffic = Traffic::start(&w.fx, Duration::from_secs(50), None).await;
    let ((out, _), ()) = tokio::join!(traffic.apply(&w.ws), async {
        traffic
            .watcher
            .wait_for("the canary weights", |x| x == &weights(20, 80))
            .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        w.prom.stop();
    });
    let seen = traffic.finish(TAIL).await;
    assert_moved_back(
        &out,
        &seen,
        &[
            "Analysis failed at 20% on blue",
            &format!("error: Prometheus at {}/ did not answer", w.prom.address()),
        ],
        vec![weights(0, 100), weights(20, 80), weights(0, 100)],
    );
    seen.assert_none_failed();
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_prometheus_refuses_fails_before_traffic_moves() {
    let Some(tf) = cli("analysis_bad_query") else {
        return;
    };
    let w = world(&tf, "an-bad-query", Faults::default()).await;
    let bad = metric(
        "broken",
        "sum(rate(app_requests_total{release=\"{release}\"}[3s]",
        "max      = 1",
    );
    let several = metric(
        "several",
        "app_request_duration_seconds_bucket",
        "max      = 1e9",
    );
    for (m, expected) in [
        (bad, "Prometheus refused the query (bad_data)"),
        (several, "not one number: aggregate it"),
    ] {
        let extra = hcl::canary(20, "5s") + &analysis(&w.prom.address(), &[m], "");
        w.ws.write_config(&fleet_config(&w.fx, "v2", &w.v2, &extra));
        let out = w.ws.terraform(APPLY, &[]).await;
        assert!(!out.success, "{}", out.text());
        let text = flat(&out.text());
        assert!(
            text.contains("Analysis cannot start") && text.contains(expected),
            "{text}"
        );
        assert!(text.contains("Traffic was not moved"), "{text}");
        assert_eq!(w.fx.weights(&w.fx.listener_arn).await, weights(0, 100));
    }
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_analysis_moves_traffic_back_within_a_second() {
    let Some(tf) = cli("analysis_ctrl_c") else {
        return;
    };
    let w = world(&tf, "an-ctrl-c", Faults::default()).await;
    let extra =
        hcl::canary(20, "20s") + &analysis(&w.prom.address(), &[error_rate_below(0.01)], "");
    w.ws.write_config(&fleet_config(&w.fx, "v2", &w.v2, &extra));
    let traffic = Traffic::start(&w.fx, Duration::from_secs(40), None).await;
    let child = w.ws.spawn(APPLY);
    traffic
        .watcher
        .wait_for("the canary weights", |x| x == &weights(20, 80))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let interrupted = traffic.load.mark("ctrl-c");
    Workspace::interrupt(&child);
    let back = traffic
        .watcher
        .wait_for_since("all back on green", interrupted, |x| x == &weights(0, 100))
        .await;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("terraform apply ended after Ctrl-C")
        .unwrap();
    let seen = traffic.finish(TAIL).await;
    let text = flat(&String::from_utf8_lossy(&[out.stdout, out.stderr].concat()));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("Interrupted at 20% on blue")
            && text.contains("All traffic was moved back to green"),
        "{text}"
    );
    let took = back.by.saturating_sub(interrupted);
    println!("analysis ctrl-c: traffic back on green within {took:?} of the interrupt");
    assert!(took < Duration::from_secs(1), "{took:?}");
    seen.assert_none_failed();
    drop((w.v1, w.v2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudwatch_alarm_going_off_during_the_bake_moves_traffic_back() {
    let Some(tf) = cli("analysis_alarm") else {
        return;
    };
    let w = world(&tf, "an-alarm", Faults::default()).await;
    let cloudwatch = cloudwatch_client(&moto::shared().endpoint());
    let alarm = "an-alarm-target-5xx";
    cloudwatch
        .put_metric_alarm()
        .alarm_name(alarm)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm(
        &cloudwatch,
        alarm,
        aws_sdk_cloudwatch::types::StateValue::Ok,
    )
    .await;
    let extra = "  traffic {\n    bake_time = \"20s\"\n  }\n".to_string()
        + &format!("  analysis {{\n    cloudwatch_alarms   = [\"{alarm}\"]\n    cloudwatch_interval = \"1s\"\n  }}\n");
    w.ws.write_config(&fleet_config(&w.fx, "v2", &w.v2, &extra));
    let traffic = Traffic::start(&w.fx, Duration::from_secs(50), None).await;
    let ((out, _), ()) = tokio::join!(traffic.apply(&w.ws), async {
        traffic
            .watcher
            .wait_for("all traffic on blue", |x| x == &weights(100, 0))
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        set_alarm(
            &cloudwatch,
            alarm,
            aws_sdk_cloudwatch::types::StateValue::Alarm,
        )
        .await;
    });
    let seen = traffic.finish(TAIL).await;
    assert_moved_back(
        &out,
        &seen,
        &[
            "Analysis failed while baking on blue",
            &format!("CloudWatch alarm \"{alarm}\" (set by the test) is in ALARM"),
        ],
        vec![weights(0, 100), weights(100, 0), weights(0, 100)],
    );
    seen.assert_none_failed();
    drop((w.v1, w.v2));
}

fn cloudwatch_client(endpoint: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

async fn set_alarm(
    client: &aws_sdk_cloudwatch::Client,
    name: &str,
    state: aws_sdk_cloudwatch::types::StateValue,
) {
    client
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("SetAlarmState");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_analysis_settings_are_refused_at_validate_naming_the_attribute() {
    let Some(tf) = cli("analysis_validate") else {
        return;
    };
    let ws = Workspace::new(&tf, "an-validate");
    let arn = |kind: &str| {
        format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:{kind}/app/web/0123456789abcdef"
        )
    };
    let alb = |extra: &str| {
        hcl::provider("http://127.0.0.1:9", "")
            + &format!(
                "resource \"immutable_bluegreen_deployment\" \"app\" {{\n  listener_arn           = \"{}/0123456789abcdef\"\n  blue_target_group_arn  = \"{}\"\n  green_target_group_arn = \"{}\"\n  release                = \"v1\"\n{extra}}}\n",
                arn("listener"),
                arn("targetgroup").replace("app/web", "blue"),
                arn("targetgroup").replace("app/web", "green"),
            )
    };
    let canary = hcl::canary(20, "10s");
    let prom = "http://127.0.0.1:9090";
    let cases = [
        (
            alb(&(canary.clone() + &analysis(prom, &[metric("m", "up{colour}", "max = 1")], ""))),
            r"(?s)analysis\.metric\[0\]\.query.*unknown placeholder \{colour\}: the placeholders are \{color\}, \{release\}, \{target_group_arn\}",
        ),
        (
            alb(&(canary.clone() + &analysis(prom, &[metric("m", "up", "")], ""))),
            r"(?s)A metric needs max or min.*analysis\.metric\[0\] has no threshold",
        ),
        (
            alb(&(canary.clone() + &analysis(prom, &[metric("m", "up", "max = 1").replace("\"1s\"", "\"0s\"")], ""))),
            r#"(?s)analysis\.metric\[0\]\.interval.*"0s" is not above zero"#,
        ),
        (
            alb(&analysis(prom, &[metric("m", "up", "max = 1")], "")),
            r"(?s)Analysis that would never run.*traffic\.strategy",
        ),
        (
            alb(&(canary.clone() + "  analysis {\n    metric {\n      name  = \"m\"\n      query = \"up\"\n      max   = 1\n    }\n  }\n")),
            r"(?s)analysis\.metric needs a prometheus block",
        ),
        (
            hcl::haproxy("unix:///run/haproxy/admin.sock", "web", "v1", &[8080], &(canary.clone() + "  analysis {\n    cloudwatch_alarms = [\"a\"]\n  }\n")),
            r#"(?s)cloudwatch_alarms.*not expected here"#,
        ),
    ];
    ws.assert_refused_at_validate(&cases).await;
}
