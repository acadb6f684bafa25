//! URLs as they may be shown: in logs, diagnostics and state. Health check URLs
//! sometimes carry credentials (`https://user:pass@...`, `?token=...`, presigned
//! `X-Amz-Signature`), which must not end up in CI logs.

use reqwest::Url;

const REDACTED: &str = "REDACTED";

/// The URL with its userinfo and the values of secret-looking query parameters replaced
/// by `REDACTED`. Other parts are kept as written.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Fails only for URLs without a host, which have no userinfo either.
        let _ = url.set_password(None);
        let _ = url.set_username(REDACTED);
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.iter().any(|(key, _)| is_secret(key)) {
        let redacted = pairs.iter().map(|(key, value)| {
            let value = if is_secret(key) { REDACTED } else { value };
            (key.as_str(), value)
        });
        url.query_pairs_mut().clear().extend_pairs(redacted);
    }
    url.to_string()
}

/// Whether a query parameter name looks like it holds a secret: tokens, keys,
/// passwords, signatures, credentials and every `X-Amz-*` parameter of presigned URLs.
fn is_secret(key: &str) -> bool {
    const WORDS: [&str; 7] = [
        "token",
        "secret",
        "password",
        "passwd",
        "signature",
        "auth",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    let squashed: String = key.chars().filter(|c| !matches!(c, '-' | '_')).collect();
    key.starts_with("x-amz-")
        || WORDS.iter().any(|w| squashed.contains(w))
        || squashed.ends_with("key")
        || squashed == "sig"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(url: &str) -> String {
        redact_url(&url.parse().unwrap())
    }

    #[test]
    fn plain_urls_are_unchanged() {
        for url in [
            "http://127.0.0.1:8080/health",
            "https://app.example.com/health?verbose=1&region=us-west-2",
            "https://app.example.com/",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact("https://admin:hunter2@app.example.com/health"),
            "https://REDACTED@app.example.com/health"
        );
        assert_eq!(
            redact("https://admin@app.example.com/"),
            "https://REDACTED@app.example.com/"
        );
    }

    #[test]
    fn secret_query_values_are_redacted_and_others_kept() {
        assert_eq!(
            redact("https://h/health?token=abc&verbose=1"),
            "https://h/health?token=REDACTED&verbose=1"
        );
        for key in [
            "api_key",
            "apikey",
            "ApiKey",
            "key",
            "access_token",
            "client_secret",
            "password",
            "sig",
            "signature",
            "auth",
            "Authorization",
            "credential",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Security-Token",
        ] {
            let shown = redact(&format!("https://h/p?{key}=s3cret&x=1"));
            assert_eq!(shown, format!("https://h/p?{key}=REDACTED&x=1"), "{key}");
        }
        for key in ["verbose", "region", "keys_only_in_middle", "design"] {
            let url = format!("https://h/p?{key}=v");
            assert_eq!(redact(&url), url, "{key}");
        }
    }
}
