//! The engine against a router kept in memory, for the paths a real router shows only
//! by accident: a write that fails after it took effect (in whole or in part), a first
//! release that fails after traffic moved, a bake that fails with `auto_rollback` off.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::probe::HttpClients;
use crate::router::fake::{FakeRouter, WriteFault};

/// Blue serves all the traffic, and each colour holds one target.
fn blue_live() -> FakeRouter {
    FakeRouter::new(
        Split::all_on(Color::Blue),
        None,
        &["10.0.0.1"],
        &["10.0.0.2"],
    )
}

fn health(endpoint: Option<Endpoint>) -> Health {
    Health {
        endpoint,
        method: Method::Get,
        headers: Vec::new(),
        expected_status: StatusMatcher::parse("200").unwrap(),
        body_regex: None,
        healthy_threshold: 1,
        unhealthy_threshold: 1,
        interval: Duration::from_millis(20),
        request_timeout: Duration::from_secs(1),
        insecure_skip_verify: false,
        min_healthy_targets: 1,
    }
}

fn release(color: Color, strategy: Strategy, bake_time: Duration) -> Release {
    Release {
        color,
        release: "v2".into(),
        targets: None,
        record_release: true,
        strategy,
        bake_time,
        auto_rollback: true,
        retain_previous: true,
        generation: 2,
        quick_rollback: false,
        records: None,
    }
}

async fn run(
    router: &FakeRouter,
    health: &Health,
    release: &Release,
    stop: &CancellationToken,
) -> Outcome {
    let http = HttpClients::new();
    Rollout {
        router,
        test_route: None,
        http: &http,
        stop,
        health,
        deadline: Instant::now() + Duration::from_secs(30),
        analysis: None,
    }
    .run(release)
    .await
}

