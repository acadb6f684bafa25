//! Health checks as a target group's settings in moto describe them, and the probe that runs
//! one. SAFETY: only loopback addresses (127.0.0.0/8, ::1) are ever contacted; any other target
//! id fails its checks with `Target.Timeout` without a packet being sent.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetGroup;

use super::health::{Failure, Thresholds};

/// A target group's health check, in AWS time (the caller scales it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    /// The group's own port: targets registered without one get it.
    pub group_port: u16,
    pub https: bool,
    pub path: String,
    /// `None` for `traffic-port`: each target's own port.
    pub port: Option<u16>,
    pub matcher: Matcher,
    pub interval: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
}

impl CheckSettings {
    /// From DescribeTargetGroups, with AWS's defaults for what is missing.
    pub fn of(group: &TargetGroup) -> CheckSettings {
        let seconds = |s: Option<i32>, default: u64| {
            Duration::from_secs(s.and_then(|s| u64::try_from(s).ok()).unwrap_or(default))
        };
        let count = |c: Option<i32>, default: u32| {
            c.and_then(|c| u32::try_from(c).ok())
                .filter(|c| *c > 0)
                .unwrap_or(default)
        };
        let group_port = group
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(80);
        CheckSettings {
            group_port,
            https: group
                .health_check_protocol()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("https")),
            path: group
                .health_check_path()
                .filter(|p| p.starts_with('/'))
                .unwrap_or("/")
                .to_string(),
            port: group.health_check_port().and_then(|p| p.parse().ok()),
            matcher: Matcher::parse(group.matcher().and_then(|m| m.http_code()).unwrap_or("200")),
            interval: seconds(group.health_check_interval_seconds(), 30),
            timeout: seconds(group.health_check_timeout_seconds(), 5),
            thresholds: Thresholds {
                healthy: count(group.healthy_threshold_count(), 5),
                unhealthy: count(group.unhealthy_threshold_count(), 2),
            },
        }
    }

    /// The port a target registered on `target_port` is checked on.
    pub fn port_for(&self, target_port: u16) -> u16 {
        self.port.unwrap_or(target_port)
    }
}

/// The HTTP codes a check accepts: `"200"`, `"200-299"`, `"200,202"`, or a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    /// Parts that are not codes or ranges are ignored; nothing valid at all means `200`.
    pub fn parse(text: &str) -> Matcher {
        let ranges: Vec<(u16, u16)> = text
            .split(',')
            .filter_map(|part| {
                let part = part.trim();
                let (low, high) = part.split_once('-').unwrap_or((part, part));
                Some((low.trim().parse().ok()?, high.trim().parse().ok()?))
            })
            .collect();
        if ranges.is_empty() {
            Matcher(vec![(200, 200)])
        } else {
            Matcher(ranges)
        }
    }

    pub fn accepts(&self, code: u16) -> bool {
        self.0
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&code))
    }
}

/// The address of a target id that may be contacted: a loopback IP only.
pub fn loopback(id: &str, port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = id.parse().ok()?;
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

/// The client the probes share: no proxy, no redirects followed (a 3xx is a code to match, as
/// on ALB), no certificate checks (ALB does not check targets' certificates), and a fresh
/// connection per check, so that a target that went down is seen at once.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(0)
        .build()
        .expect("the health checks' HTTP client (its TLS backend)")
}

/// Runs one check of target `id` (registered on `target_port`) within `timeout`.
pub async fn probe(
    client: &reqwest::Client,
    settings: &CheckSettings,
    id: &str,
    target_port: u16,
    timeout: Duration,
) -> Result<(), Failure> {
    let Some(addr) = loopback(id, settings.port_for(target_port)) else {
        return Err(Failure::Timeout);
    };
    let scheme = if settings.https { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{}", settings.path);
    match tokio::time::timeout(timeout, client.get(url).send()).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout),
        Ok(Err(_)) => Err(Failure::Connection),
        Ok(Ok(response)) => {
            let code = response.status().as_u16();
            if settings.matcher.accepts(code) {
                Ok(())
            } else {
                Err(Failure::Status(code))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{Matcher as SdkMatcher, ProtocolEnum};

    #[test]
    fn matchers() {
        let m = Matcher::parse("200,202-204");
        assert!(m.accepts(200) && m.accepts(203) && !m.accepts(201) && !m.accepts(205));
        assert!(Matcher::parse("200-299").accepts(250));
        assert_eq!(Matcher::parse("junk"), Matcher(vec![(200, 200)]));
    }

    #[test]
    fn only_loopback_is_contacted() {
        assert!(loopback("127.0.0.1", 80).is_some());
        assert!(loopback("127.9.9.9", 80).is_some());
        assert!(loopback("::1", 80).is_some());
        for id in [
            "10.0.0.1",
            "8.8.8.8",
            "i-0123456789",
            "localhost",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(loopback(id, 80), None, "{id}");
        }
    }

    #[test]
    fn settings_from_a_target_group() {
        let group = TargetGroup::builder()
            .port(8080)
            .health_check_protocol(ProtocolEnum::Https)
            .health_check_path("/health")
            .health_check_port("traffic-port")
            .health_check_interval_seconds(5)
            .health_check_timeout_seconds(2)
            .healthy_threshold_count(3)
            .unhealthy_threshold_count(4)
            .matcher(SdkMatcher::builder().http_code("200-299").build())
            .build();
        let settings = CheckSettings::of(&group);
        assert_eq!(settings.group_port, 8080);
        assert!(settings.https);
        assert_eq!(settings.path, "/health");
        assert_eq!(settings.port_for(9000), 9000);
        assert_eq!(settings.interval, Duration::from_secs(5));
        assert_eq!(settings.timeout, Duration::from_secs(2));
        assert_eq!(
            settings.thresholds,
            Thresholds {
                healthy: 3,
                unhealthy: 4
            }
        );
        assert!(settings.matcher.accepts(204));
        let fixed = CheckSettings::of(&TargetGroup::builder().health_check_port("81").build());
        assert_eq!(fixed.port_for(9000), 81);
        assert_eq!(fixed.interval, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_target_that_is_not_loopback_times_out_unprobed() {
        let settings = CheckSettings::of(&TargetGroup::builder().build());
        let started = std::time::Instant::now();
        let result = probe(&client(), &settings, "10.1.2.3", 80, Duration::from_secs(5)).await;
        assert_eq!(result, Err(Failure::Timeout));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
