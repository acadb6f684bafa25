//! One health check request and what came of it.

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Client;

use super::{header_map, redact_url, Check};
use crate::error_chain::causes;
use crate::redact;

/// A health body is small; a larger one is read this far for `body_regex` and cut.
const MAX_BODY: usize = 1 << 20;

/// What one request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed {
        status: u16,
    },
    UnexpectedStatus(u16),
    /// The status was expected but the body did not match `body_regex`.
    BodyMismatch(u16),
    /// No complete response within `request_timeout`.
    Timeout,
    ConnectionRefused,
    /// The TLS handshake failed, e.g. an untrusted certificate; the text says why.
    Tls(String),
    /// Anything else that kept a response from arriving (DNS, a reset connection...).
    Other(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed { .. })
    }

    /// A short label, the key of the outcome tally: `200`, `503`, `body mismatch (200)`,
    /// `timeout`, `connection refused`, `tls error`, or the error itself.
    pub fn label(&self) -> String {
        match self {
            Outcome::Passed { status } | Outcome::UnexpectedStatus(status) => status.to_string(),
            Outcome::BodyMismatch(status) => format!("body mismatch ({status})"),
            Outcome::Timeout => "timeout".into(),
            Outcome::ConnectionRefused => "connection refused".into(),
            Outcome::Tls(_) => "tls error".into(),
            Outcome::Other(message) => message.clone(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Tls(message) => write!(f, "tls error: {message}"),
            other => f.write_str(&other.label()),
        }
    }
}

/// One request: its outcome, and what a report needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The check's URL with its secrets redacted.
    pub url: String,
    pub outcome: Outcome,
    pub latency: Duration,
    pub status: Option<u16>,
    /// The start of the body: at most 200 characters, without control characters.
    pub body_excerpt: String,
}

/// Sends one request for a check, within its `request_timeout` (the body included).
pub async fn probe_once(client: &Client, check: &Check) -> Attempt {
    let started = Instant::now();
    let exchange = tokio::time::timeout(check.request_timeout, exchange(client, check)).await;
    let latency = started.elapsed();
    let (outcome, status, body) = match exchange {
        Err(_elapsed) => (Outcome::Timeout, None, Vec::new()),
        Ok(Err(outcome)) => (outcome, None, Vec::new()),
        Ok(Ok((status, body))) => (judge(check, status, &body), Some(status), body),
    };
    let attempt = Attempt {
        url: redact_url(&check.url),
        outcome,
        latency,
        status,
        body_excerpt: redact::body_excerpt(&body, &check.headers),
    };
    tracing::debug!(
        url = %attempt.url,
        outcome = %attempt.outcome,
        latency_ms = latency.as_millis() as u64,
        "health check"
    );
    attempt
}

/// The status and (the start of) the body, or why there was none.
async fn exchange(client: &Client, check: &Check) -> Result<(u16, Vec<u8>), Outcome> {
    let headers = header_map(&check.headers).map_err(Outcome::Other)?;
    let send = || {
        client
            .request(check.method.as_reqwest(), check.url.clone())
            .headers(headers.clone())
            .send()
    };
    let mut response = match send().await {
        // A server may close an idle keep-alive connection just as it is reused (Node's
        // 5s idle timeout against a 5s interval). That says nothing about the app, so the
        // request is sent once more, on a new connection, as Go's HTTP client does for
        // idempotent requests: a health check is safe to repeat, whatever its method.
        Err(e) if closed_before_response(&e) => send().await,
        sent => sent,
    }
    .map_err(classify)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await.map_err(classify)? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_BODY);
    Ok((status, body))
}

fn judge(check: &Check, status: u16, body: &[u8]) -> Outcome {
    if !check.expected_status.matches(status) {
        return Outcome::UnexpectedStatus(status);
    }
    match &check.body_regex {
        Some(regex) if !regex.is_match(&String::from_utf8_lossy(body)) => {
            Outcome::BodyMismatch(status)
        }
        _ => Outcome::Passed { status },
    }
}

/// Sorts a transport error into the outcomes users tell apart. reqwest wraps the cause
/// in layers (client, connector, io::Error), so the chain is searched for it.
fn classify(error: reqwest::Error) -> Outcome {
    // The URL is reported separately, redacted.
    let error = error.without_url();
    let mut root: &dyn Error = &error;
    for cause in causes(&error) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Outcome::ConnectionRefused;
            }
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Outcome::Tls(tls.to_string());
        }
        root = cause;
    }
    if error.is_timeout() {
        return Outcome::Timeout;
    }
    // The innermost error says what happened; the outer ones say where.
    Outcome::Other(root.to_string())
}