#[tokio::test]
async fn a_write_that_failed_after_it_took_effect_is_read_back_as_done() {
    let router = blue_live();
    router.state().fault = WriteFault::AfterWrite;
    let release = release(Color::Green, Strategy::AllAtOnce, Duration::ZERO);
    let outcome = run(&router, &health(None), &release, &CancellationToken::new()).await;
    assert!(
        matches!(outcome, Outcome::Done(split) if split == Split::all_on(Color::Green)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_write_that_took_in_part_is_read_back_and_moved_back() {
    let router = blue_live();
    router.state().fault = WriteFault::Partial(Split::percent(Color::Green, 50));
    let canary = Strategy::Canary {
        percent: 10,
        interval: Duration::from_millis(10),
    };
    let outcome = run(
        &router,
        &health(None),
        &release(Color::Green, canary, Duration::ZERO),
        &CancellationToken::new(),
    )
    .await;
    let Outcome::RolledBack(error, split) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(split, Split::all_on(Color::Blue));
    assert!(error.contains("Read back: blue 50 / green 50"), "{error}");
    assert!(error.contains("moved back to blue"), "{error}");
    assert_eq!(router.state().split, Split::all_on(Color::Blue));
}

#[tokio::test]
async fn a_write_that_failed_and_took_nothing_says_traffic_was_not_moved() {
    let router = blue_live();
    router.state().fault = WriteFault::Partial(Split::all_on(Color::Blue));
    let outcome = run(
        &router,
        &health(None),
        &release(Color::Green, Strategy::AllAtOnce, Duration::ZERO),
        &CancellationToken::new(),
    )
    .await;
    let Outcome::NotMoved { error, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(error.contains("Read back: blue 100 / green 0"), "{error}");
    assert!(error.contains("Traffic was not moved"), "{error}");
}

#[tokio::test]
async fn a_first_release_interrupted_in_its_bake_puts_the_fixed_response_back() {
    let router = FakeRouter::new(Split::default(), Some("503"), &["10.0.0.1"], &[]);
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let release = release(Color::Blue, Strategy::AllAtOnce, Duration::from_secs(10));
    let outcome = run(&router, &health(None), &release, &stop).await;
    let Outcome::RolledBack(error, split) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        error.contains("routes as before the release again: a fixed response (503)"),
        "{error}"
    );
    assert_eq!(split, Split::default());
    let fake = router.state();
    assert_eq!(
        (fake.split, fake.fixed_response.as_deref()),
        (Split::default(), Some("503"))
    );
}

/// An app on loopback that answers 200 to its first `healthy` requests, then 503.
async fn app_failing_after(healthy: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for served in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let status = if served < healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{address}/health")
}

#[tokio::test]
async fn a_failed_bake_with_auto_rollback_off_keeps_the_previous_fleet() {
    let router = FakeRouter::new(Split::all_on(Color::Blue), None, &["10.0.0.1"], &[]);
    let release = Release {
        targets: Some(vec![Target {
            id: "10.0.0.2".into(),
            port: Some(80),
            availability_zone: None,
        }]),
        auto_rollback: false,
        retain_previous: false,
        ..release(Color::Green, Strategy::AllAtOnce, Duration::from_secs(5))
    };
    let health = health(Some(Endpoint::Url(app_failing_after(2).await)));
    let outcome = run(&router, &health, &release, &CancellationToken::new()).await;
    assert!(
        matches!(outcome, Outcome::Kept(_, split) if split == Split::all_on(Color::Green)),
        "{outcome:?}"
    );
    let blue = &router.state().members[Color::Blue.index()];
    assert_eq!(
        blue.len(),
        1,
        "the previous fleet, the only healthy one, stays: {blue:?}"
    );
}

#[tokio::test]
async fn a_health_read_that_never_answers_ends_on_ctrl_c_with_traffic_unmoved() {
    let router = FakeRouter::new(Split::all_on(Color::Blue), None, &["10.0.0.1"], &[]);
    router.state().members_hang = true;
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let release = release(Color::Green, Strategy::AllAtOnce, Duration::ZERO);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        run(&router, &health(None), &release, &stop),
    )
    .await
    .expect("Ctrl-C ends the wait");
    let Outcome::NotMoved { error, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        error.contains("Interrupted while checking the green colour"),
        "{error}"
    );
    assert_eq!(router.state().split, Split::all_on(Color::Blue));
}

/// A canary at 10% on green, then the write of 100% hangs (see [`WriteFault::Hang`]).
async fn canary_then_a_hung_write(stop: &CancellationToken, deadline: Duration) -> Outcome {
    let router = blue_live();
    let http = HttpClients::new();
    let health = health(None);
    let canary = Strategy::Canary {
        percent: 10,
        interval: Duration::from_millis(10),
    };
    let release = release(Color::Green, canary, Duration::ZERO);
    let rollout = Rollout {
        router: &router,
        test_route: None,
        http: &http,
        stop,
        health: &health,
        deadline: Instant::now() + deadline,
        analysis: None,
    };
    let hang_at_full = async {
        while router.state().split != Split::percent(Color::Green, 10) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        router.state().fault = WriteFault::Hang;
    };
    let (outcome, ()) = tokio::join!(rollout.run(&release), hang_at_full);
    assert_eq!(
        router.state().split,
        Split::all_on(Color::Blue),
        "the back-out's write ran: {outcome:?}"
    );
    outcome
}

#[tokio::test]
async fn a_write_cut_off_by_ctrl_c_is_read_back_and_the_back_out_still_writes() {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let start = std::time::Instant::now();
    let outcome = canary_then_a_hung_write(&stop, Duration::from_secs(60)).await;
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1300), "{took:?}");
    let Outcome::RolledBack(error, split) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        error.contains(
            "Shifting all traffic to green failed: interrupted while waiting for the fake write"
        ),
        "{error}"
    );
    assert!(error.contains("Read back: blue 90 / green 10"), "{error}");
    assert!(error.contains("moved back to blue"), "{error}");
    assert_eq!(split, Split::all_on(Color::Blue));
}

