//! Tests of the load generator (`acceptance_tests::load`) straight against real test apps
//! switched mid-run: every failure is counted and none is retried (the app's own request count
//! says so), the bounds hold without `stop`, and the rate holds. No moto, no Terraform.

use std::ops::Range;
use std::time::{Duration, Instant};

use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::load::{Load, LoadReport, LoadSettings, Outcome, Sample, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings(workers: usize, rate_per_second: f64) -> LoadSettings {
    LoadSettings {
        workers,
        rate_per_second,
        max_duration: Duration::from_secs(20),
        ..Default::default()
    }
}

/// The requests started in `window`.
fn started_in(report: &LoadReport, window: Range<Duration>) -> Vec<&Sample> {
    report
        .samples()
        .iter()
        .filter(|s| window.contains(&s.start))
        .collect()
}

fn count(samples: &[&Sample], outcome: Outcome) -> usize {
    samples.iter().filter(|s| s.outcome == outcome).count()
}

/// Waits (sleeping on the test's runtime, which the load does not share) for a while.
async fn during(time: Duration) {
    tokio::time::sleep(time).await;
}

#[tokio::test]
async fn holds_its_rate_on_one_keep_alive_connection_per_worker() {
    let app = TestApp::start("v1").await;
    let load = Load::start(&format!("{}/health", app.url()), settings(4, 200.0));
    during(Duration::from_secs(2)).await;
    let report = load.stop().await;
    println!("{report}");
    assert_eq!(report.failed(), 0, "{}", report.failures());
    assert_eq!(report.served_by().get("v1"), Some(&report.total()));
    assert_eq!(
        app.requests(),
        report.total(),
        "each request reached the app once"
    );
    assert_eq!((report.connections(), app.connections()), (4, 4));
    // 2 s at 200/s: 400, give or take a turn per worker and a loaded machine's lateness.
    assert!((330..=410).contains(&report.total()), "{report}");
    // Steady: every quarter second of the middle has its share.
    for quarter in 1..7 {
        let window = ms(250 * quarter)..ms(250 * (quarter + 1));
        let n = started_in(&report, window.clone()).len();
        assert!((35..=55).contains(&n), "{n} requests in {window:?}");
    }
    assert!(report.p99() < ms(100), "{report}");
}

#[tokio::test]
async fn counts_every_failing_answer_and_retries_none() {
    let app = TestApp::start("v1").await;
    let load = Load::start(&app.url(), settings(4, 200.0));
    during(ms(500)).await;
    let failing = load.mark("failing 503");
    app.set(Behavior::Failing(503));
    during(ms(500)).await;
    let healthy = load.mark("healthy");
    app.set(Behavior::Healthy);
    during(ms(500)).await;
    let report = load.stop().await;
    println!("{report}");

    let failures = report.failures();
    assert_eq!(failures.iter().count(), 1, "only 503s: {failures}");
    let all = started_in(&report, Duration::ZERO..Duration::MAX);
    assert_eq!(
        failures.count("503"),
        count(&all, Outcome::Status(503)) as u64
    );
    assert_eq!(report.failed(), failures.count("503"));
    assert!((70..=110).contains(&report.failed()), "{report}");
    assert_eq!(app.requests(), report.total(), "none retried, none lost");
    // A margin at each switch for the requests that straddle it.
    let inner = started_in(&report, failing + ms(30)..healthy - ms(30));
    assert_eq!(count(&inner, Outcome::Status(503)), inner.len());
    let before = started_in(&report, Duration::ZERO..failing - ms(30));
    assert_eq!(count(&before, Outcome::Status(200)), before.len());
    let after = started_in(&report, healthy + ms(30)..Duration::MAX);
    assert_eq!(count(&after, Outcome::Status(200)), after.len());
    assert!(!after.is_empty());
    // A failing release still served (its body says which it is).
    assert_eq!(report.served_by()["v1"], report.total());
    assert_eq!(report.connections(), 4, "answers keep connections open");
}

#[tokio::test]
async fn counts_an_app_going_down_as_transport_failures_and_reconnects() {
    let app = TestApp::start("v1").await;
    let load = Load::start(&app.url(), settings(4, 200.0));
    during(ms(400)).await;
    app.set(Behavior::Down);
    let down = load.mark("down");
    during(ms(300)).await;
    let up = load.mark("up");
    app.set(Behavior::Healthy);
    during(ms(400)).await;
    let report = load.stop().await;
    println!("{report}");

    let refused = Outcome::Transport(Transport::Connect(std::io::ErrorKind::ConnectionRefused));
    let inner = started_in(&report, down + ms(20)..up);
    assert!(inner.len() > 40, "{report}");
    assert_eq!(count(&inner, refused), inner.len(), "{report}");
    let after = started_in(&report, up + ms(50)..Duration::MAX);
    assert!(!after.is_empty());
    assert_eq!(count(&after, Outcome::Status(200)), after.len());

    let answered = report
        .samples()
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Status(_)))
        .count() as u64;
    assert_eq!(
        report.failed(),
        report.total() - answered,
        "only transport failures"
    );
    let never_sent = report.failures().count(&refused.to_string());
    // A request in flight as the app went down may have reached it, unanswered; none twice.
    assert!(
        (answered..=report.total() - never_sent).contains(&app.requests()),
        "the app saw {} requests: {report}",
        app.requests()
    );
    // A new connection only after a failure, and at the worker's next turn.
    assert!(report.connections() >= 8, "{report}");
    assert!(report.connections() <= 4 + report.failed(), "{report}");
}

