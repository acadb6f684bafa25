//! Reusable attribute checks, attached to schema attributes with `Attribute::validate`.
//! Each returns a message that says what would be valid.

use crate::duration::Bounds;
use crate::tfplugin::schema::Attribute;
use crate::tfplugin::value::Value;

fn string(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

pub fn http_url(value: &Value) -> Result<(), String> {
    let url = string(value);
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(format!(
            "{:?} is not an http:// or https:// URL with a host, e.g. \"https://app.example.com/health\"",
            crate::redact::redact_url_text(url)
        )),
    }
}

/// A duration attribute within [`Bounds`]: the check, and the range at the end of the
/// description, which the docs are generated from (so give it after `description`).
pub trait DurationAttribute {
    fn duration_within(self, bounds: Bounds) -> Self;
}

impl DurationAttribute for Attribute {
    fn duration_within(self, bounds: Bounds) -> Self {
        let description = format!("{} {}", self.description, bounds.sentence());
        self.description(&description)
            .validate(move |value| bounds.parse(string(value)).map(|_| ()))
    }
}

pub fn int_in_range(min: i64, max: i64) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |value| match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("must be a whole number from {min} to {max}")),
    }
}

pub fn one_of(
    allowed: &'static [&'static str],
) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |value| {
        let v = string(value);
        if allowed.contains(&v) {
            Ok(())
        } else {
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            Err(format!("{v:?} is not one of {}", list.join(", ")))
        }
    }
}

pub fn aws_region(value: &Value) -> Result<(), String> {
    let region = string(value);
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region name, e.g. \"us-west-2\""
        ))
    }
}

pub fn iam_role_arn(value: &Value) -> Result<(), String> {
    let arn = string(value);
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    if fields.len() == 6
        && fields[0] == "arn"
        && fields[2] == "iam"
        && fields[4].len() == 12
        && fields[5].starts_with("role/")
    {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an IAM role ARN, e.g. \"arn:aws:iam::123456789012:role/deployer\""
        ))
    }
}

pub fn regex(value: &Value) -> Result<(), String> {
    regex::Regex::new(string(value))
        .map(|_| ())
        .map_err(|e| format!("not a valid regular expression: {e}"))
}

/// One or more PEM certificates.
pub fn pem_certificates(value: &Value) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_slice_iter(string(value).as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        _ => Err(
            "must hold one or more PEM certificates (-----BEGIN CERTIFICATE----- ...)".to_string(),
        ),
    }
}

pub fn non_empty(value: &Value) -> Result<(), String> {
    if string(value).trim().is_empty() {
        Err("must not be empty".to_string())
    } else {
        Ok(())
    }
}

/// An http(s) URL that may hold `{color}`, replaced by a colour's name before use.
pub fn http_url_template(value: &Value) -> Result<(), String> {
    http_url(&Value::from(string(value).replace("{color}", "blue")))
}

pub fn url_path(value: &Value) -> Result<(), String> {
    let path = string(value);
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a URL path: it must start with \"/\", e.g. \"/health\""
        ))
    }
}

pub fn status_matcher(value: &Value) -> Result<(), String> {
    crate::probe::StatusMatcher::parse(string(value)).map(|_| ())
}

/// A target of an `ip` or `instance` target group: an IP address or an EC2 instance ID.
/// ELBv2 takes no host names, and a typo here would otherwise surface only as a target
/// that never turns healthy.
pub fn elb_target_id(value: &Value) -> Result<(), String> {
    let id = string(value);
    let instance = id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if instance || id.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is neither an IP address (\"10.0.1.5\") nor an EC2 instance ID (\"i-0123456789abcdef0\")"
        ))
    }
}

