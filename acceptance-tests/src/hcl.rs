//! The Terraform configurations the acceptance tests apply, written in one place: the
//! provider block and the baked-image fleet deployment most tests release through.

use crate::elb::BlueGreenFixture;
use crate::terraform::REQUIRED_PROVIDERS;

/// `terraform { required_providers }` and the provider block for an AWS endpoint
/// (`endpoints { elbv2, cloudwatch }`, region us-east-1); `settings` are more lines for the block,
/// e.g. `"max_retries = 1"`.
pub fn provider(endpoint: &str, settings: &str) -> String {
    let settings = if settings.is_empty() {
        String::new()
    } else {
        format!("  {settings}\n")
    };
    format!(
        r#"{REQUIRED_PROVIDERS}
provider "immutable" {{
  region = "us-east-1"
{settings}  endpoints {{
    elbv2      = "{endpoint}"
    cloudwatch = "{endpoint}"
  }}
}}
"#
    )
}

/// A baked-image fleet: `immutable_bluegreen_deployment.<name>` on the fixture's listener,
/// with the release's app (one loopback port) handed over as `targets` and checked
/// directly on `/health`, `healthy_threshold` times in a row 200 ms apart. `extra` goes
/// at the end of the resource body (traffic, timeouts, ...).
pub fn fleet(
    fx: &BlueGreenFixture,
    name: &str,
    release: &str,
    port: u16,
    healthy_threshold: u32,
    extra: &str,
) -> String {
    format!(
        r#"
resource "immutable_bluegreen_deployment" "{name}" {{
  listener_arn           = "{}"
  blue_target_group_arn  = "{}"
  green_target_group_arn = "{}"
  release                = "{release}"
  targets                = [{{ id = "127.0.0.1", port = {port} }}]

  health_check {{
    path              = "/health"
    healthy_threshold = {healthy_threshold}
    interval          = "200ms"
    request_timeout   = "150ms"
  }}
{extra}
}}
"#,
        fx.listener_arn, fx.blue_tg_arn, fx.green_tg_arn
    )
}

/// The provider (one SDK attempt per call, so that faults surface at once) and a fleet
/// deployment `app` checked twice in a row, with `timeout` for create and update.
pub fn app(fx: &BlueGreenFixture, release: &str, port: u16, extra: &str, timeout: &str) -> String {
    provider(&fx.endpoint, "max_retries = 1")
        + &fleet(
            fx,
            "app",
            release,
            port,
            2,
            &(extra.to_string() + &timeouts(timeout)),
        )
}

/// A `timeouts` block giving create and update the same deadline.
pub fn timeouts(both: &str) -> String {
    format!("  timeouts {{\n    create = \"{both}\"\n    update = \"{both}\"\n  }}\n")
}

/// `terraform { required_providers }`, an empty provider block (HAProxy needs no AWS
/// settings), and `immutable_haproxy_deployment.web` on `backend` through `runtime_api`,
/// with one loopback target per port, checked by HAProxy and directly on `/health`, twice
/// in a row 200 ms apart. `extra` goes at the end of the resource body (traffic, ssh, ...).
pub fn haproxy(
    runtime_api: &str,
    backend: &str,
    release: &str,
    ports: &[u16],
    extra: &str,
) -> String {
    let targets: Vec<String> = ports
        .iter()
        .map(|port| format!("{{ id = \"127.0.0.1\", port = {port} }}"))
        .collect();
    format!(
        r#"{REQUIRED_PROVIDERS}
provider "immutable" {{}}

resource "immutable_haproxy_deployment" "web" {{
  runtime_api = "{runtime_api}"
  backend     = "{backend}"
  release     = "{release}"
  targets     = [{}]

  health_check {{
    path              = "/health"
    healthy_threshold = 2
    interval          = "200ms"
    request_timeout   = "150ms"
  }}
{extra}
}}
"#,
        targets.join(", ")
    )
}

/// A `traffic` block: a canary of `percent`, held `interval` before the rest moves.
pub fn canary(percent: u32, interval: &str) -> String {
    format!("  traffic {{\n    strategy       = \"canary\"\n    canary_percent = {percent}\n    step_interval  = \"{interval}\"\n  }}\n")
}

/// A `traffic` block: `step` percent more every `interval`.
pub fn linear(step: u32, interval: &str) -> String {
    format!("  traffic {{\n    strategy      = \"linear\"\n    step_percent  = {step}\n    step_interval = \"{interval}\"\n  }}\n")
}