/// Whether the connection was closed before any response came: what a reused
/// keep-alive connection that the server was closing looks like.
fn closed_before_response(error: &reqwest::Error) -> bool {
    causes(error).any(|cause| {
        cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
            || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{check, client};
    use crate::probe::{Method, StatusMatcher};
    use acceptance_tests::app::{Behavior, TestApp};

    #[tokio::test]
    async fn a_healthy_app_passes_with_its_body() {
        let app = TestApp::start("v1").await;
        let attempt = probe_once(&client(), &check(&app.url())).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
        assert_eq!(attempt.status, Some(200));
        assert_eq!(attempt.body_excerpt, r#"{"version":"v1","status":"ok"}"#);
        assert!(attempt.latency < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn head_and_post_are_sent_as_such() {
        let app = TestApp::start("v1").await;
        for method in [Method::Head, Method::Post] {
            let check = Check {
                method,
                ..check(&app.url())
            };
            let attempt = probe_once(&client(), &check).await;
            assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
            let body_expected = method != Method::Head;
            assert_eq!(!attempt.body_excerpt.is_empty(), body_expected, "{method}");
        }
        assert_eq!(app.requests(), 2);
    }

    #[tokio::test]
    async fn an_unexpected_status_fails() {
        let app = TestApp::start("v3").await;
        app.set(Behavior::Failing(503));
        let attempt = probe_once(&client(), &check(&app.url())).await;
        assert_eq!(attempt.outcome, Outcome::UnexpectedStatus(503));
        assert_eq!(attempt.outcome.label(), "503");
        assert_eq!(
            attempt.body_excerpt,
            r#"{"version":"v3","status":"failing"}"#
        );
    }

    #[tokio::test]
    async fn a_slow_answer_beyond_the_request_timeout_is_a_timeout() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Slow(Duration::from_secs(2)));
        let check = Check {
            request_timeout: Duration::from_millis(200),
            ..check(&app.url())
        };
        let attempt = probe_once(&client(), &check).await;
        assert_eq!(attempt.outcome, Outcome::Timeout);
        assert_eq!(attempt.outcome.label(), "timeout");
        assert!(attempt.latency >= Duration::from_millis(200));
        assert!(attempt.latency < Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Redirect("/login".into()));
        let attempt = probe_once(&client(), &check(&app.url())).await;
        assert_eq!(attempt.outcome, Outcome::UnexpectedStatus(302));
        let covered = Check {
            expected_status: StatusMatcher::parse("200-299,302").unwrap(),
            ..check(&app.url())
        };
        let attempt = probe_once(&client(), &covered).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 302 });
        assert_eq!(app.requests(), 2, "the location was never requested");
    }

    #[tokio::test]
    async fn the_body_must_match_body_regex() {
        let app = TestApp::start("v1").await;
        let with_regex = |re: &str| Check {
            body_regex: Some(regex::Regex::new(re).unwrap()),
            ..check(&app.url())
        };
        let attempt = probe_once(&client(), &with_regex(r#""version":"v2""#)).await;
        assert_eq!(attempt.outcome, Outcome::BodyMismatch(200));
        assert_eq!(attempt.outcome.label(), "body mismatch (200)");
        let attempt = probe_once(&client(), &with_regex(r#""status":"ok""#)).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
    }

    /// A server that answers one request per connection, then closes the connection
    /// on the next request unanswered, like one whose idle timeout fires as it arrives.
    async fn one_answer_per_connection(
        connections: usize,
    ) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn read_request(conn: &mut tokio::net::TcpStream) {
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                if conn.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                request.push(byte[0]);
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            for _ in 0..connections {
                let (mut conn, _) = listener.accept().await.unwrap();
                read_request(&mut conn).await;
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                read_request(&mut conn).await;
            }
        });
        (url, server)
    }

    #[tokio::test]
    async fn a_keep_alive_connection_closed_under_a_request_is_retried_once() {
        let (url, server) = one_answer_per_connection(3).await;
        let client = client();
        // The second and third requests go to a connection that is closed under them,
        // then again on a new one.
        for _ in 0..3 {
            let attempt = probe_once(&client, &check(&url)).await;
            assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
        }
        drop(client);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Down);
        let attempt = probe_once(&client(), &check(&app.url())).await;
        assert_eq!(attempt.outcome, Outcome::ConnectionRefused);
        assert_eq!(attempt.status, None);
    }

    #[tokio::test]
    async fn a_bad_header_is_named_without_its_value() {
        let app = TestApp::start("v1").await;
        let check = Check {
            headers: vec![("x-token".into(), "line\nbreak-s3cret".into())],
            ..check(&app.url())
        };
        let attempt = probe_once(&client(), &check).await;
        let Outcome::Other(message) = &attempt.outcome else {
            panic!("{:?}", attempt.outcome)
        };
        assert!(message.contains("x-token"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(app.requests(), 0);
    }

    #[tokio::test]
    async fn a_body_echoing_a_header_shows_no_value_of_it() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Echo(500));
        let check = Check {
            headers: vec![
                ("Authorization".into(), "Bearer s3cret-t0ken-4711".into()),
                ("X-Api-Key".into(), "k3y".into()),
            ],
            ..check(&app.url())
        };
        let attempt = probe_once(&client(), &check).await;
        assert_eq!(attempt.outcome, Outcome::UnexpectedStatus(500));
        let shown = &attempt.body_excerpt;
        assert!(shown.contains("authorization: REDACTED"), "{shown}");
        assert!(shown.contains("x-api-key: REDACTED"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
    }
}
