//! Prometheus's HTTP API, as analysis uses it: one instant query that must come back as
//! one number.

use std::time::Duration;

use reqwest::{Client, Url};

use crate::budget;
use crate::redact::{self, redact_url};

/// What one query returned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    Number(f64),
    /// No series, or NaN (such as 0/0 when the colour served no request).
    NoData,
}

/// A Prometheus server: its address, the client for its TLS settings, and the headers
/// every query carries (they may hold a token, so they are never in a message).
pub struct Prometheus {
    pub address: Url,
    pub client: Client,
    pub headers: Vec<(String, String)>,
}

impl Prometheus {
    /// `GET /api/v1/query`, within `timeout`, the operation's deadline and Ctrl-C
    /// ([`budget::bounded`]). Several series, a range vector, a refused query or an
    /// unreachable server are errors: none of them is a measurement. An error shows the
    /// address redacted and no header value, even where the server echoed one.
    pub async fn query(&self, promql: &str, timeout: Duration) -> Result<Sample, String> {
        let what = format!("Prometheus at {}", redact_url(&self.address));
        budget::bounded(what, self.send(promql, timeout))
            .await
            .unwrap_or_else(|cut| Err(cut.to_string()))
            .map_err(|e| redact::mask_headers(&e, &self.headers))
    }

