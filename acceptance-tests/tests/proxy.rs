//! Tests of the fault proxy (`acceptance_tests::proxy`) in front of a real moto, driven by the
//! AWS SDK for Rust as the provider uses it: pass-through, call counts, a port that goes down and
//! comes back, throttling and 5xx bursts that the SDK's standard retry rides out, and an endpoint
//! that dies right after a given write.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use acceptance_tests::elb::{self, BlueGreenFixture};
use acceptance_tests::moto;
use acceptance_tests::proxy::{Fault, FaultProxy};
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::config::retry::RetryConfig;
use elbv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use elbv2::operation::describe_listeners::{DescribeListenersError, DescribeListenersOutput};
use elbv2::operation::RequestId;

fn enabled() -> bool {
    if std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    eprintln!("skipped: set TF_ACC=1 to run acceptance tests");
    false
}

fn counts<const N: usize>(entries: [(&str, u64); N]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// An ELBv2 client for `endpoint` with this retry configuration.
fn client_with(endpoint: &str, retry: RetryConfig) -> elbv2::Client {
    let config = elb::client(endpoint)
        .config()
        .to_builder()
        .retry_config(retry)
        .build();
    elbv2::Client::from_conf(config)
}

/// Standard retry, `attempts` in all, with a short backoff so that the tests stay fast.
fn retrying(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(20))
        .with_max_backoff(Duration::from_millis(100))
}

/// The same fixture, with its client (and so its helpers) going through `endpoint`.
fn through(fx: &BlueGreenFixture, endpoint: &str, retry: RetryConfig) -> BlueGreenFixture {
    BlueGreenFixture {
        endpoint: endpoint.to_string(),
        name: fx.name.clone(),
        vpc_id: fx.vpc_id.clone(),
        subnet_ids: fx.subnet_ids.clone(),
        lb_arn: fx.lb_arn.clone(),
        listener_arn: fx.listener_arn.clone(),
        test_listener_arn: fx.test_listener_arn.clone(),
        blue_tg_arn: fx.blue_tg_arn.clone(),
        green_tg_arn: fx.green_tg_arn.clone(),
        client: client_with(endpoint, retry),
    }
}

async fn describe(
    client: &elbv2::Client,
    listener_arn: &str,
) -> Result<DescribeListenersOutput, SdkError<DescribeListenersError>> {
    client
        .describe_listeners()
        .listener_arns(listener_arn)
        .send()
        .await
}

fn assert_refused(proxy: &FaultProxy) {
    let err = std::net::TcpStream::connect(("127.0.0.1", proxy.port()))
        .expect_err("the proxy port should refuse connections");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

/// A connection-level failure that the SDK's standard retry treats as transient: `io` for a
/// refused (or reset) connection, `other(TransientError)` for a pooled keep-alive connection
/// that closed under the request (hyper's `IncompleteMessage`).
fn assert_dispatch_failure<E: std::error::Error + 'static>(err: &SdkError<E>) {
    match err {
        SdkError::DispatchFailure(failure) => assert!(
            // (aws-smithy-types' ErrorKind is not re-exported by the SDK crate.)
            failure.is_io() || format!("{:?}", failure.as_other()) == "Some(TransientError)",
            "{}",
            DisplayErrorContext(err)
        ),
        _ => panic!(
            "expected a connection failure, got {}",
            DisplayErrorContext(err)
        ),
    }
}

/// A refused connection: the SDK's `io` kind.
fn assert_connection_refused<E: std::error::Error + 'static>(err: &SdkError<E>) {
    match err {
        SdkError::DispatchFailure(failure) if failure.is_io() => {}
        _ => panic!(
            "expected a refused connection, got {}",
            DisplayErrorContext(err)
        ),
    }
}

#[tokio::test]
async fn passes_reads_and_writes_through_and_counts_them_per_action() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-pass").await;
    let proxy = FaultProxy::start(&moto.endpoint());
    assert_ne!(proxy.endpoint(), moto.endpoint());
    let via = through(&fx, &proxy.endpoint(), RetryConfig::disabled());

    assert_eq!(
        via.default_actions(&fx.listener_arn).await,
        fx.default_actions(&fx.listener_arn).await
    );
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 1)]));

    via.set_weights(&fx.listener_arn, 40, 60).await;
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        [("blue".to_string(), 40), ("green".to_string(), 60)].into()
    );
    assert_eq!(
        via.weights(&fx.listener_arn).await,
        fx.weights(&fx.listener_arn).await
    );
    assert!(via.tags(&fx.lb_arn).await.is_empty());
    assert_eq!(
        proxy.calls(),
        counts([
            ("DescribeListeners", 2),
            ("DescribeTags", 1),
            ("ModifyListener", 1)
        ])
    );
    assert_eq!(proxy.calls_of("ModifyListener"), 1);
    assert_eq!(proxy.calls_of("DeleteListener"), 0);

    // moto's errors come through as they are.
    let err = describe(&via.client, &format!("{}-nope", fx.listener_arn))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("ListenerNotFound"),
        "{}",
        DisplayErrorContext(&err)
    );

    proxy.reset_calls();
    assert!(proxy.calls().is_empty());
    describe(&via.client, &fx.test_listener_arn).await.unwrap();
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 1)]));
    assert_eq!(proxy.fault(), Fault::Pass);
}

