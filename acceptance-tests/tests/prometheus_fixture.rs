//! Tests of the Prometheus fixture (`acceptance_tests::prometheus`) against real test apps:
//! Prometheus scrapes an app's `/metrics` under load, and what it computes from them (totals,
//! an error ratio, a latency quantile) matches the traffic sent; a bad query and a stopped
//! Prometheus are errors. No moto, no Terraform.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use acceptance_tests::app::{Faults, TestApp};
use acceptance_tests::load::{Load, LoadSettings};
use acceptance_tests::prometheus::{Prometheus, JOB, TARGET_TIMEOUT};

/// Starts a load on `app`, has Prometheus scrape the app as `color="green"`, and waits until a
/// 5 s window of scrapes lies inside the load: what `rate(...[5s])` needs.
fn scrape_under_load(prom: &Prometheus, app: &TestApp, settings: LoadSettings) -> Load {
    let load = Load::start(&format!("{}/checkout", app.url()), settings);
    let target = format!("127.0.0.1:{}", app.port());
    prom.scrape(&target, &[("color", "green")]);
    prom.wait_for_target(&target, TARGET_TIMEOUT).unwrap();
    wait_for(
        prom,
        r#"count_over_time(up{color="green"}[5s])"#,
        Duration::from_secs(10),
        |scrapes| scrapes >= 5.0,
    );
    load
}

/// Polls `promql` (at most `timeout`) until its value satisfies `done`.
fn wait_for(prom: &Prometheus, promql: &str, timeout: Duration, done: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let value = prom.query(promql);
        if matches!(value, Ok(Some(v)) if done(v)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: {value:?} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn settings(workers: usize, rate_per_second: f64) -> LoadSettings {
    LoadSettings {
        workers,
        rate_per_second,
        max_duration: Duration::from_secs(30),
        ..Default::default()
    }
}

#[test]
fn answers_queries_and_refuses_once_stopped() {
    let mut prom = Prometheus::start();
    let address = prom.address();
    let host_port = address.strip_prefix("http://127.0.0.1:").unwrap();
    assert_eq!(prom.query("1 + 1"), Ok(Some(2.0)));
    assert_eq!(prom.query("vector(0.25)"), Ok(Some(0.25)));
    assert_eq!(prom.query("app_requests_total"), Ok(None));
    let several = prom
        .query(r#"vector(1) or label_replace(vector(2), "x", "y", "", "")"#)
        .unwrap_err();
    assert!(several.contains("2 samples"), "{several}");
    let bad = prom.query("sum(").unwrap_err();
    assert!(bad.contains("parse error"), "{bad}");

    prom.stop();
    let refused = TcpStream::connect(("127.0.0.1", host_port.parse().unwrap())).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    let unreachable = prom.query("vector(1)").unwrap_err();
    assert!(unreachable.contains("refused"), "{unreachable}");
}

#[tokio::test]
async fn sees_the_error_share_and_the_counts_the_app_served() {
    let prom = Prometheus::start();
    let app = TestApp::start("v7").await;
    app.set_faults(Faults {
        error_share: 0.1,
        delay: Duration::ZERO,
    });
    let load = scrape_under_load(&prom, &app, settings(2, 100.0));
    let ratio = prom
        .query(
            r#"sum(rate(app_requests_total{color="green",code=~"5.."}[5s]))
                / sum(rate(app_requests_total{color="green"}[5s]))"#,
        )
        .unwrap()
        .expect("an error ratio");
    eprintln!("error ratio as Prometheus sees it: {ratio}");
    assert!((ratio - 0.1).abs() < 0.01, "error ratio {ratio}");
    assert_eq!(
        prom.query(&format!(r#"up{{color="green",job="{JOB}"}}"#)),
        Ok(Some(1.0))
    );

    let report = load.stop().await;
    let sent = app.requests();
    let errors = report.failures().count("500");
    assert_eq!(report.total(), sent, "every request answered");
    assert_eq!(report.failed(), errors, "{}", report.failures());
    assert_eq!(errors, (sent as f64 * 0.1).floor() as u64, "of {sent}");
    // Once a scrape after the load's end is in:
    wait_for(
        &prom,
        r#"sum(app_requests_total{release="v7"})"#,
        Duration::from_secs(5),
        |n| n == sent as f64,
    );
    assert_eq!(
        prom.query(r#"sum(app_requests_total{release="v7",code="500"})"#),
        Ok(Some(errors as f64))
    );
}

#[tokio::test]
async fn sees_a_delay_in_the_latency_quantile() {
    let prom = Prometheus::start();
    let app = TestApp::start("v8").await;
    app.set_faults(Faults {
        error_share: 0.0,
        delay: Duration::from_millis(300),
    });
    let load = scrape_under_load(&prom, &app, settings(4, 10.0));
    let p99 = prom
        .query(
            r#"histogram_quantile(0.99,
                sum by (le) (rate(app_request_duration_seconds_bucket{color="green"}[5s])))"#,
        )
        .unwrap()
        .expect("a p99");
    assert!(p99 > 0.25 && p99 <= 0.5, "p99 {p99}");
    let mean = prom
        .query(
            r#"sum(rate(app_request_duration_seconds_sum{color="green"}[5s]))
                / sum(rate(app_request_duration_seconds_count{color="green"}[5s]))"#,
        )
        .unwrap()
        .expect("a mean");
    eprintln!("as Prometheus sees it: p99 {p99} s, mean {mean} s");
    assert!((0.3..0.4).contains(&mean), "mean {mean}");
    let report = load.stop().await;
    assert_eq!(report.failed(), 0, "{}", report.failures());
}
