use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::alarms::Alarm;
use super::*;

#[test]
fn placeholders_are_bare_names_in_braces_not_label_matchers() {
    let q = r#"sum(rate(http_requests_total{release="{release}",code=~"5.."}[1m])) / {color} {target_group_arn}"#;
    assert_eq!(placeholders(q), ["release", "color", "target_group_arn"]);
    assert!(placeholders(r#"up{job="a"} {}"#).is_empty());
}

#[test]
fn measured_every_interval_and_once_in_a_short_period() {
    let s = Duration::from_secs;
    assert_eq!(
        measurement_times(s(3), s(1)).collect::<Vec<_>>(),
        [s(1), s(2), s(3)]
    );
    assert_eq!(measurement_times(s(2), s(5)).collect::<Vec<_>>(), [s(2)]);
}

fn metric(
    max: Option<f64>,
    min: Option<f64>,
    no_data: NoData,
    failure_limit: u32,
) -> MetricSettings {
    MetricSettings {
        name: "error-rate".into(),
        query: r#"errors{release="{release}"}"#.into(),
        max,
        min,
        interval: Duration::from_millis(100),
        failure_limit,
        no_data,
    }
}

#[test]
fn thresholds_and_no_data_are_judged() {
    let m = metric(Some(0.01), Some(0.0), NoData::Wait, 0);
    assert_eq!(judge(&m, &Ok(Sample::Number(0.005))), Verdict::Passed);
    assert_eq!(judge(&m, &Ok(Sample::Number(0.05))), Verdict::Failed);
    assert_eq!(judge(&m, &Ok(Sample::Number(-1.0))), Verdict::Failed);
    assert_eq!(judge(&m, &Ok(Sample::NoData)), Verdict::Waiting);
    assert_eq!(judge(&m, &Err("down".into())), Verdict::Failed);
    let fail = metric(Some(1.0), None, NoData::Fail, 0);
    assert_eq!(judge(&fail, &Ok(Sample::NoData)), Verdict::Failed);
    let pass = metric(Some(1.0), None, NoData::Pass, 0);
    assert_eq!(judge(&pass, &Ok(Sample::NoData)), Verdict::Passed);
}

/// A Prometheus stand-in on loopback: answers each query with the next of `values`
/// (the last one repeats), and records the queries.
async fn fake_prometheus(values: &'static [&'static str]) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (seen, next) = (seen.clone(), next.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_string());
                let i = next.fetch_add(1, Ordering::SeqCst).min(values.len() - 1);
                let result = match values[i] {
                    "empty" => "[]".to_string(),
                    v => format!(r#"[{{"metric":{{}},"value":[1,"{v}"]}}]"#),
                };
                let body = format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#
                );
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (address, queries)
}

fn settings(address: &str, metric: MetricSettings) -> Settings {
    Settings {
        prometheus: Some(PrometheusSettings {
            address: address.into(),
            headers: vec![],
            tls: TlsOptions::default(),
        }),
        metrics: vec![metric],
        alarms: vec![],
        alarm_interval: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn the_measurement_past_failure_limit_fails_with_the_report() {
    let (address, queries) = fake_prometheus(&["0.001", "0.05", "0.06"]).await;
    let http = HttpClients::new();
    let analysis = Analysis::new(
        &settings(&address, metric(Some(0.01), None, NoData::Wait, 1)),
        &http,
        None,
        &[("release", "v2".into())],
    )
    .unwrap();
    let error = analysis
        .watch(Duration::from_secs(5), "at 20% on green")
        .await
        .unwrap_err();
    assert!(
        error.contains("failed 2 measurements, more than its failure_limit of 1"),
        "{error}"
    );
    assert!(
        error.contains(r#"errors{release="v2"}"#),
        "the query as sent: {error}"
    );
    assert!(error.contains("value <= 0.01"), "{error}");
    assert!(
        error.contains("0.05 (FAILED)") && error.contains("0.001 (passed)"),
        "{error}"
    );
    assert_eq!(queries.lock().unwrap().len(), 3, "stops at the failure");
}

#[tokio::test]
async fn a_period_with_no_data_fails_when_waiting_and_passes_when_told() {
    let (address, _) = fake_prometheus(&["empty"]).await;
    let http = HttpClients::new();
    let wait = Analysis::new(
        &settings(&address, metric(Some(1.0), None, NoData::Wait, 0)),
        &http,
        None,
        &[],
    )
    .unwrap();
    let error = wait
        .watch(Duration::from_millis(300), "while baking")
        .await
        .unwrap_err();
    assert!(error.contains("returned no data in 300ms"), "{error}");
    let pass = Analysis::new(
        &settings(&address, metric(Some(1.0), None, NoData::Pass, 0)),
        &http,
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        pass.watch(Duration::from_millis(300), "while baking").await,
        Ok(())
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_is_a_failure_never_a_pass() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = HttpClients::new();
    let analysis = Analysis::new(
        &settings(
            &format!("http://127.0.0.1:{port}"),
            metric(Some(1.0), None, NoData::Pass, 0),
        ),
        &http,
        None,
        &[],
    )
    .unwrap();
    let error = analysis.preflight().await.unwrap_err();
    assert!(error.contains("did not answer"), "{error}");
    let error = analysis
        .watch(Duration::from_millis(200), "at 10% on blue")
        .await
        .unwrap_err();
    assert!(error.contains("error: Prometheus at"), "{error}");
}

struct Alarms(Mutex<Vec<Alarm>>);

#[tonic::async_trait]
impl AlarmSource for Alarms {
    async fn alarms(&self, _: &[String]) -> Result<Vec<Alarm>, String> {
        Ok(self.0.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_and_a_missing_one_is_an_error() {
    let alarm = |state: &str| Alarm {
        name: "api-5xx".into(),
        state: state.into(),
        reason: "threshold crossed".into(),
    };
    let source = Alarms(Mutex::new(vec![alarm("OK")]));
    let http = HttpClients::new();
    let settings = Settings {
        alarms: vec!["api-5xx".into()],
        alarm_interval: Duration::from_millis(50),
        ..Settings::default()
    };
    let analysis = Analysis::new(&settings, &http, Some(&source), &[]).unwrap();
    assert_eq!(analysis.preflight().await, Ok(()));
    assert_eq!(
        analysis
            .watch(Duration::from_millis(120), "while baking")
            .await,
        Ok(())
    );
    *source.0.lock().unwrap() = vec![alarm("ALARM")];
    let error = analysis
        .watch(Duration::from_secs(5), "while baking")
        .await
        .unwrap_err();
    assert!(
        error.contains(r#"CloudWatch alarm "api-5xx" (threshold crossed) is in ALARM"#),
        "{error}"
    );
    source.0.lock().unwrap().clear();
    let error = analysis.preflight().await.unwrap_err();
    assert!(error.contains("no alarm named api-5xx"), "{error}");
}

#[test]
fn placeholder_values_are_escaped_for_a_promql_string() {
    assert_eq!(
        promql_string_escaped(r#"v2"} or up{x="\"#),
        r#"v2\"} or up{x=\"\\"#
    );
    assert_eq!(promql_string_escaped("1.2.3"), "1.2.3");
}
