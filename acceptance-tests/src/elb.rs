//! The AWS side of a blue/green acceptance test, created through the ELBv2 API (Terraform
//! cannot: no registry provider is available to tests), in moto or in the ALB emulator in
//! front of it ([`crate::alb`], the default: it health-checks, validates, throttles and
//! routes like an Application Load Balancer).
//!
//! [`BlueGreenFixture::create`] builds a VPC with two subnets (EC2 through raw Query API POSTs,
//! to avoid compiling aws-sdk-ec2), an application load balancer, `blue` and `green` target
//! groups (health-checked on `/health` with AWS's shortest settings), a production listener
//! (port 80) forwarding 100/0 to blue/green (or as [`Start`] says) and a test listener (port
//! 8080) forwarding to blue. Every name carries a random suffix, so tests can share one moto
//! in parallel. Nothing is deleted afterwards: moto's state goes away with the moto process.
//!
//! The helpers panic with the full SDK error on failure, as test fixtures do.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::config::{BehaviorVersion, Credentials, Region};
use elbv2::error::DisplayErrorContext;
use elbv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, LoadBalancerTypeEnum,
    ProtocolEnum, Tag, TargetDescription, TargetGroupTuple, TargetTypeEnum,
};

use crate::moto::Moto;

/// The region every fixture lives in.
pub const REGION: &str = "us-east-1";

/// An ELBv2 client for moto at `endpoint`: static credentials `test`/`test`, region us-east-1.
/// Built without aws-config, so no environment variable or profile of the machine leaks in.
pub fn client(endpoint: &str) -> elbv2::Client {
    let config = elbv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .build();
    elbv2::Client::from_conf(config)
}

/// Something that answers the ELBv2 API on loopback: moto itself, or the ALB emulator in
/// front of it (`crate::alb`).
pub trait ElbEndpoint {
    /// `http://127.0.0.1:PORT`
    fn endpoint(&self) -> String;
}

impl ElbEndpoint for Moto {
    fn endpoint(&self) -> String {
        Moto::endpoint(self)
    }
}

impl ElbEndpoint for crate::alb::AlbEmulator {
    fn endpoint(&self) -> String {
        crate::alb::AlbEmulator::endpoint(self)
    }
}

/// What the production listener's default action is before the provider arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A weighted forward to both colours, blue 100 and green 0.
    BothColours,
    /// A forward to blue alone (the usual `aws_lb_listener`), as AWS reads it back.
    BlueOnly,
    /// A fixed 404 response: nothing is deployed yet.
    FixedResponse,
}

/// A VPC, an application load balancer with a production and a test listener, and the two
/// colour target groups, in moto.
pub struct BlueGreenFixture {
    /// The ELBv2 endpoint (`http://127.0.0.1:PORT`), e.g. for the provider's `endpoints { elbv2 }`.
    pub endpoint: String,
    /// The unique name stem of this fixture's resources (`<name>-<suffix>`).
    pub name: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub lb_arn: String,
    /// Port 80, default action: forward blue 100 / green 0, unless created with another [`Start`].
    pub listener_arn: String,
    /// Port 8080, default action: forward to blue.
    pub test_listener_arn: String,
    pub blue_tg_arn: String,
    pub green_tg_arn: String,
    pub client: elbv2::Client,
}

impl BlueGreenFixture {
    /// Creates the fixture. `name` is a readable prefix (sanitized to `[a-z0-9-]` and shortened);
    /// a random suffix keeps names unique within the 32-character ELB limit. Panics on failure.
    pub async fn create(at: &impl ElbEndpoint, name: &str) -> BlueGreenFixture {
        Self::create_with(at, name, Start::BothColours).await
    }