#[tokio::test]
async fn down_refuses_connections_at_once_and_pass_reopens_the_same_port() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-down").await;
    let proxy = FaultProxy::start(&moto.endpoint());
    let client = client_with(&proxy.endpoint(), RetryConfig::disabled());
    // Leaves a keep-alive connection in the client's pool.
    describe(&client, &fx.listener_arn).await.unwrap();

    proxy.set(Fault::Down);
    assert_eq!(proxy.fault(), Fault::Down);
    assert_refused(&proxy);
    // The pooled connection was closed under the client...
    let started = Instant::now();
    let err = describe(&client, &fx.listener_arn).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_dispatch_failure(&err);
    eprintln!("first call while down: {}", DisplayErrorContext(&err));
    // ...and a new one is refused.
    let started = Instant::now();
    let err = describe(&client, &fx.listener_arn).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_connection_refused(&err);
    eprintln!("second call while down: {}", DisplayErrorContext(&err));
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 1)]));

    proxy.set(Fault::Pass);
    let out = describe(&client, &fx.listener_arn).await.unwrap();
    assert_eq!(out.listeners().len(), 1);
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 2)]));

    // Down twice in a row, and Pass twice in a row, are no-ops.
    proxy.set(Fault::Down);
    proxy.set(Fault::Down);
    assert_refused(&proxy);
    proxy.set(Fault::Pass);
    proxy.set(Fault::Pass);
    // The client's pooled connection was cut by the second outage: without retries its next
    // call may fail on it (IncompleteMessage); a retrying client just reconnects.
    let _ = describe(&client, &fx.listener_arn).await;
    describe(&client, &fx.listener_arn).await.unwrap();
    let retrying_client = client_with(&proxy.endpoint(), retrying(3));
    describe(&retrying_client, &fx.listener_arn).await.unwrap();
}

#[tokio::test]
async fn a_retrying_client_rides_out_a_short_outage() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-outage").await;
    let proxy = std::sync::Arc::new(FaultProxy::start(&moto.endpoint()));
    let client = client_with(
        &proxy.endpoint(),
        RetryConfig::standard()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(200)),
    );
    proxy.set(Fault::Down);
    let up_again = {
        let proxy = proxy.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            proxy.set(Fault::Pass);
        })
    };
    describe(&client, &fx.listener_arn)
        .await
        .unwrap_or_else(|e| panic!("{}", DisplayErrorContext(e)));
    up_again.join().unwrap();
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 1)]));
}

#[tokio::test]
async fn throttling_is_classified_as_throttling_and_retried() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-throttle").await;
    let proxy = FaultProxy::start(&moto.endpoint());

    // Two throttled answers, then a real one: the third attempt succeeds.
    let client = client_with(&proxy.endpoint(), retrying(3));
    proxy.set(Fault::Throttle { times: 2 });
    assert_eq!(proxy.fault(), Fault::Throttle { times: 2 });
    let out = describe(&client, &fx.listener_arn)
        .await
        .unwrap_or_else(|e| panic!("{}", DisplayErrorContext(e)));
    assert_eq!(
        out.listeners()[0].listener_arn(),
        Some(fx.listener_arn.as_str())
    );
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 3)]));
    assert_eq!(proxy.fault(), Fault::Pass);

    // With too few attempts the throttling error itself comes back, parsed as ELBv2's.
    proxy.reset_calls();
    let client = client_with(&proxy.endpoint(), retrying(2));
    proxy.set(Fault::Throttle { times: 2 });
    let err = describe(&client, &fx.listener_arn).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("Throttling"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert!(err.request_id().is_some_and(|id| id.len() == 36), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 2)]));
    assert_eq!(proxy.fault(), Fault::Pass);

    // A write is retried the same way.
    proxy.reset_calls();
    let via = through(&fx, &proxy.endpoint(), retrying(3));
    proxy.set(Fault::Throttle { times: 1 });
    via.set_weights(&fx.listener_arn, 0, 100).await;
    assert_eq!(proxy.calls(), counts([("ModifyListener", 2)]));
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        [("blue".to_string(), 0), ("green".to_string(), 100)].into()
    );
}

