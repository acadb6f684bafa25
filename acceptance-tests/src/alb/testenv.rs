//! A test environment for tests of the emulator itself (`tests/alb.rs`): an emulator of
//! its own in front of the shared moto, a VPC and a load balancer made through it (EC2 calls
//! pass through untouched), and helpers to make health-checked target groups, listeners and
//! rules, register targets and read their health as rows. The helpers panic with the full
//! SDK error on failure, as test fixtures do.

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::config::http::HttpResponse;
use elbv2::config::retry::RetryConfig;
use elbv2::config::AppName;
use elbv2::error::{DisplayErrorContext, SdkError};
use elbv2::operation::create_rule::CreateRuleError;
use elbv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, LoadBalancerTypeEnum,
    ProtocolEnum, RuleCondition, TargetDescription, TargetGroupAttribute,
    TargetGroupStickinessConfig, TargetHealthDescription, TargetTypeEnum,
};

use super::{AlbEmulator, Settings};
use crate::app::TestApp;
use crate::elb::Ec2Query;
pub use crate::elb::{forward, tuple};
use crate::{elb, moto};

/// An ELBv2 client for `endpoint` that never retries (a refusal or a throttle is seen as is).
pub fn client(endpoint: &str) -> elbv2::Client {
    let config = elb::client(endpoint)
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    elbv2::Client::from_conf(config)
}

/// The same, with the provider's app name in its User-Agent.
pub fn provider_client(endpoint: &str) -> elbv2::Client {
    let config = client(endpoint)
        .config()
        .to_builder()
        .app_name(AppName::new("terraform-provider-immutable").unwrap())
        .build();
    elbv2::Client::from_conf(config)
}

/// A forward written with `TargetGroupArn` only.
pub fn plain_forward(arn: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(arn)
        .build()
}

/// A fixed response with this status.
pub fn fixed(status: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code(status)
                .message_body("from the load balancer")
                .build(),
        )
        .build()
}

/// `(id, port, state, reason)` of a target, as DescribeTargetHealth says.
pub type Row = (String, i32, String, String);

/// A VPC with two subnets and a load balancer in it, made through the emulator.
pub struct TestEnv {
    pub emulator: AlbEmulator,
    pub elb: elbv2::Client,
    pub http: reqwest::Client,
    pub name: String,
    pub vpc: String,
    pub lb: String,
}

impl TestEnv {
    /// A new emulator with these settings, and a VPC and load balancer made through it.
    pub async fn new(prefix: &str, settings: Settings) -> TestEnv {
        let emulator = AlbEmulator::start(&moto::shared().endpoint(), settings);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let suffix: String = (0..6).map(|_| fastrand::lowercase()).collect();
        let mut env = TestEnv {
            elb: client(&emulator.endpoint()),
            emulator,
            http,
            name: format!("{prefix}-{suffix}"),
            vpc: String::new(),
            lb: String::new(),
        };
        env.vpc = env.ec2_vpc().await;
        env.lb = env.load_balancer("lb", &env.vpc.clone()).await;
        env
    }

    /// A raw EC2 Query call through the emulator: it must pass through untouched.
    pub async fn ec2(&self, params: &[(&str, &str)], field: &str) -> String {
        Ec2Query::new(&self.emulator.endpoint())
            .call(params, field)
            .await
    }

    /// A new VPC (10.0.0.0/16).
    pub async fn ec2_vpc(&self) -> String {
        self.ec2(
            &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")],
            "vpcId",
        )
        .await
    }

    /// A load balancer in `vpc` (two new subnets of it).
    pub async fn load_balancer(&self, suffix: &str, vpc: &str) -> String {
        let mut subnets = Vec::new();
        // A process-wide count, so that no two subnets of one VPC share a CIDR (random
        // ones did, now and then: moto's InvalidSubnet.Conflict).
        static SUBNETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        for az in ["us-east-1a", "us-east-1b"] {
            let n = SUBNETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 256;
            let cidr = format!("10.0.{n}.0/24");
            let params = [
                ("Action", "CreateSubnet"),
                ("VpcId", vpc),
                ("CidrBlock", cidr.as_str()),
                ("AvailabilityZone", az),
            ];
            subnets.push(self.ec2(&params, "subnetId").await);
        }
        let out = self
            .elb
            .create_load_balancer()
            .name(format!("{}-{suffix}", self.name))
            .r#type(LoadBalancerTypeEnum::Application)
            .set_subnets(Some(subnets))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateLoadBalancer: {}", DisplayErrorContext(e)));
        out.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string()
    }

