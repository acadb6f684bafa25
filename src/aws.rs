//! AWS settings from the provider block, turned into SDK clients only when a resource
//! first needs one: configurations that use only health gates make no AWS call and need
//! no credentials.

use aws_config::retry::RetryConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use tokio::sync::OnceCell;

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

    /// The ELBv2 client, honouring `endpoints.elbv2`.
    pub async fn elbv2(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        self.elbv2
            .get_or_init(|| async {
                let mut config =
                    aws_sdk_elasticloadbalancingv2::config::Builder::from(self.sdk_config().await);
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
    loader = loader.retry_config(RetryConfig::standard().with_max_attempts(retries + 1));
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
}
