//! HTTP clients for health checks, one per TLS setting, shared by every gate of the
//! provider process so that keep-alive connections are reused across rounds and gates
//! (a gate should measure the app, not TCP and TLS handshakes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Certificate, Client, NoProxy, Proxy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::TlsOptions;

const USER_AGENT: &str = concat!("terraform-provider-immutable/", env!("CARGO_PKG_VERSION"));

/// Loopback destinations never go through a proxy: a proxy cannot reach this machine's
/// loopback, and local apps are what a proxy setting for AWS must not disturb.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// Idle keep-alive connections are closed after this, below the 60s idle timeout of
/// load balancers, so a reused connection is rarely one the server is closing.
const POOL_IDLE: Duration = Duration::from_secs(50);

#[derive(Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<TlsOptions, Client>>,
}

impl HttpClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client for these TLS options, built on first use. Fails when `ca_cert_pem`
    /// holds no usable certificate, or a proxy variable is not a URL.
    pub fn get(&self, tls: &TlsOptions) -> Result<Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(tls) {
            return Ok(client.clone());
        }
        let client = build(tls, |name| std::env::var(name).ok())?;
        clients.insert(tls.clone(), client.clone());
        Ok(client)
    }
}

/// Builds a client. Redirects are not followed: a health endpoint that redirects (to a
/// login page, say) is not healthy unless `expected_status` says so. Responses are not
/// decompressed (no compression feature is enabled), so `body_regex` sees what the app
/// sent and the client never asks for compression.
fn build(tls: &TlsOptions, env: impl Fn(&str) -> Option<String>) -> Result<Client, String> {
    let mut builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .pool_idle_timeout(POOL_IDLE)
        .tls_danger_accept_invalid_certs(tls.insecure_skip_verify);
    if let Some(pem) = &tls.ca_cert_pem {
        builder = builder.tls_certs_merge(ca_certificates(pem)?);
    }
    let proxies = env_proxies(env)?;
    builder = if proxies.is_empty() {
        builder.no_proxy()
    } else {
        proxies.into_iter().fold(builder, |b, p| b.proxy(p))
    };
    builder.build().map_err(|e| {
        format!(
            "cannot set up the HTTP client: {}",
            crate::error_chain::one_line(&e)
        )
    })
}

/// The extra trusted CAs, each checked the way rustls will use it, so that a damaged one
/// is reported once here rather than as a TLS error at every check.
fn ca_certificates(pem: &str) -> Result<Vec<Certificate>, String> {
    let invalid = |why: String| {
        format!(
            "ca_cert_pem {why}: give one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
        )
    };
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("is not valid PEM".into()))?;
    if ders.is_empty() {
        return Err(invalid("holds no certificate".into()));
    }
    let mut store = rustls::RootCertStore::empty();
    ders.into_iter()
        .map(|der| {
            let cert = Certificate::from_der(&der);
            store
                .add(der)
                .map_err(|e| invalid(format!("holds a certificate that cannot be used ({e})")))?;
            cert.map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// The standard proxy variables, as curl and Go read them, except for loopback.
fn env_proxies(env: impl Fn(&str) -> Option<String>) -> Result<Vec<Proxy>, String> {
    let var = |name: &str| {
        env(name)
            .or_else(|| env(&name.to_ascii_lowercase()))
            .filter(|v| !v.is_empty())
    };
    let no_proxy = match var("NO_PROXY") {
        Some(list) => format!("{LOOPBACK},{list}"),
        None => LOOPBACK.to_string(),
    };
    type Make = fn(String) -> reqwest::Result<Proxy>;
    let kinds: [(&str, Make); 3] = [
        ("HTTP_PROXY", Proxy::http),
        ("HTTPS_PROXY", Proxy::https),
        ("ALL_PROXY", Proxy::all),
    ];
    let mut proxies = Vec::new();
    for (name, make) in kinds {
        if let Some(url) = var(name) {
            // The value may hold credentials: name the variable only.
            let proxy = make(url).map_err(|_| format!("{name} is not a proxy URL"))?;
            proxies.push(proxy.no_proxy(NoProxy::from_string(&no_proxy)));
        }
    }
    Ok(proxies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{check, tls_check};
    use crate::probe::{probe_once, Outcome};
    use acceptance_tests::app::TestApp;

    #[test]
    fn clients_are_cached_per_tls_options() {
        let clients = HttpClients::new();
        let plain = TlsOptions::default();
        let insecure = TlsOptions {
            insecure_skip_verify: true,
            ca_cert_pem: None,
        };
        clients.get(&plain).unwrap();
        clients.get(&plain).unwrap();
        clients.get(&insecure).unwrap();
        assert_eq!(clients.clients.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_bad_ca_pem_is_an_error_that_says_what_to_give() {
        let clients = HttpClients::new();
        for pem in [
            "not a pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let tls = TlsOptions {
                insecure_skip_verify: false,
                ca_cert_pem: Some(pem.to_string()),
            };
            let err = clients.get(&tls).unwrap_err();
            assert!(err.contains("ca_cert_pem"), "{err}");
            assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
        }
    }

    #[tokio::test]
    async fn the_user_agent_names_the_provider() {
        let app = TestApp::start("v1").await;
        let client = HttpClients::new().get(&TlsOptions::default()).unwrap();
        probe_once(&client, &check(&app.url())).await;
        let headers = app.last_headers();
        assert!(
            headers.contains(&("user-agent".into(), USER_AGENT.into())),
            "{headers:?}"
        );
        assert!(
            !headers.iter().any(|(name, _)| name == "accept-encoding"),
            "{headers:?}"
        );
    }

    #[tokio::test]
    async fn proxies_from_the_environment_are_bypassed_for_loopback() {
        let app = TestApp::start("v1").await;
        let env = |name: &str| match name {
            "HTTP_PROXY" | "https_proxy" => Some("http://proxy.invalid:3128".to_string()),
            "NO_PROXY" => Some("example.com".to_string()),
            _ => None,
        };
        assert_eq!(env_proxies(env).unwrap().len(), 2);
        let client = build(&TlsOptions::default(), env).unwrap();
        let attempt = probe_once(&client, &check(&app.url())).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
        let localhost = app.url().replace("127.0.0.1", "localhost");
        let attempt = probe_once(&client, &check(&localhost)).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });

        let bad = |name: &str| (name == "ALL_PROXY").then(|| "http://[::1".to_string());
        assert_eq!(
            env_proxies(bad).unwrap_err(),
            "ALL_PROXY is not a proxy URL"
        );
    }

    #[tokio::test]
    async fn tls_trusts_the_given_ca_or_nothing_when_told_to() {
        let (app, ca_pem) = TestApp::start_tls("v1").await;
        let clients = HttpClients::new();
        let trusted = tls_check(&app.url(), false, Some(&ca_pem));
        let attempt = probe_once(&clients.get(&trusted.tls).unwrap(), &trusted).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });

        let untrusted = tls_check(&app.url(), false, None);
        let attempt = probe_once(&clients.get(&untrusted.tls).unwrap(), &untrusted).await;
        assert!(
            matches!(attempt.outcome, Outcome::Tls(_)),
            "{:?}",
            attempt.outcome
        );
        assert_eq!(attempt.outcome.label(), "tls error");

        let insecure = tls_check(&app.url(), true, None);
        let attempt = probe_once(&clients.get(&insecure.tls).unwrap(), &insecure).await;
        assert_eq!(attempt.outcome, Outcome::Passed { status: 200 });
    }
}
