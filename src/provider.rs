//! The `immutable` provider: its configuration block and the resources it offers.

use std::sync::Arc;

use crate::aws::{AssumeRole, Aws, AwsSettings, DEFAULT_MAX_RETRIES};
use crate::probe::HttpClients;
use crate::resources::bluegreen::{
    deployment::BlueGreenDeployment, discovery::Discovery, lease::LeaseEphemeral,
    rollback::Rollback, slots::BlueGreenSlots,
};
use crate::resources::haproxy_deployment::HaproxyDeployment;
use crate::resources::health_gate::HealthGate;
use crate::router::elbv2::Elbv2;
use crate::tfplugin::diagnostics::Diagnostics;
use crate::tfplugin::resource::{
    Action, Ctx, DataSource, EphemeralResource, ListResource, Provider, Resource,
};
use crate::tfplugin::schema::{Attribute, Block, Nesting, Schema};
use crate::tfplugin::value::Value;
use crate::validators;
use tokio::sync::OnceCell;

/// State shared by the provider and its resources for the life of the process.
#[derive(Default)]
pub struct Shared {
    pub aws: Aws,
    /// One HTTP client per TLS setting for all health checks, so connections are reused.
    pub http: Arc<HttpClients>,
    elbv2: OnceCell<Elbv2>,
}

impl Shared {
    /// The ELBv2 API, built on first use (the first AWS client of the process).
    pub async fn elbv2(&self) -> Elbv2 {
        self.elbv2
            .get_or_init(|| async { Elbv2::new(self.aws.elbv2().await.clone()) })
            .await
            .clone()
    }
}

#[derive(Default)]
pub struct ImmutableProvider {
    shared: Arc<Shared>,
}

fn schema() -> Schema {
    Schema::new(
        Block::new(
            "Settings for the AWS APIs the provider calls. All are optional: credentials and \
             region come from the standard AWS chain, and a configuration that only uses \
             `immutable_health_gate` needs no AWS settings and makes no AWS call.",
        )
        .attribute(
            Attribute::string("region")
                .optional()
                .description("AWS region of the load balancers, e.g. `us-west-2`. Defaults to the standard chain (`AWS_REGION`, the profile's region).")
                .validate(validators::aws_region),
        )
        .attribute(
            Attribute::string("profile")
                .optional()
                .description("Named profile from the shared AWS config and credentials files."),
        )
        .attribute(
            Attribute::number("max_retries")
                .optional()
                .description(&format!(
                    "How many times a throttled or failed AWS call is retried, with exponential backoff and jitter. Defaults to {DEFAULT_MAX_RETRIES}. Each call, retries included, ends after {} at most, and an attempt with no answer after {} is abandoned and retried.",
                    crate::duration::format(crate::aws::OPERATION_TIMEOUT),
                    crate::duration::format(crate::aws::ATTEMPT_TIMEOUT)
                ))
                .validate(validators::int_in_range(0, 100)),
        )
        .block(
            "endpoints",
            Nesting::Single,
            Block::new("Custom service endpoints, for VPC endpoints, LocalStack or moto.")
                .attribute(
                    Attribute::string("elbv2")
                        .optional()
                        .description("URL of the Elastic Load Balancing v2 API, e.g. `http://127.0.0.1:5055`.")
                        .validate(validators::http_url),
                )
                .attribute(
                    Attribute::string("cloudwatch")
                        .optional()
                        .description("URL of the CloudWatch API, where `analysis.cloudwatch_alarms` are read, e.g. `http://127.0.0.1:5055`.")
                        .validate(validators::http_url),
                )
                .attribute(
                    Attribute::string("s3")
                        .optional()
                        .description("URL of the S3 API, where `lease.s3_bucket` is, e.g. `http://127.0.0.1:5000` (addressed path-style).")
                        .validate(validators::http_url),
                ),
        )
        .block(
            "lease",
            Nesting::Single,
            Block::new("Where each release's lease on its listener or backend is kept. By default it is kept beside the colours' records (a tag on the listener, a variable in HAProxy), where the last write wins and a wait settles races. With `s3_bucket` it is an object in S3, written with conditional requests: a true compare-and-swap, as Terraform's S3 backend uses for its lock file.")
                .attribute(
                    Attribute::string("s3_bucket")
                        .required()
                        .description("The bucket that keeps the leases, e.g. the one that keeps your Terraform state. The provider needs `s3:GetObject`, `s3:PutObject` and `s3:DeleteObject` on the lease objects."),
                )
                .attribute(
                    Attribute::string("s3_key_prefix")
                        .optional()
                        .description(&format!("Where the lease objects go in the bucket: one per listener or backend, named after it. Defaults to `{}`.", crate::aws::DEFAULT_LEASE_PREFIX)),
                ),
        )
        .block(
            "assume_role",
            Nesting::Single,
            Block::new("An IAM role to assume for every AWS call.")
                .attribute(
                    Attribute::string("role_arn")
                        .required()
                        .description("ARN of the role, e.g. `arn:aws:iam::123456789012:role/deployer`.")
                        .validate(validators::iam_role_arn),
                )
                .attribute(
                    Attribute::string("session_name")
                        .optional()
                        .description("Session name shown in CloudTrail. Defaults to `terraform-provider-immutable`."),
                )
                .attribute(
                    Attribute::string("external_id")
                        .optional()
                        .sensitive()
                        .description("External ID the role's trust policy requires."),
                ),
        ),
    )
}

