//! Small helpers for the text of diagnostics.

/// `text` with its first letter upper-cased, to start a sentence with a name written for
/// mid-sentence ("the load balancer", "HAProxy").
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
