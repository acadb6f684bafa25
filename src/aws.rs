//! AWS settings from the provider block, turned into SDK clients only when a resource
//! first needs one: configurations that use only health gates make no AWS call and need
//! no credentials.

use std::collections::HashSet;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use tokio::sync::OnceCell;

use crate::lease::s3::S3Leases;
use crate::redact::Sensitive;

/// What the provider block says about AWS; everything left out comes from the standard
/// chain (environment, shared config and credentials files, instance metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub max_retries: Option<u32>,
    pub elbv2_endpoint: Option<String>,
    pub cloudwatch_endpoint: Option<String>,
    pub s3_endpoint: Option<String>,
    /// `lease { s3_bucket, s3_key_prefix }`: leases kept in S3 rather than beside the records.
    pub lease_bucket: Option<String>,
    pub lease_prefix: Option<String>,
    pub assume_role: Option<AssumeRole>,
}

#[derive(Clone, PartialEq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    /// Shared with the role's owner to tell callers apart: kept out of `Debug`.
    pub external_id: Option<String>,
}

impl std::fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("external_id", &self.external_id.as_ref().map(Sensitive))
            .finish()
    }
}

/// The SDK configuration, loaded once per provider process on first use.
#[derive(Default)]
pub struct Aws {
    settings: std::sync::OnceLock<AwsSettings>,
    sdk: OnceCell<SdkConfig>,
    elbv2: OnceCell<aws_sdk_elasticloadbalancingv2::Client>,
    cloudwatch: OnceCell<aws_sdk_cloudwatch::Client>,
    s3_leases: OnceCell<Option<S3Leases>>,
}

impl Aws {
    /// Records the provider block's settings; ConfigureProvider calls this once.
    pub fn configure(&self, settings: AwsSettings) {
        let _ = self.settings.set(settings);
    }

    fn settings(&self) -> AwsSettings {
        self.settings.get().cloned().unwrap_or_default()
    }

    async fn sdk_config(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| load_sdk_config(self.settings()))
            .await
    }

    /// The ELBv2 client, honouring `endpoints.elbv2`; its throttled attempts slow the pacer.
    pub async fn elbv2(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        self.elbv2
            .get_or_init(|| async {
                let mut config =
                    aws_sdk_elasticloadbalancingv2::config::Builder::from(self.sdk_config().await)
                        .interceptor(crate::router::pace::ThrottleFeedback);
                if let Some(url) = self.settings().elbv2_endpoint {
                    config = config.endpoint_url(url);
                }
                aws_sdk_elasticloadbalancingv2::Client::from_conf(config.build())
            })
            .await
    }

    /// The CloudWatch client, honouring `endpoints.cloudwatch`: analysis reads alarms.
    pub async fn cloudwatch(&self) -> &aws_sdk_cloudwatch::Client {
        self.cloudwatch
            .get_or_init(|| async {
                let mut config = aws_sdk_cloudwatch::config::Builder::from(self.sdk_config().await);
                if let Some(url) = self.settings().cloudwatch_endpoint {
                    config = config.endpoint_url(url);
                }
                aws_sdk_cloudwatch::Client::from_conf(config.build())
            })
            .await
    }
}

impl Aws {
    /// Where leases are kept when the provider block names an S3 bucket for them, honouring
    /// `endpoints.s3` (path-style, as S3-compatible endpoints expect); `None` otherwise.
    pub async fn s3_leases(&self) -> Option<&S3Leases> {
        self.s3_leases
            .get_or_init(|| async {
                let settings = self.settings();
                let bucket = settings.lease_bucket?;
                let mut config = aws_sdk_s3::config::Builder::from(self.sdk_config().await);
                if let Some(url) = settings.s3_endpoint {
                    config = config.endpoint_url(url).force_path_style(true);
                }
                Some(S3Leases {
                    client: aws_sdk_s3::Client::from_conf(config.build()),
                    bucket,
                    prefix: settings
                        .lease_prefix
                        .unwrap_or_else(|| DEFAULT_LEASE_PREFIX.to_string()),
                })
            })
            .await
            .as_ref()
    }
}

/// Where lease objects go in the bucket unless `lease.s3_key_prefix` says otherwise.
pub const DEFAULT_LEASE_PREFIX: &str = "immutable-leases/";

