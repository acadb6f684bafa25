//! Small pieces every resource uses: the `timeouts` block, reading values, identifiers.

use std::time::{Duration, SystemTime};

use crate::duration;
use crate::tfplugin::schema::{Attribute, Block};
use crate::tfplugin::value::Value;
use crate::validators::{self, DurationAttribute};

/// A `timeouts { ... }` block with one optional duration per operation, as
/// terraform-plugin-framework-timeouts declares it. Each entry is (operation, default).
pub fn timeouts_block(operations: &[(&str, &str)]) -> Block {
    operations.iter().fold(
        Block::new("How long each operation may take before it fails (e.g. `\"10m\"`)."),
        |block, (name, default)| {
            block.attribute(
                Attribute::string(name)
                    .optional()
                    .description(&format!("Deadline of {name}. Defaults to `{default}`."))
                    .duration_within(duration::TIMEOUT),
            )
        },
    )
}

/// The deadline of one operation from a resource's `timeouts` block.
pub fn timeout(config: &Value, operation: &str, default: &str) -> Result<Duration, String> {
    let text = config
        .get("timeouts")
        .and_then(|t| t.get(operation))
        .and_then(Value::as_str)
        .unwrap_or(default);
    duration::parse(text)
}

/// `headers_wo` and `headers_wo_version`: request headers that Terraform (1.11+) passes to
/// the provider but never stores, and the stored number whose change says they changed.
pub fn write_only_headers() -> [Attribute; 2] {
    [
        Attribute::string_map("headers_wo")
            .optional()
            .sensitive()
            .write_only()
            .description("Request headers that never reach the plan or the state, e.g. `{ Authorization = \"Bearer ${var.token}\" }` (write-only: Terraform 1.11 or later). A change alone is not seen: bump `headers_wo_version` with it. Where a name is in both, this wins over `headers`."),
        Attribute::number("headers_wo_version")
            .optional()
            .description("Any number, changed whenever `headers_wo` changes, so that the plan shows the change (`headers_wo` itself is never compared).")
            .validate(validators::int_in_range(0, i64::MAX)),
    ]
}

/// The request headers of a block: `headers`, then `headers_wo` (which wins for a name in
/// both; it is set only during an apply).
pub fn request_headers(config: &Value) -> Vec<(String, String)> {
    let mut headers = string_map(config.get("headers"));
    for (name, value) in string_map(config.get("headers_wo")) {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
    headers
}

/// A map(string) attribute as (key, value) pairs; null means empty.
pub fn string_map(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Map(map)) => map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

/// A unique identifier such as `gate-1764450000123-9f2c`.
pub fn new_id(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{prefix}-{millis}-{:04x}", fastrand::u16(..))
}

/// RFC 3339 in UTC with whole seconds, as Terraform's `timestamp()` writes it.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_default_and_override() {
        let config = Value::Object([("timeouts".to_string(), Value::Null)].into());
        assert_eq!(
            timeout(&config, "create", "5m"),
            Ok(Duration::from_secs(300))
        );
        let config = Value::Object(
            [(
                "timeouts".to_string(),
                Value::Object([("create".to_string(), Value::from("90s"))].into()),
            )]
            .into(),
        );
        assert_eq!(
            timeout(&config, "create", "5m"),
            Ok(Duration::from_secs(90))
        );
    }

    #[test]
    fn ids_are_unique_and_times_are_rfc3339() {
        assert_ne!(new_id("gate"), new_id("gate"));
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_450_000);
        assert_eq!(rfc3339(at), "2025-11-29T21:00:00Z");
    }
}