    /// The fixture with the production listener starting as `start` says.
    pub async fn create_with(at: &impl ElbEndpoint, name: &str, start: Start) -> BlueGreenFixture {
        let endpoint = at.endpoint();
        let name = unique_name(name);
        let ec2 = Ec2Query::new(&endpoint);
        let vpc_id = ec2
            .call(
                &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")],
                "vpcId",
            )
            .await;
        let mut subnet_ids = Vec::new();
        for (cidr, az) in [("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b")] {
            let subnet = ec2
                .call(
                    &[
                        ("Action", "CreateSubnet"),
                        ("VpcId", &vpc_id),
                        ("CidrBlock", cidr),
                        ("AvailabilityZone", az),
                    ],
                    "subnetId",
                )
                .await;
            subnet_ids.push(subnet);
        }

        let client = client(&endpoint);
        let lb = client
            .create_load_balancer()
            .name(&name)
            .r#type(LoadBalancerTypeEnum::Application)
            .set_subnets(Some(subnet_ids.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateLoadBalancer {name}: {}", DisplayErrorContext(e)));
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .expect("CreateLoadBalancer returned no ARN")
            .to_string();

        let mut tg_arns = Vec::new();
        for color in ["blue", "green"] {
            let tg_name = format!("{name}-{color}");
            let tg = client
                .create_target_group()
                .name(&tg_name)
                .protocol(ProtocolEnum::Http)
                .port(80)
                .vpc_id(&vpc_id)
                .target_type(TargetTypeEnum::Ip)
                // AWS's shortest checks (the emulator scales their time down).
                .health_check_path("/health")
                .health_check_interval_seconds(5)
                .health_check_timeout_seconds(4)
                .healthy_threshold_count(2)
                .unhealthy_threshold_count(2)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("CreateTargetGroup {tg_name}: {}", DisplayErrorContext(e))
                });
            tg_arns.push(
                tg.target_groups()[0]
                    .target_group_arn()
                    .expect("CreateTargetGroup returned no ARN")
                    .to_string(),
            );
        }
        let (blue_tg_arn, green_tg_arn) = (tg_arns[0].clone(), tg_arns[1].clone());

        // A plain "forward to one group", written the way real AWS reads it back (both
        // TargetGroupArn and a one-entry ForwardConfig with weight 1); moto echoes what it is given.
        let single = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&blue_tg_arn)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple(&blue_tg_arn, Some(1)))
                    .build(),
            )
            .build();
        let production = match start {
            Start::BothColours => forward(&[(&blue_tg_arn, Some(100)), (&green_tg_arn, Some(0))]),
            Start::BlueOnly => single.clone(),
            Start::FixedResponse => Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .message_body("nothing deployed yet")
                        .build(),
                )
                .build(),
        };
        let listener_arn = create_listener(&client, &lb_arn, 80, production).await;
        let test_listener_arn = create_listener(&client, &lb_arn, 8080, single).await;

        BlueGreenFixture {
            endpoint,
            name,
            vpc_id,
            subnet_ids,
            lb_arn,
            listener_arn,
            test_listener_arn,
            blue_tg_arn,
            green_tg_arn,
            client,
        }
    }

    /// `"blue"`, `"green"`, or the ARN itself for any other target group.
    pub fn color_of(&self, tg_arn: &str) -> String {
        if tg_arn == self.blue_tg_arn {
            "blue".into()
        } else if tg_arn == self.green_tg_arn {
            "green".into()
        } else {
            tg_arn.into()
        }
    }

    /// The listener's default forward action as ELBv2 reports it, keyed by colour (see
    /// [`Self::color_of`] and [`forward_weights`]): e.g. `{blue: 100, green: 0}`.
    pub async fn weights(&self, listener_arn: &str) -> BTreeMap<String, i32> {
        forward_weights(&self.default_actions(listener_arn).await, |arn| {
            self.color_of(arn)
        })
    }

    /// The listener's rules other than its default one, as DescribeRules returns them.
    pub async fn rules(&self, listener_arn: &str) -> Vec<elbv2::types::Rule> {
        let out = self
            .client
            .describe_rules()
            .listener_arn(listener_arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeRules {listener_arn}: {}", DisplayErrorContext(e)));
        out.rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .cloned()
            .collect()
    }

    /// The listener's default actions, as DescribeListeners returns them.
    pub async fn default_actions(&self, listener_arn: &str) -> Vec<Action> {
        let out = self
            .client
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DescribeListeners {listener_arn}: {}",
                    DisplayErrorContext(e)
                )
            });
        let listener = out
            .listeners()
            .first()
            .unwrap_or_else(|| panic!("DescribeListeners {listener_arn}: no listener returned"));
        listener.default_actions().to_vec()
    }

    /// Rewrites the listener's default action to forward blue/green at these weights, as a hand
    /// change in the console would (drift).
    pub async fn set_weights(&self, listener_arn: &str, blue: i32, green: i32) {
        let action = forward(&[
            (&self.blue_tg_arn, Some(blue)),
            (&self.green_tg_arn, Some(green)),
        ]);
        self.client
            .modify_listener()
            .listener_arn(listener_arn)
            .default_actions(action)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "ModifyListener {listener_arn} blue={blue} green={green}: {}",
                    DisplayErrorContext(e)
                )
            });
    }

    /// Registers `(ip, port)` targets in the target group.
    pub async fn register(&self, tg_arn: &str, targets: &[(&str, i32)]) {
        let targets = targets
            .iter()
            .map(|(ip, port)| TargetDescription::builder().id(*ip).port(*port).build())
            .collect();
        self.client
            .register_targets()
            .target_group_arn(tg_arn)
            .set_targets(Some(targets))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RegisterTargets {tg_arn}: {}", DisplayErrorContext(e)));
    }

    /// The registered targets as `(id, port, health state)`, sorted, from DescribeTargetHealth.
    /// (moto reports every target `healthy` at once.)
    pub async fn targets(&self, tg_arn: &str) -> Vec<(String, i32, String)> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(tg_arn)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("DescribeTargetHealth {tg_arn}: {}", DisplayErrorContext(e))
            });
        let mut targets: Vec<_> = out
            .target_health_descriptions()
            .iter()
            .map(|d| {
                let target = d.target();
                (
                    target
                        .map(|t| t.id().unwrap_or_default().to_string())
                        .unwrap_or_default(),
                    target.and_then(|t| t.port()).unwrap_or_default(),
                    d.target_health()
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        targets.sort();
        targets
    }

    /// The resource's tags (an empty map for an untagged resource).
    pub async fn tags(&self, arn: &str) -> BTreeMap<String, String> {
        let out = self
            .client
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeTags {arn}: {}", DisplayErrorContext(e)));
        out.tag_descriptions()
            .iter()
            .filter(|d| d.resource_arn() == Some(arn))
            .flat_map(|d| d.tags())
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Adds (or overwrites) tags on the resource, e.g. to fake what an earlier release wrote.
    pub async fn add_tags(&self, arn: &str, tags: &[(&str, &str)]) {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        self.client
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap_or_else(|e| panic!("AddTags {arn}: {}", DisplayErrorContext(e)));
    }

    /// Removes tags from the resource, as `aws elbv2 remove-tags` does.
    pub async fn remove_tags(&self, arn: &str, keys: &[&str]) {
        self.client
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(keys.iter().map(|k| k.to_string()).collect()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RemoveTags {arn}: {}", DisplayErrorContext(e)));
    }

    /// Points the load balancer's health checks of the group at another path.
    pub async fn set_health_check_path(&self, tg_arn: &str, path: &str) {
        self.client
            .modify_target_group()
            .target_group_arn(tg_arn)
            .health_check_path(path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ModifyTargetGroup {tg_arn}: {}", DisplayErrorContext(e)));
    }

    /// Deletes a target group (moto, like AWS, refuses while a listener forwards to it, even at
    /// weight 0: delete or modify the listener first).
    pub async fn delete_target_group(&self, arn: &str) {
        self.client
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteTargetGroup {arn}: {}", DisplayErrorContext(e)));
    }

    pub async fn delete_listener(&self, arn: &str) {
        self.client
            .delete_listener()
            .listener_arn(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteListener {arn}: {}", DisplayErrorContext(e)));
    }
}

/// The weights of the forward among `actions`, each group named by `name`. A group listed
/// without a weight, or a plain `TargetGroupArn` forward without a ForwardConfig, counts as
/// weight 1 (what AWS shows for it). Empty when no action is a forward.
pub fn forward_weights(actions: &[Action], name: impl Fn(&str) -> String) -> BTreeMap<String, i32> {
    let mut weights = BTreeMap::new();
    for action in actions {
        if action.r#type() != Some(&ActionTypeEnum::Forward) {
            continue;
        }
        match action.forward_config() {
            Some(config) if !config.target_groups().is_empty() => {
                for tg in config.target_groups() {
                    let arn = tg.target_group_arn().unwrap_or_default();
                    weights.insert(name(arn), tg.weight().unwrap_or(1));
                }
            }
            _ => {
                if let Some(arn) = action.target_group_arn() {
                    weights.insert(name(arn), 1);
                }
            }
        }
    }
    weights
}

/// A target group of a forward, with its weight when given.
pub fn tuple(arn: &str, weight: Option<i32>) -> TargetGroupTuple {
    TargetGroupTuple::builder()
        .target_group_arn(arn)
        .set_weight(weight)
        .build()
}

/// A forward through a ForwardConfig of these groups.
pub fn forward(groups: &[(&str, Option<i32>)]) -> Action {
    let config = groups
        .iter()
        .fold(ForwardActionConfig::builder(), |b, (arn, w)| {
            b.target_groups(tuple(arn, *w))
        })
        .build();
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config)
        .build()
}

async fn create_listener(
    client: &elbv2::Client,
    lb_arn: &str,
    port: i32,
    action: Action,
) -> String {
    let out = client
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(action)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateListener port {port}: {}", DisplayErrorContext(e)));
    out.listeners()[0]
        .listener_arn()
        .expect("CreateListener returned no ARN")
        .to_string()
}

/// `prefix-xxxxxx`: the prefix sanitized to `[a-z0-9-]` and cut so that `<name>-green` fits the
/// 32-character limit of ELB names.
fn unique_name(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(32 - "-xxxxxx-green".len());
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    let suffix: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("{clean}-{suffix}")
}

/// The few EC2 calls the fixture needs, as EC2 Query API POSTs. moto's single server routes a
/// request by the service named in the Authorization header's credential scope, so a
/// SigV4-looking header with a dummy signature is enough (moto does not verify signatures).
pub(crate) struct Ec2Query {
    http: reqwest::Client,
    endpoint: String,
}

impl Ec2Query {
    pub(crate) fn new(endpoint: &str) -> Ec2Query {
        Ec2Query {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            endpoint: endpoint.to_string(),
        }
    }

    /// POSTs `params` (plus `Version`) and returns the text of the first `<field>` element of the
    /// response; panics with moto's error code and message otherwise.
    pub(crate) async fn call(&self, params: &[(&str, &str)], field: &str) -> String {
        let mut body = String::from("Version=2016-11-15");
        for (k, v) in params {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let action = params
            .iter()
            .find(|(k, _)| *k == "Action")
            .map_or("?", |(_, v)| *v);
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("Authorization", crate::moto::EC2_AUTH)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("EC2 {action} at {}: {e}", self.endpoint));
        let status = response.status();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("EC2 {action}: reading the response: {e}"));
        if !status.is_success() {
            panic!(
                "EC2 {action}: HTTP {status}: {} {}",
                xml_text(&text, "Code").unwrap_or_default(),
                xml_text(&text, "Message").unwrap_or(&text)
            );
        }
        xml_text(&text, field)
            .unwrap_or_else(|| panic!("EC2 {action}: no <{field}> in the response: {text}"))
            .to_string()
    }
}

/// The text of the first `<tag>...</tag>` element (no attributes, no nesting: enough for IDs).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_elb_limits() {
        for prefix in [
            "",
            "x",
            "A Very_Long test name that goes on and on",
            "--a--",
        ] {
            let name = unique_name(prefix);
            let longest = format!("{name}-green");
            assert!(longest.len() <= 32, "{longest}");
            assert!(!name.starts_with('-') && !name.contains("--"), "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        assert_ne!(unique_name("a"), unique_name("a"));
    }

    #[test]
    fn xml_and_form_helpers() {
        let xml = "<r><vpc><vpcId>vpc-1</vpcId></vpc><subnetId>subnet-2</subnetId></r>";
        assert_eq!(xml_text(xml, "vpcId"), Some("vpc-1"));
        assert_eq!(xml_text(xml, "subnetId"), Some("subnet-2"));
        assert_eq!(xml_text(xml, "nope"), None);
        assert_eq!(form_encode("10.0.0.0/16"), "10.0.0.0%2F16");
    }
}