#[tokio::test]
async fn times_a_slow_app_out_within_the_request_timeout() {
    let app = TestApp::start("v1").await;
    let timeout = ms(150);
    let load = Load::start(
        &app.url(),
        LoadSettings {
            request_timeout: timeout,
            ..settings(2, 50.0)
        },
    );
    during(ms(300)).await;
    app.set(Behavior::Slow(ms(400)));
    during(ms(600)).await;
    let healthy = load.mark("healthy");
    app.set(Behavior::Healthy);
    during(ms(500)).await;
    let report = load.stop().await;
    println!("{report}");

    let timed_out: Vec<&Sample> = report
        .samples()
        .iter()
        .filter(|s| s.outcome == Outcome::Transport(Transport::Timeout))
        .collect();
    assert!(timed_out.len() >= 4, "{report}");
    assert_eq!(
        report.failed(),
        timed_out.len() as u64,
        "{}",
        report.failures()
    );
    for sample in &timed_out {
        assert!(sample.latency >= timeout, "{sample:?}");
    }
    let slowest = report.samples().iter().map(|s| s.latency).max().unwrap();
    assert!(slowest < timeout + ms(100), "{slowest:?}");
    let after = started_in(&report, healthy + ms(200)..Duration::MAX);
    assert!(!after.is_empty());
    assert_eq!(count(&after, Outcome::Status(200)), after.len());
    assert!(app.requests() <= report.total());
}

#[tokio::test]
async fn stops_by_itself_after_max_requests() {
    let app = TestApp::start("v1").await;
    let load = Load::start(
        &app.url(),
        LoadSettings {
            max_requests: 50,
            ..settings(3, 500.0)
        },
    );
    let waited = Instant::now();
    while app.requests() < 50 && waited.elapsed() < Duration::from_secs(5) {
        during(ms(20)).await;
    }
    during(ms(200)).await;
    assert_eq!(app.requests(), 50);
    let stopping = Instant::now();
    let report = load.stop().await;
    assert!(stopping.elapsed() < ms(100), "it had ended already");
    assert_eq!(report.total(), 50);
    assert_eq!(report.failed(), 0, "{report}");
}

#[tokio::test]
async fn stops_by_itself_after_max_duration() {
    let app = TestApp::start("v1").await;
    let max_duration = ms(300);
    let load = Load::start(
        &app.url(),
        LoadSettings {
            max_duration,
            ..settings(2, 100.0)
        },
    );
    during(ms(500)).await;
    let seen = app.requests();
    during(ms(200)).await;
    assert_eq!(app.requests(), seen, "no request after the bound");
    let report = load.stop().await;
    assert_eq!(report.total(), seen);
    assert!(report.samples().iter().all(|s| s.start < max_duration));
    // Two workers, a turn each every 20 ms, for 300 ms.
    assert!((24..=32).contains(&report.total()), "{report}");
    assert!(report.elapsed() < max_duration + ms(100), "{report}");
}

#[tokio::test]
async fn stop_waits_for_the_requests_in_flight() {
    let app = TestApp::start("v1").await;
    app.set(Behavior::Slow(ms(300)));
    let load = Load::start(&app.url(), settings(4, 100.0));
    during(ms(100)).await;
    let stopping = Instant::now();
    let report = load.stop().await;
    assert!(stopping.elapsed() >= ms(150), "{:?}", stopping.elapsed());
    println!("{report}");
    // One turn per worker came within the first 40 ms: each waited for its answer.
    assert_eq!(report.total(), 4);
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(app.requests(), 4);
}

#[tokio::test]
async fn dropping_it_ends_it_at_once() {
    let app = TestApp::start("v1").await;
    app.set(Behavior::Slow(Duration::from_secs(2)));
    let load = Load::start(&app.url(), settings(4, 100.0));
    during(ms(100)).await;
    let dropping = Instant::now();
    drop(load);
    assert!(dropping.elapsed() < ms(200), "{:?}", dropping.elapsed());
    app.set(Behavior::Healthy);
    let seen = app.requests();
    during(ms(200)).await;
    assert_eq!(app.requests(), seen);
}

#[tokio::test]
async fn a_dead_port_fails_every_request_at_the_rate() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let load = Load::start(
        &format!("http://127.0.0.1:{port}/"),
        LoadSettings {
            max_duration: ms(500),
            ..settings(2, 100.0)
        },
    );
    during(ms(600)).await;
    let report = load.stop().await;
    println!("{report}");
    assert!((40..=52).contains(&report.total()), "{report}");
    assert_eq!(report.failed(), report.total());
    assert_eq!(
        report.failures().to_string(),
        format!("connect: connection refused x{}", report.total())
    );
    assert_eq!(report.connections(), 0);
    assert!(report.served_by().is_empty());
}