/// Reads the provider block into AWS settings.
fn aws_settings(config: &Value) -> AwsSettings {
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let nested = |block: &str, attr: &str| string(config.get(block).and_then(|b| b.get(attr)));
    let assume_role = nested("assume_role", "role_arn").map(|role_arn| AssumeRole {
        role_arn,
        session_name: nested("assume_role", "session_name"),
        external_id: nested("assume_role", "external_id"),
    });
    AwsSettings {
        region: string(config.get("region")),
        profile: string(config.get("profile")),
        max_retries: config
            .get("max_retries")
            .and_then(Value::as_i64)
            .map(|n| n as u32),
        elbv2_endpoint: nested("endpoints", "elbv2"),
        cloudwatch_endpoint: nested("endpoints", "cloudwatch"),
        s3_endpoint: nested("endpoints", "s3"),
        lease_bucket: nested("lease", "s3_bucket"),
        lease_prefix: nested("lease", "s3_key_prefix"),
        assume_role,
    }
}

#[tonic::async_trait]
impl Provider for ImmutableProvider {
    fn type_name(&self) -> &'static str {
        "immutable"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn configure(&self, _ctx: &Ctx, config: &Value, diags: &mut Diagnostics) {
        if config.contains_unknown() {
            diags.error(
                "Provider configuration is not known yet",
                "The provider block refers to values that are known only after apply. Give it values known at plan time.",
            );
            return;
        }
        self.shared.aws.configure(aws_settings(config));
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![
            Arc::new(HealthGate {
                http: self.shared.http.clone(),
            }),
            Arc::new(BlueGreenDeployment {
                shared: self.shared.clone(),
            }),
            Arc::new(HaproxyDeployment {
                shared: self.shared.clone(),
            }),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![Arc::new(BlueGreenSlots {
            shared: self.shared.clone(),
        })]
    }

    fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
        let deployment = Arc::new(BlueGreenDeployment {
            shared: self.shared.clone(),
        });
        vec![Arc::new(Discovery { deployment })]
    }

    fn actions(&self) -> Vec<Arc<dyn Action>> {
        vec![Arc::new(Rollback {
            shared: self.shared.clone(),
        })]
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        vec![Arc::new(LeaseEphemeral::new(self.shared.clone()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_block_becomes_aws_settings() {
        let config = Value::Object(
            [
                ("region".to_string(), Value::from("eu-west-1")),
                ("profile".to_string(), Value::Null),
                ("max_retries".to_string(), Value::from(3i64)),
                (
                    "endpoints".to_string(),
                    Value::Object(
                        [("elbv2".to_string(), Value::from("http://127.0.0.1:5055"))].into(),
                    ),
                ),
                ("assume_role".to_string(), Value::Null),
            ]
            .into(),
        );
        let settings = aws_settings(&config);
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.profile, None);
        assert_eq!(settings.max_retries, Some(3));
        assert_eq!(
            settings.elbv2_endpoint.as_deref(),
            Some("http://127.0.0.1:5055")
        );
        assert_eq!(settings.assume_role, None);
    }
}