/// An IP address or a host name (RFC 1123 labels), as a server address: no port, no
/// scheme. `10.0.1.5:8080` would otherwise reach HAProxy as an address it cannot parse.
pub fn host(value: &Value) -> Result<(), String> {
    let host = string(value);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.parse::<std::net::IpAddr>().is_ok() || (host.len() <= 253 && host.split('.').all(label))
    {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is neither an IP address (\"10.0.1.5\", \"::1\") nor a host name (\"app-1.internal\"); give the port in `port`"
        ))
    }
}

/// An IP address, as a server HAProxy adds at runtime needs (it resolves no host name).
pub fn ip_address(value: &Value) -> Result<(), String> {
    let ip = string(value);
    ip.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| {
        format!("{ip:?} is not an IP address (\"10.0.1.5\", \"::1\"): HAProxy resolves no host name for a server added at runtime; give the port in `port`")
    })
}

/// An absolute file path.
pub fn absolute_path(value: &Value) -> Result<(), String> {
    let path = string(value);
    if path.starts_with('/') && path.len() > 1 {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not an absolute path, e.g. \"/etc/haproxy/conf.d/web.cfg\""
        ))
    }
}

/// A proxy name as HAProxy accepts it: letters, digits, `-`, `_`, `.` and `:`.
pub fn haproxy_name(value: &Value) -> Result<(), String> {
    let name = string(value);
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    if !name.is_empty() && name.chars().all(valid) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name HAProxy accepts for a backend: use letters, digits, '-', '_', '.' and ':' (e.g. \"web\")"
        ))
    }
}

/// An Elastic Load Balancing ARN of one kind (`listener`, `targetgroup`), as AWS writes
/// them: `arn:<partition>:elasticloadbalancing:<region>:<account>:<kind>/...`. moto
/// accepts anything, real AWS does not, so the shape is checked before any call.
pub fn elb_arn(kind: &'static str) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |value| {
        let arn = string(value);
        let fields: Vec<&str> = arn.splitn(6, ':').collect();
        let resource = fields.get(5).copied().unwrap_or_default();
        let segments = resource.split('/').count();
        let expected_segments = match kind {
            "listener" => 5,
            "loadbalancer" => 4,
            _ => 3,
        };
        let ok = fields.len() == 6
            && fields[0] == "arn"
            && fields[1].starts_with("aws")
            && fields[2] == "elasticloadbalancing"
            && !fields[3].is_empty()
            && fields[4].len() == 12
            && fields[4].chars().all(|c| c.is_ascii_digit())
            && resource.starts_with(&format!("{kind}/"))
            && segments == expected_segments
            && resource.split('/').all(|s| !s.is_empty());
        if ok {
            Ok(())
        } else {
            let example = if kind == "listener" {
                "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/my-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
            } else if kind == "loadbalancer" {
                "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188"
            } else {
                "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/blue/73e2d6bc24d8a067"
            };
            Err(format!(
                "{arn:?} is not an ELB {kind} ARN, e.g. \"{example}\""
            ))
        }
    }
}

