//! Health probing: the HTTP checks that decide whether a release may take traffic.
//!
//! Shared by `immutable_health_gate` and the blue/green deployment. A [`Check`] says what
//! to request and what counts as healthy; a [`Policy`] says how many consecutive passes
//! are needed, how often to probe and for how long; [`run_gate`] runs them and returns a
//! [`Report`] that [`failure_detail`] turns into the error a user reads when the gate
//! fails. Header values are secrets (auth tokens): they are sent and never shown, not in
//! logs, reports or `Debug` output.

mod attempt;
mod clients;
mod gate;
mod report;
mod status;

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use crate::redact::redact_url;
pub use attempt::{probe_once, Attempt, Outcome};
pub use clients::HttpClients;
pub use gate::{run_gate, FailReason, GateResult};
pub use report::{failure_detail, Report};
pub use status::StatusMatcher;

/// The request method of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
}

impl Method {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "GET" => Ok(Method::Get),
            "HEAD" => Ok(Method::Head),
            "POST" => Ok(Method::Post),
            _ => Err(format!(
                "{text:?} is not a health check method: use \"GET\", \"HEAD\" or \"POST\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
        }
    }

    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check's server certificate is verified; also the key of the client cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    pub insecure_skip_verify: bool,
    /// An extra trusted CA (or several), besides the system's.
    pub ca_cert_pem: Option<String>,
}

/// One endpoint to probe and what counts as healthy.
#[derive(Clone)]
pub struct Check {
    pub url: reqwest::Url,
    pub method: Method,
    /// Sent with every request; the values are secret.
    pub headers: Vec<(String, String)>,
    pub expected_status: StatusMatcher,
    pub body_regex: Option<regex::Regex>,
    /// For the whole exchange: connecting, the status and the body.
    pub request_timeout: Duration,
    pub tls: TlsOptions,
}

/// Shows header names only: values are secrets.
impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field("headers", &crate::redact::headers(&self.headers))
            .field("expected_status", &self.expected_status.to_string())
            .field("body_regex", &self.body_regex.as_ref().map(|r| r.as_str()))
            .field("request_timeout", &self.request_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

/// When a gate passes or fails.
///
/// A gate whose `healthy_threshold` is [`Policy::WATCH`] never passes: it keeps checking
/// until the deadline, which is then the good outcome, and fails only on
/// `unhealthy_threshold` consecutive failing rounds. That is how checks keep running
/// while traffic moves and bakes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive passing rounds that pass the gate (at least 1).
    pub healthy_threshold: u32,
    /// Consecutive failing rounds that fail the gate early; 0 = only the deadline does.
    pub unhealthy_threshold: u32,
    /// Between the starts of two rounds.
    pub interval: Duration,
    /// Before the first round.
    pub initial_delay: Duration,
    /// From the start of the gate, the initial delay included.
    pub deadline: Duration,
}

impl Policy {
    /// The `healthy_threshold` of a watch (see above).
    pub const WATCH: u32 = u32::MAX;

    /// Checks for `period`, failing on `unhealthy_threshold` (at least 1) consecutive
    /// failing rounds.
    pub fn watch(period: Duration, unhealthy_threshold: u32, interval: Duration) -> Policy {
        Policy {
            healthy_threshold: Policy::WATCH,
            unhealthy_threshold: unhealthy_threshold.max(1),
            interval,
            initial_delay: Duration::ZERO,
            deadline: period,
        }
    }
}

/// The headers of a check as sent, marked sensitive so that no `Debug` output shows
/// them. An invalid one is named, without its value; resources call this at plan time.
pub fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            format!("the value of header {name:?} is not a valid HTTP header value: use visible ASCII characters, without line breaks")
        })?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

#[cfg(test)]
mod test_support {
    use std::time::Duration;

    use super::*;

    /// A GET check of `url` expecting 2xx, with a 1s timeout.
    pub fn check(url: &str) -> Check {
        Check {
            url: url.parse().unwrap(),
            method: Method::Get,
            headers: Vec::new(),
            expected_status: StatusMatcher::parse("200-299").unwrap(),
            body_regex: None,
            request_timeout: Duration::from_secs(1),
            tls: TlsOptions::default(),
        }
    }

    pub fn tls_check(url: &str, insecure_skip_verify: bool, ca_cert_pem: Option<&str>) -> Check {
        Check {
            tls: TlsOptions {
                insecure_skip_verify,
                ca_cert_pem: ca_cert_pem.map(str::to_string),
            },
            ..check(url)
        }
    }

    pub fn client() -> reqwest::Client {
        HttpClients::new().get(&TlsOptions::default()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_as_written_in_the_contract() {
        assert_eq!(Method::parse("GET"), Ok(Method::Get));
        assert_eq!(Method::parse("HEAD"), Ok(Method::Head));
        assert_eq!(
            Method::parse("POST").map(|m| m.to_string()),
            Ok("POST".into())
        );
        let err = Method::parse("PUT").unwrap_err();
        assert!(err.contains("\"GET\", \"HEAD\" or \"POST\""), "{err}");
    }

    #[test]
    fn debug_output_never_shows_header_values() {
        let mut check = test_support::check("https://user:pw@app.example.com/health?token=t0k");
        check.headers = vec![("Authorization".into(), "Bearer s3cret".into())];
        let shown = format!("{check:?}");
        assert!(shown.contains("Authorization"), "{shown}");
        for secret in ["s3cret", "pw", "t0k"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let map = header_map(&check.headers).unwrap();
        assert!(!format!("{map:?}").contains("s3cret"));
    }

    #[test]
    fn invalid_headers_are_named_without_their_values() {
        let err = header_map(&[("x token".into(), "v".into())]).unwrap_err();
        assert!(err.contains("\"x token\""), "{err}");
        let err = header_map(&[("x-token".into(), "a\r\nb".into())]).unwrap_err();
        assert!(
            err.contains("\"x-token\"") && !err.contains("a\r\nb"),
            "{err}"
        );
    }
}