#[tokio::test]
async fn status_5xx_is_retried_and_other_statuses_are_not() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-status").await;
    let proxy = FaultProxy::start(&moto.endpoint());
    let client = client_with(&proxy.endpoint(), retrying(3));

    proxy.set(Fault::Status {
        code: 503,
        times: 1,
    });
    describe(&client, &fx.listener_arn)
        .await
        .unwrap_or_else(|e| panic!("{}", DisplayErrorContext(e)));
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 2)]));

    // More failures than attempts: the last 500 comes back as InternalFailure.
    proxy.reset_calls();
    proxy.set(Fault::Status {
        code: 500,
        times: 4,
    });
    let err = describe(&client, &fx.listener_arn).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("InternalFailure"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 3)]));
    assert_eq!(
        proxy.fault(),
        Fault::Status {
            code: 500,
            times: 1
        }
    );
    describe(&client, &fx.listener_arn).await.unwrap();
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 5)]));

    // A 4xx without a throttling code is the caller's fault: not retried.
    proxy.reset_calls();
    proxy.set(Fault::Status {
        code: 400,
        times: 1,
    });
    let err = describe(&client, &fx.listener_arn).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("InjectedFault"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(proxy.calls(), counts([("DescribeListeners", 1)]));
    assert_eq!(proxy.fault(), Fault::Pass);
}

#[tokio::test]
async fn down_after_the_first_listener_write_lets_its_answer_out_then_refuses() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let fx = BlueGreenFixture::create(moto, "proxy-down-after").await;
    let proxy = FaultProxy::start(&moto.endpoint());
    let via = through(&fx, &proxy.endpoint(), RetryConfig::disabled());
    proxy.set(Fault::DownAfter {
        action: "ModifyListener".into(),
        count: 1,
    });

    // Other actions do not count towards it.
    for _ in 0..3 {
        via.default_actions(&fx.listener_arn).await;
    }
    assert_eq!(
        proxy.fault(),
        Fault::DownAfter {
            action: "ModifyListener".into(),
            count: 1
        }
    );
    // The write goes through and its answer reaches the client...
    via.set_weights(&fx.listener_arn, 30, 70).await;
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        [("blue".to_string(), 30), ("green".to_string(), 70)].into()
    );
    // ...and by then the port refuses connections.
    assert_eq!(proxy.fault(), Fault::Down);
    assert_refused(&proxy);
    let err = describe(&via.client, &fx.listener_arn).await.unwrap_err();
    assert_dispatch_failure(&err);
    // Even a retrying client gets nowhere.
    let retrying_client = client_with(&proxy.endpoint(), retrying(3));
    let err = describe(&retrying_client, &fx.listener_arn)
        .await
        .unwrap_err();
    assert_dispatch_failure(&err);
    assert_eq!(
        proxy.calls(),
        counts([("DescribeListeners", 3), ("ModifyListener", 1)])
    );

    proxy.set(Fault::Pass);
    assert_eq!(
        via.weights(&fx.listener_arn).await,
        [("blue".to_string(), 30), ("green".to_string(), 70)].into()
    );

    // The n-th write: the first ones pass and the endpoint stays up between them.
    proxy.reset_calls();
    proxy.set(Fault::DownAfter {
        action: "ModifyListener".into(),
        count: 2,
    });
    via.set_weights(&fx.listener_arn, 50, 50).await;
    via.default_actions(&fx.listener_arn).await;
    via.set_weights(&fx.listener_arn, 0, 100).await;
    assert_refused(&proxy);
    assert_eq!(
        proxy.calls(),
        counts([("DescribeListeners", 1), ("ModifyListener", 2)])
    );
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        [("blue".to_string(), 0), ("green".to_string(), 100)].into()
    );

    // count 0 is Down at once.
    proxy.set(Fault::Pass);
    proxy.set(Fault::DownAfter {
        action: "ModifyListener".into(),
        count: 0,
    });
    assert_eq!(proxy.fault(), Fault::Down);
    assert_refused(&proxy);
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_port() {
    if !enabled() {
        return;
    }
    let moto = moto::shared();
    let proxy = FaultProxy::start(&moto.endpoint());
    let port = proxy.port();
    let client = client_with(&proxy.endpoint(), RetryConfig::disabled());
    client.describe_load_balancers().send().await.unwrap();
    drop(proxy);
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    let err = client.describe_load_balancers().send().await.unwrap_err();
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "{}",
        DisplayErrorContext(&err)
    );
}