/// Text whose `{name}` placeholders are all among `allowed`.
pub fn placeholders_among(
    allowed: &'static [&'static str],
) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |value| {
        let unknown: Vec<&str> = crate::analysis::placeholders(string(value))
            .into_iter()
            .filter(|p| !allowed.contains(p))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let list = |names: &mut dyn Iterator<Item = &str>| {
            names
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "unknown placeholder {}: the placeholders are {}",
            list(&mut unknown.into_iter()),
            list(&mut allowed.iter().copied())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(http_url(&"http://127.0.0.1:8080/health".into()).is_ok());
        assert!(http_url(&"https://app.example.com".into()).is_ok());
        for bad in ["ops:pa55@app.example.com", "ftp://ops:pa55@app.example.com"] {
            let err = http_url(&bad.into()).unwrap_err();
            assert!(
                err.contains("is not an http://") && !err.contains("pa55"),
                "{err}"
            );
        }
        assert!(http_url(&"ftp://x".into()).is_err());
        assert!(http_url(&"http://".into()).is_err());
        assert!(http_url(&"not a url".into()).is_err());
    }

    #[test]
    fn regions_and_role_arns() {
        assert!(aws_region(&"us-west-2".into()).is_ok());
        assert!(aws_region(&"us-gov-east-1".into()).is_ok());
        assert!(aws_region(&"US-WEST-2".into()).is_err());
        assert!(aws_region(&"uswest".into()).is_err());
        assert!(iam_role_arn(&"arn:aws:iam::123456789012:role/deployer".into()).is_ok());
        assert!(iam_role_arn(&"arn:aws:iam::123:role/x".into()).is_err());
    }

    #[test]
    fn regexes_and_certificates() {
        assert!(regex(&"^ok$".into()).is_ok());
        assert!(regex(&"(".into())
            .unwrap_err()
            .contains("regular expression"));
        assert!(pem_certificates(&"nope".into()).is_err());
    }

    #[test]
    fn elb_arns_by_kind() {
        let listener = elb_arn("listener");
        let tg = elb_arn("targetgroup");
        let l = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2";
        let t =
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/73e2d6bc24d8a067";
        assert!(listener(&l.into()).is_ok());
        assert!(tg(&t.into()).is_ok());
        assert!(listener(&t.into()).is_err());
        assert!(tg(&l.into()).is_err());
        assert!(tg(&"not-an-arn".into()).unwrap_err().contains("e.g."));
        assert!(
            tg(&"arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/blue/x".into()).is_err()
        );
    }

    #[test]
    fn target_ids_are_ips_or_instance_ids() {
        for ok in ["10.0.1.5", "::1", "i-0123456789abcdef0", "i-01234567"] {
            assert_eq!(elb_target_id(&Value::from(ok)), Ok(()), "{ok}");
        }
        for bad in ["", "web-1.internal", "i-xyz", "10.0.1"] {
            assert!(elb_target_id(&Value::from(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_and_paths() {
        assert!(http_url_template(&"https://{color}.example.com/health".into()).is_ok());
        assert!(url_path(&"/health".into()).is_ok());
        assert!(url_path(&"health".into()).is_err());
        assert!(non_empty(&" ".into()).is_err());
    }

    #[test]
    fn ranges_and_choices() {
        let r = int_in_range(0, 10);
        assert!(r(&Value::from(10i64)).is_ok());
        assert!(r(&Value::from(11i64)).unwrap_err().contains("0 to 10"));
        let m = one_of(&["GET", "HEAD"]);
        assert!(m(&"GET".into()).is_ok());
        assert!(m(&"PUT".into()).unwrap_err().contains("\"GET\", \"HEAD\""));
    }

    #[test]
    fn a_duration_attribute_checks_and_documents_its_range() {
        let attribute = Attribute::string("interval")
            .description("Between checks.")
            .duration_within(crate::duration::INTERVAL);
        assert_eq!(
            attribute.description,
            "Between checks. Above zero and at most 24h."
        );
        let check = &attribute.validators[0];
        assert_eq!(check(&"5s".into()), Ok(()));
        assert!(check(&"0s".into()).unwrap_err().contains("not above zero"));
        assert!(check(&"9300000000000000000s".into())
            .unwrap_err()
            .contains("longer than 24h"));
    }

    #[test]
    fn hosts_and_haproxy_names() {
        for good in ["10.0.1.5", "::1", "app-1.internal", "localhost"] {
            assert!(host(&Value::from(good)).is_ok(), "{good}");
        }
        for bad in ["10.0.1.5:8080", "http://app", "-app", "", "a b"] {
            assert!(host(&Value::from(bad)).is_err(), "{bad}");
        }
        assert!(haproxy_name(&Value::from("web_v2.app:1")).is_ok());
        assert!(ip_address(&Value::from("::1")).is_ok());
        assert!(ip_address(&Value::from("app.internal")).is_err());
        let e = haproxy_name(&Value::from("web app")).unwrap_err();
        assert!(e.contains("letters, digits"), "{e}");
    }
}
