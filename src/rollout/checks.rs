//! The HTTP checks of a colour: the URLs the gate and the watch request.

use super::*;

impl Rollout<'_> {
    /// The HTTP checks of a colour: its URL, or each of these IP targets.
    pub(super) fn checks(&self, color: Color, targets: &[Target]) -> Result<Vec<Check>, String> {
        let check = |url: String| -> Result<Check, String> {
            Ok(Check {
                url: reqwest::Url::parse(&url)
                    .map_err(|e| format!("health check URL {url:?}: {e}"))?,
                method: self.health.method,
                headers: self.health.headers.clone(),
                expected_status: self.health.expected_status.clone(),
                body_regex: self.health.body_regex.clone(),
                request_timeout: self.health.request_timeout,
                tls: TlsOptions {
                    insecure_skip_verify: self.health.insecure_skip_verify,
                    ca_cert_pem: None,
                },
            })
        };
        match &self.health.endpoint {
            None => Ok(Vec::new()),
            Some(Endpoint::Url(template)) => {
                Ok(vec![check(template.replace("{color}", color.name()))?])
            }
            Some(Endpoint::Targets {
                path,
                protocol,
                port,
            }) => {
                let urls: Vec<String> = targets
                    .iter()
                    .filter_map(|t| {
                        let ip: std::net::IpAddr = t.id.parse().ok()?;
                        let port = port.or(t.port)?;
                        let host = match ip {
                            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                            v4 => v4.to_string(),
                        };
                        Some(format!(
                            "{}://{host}:{port}{path}",
                            protocol.to_ascii_lowercase()
                        ))
                    })
                    .collect();
                if urls.is_empty() {
                    return Err(format!(
                        "health_check.path probes IP targets directly, but {} has no healthy IP target with a port; use health_check.url instead. Traffic was not moved.",
                        self.router.describe(color)
                    ));
                }
                urls.into_iter().map(check).collect()
            }
        }
    }
}