    async fn send(&self, promql: &str, timeout: Duration) -> Result<Sample, String> {
        let address = redact_url(&self.address);
        let mut url = self
            .address
            .join("api/v1/query")
            .map_err(|e| format!("{address}: {e}"))?;
        url.query_pairs_mut().append_pair("query", promql);
        let mut request = self.client.get(url).timeout(timeout);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let unreachable = |e: reqwest::Error| {
            format!(
                "Prometheus at {address} did not answer: {}",
                e.without_url()
            )
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(format!(
                    "Prometheus at {address} answered with more than {} KiB, far more than one number: aggregate the query, e.g. with sum(...) or max(...)",
                    MAX_ANSWER / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body, &self.headers).map_err(|e| {
            if status.is_success() {
                e
            } else {
                format!("HTTP {status}: {e}")
            }
        })
    }
}

/// The most of an answer that is read. One number comes in a few hundred bytes; a query
/// that returns thousands of series, or a server that is not Prometheus, is cut off here
/// rather than held in memory.
const MAX_ANSWER: usize = 1 << 20;

/// The answer's one number, from `{"status":"success","data":{"resultType":..,"result":..}}`.
/// Anything else is shown by an excerpt, with the values of the request's `headers` masked.
fn parse(body: &[u8], headers: &[(String, String)]) -> Result<Sample, String> {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "the answer is not Prometheus's JSON: {:?}",
            redact::body_excerpt(body, headers)
        )
    })?;
    if answer["status"] != "success" {
        return Err(format!(
            "Prometheus refused the query ({}): {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let data = &answer["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([]) => return Ok(Sample::NoData),
            Some([one]) => &one["value"],
            Some(many) => {
                let series: Vec<String> = many.iter().take(3).map(|s| s["metric"].to_string()).collect();
                return Err(format!(
                    "the query returned {} series ({}{}), not one number: aggregate it, e.g. with sum(...) or max(...)",
                    many.len(),
                    series.join(", "),
                    if many.len() > 3 { ", ..." } else { "" }
                ));
            }
            None => return Err("the answer's vector is not a list".into()),
        },
        Some(other) => {
            return Err(format!(
                "the query returned a {other}, not one number: use an instant vector or a scalar (no [range] at the end)"
            ))
        }
        None => return Err("the answer has no resultType".into()),
    };
    let text = value[1]
        .as_str()
        .ok_or_else(|| format!("the sample {value} is not [time, \"number\"]"))?;
    match text.parse::<f64>() {
        Ok(n) if n.is_nan() => Ok(Sample::NoData),
        Ok(n) => Ok(Sample::Number(n)),
        Err(_) => Err(format!("the sample {text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(data: &str) -> Result<Sample, String> {
        parse(
            format!(r#"{{"status":"success","data":{data}}}"#).as_bytes(),
            &[],
        )
    }

    #[test]
    fn one_number_from_a_vector_or_a_scalar() {
        assert_eq!(
            answer(r#"{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.25"]}]}"#),
            Ok(Sample::Number(0.25))
        );
        assert_eq!(
            answer(r#"{"resultType":"scalar","result":[1.5,"+Inf"]}"#),
            Ok(Sample::Number(f64::INFINITY))
        );
    }

    #[test]
    fn no_series_and_nan_are_no_data() {
        assert_eq!(
            answer(r#"{"resultType":"vector","result":[]}"#),
            Ok(Sample::NoData)
        );
        assert_eq!(
            answer(r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}"#),
            Ok(Sample::NoData)
        );
    }

    /// A server that answers any request with a `200` whose JSON body never ends.
    async fn endless_answer() -> Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[";
            let _ = stream.write_all(head.as_bytes()).await;
            let series = r#"{"metric":{"pod":"a"},"value":[1,"1"]},"#.repeat(1000);
            while stream.write_all(series.as_bytes()).await.is_ok() {}
        });
        address
    }

    #[tokio::test]
    async fn a_query_that_never_answers_ends_within_a_second_of_ctrl_c() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://prom:s3cret@{}/", hung.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let budget = budget::Budget::new(
            started + Duration::from_secs(3600),
            stop,
            "the resource's `timeouts`",
        );
        let prometheus = prometheus(&address, &[]);
        let query = prometheus.query("up", Duration::from_secs(10));
        let error = budget::within(budget, query).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "{:?}",
            started.elapsed()
        );
        assert!(
            error.starts_with(
                "interrupted while waiting for Prometheus at http://REDACTED@127.0.0.1:"
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_answer_past_the_cap_is_refused_without_reading_it_all() {
        let prometheus = Prometheus {
            address: endless_answer().await,
            client: Client::new(),
            headers: Vec::new(),
        };
        let started = std::time::Instant::now();
        let error = prometheus
            .query("up", Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            error.contains("more than 1024 KiB") && error.contains("sum(...)"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn several_series_a_matrix_and_a_refusal_are_errors() {
        let two = answer(
            r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}"#,
        )
        .unwrap_err();
        assert!(
            two.contains("2 series") && two.contains("sum(...)"),
            "{two}"
        );
        let matrix = answer(r#"{"resultType":"matrix","result":[]}"#).unwrap_err();
        assert!(matrix.contains("matrix"), "{matrix}");
        let refused = parse(
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
            &[],
        )
        .unwrap_err();
        assert!(
            refused.contains("bad_data") && refused.contains("char 5"),
            "{refused}"
        );
        assert!(parse(b"<html>", &[])
            .unwrap_err()
            .contains("not Prometheus's JSON"));
    }

    fn prometheus(address: &str, headers: &[(&str, &str)]) -> Prometheus {
        Prometheus {
            address: address.parse().unwrap(),
            client: crate::probe::HttpClients::new()
                .get(&Default::default())
                .unwrap(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test]
    async fn an_error_shows_the_address_without_its_password() {
        let err = prometheus("http://prom:s3cret@127.0.0.1:1/", &[])
            .query("up", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            err.starts_with("Prometheus at http://REDACTED@127.0.0.1:1/ did not answer"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn an_answer_echoing_the_request_shows_no_header_value() {
        let app = acceptance_tests::app::TestApp::start("prom").await;
        app.set(acceptance_tests::app::Behavior::Echo(502));
        let err = prometheus(
            &format!("{}/", app.url()),
            &[("Authorization", "Bearer pr0m-t0ken")],
        )
        .query("up", Duration::from_secs(1))
        .await
        .unwrap_err();
        assert!(err.contains("authorization: REDACTED"), "{err}");
        assert!(!err.contains("pr0m-t0ken"), "{err}");
    }
}
