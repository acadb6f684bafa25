//! What may be shown of a secret, wherever text leaves the provider: logs, diagnostics,
//! state and `Debug` output. Health check and Prometheus URLs sometimes carry credentials
//! (`https://user:pass@...`, `?token=...`, presigned `X-Amz-Signature`), request headers
//! carry tokens that an endpoint may echo in its body, and CI logs are widely read.

use std::fmt;

use reqwest::Url;

/// What a secret is replaced by in URLs and messages.
const REDACTED: &str = "REDACTED";

/// A value that `Debug` shows as `<sensitive>`, so that a struct holding a secret can
/// derive `Debug`. Wrap a field, or a borrowed value inside a hand-written `Debug`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Sensitive<T>(pub T);

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<sensitive>")
    }
}

/// Request headers for `Debug`: the names, each value `<sensitive>`.
pub fn headers(headers: &[(String, String)]) -> impl fmt::Debug + '_ {
    HeaderNames(headers)
}

struct HeaderNames<'a>(&'a [(String, String)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| (name, Sensitive(value))))
            .finish()
    }
}

/// `text` with the values of these request headers replaced by `REDACTED`: for bodies and
/// errors of servers that may echo the request (a debug endpoint, a proxy's error page).
/// Each value is masked whole, and so is each of its words of 8 characters or more: the
/// token of `Bearer <token>` alone is as secret. Whitespace runs in `text` should already
/// be single spaces; values are matched the same way.
pub fn mask_headers(text: &str, headers: &[(String, String)]) -> String {
    let mut secrets: Vec<String> = Vec::new();
    for (_, value) in headers {
        let words: Vec<&str> = value.split_whitespace().collect();
        secrets.push(words.join(" "));
        secrets.extend(words.iter().filter(|w| w.len() >= 8).map(|w| w.to_string()));
    }
    // Longest first, so that a whole value goes before its words.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), REDACTED)
        })
}

/// The longest body excerpt shown in reports and errors, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// The start of a body, fit for an error message: valid UTF-8, whitespace runs made
/// single spaces, other control characters dropped, the values of these request headers
/// masked ([`mask_headers`]), at most [`EXCERPT_CHARS`].
pub fn body_excerpt(body: &[u8], headers: &[(String, String)]) -> String {
    // Whitespace runs shrink, so more is read than shown; and past that by the longest
    // value, so that one echoed across the cut is masked whole.
    let longest = headers.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let read = 4 * EXCERPT_CHARS + longest;
    let text = String::from_utf8_lossy(&body[..body.len().min(read)]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let clean: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let clean = mask_headers(&clean, headers);
    if clean.chars().count() <= EXCERPT_CHARS {
        return clean;
    }
    clean.chars().take(EXCERPT_CHARS - 1).chain(['…']).collect()
}

/// [`redact_url`] of a URL as written in the configuration. Text that is no URL with a
/// host is shown as written unless it has an `@` or a `?`, which may hold a password or a
/// token (`user:pass@host` parses as a URL of scheme `user`): then only `REDACTED`.
pub fn redact_url_text(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.has_host() => redact_url(&parsed),
        _ if url.contains(['@', '?']) => REDACTED.to_string(),
        _ => url.to_string(),
    }
}

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

    #[test]
    fn excerpts_are_short_single_line_text() {
        assert_eq!(body_excerpt(b"  ok \r\n\tfine\x07 ", &[]), "ok fine");
        assert_eq!(body_excerpt(b"caf\xc3\xa9 \xff", &[]), "café \u{fffd}");
        let long = body_excerpt("é".repeat(500).as_bytes(), &[]);
        assert_eq!(long.chars().count(), EXCERPT_CHARS);
        assert!(long.ends_with('…'));
        assert_eq!(body_excerpt(b"", &[]), "");
    }

    #[test]
    fn an_echoed_token_is_masked_even_where_the_excerpt_is_cut() {
        let headers = [(
            "Authorization".to_string(),
            "Bearer s3cret-t0ken-4711".to_string(),
        )];
        // The token alone, and the value across the cut at 200 characters.
        let shown = body_excerpt(b"invalid token s3cret-t0ken-4711", &headers);
        assert_eq!(shown, "invalid token REDACTED");
        let body = format!("{}Bearer s3cret-t0ken-4711", "x".repeat(EXCERPT_CHARS - 10));
        assert!(!body_excerpt(body.as_bytes(), &headers).contains("s3"));
        // Whitespace runs shrink: the body is read further than the excerpt shows.
        let body = format!(
            "{}Bearer s3cret-t0ken-4711",
            " ".repeat(4 * EXCERPT_CHARS - 12)
        );
        assert!(!body_excerpt(body.as_bytes(), &headers).contains("s3"));
    }

    #[test]
    fn debug_shows_header_names_and_no_value() {
        let headers = [("Authorization".to_string(), "Bearer s3cret".to_string())];
        assert_eq!(
            format!("{:?}", super::headers(&headers)),
            r#"{"Authorization": <sensitive>}"#
        );
        assert_eq!(
            format!("{:?}", Some(Sensitive("s3cret"))),
            "Some(<sensitive>)"
        );
    }

    #[test]
    fn an_address_is_redacted_even_when_it_is_no_url() {
        assert_eq!(
            redact_url_text("http://prom:s3cret@prometheus:9090"),
            "http://REDACTED@prometheus:9090/"
        );
        assert_eq!(redact_url_text("prom:s3cret@prometheus"), "REDACTED");
        assert_eq!(redact_url_text("prometheus/x?token=t0k"), "REDACTED");
        assert_eq!(redact_url_text("prometheus:9090"), "prometheus:9090");
        assert_eq!(
            redact_url_text("https://{color}.example.com/health?token=t0k"),
            "https://{color}.example.com/health?token=REDACTED"
        );
    }

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