#[tokio::test]
async fn a_write_that_never_answers_ends_at_the_deadline_and_the_back_out_still_writes() {
    let start = std::time::Instant::now();
    let outcome = canary_then_a_hung_write(&CancellationToken::new(), Duration::from_secs(1)).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let Outcome::RolledBack(error, _) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        error.contains(
            "the time the resource's `timeouts` allows ran out while waiting for the fake write"
        ),
        "{error}"
    );
}

/// A Prometheus that answers every query with no series.
async fn empty_prometheus() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    address
}

/// The deadline comes during the bake, at the moment of a measurement: the measurement
/// cut off by it is the timeout, not a failed check, so traffic goes back even with
/// `auto_rollback` off.
#[tokio::test]
async fn a_bake_cut_short_by_the_deadline_at_a_measurement_is_the_timeout() {
    use crate::analysis::{MetricSettings, NoData, Settings};
    let router = blue_live();
    let http = HttpClients::new();
    let settings = Settings {
        prometheus: Some(crate::analysis::PrometheusSettings {
            address: empty_prometheus().await,
            headers: Vec::new(),
            tls: TlsOptions::default(),
        }),
        metrics: vec![MetricSettings {
            name: "errors".into(),
            query: "errors".into(),
            max: Some(0.0),
            min: None,
            interval: Duration::from_secs(5),
            failure_limit: 0,
            no_data: NoData::Pass,
        }],
        alarms: Vec::new(),
        alarm_interval: Duration::from_secs(5),
    };
    let analysis = Analysis::new(&settings, &http, None, &[]).unwrap();
    let health = health(None);
    let release = Release {
        auto_rollback: false,
        ..release(Color::Green, Strategy::AllAtOnce, Duration::from_secs(10))
    };
    let outcome = Rollout {
        router: &router,
        test_route: None,
        http: &http,
        stop: &CancellationToken::new(),
        health: &health,
        deadline: Instant::now() + Duration::from_millis(800),
        analysis: Some(&analysis),
    }
    .run(&release)
    .await;
    let Outcome::RolledBack(error, split) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        error.starts_with("The timeout ran out while baking on green."),
        "{error}"
    );
    assert_eq!(split, Split::all_on(Color::Blue));
}

#[tokio::test]
async fn a_rollback_cut_off_by_ctrl_c_puts_its_records_back() {
    let router = blue_live();
    router.state().records[Color::Green.index()].release = Some("v1".into());
    router.state().fault = WriteFault::Hang;
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let http = HttpClients::new();
    let health = health(None);
    let rollout = Rollout {
        router: &router,
        test_route: None,
        http: &http,
        stop: &stop,
        health: &health,
        deadline: Instant::now() + Duration::from_secs(60),
        analysis: None,
    };
    let start = std::time::Instant::now();
    let error = rollout.roll_back_now(&|_| {}).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        error,
        "Moving traffic to green failed: interrupted while waiting for the fake write: \
         Terraform asked the provider to stop. Traffic now: blue 100 / green 0."
    );
    let fake = router.state();
    assert_eq!(fake.records[Color::Blue.index()].rolled_back_at, None);
    assert_eq!(fake.records[Color::Green.index()].generation, None);
}

/// Ctrl-C just after the write of 100% took: its verification still reads the listener, so
/// the report says where the release was interrupted (the bake), not that the shift failed.
#[tokio::test]
async fn ctrl_c_just_after_a_write_still_verifies_it_and_moves_traffic_back() {
    let router = blue_live();
    let stop = CancellationToken::new();
    router.state().stop_after_write = Some(stop.clone());
    let release = release(Color::Green, Strategy::AllAtOnce, Duration::from_secs(10));
    let outcome = run(&router, &health(None), &release, &stop).await;
    let Outcome::RolledBack(error, split) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        error,
        "Interrupted while baking on green.\nAll traffic was moved back to blue."
    );
    assert_eq!(split, Split::all_on(Color::Blue));
}