async fn load_sdk_config(settings: AwsSettings) -> SdkConfig {
    // In every request's User-Agent, so that CloudTrail (and the test emulator) can tell
    // the provider's calls from others.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .app_name(AppName::new("terraform-provider-immutable").expect("a valid app name"));
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let retries = settings.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    loader = loader
        .retry_config(RetryConfig::standard().with_max_attempts(retries + 1))
        .timeout_config(timeouts());
    let base = loader.load().await;
    let Some(role) = settings.assume_role else {
        return base;
    };
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.role_arn).session_name(
        role.session_name
            .unwrap_or_else(|| "terraform-provider-immutable".into()),
    );
    if let Some(external_id) = role.external_id {
        provider = provider.external_id(external_id);
    }
    let credentials = provider.configure(&base).build().await;
    base.into_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .build()
}

/// Retries of throttled or failed AWS calls when the provider block does not say.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// Connecting: the AWS SDKs' own default ("standard" defaults mode, and aws-config's
/// default since behavior version 2026-01-12), kept explicit here.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// One attempt of an ELBv2, CloudWatch or STS call. These control-plane calls answer in
/// well under a second; no answer after 10 s means a connection that is dead or a server
/// that hangs, and a fresh attempt on a new connection is the cure. The SDKs set no attempt
/// timeout by default, so an endpoint that accepts and never answers held an apply forever.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole call, its retries and their backoff included: terraform-provider-aws bounds each
/// call by what is left of the resource's `timeouts` (a Go context deadline); a Rust client
/// shared by every resource of the process needs a bound of its own. 30 s lets the
/// standard strategy retry a throttled or failed call several times (backoff 1, 2, 4, 8 s,
/// with jitter), and keeps a hung endpoint from holding an apply for more than that per
/// call, which is what `max_retries` counts within.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds of every AWS call the provider makes.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Pages one AWS listing may take. ELBv2 pages hold up to 400 items and CloudWatch's up to
/// 100: far beyond any account's load balancers, listeners or named alarms.
pub const MAX_PAGES: usize = 100;

/// Follows an AWS listing's `NextMarker` or `NextToken` without trusting it: a listing that
/// hands back a token it already gave, or runs past [`MAX_PAGES`], is an error rather than
/// a loop that never ends.
pub struct Pages {
    /// The call, for the error ("ELBv2 DescribeListeners").
    call: &'static str,
    seen: HashSet<String>,
}

impl Pages {
    pub fn new(call: &'static str) -> Pages {
        Pages {
            call,
            seen: HashSet::new(),
        }
    }

    /// The token to ask the next page with, from the page just read; `None` when the listing
    /// is complete (no token, or an empty one).
    pub fn next(&mut self, token: Option<&str>) -> Result<Option<String>, String> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if self.seen.len() + 1 >= MAX_PAGES {
            return Err(format!(
                "{} returned more than {MAX_PAGES} pages; stopped reading",
                self.call
            ));
        }
        if !self.seen.insert(token.to_string()) {
            return Err(format!(
                "{} returned a page token it had already returned; stopped reading, as the listing would never end",
                self.call
            ));
        }
        Ok(Some(token.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_external_id() {
        let settings = AwsSettings {
            assume_role: Some(AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
                session_name: None,
                external_id: Some("ext-s3cret".into()),
            }),
            ..AwsSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("role/deploy") && shown.contains("Some(<sensitive>)"),
            "{shown}"
        );
        assert!(!shown.contains("ext-s3cret"), "{shown}");
    }

    #[test]
    fn pages_end_without_a_token() {
        let mut pages = Pages::new("ELBv2 DescribeListeners");
        assert_eq!(pages.next(Some("a")), Ok(Some("a".into())));
        assert_eq!(pages.next(Some("b")), Ok(Some("b".into())));
        assert_eq!(pages.next(Some("")), Ok(None));
        assert_eq!(Pages::new("x").next(None), Ok(None));
    }

    #[test]
    fn a_repeated_token_is_refused() {
        let mut pages = Pages::new("ELBv2 DescribeListeners");
        pages.next(Some("a")).unwrap();
        pages.next(Some("b")).unwrap();
        let error = pages.next(Some("a")).unwrap_err();
        assert!(
            error.starts_with(
                "ELBv2 DescribeListeners returned a page token it had already returned"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_listing_stops_at_the_page_bound() {
        let mut pages = Pages::new("CloudWatch DescribeAlarms");
        for page in 1..MAX_PAGES {
            pages.next(Some(&page.to_string())).unwrap();
        }
        // The page read last is page MAX_PAGES: no token for one more.
        let error = pages.next(Some("one more")).unwrap_err();
        assert!(error.contains("more than 100 pages"), "{error}");
    }

    #[tokio::test]
    async fn every_call_is_bounded() {
        let settings = AwsSettings {
            region: Some("us-east-1".into()),
            ..AwsSettings::default()
        };
        let sdk = load_sdk_config(settings).await;
        let t = sdk.timeout_config().expect("a timeout config");
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
    }
}