    /// A target group health-checked on `/health` every 5 s (timeout 2 s, healthy after 3
    /// passes, unhealthy after 2 failures), deregistration delay 10 s: 250 ms, 100 ms and
    /// 500 ms at the default time scale.
    pub async fn group(&self, suffix: &str, vpc: &str) -> String {
        let out = self
            .elb
            .create_target_group()
            .name(format!("{}-{suffix}", self.name))
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Ip)
            .health_check_path("/health")
            .health_check_interval_seconds(5)
            .health_check_timeout_seconds(2)
            .healthy_threshold_count(3)
            .unhealthy_threshold_count(2)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateTargetGroup: {}", DisplayErrorContext(e)));
        let arn = out.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value("10")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        arn
    }

    /// An HTTP listener of load balancer `lb`.
    pub async fn listener(&self, lb: &str, port: i32, action: Action) -> String {
        let out = self
            .elb
            .create_listener()
            .load_balancer_arn(lb)
            .protocol(ProtocolEnum::Http)
            .port(port)
            .default_actions(action)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateListener: {}", DisplayErrorContext(e)));
        out.listeners()[0].listener_arn().unwrap().to_string()
    }

    /// Sets a listener's default action.
    pub async fn modify(&self, listener: &str, action: Action) {
        self.elb
            .modify_listener()
            .listener_arn(listener)
            .default_actions(action)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ModifyListener: {}", DisplayErrorContext(e)));
    }

    /// Registers `(id, port)` targets (no port: the group's).
    pub async fn register(&self, tg: &str, targets: &[(&str, Option<i32>)]) {
        self.elb
            .register_targets()
            .target_group_arn(tg)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RegisterTargets: {}", DisplayErrorContext(e)));
    }

    /// Deregisters `(id, port)` targets.
    pub async fn deregister(&self, tg: &str, targets: &[(&str, Option<i32>)]) {
        self.elb
            .deregister_targets()
            .target_group_arn(tg)
            .set_targets(Some(descriptions(targets)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeregisterTargets: {}", DisplayErrorContext(e)));
    }

    /// DescribeTargetHealth as rows, sorted.
    pub async fn health(&self, tg: &str) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .describe(tg, None)
            .await
            .iter()
            .map(|d| {
                let target = d.target().unwrap();
                let health = d.target_health().unwrap();
                (
                    target.id().unwrap().to_string(),
                    target.port().unwrap(),
                    health.state().unwrap().as_str().to_string(),
                    health
                        .reason()
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// DescribeTargetHealth's descriptions, of one target or all.
    pub async fn describe(
        &self,
        tg: &str,
        target: Option<(&str, Option<i32>)>,
    ) -> Vec<TargetHealthDescription> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(tg)
            .set_targets(target.map(|t| descriptions(&[t])))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeTargetHealth: {}", DisplayErrorContext(e)));
        out.target_health_descriptions().to_vec()
    }

    /// A rule's ARN.
    pub async fn rule(
        &self,
        listener: &str,
        priority: i32,
        condition: RuleCondition,
        action: Action,
    ) -> Result<String, SdkError<CreateRuleError, HttpResponse>> {
        let out = self
            .elb
            .create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(condition)
            .actions(action)
            .send()
            .await?;
        Ok(out.rules()[0].rule_arn().unwrap().to_string())
    }

    /// The group's `LoadBalancerArns`.
    pub async fn users(&self, tg: &str) -> Vec<String> {
        let out = self
            .elb
            .describe_target_groups()
            .target_group_arns(tg)
            .send()
            .await
            .unwrap();
        out.target_groups()[0].load_balancer_arns().to_vec()
    }

    /// Polls DescribeTargetHealth until `done` holds; panics with the last answer after
    /// `within`.
    pub async fn until(
        &self,
        tg: &str,
        within: Duration,
        done: impl Fn(&[Row]) -> bool,
    ) -> Vec<Row> {
        let deadline = Instant::now() + within;
        loop {
            let rows = self.health(tg).await;
            if done(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "still {rows:?} after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `(id, port)` pairs as target descriptions.
pub fn descriptions(targets: &[(&str, Option<i32>)]) -> Vec<TargetDescription> {
    targets
        .iter()
        .map(|(id, port)| TargetDescription::builder().id(*id).set_port(*port).build())
        .collect()
}

/// A row of [`TestEnv::health`].
pub fn row(id: &str, port: u16, state: &str, reason: &str) -> Row {
    (id.into(), i32::from(port), state.into(), reason.into())
}

/// Where the test apps listen.
pub const HOST: &str = "127.0.0.1";

/// The app as a target.
pub fn on(app: &TestApp) -> (&'static str, Option<i32>) {
    (HOST, Some(i32::from(app.port())))
}

/// The app's row.
pub fn local(app: &TestApp, state: &str, reason: &str) -> Row {
    row(HOST, app.port(), state, reason)
}

/// A `path-pattern` condition.
pub fn path(pattern: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("path-pattern")
        .values(pattern)
        .build()
}

/// The forward with this group stickiness.
pub fn with_stickiness(mut action: Action, stickiness: TargetGroupStickinessConfig) -> Action {
    let groups = action.forward_config().map(|c| c.target_groups().to_vec());
    let config = ForwardActionConfig::builder()
        .set_target_groups(groups)
        .target_group_stickiness_config(stickiness)
        .build();
    action.forward_config = Some(config);
    action
}

/// A forward as moto echoes it: with `TargetGroupStickinessConfig{Enabled: false}`.
pub fn with_stickiness_off(action: Action) -> Action {
    let off = TargetGroupStickinessConfig::builder()
        .enabled(false)
        .build();
    with_stickiness(action, off)
}
