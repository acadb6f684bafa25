//! The control plane's entry: the proxy hook. It tells ELBv2 requests from the rest (by the
//! service in the SigV4 credential scope), throttles them, and sends each action to what
//! emulates it; anything it does not emulate goes to moto as it came.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use crate::proxy::{Exchange, Reply};

use super::throttle::Family;
use super::{lock, AwsError, Core, Refusal, REFUSALS};

/// The hook the emulator's proxy runs. The work runs on the emulator's runtime: the proxy's
/// thread only waits for it.
pub struct Hook(pub Arc<Core>);

impl crate::proxy::Hook for Hook {
    fn handle(&self, exchange: Exchange) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        let core = self.0.clone();
        let work = self.0.runtime.spawn(answer(core, exchange));
        Box::pin(async move {
            work.await.unwrap_or_else(|_| {
                Reply::error(
                    500,
                    "Receiver",
                    "InternalFailure",
                    "the ALB emulator failed on this request",
                )
            })
        })
    }
}

/// Who sent an ELBv2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key of the credential scope: it stands for the account.
    pub account: String,
    pub region: String,
    pub from_provider: bool,
}

impl Caller {
    /// `None` unless the request is signed for `elasticloadbalancing`.
    pub fn of(exchange: &Exchange) -> Option<Caller> {
        let (account, region, service) = scope(exchange.header("authorization")?)?;
        if service != "elasticloadbalancing" {
            return None;
        }
        let from_provider = ["user-agent", "x-amz-user-agent"].iter().any(|h| {
            exchange
                .header(h)
                .is_some_and(|ua| ua.contains("terraform-provider-immutable"))
        });
        Some(Caller {
            account,
            region,
            from_provider,
        })
    }
}

/// `(access key, region, service)` of a SigV4 Authorization header:
/// `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...`.
fn scope(authorization: &str) -> Option<(String, String, String)> {
    let credential = authorization.split("Credential=").nth(1)?;
    let credential = credential.split([',', ' ']).next()?;
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, _date, region, service, _] => {
            Some((key.to_string(), region.to_string(), service.to_string()))
        }
        _ => None,
    }
}

async fn answer(core: Arc<Core>, exchange: Exchange) -> Reply {
    let Some(caller) = Caller::of(&exchange) else {
        return exchange.forward().await;
    };
    let action = exchange.action().to_string();
    if !core.admit(&caller, &action) {
        return Reply::error(400, "Sender", "Throttling", "Rate exceeded");
    }
    let result = match action.as_str() {
        "RegisterTargets" => core.register_targets(&exchange).await,
        "DeregisterTargets" => core.deregister_targets(&exchange).await,
        "DescribeTargetHealth" => core.describe_target_health(&exchange).await,
        "CreateListener" | "ModifyListener" | "CreateRule" | "ModifyRule" => {
            core.write_actions(&exchange).await
        }
        "DeleteListener" | "DeleteRule" | "SetRulePriorities" | "DeleteLoadBalancer" => {
            core.write_listeners(&exchange).await
        }
        "DescribeTargetGroups" => core.describe_target_groups(&exchange).await,
        "ModifyTargetGroup" | "ModifyTargetGroupAttributes" | "DeleteTargetGroup" => {
            core.write_target_group(&exchange).await
        }
        _ => Ok(exchange.forward().await),
    };
    result.unwrap_or_else(|error| {
        if error.kind == "Sender" {
            core.refused(&caller, &action, &error);
        }
        error.reply()
    })
}

impl Core {
    /// Takes a token for the call, or counts it throttled.
    fn admit(&self, caller: &Caller, action: &str) -> bool {
        if self.settings().throttling.is_none() {
            return true;
        }
        let family = Family::of(action);
        let admitted =
            lock(&self.buckets).take(&caller.account, &caller.region, family, Instant::now());
        if !admitted {
            let mut throttled = lock(&self.throttled);
            throttled.total += 1;
            if caller.from_provider {
                throttled.from_provider += 1;
            }
        }
        admitted
    }

    fn refused(&self, caller: &Caller, action: &str, error: &AwsError) {
        let refusal = Refusal {
            action: action.to_string(),
            code: error.code.clone(),
            message: error.message.clone(),
            from_provider: caller.from_provider,
        };
        lock(&self.refusals).push(refusal.clone());
        lock(&REFUSALS).push(refusal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_credential_scope() {
        assert_eq!(
            scope(
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=0"
            ),
            Some(("AKID".into(), "us-east-1".into(), "elasticloadbalancing".into()))
        );
        assert_eq!(
            scope(crate::moto::EC2_AUTH).map(|s| s.2),
            Some("ec2".to_string())
        );
        assert_eq!(scope("Bearer x"), None);
        assert_eq!(scope("AWS4-HMAC-SHA256 Credential=a/b"), None);
    }
}
