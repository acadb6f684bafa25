//! `ephemeral "immutable_lease"` (Terraform 1.10+): the lease a deployment takes on its
//! listener, held for the whole Terraform run instead of the deployment's apply alone. A
//! self-registering fleet updates its standby service before the deployment runs; with
//! `depends_on = [ephemeral.immutable_lease.NAME]` that update runs under the lease too,
//! and the deployment applied in the same run borrows it ([`lease::hold_open`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::lease::{self, s3, Held, NotRenewed, Refused};
use crate::provider::Shared;
use crate::resources::release::model::set;
use crate::router::TrafficRouter;
use crate::tfplugin::diagnostics::{AttributePath, Diagnostics};
use crate::tfplugin::resource::{Ctx, EphemeralResource, Opened};
use crate::tfplugin::schema::{Attribute, Block, Schema};
use crate::tfplugin::value::Value;
use crate::validators;

/// A lease held open: where it is kept, and the hold.
type OpenLease = (Arc<dyn TrafficRouter>, Arc<Held>);

pub struct LeaseEphemeral {
    pub shared: Arc<Shared>,
    /// The leases this process opened, by lease id (the private bytes Terraform sends back
    /// to renew and close: the listener is not in them).
    open: Mutex<HashMap<String, OpenLease>>,
}

impl LeaseEphemeral {
    pub fn new(shared: Arc<Shared>) -> LeaseEphemeral {
        LeaseEphemeral {
            shared,
            open: Mutex::default(),
        }
    }

    fn opened(&self, private: &[u8]) -> Option<OpenLease> {
        let id = std::str::from_utf8(private).ok()?;
        self.open.lock().expect("open leases").get(id).cloned()
    }
}

fn schema() -> Schema {
    Schema::new(
        Block::new(&format!(
            "The lease on an `immutable_bluegreen_deployment`'s listener, held for the whole Terraform run (Terraform 1.10+). \
             Every release and the rollback action take this lease for as long as they write; this takes it earlier, when the run opens it, so that what a release depends on (a self-registering fleet's standby service, updated before the deployment) is also updated by one writer at a time. \
             Give the dependent resources `depends_on = [ephemeral.immutable_lease.NAME]`. The deployment applied in the same run takes this lease as its own; any other writer is refused, naming the holder, until the run ends and gives it back. \
             Terraform renews it every {} while the run goes on; a run that dies leaves it to expire {} after its last renewal.",
            crate::duration::format(lease::RENEW),
            crate::duration::format(lease::TTL),
        ))
        .attribute(Attribute::string("listener_arn").required().description("The deployment's listener.").validate(validators::elb_arn("listener")))
        .attribute(Attribute::string("blue_target_group_arn").required().description("The deployment's blue target group.").validate(validators::elb_arn("targetgroup")))
        .attribute(Attribute::string("green_target_group_arn").required().description("The deployment's green target group.").validate(validators::elb_arn("targetgroup")))
        .attribute(Attribute::string("id").computed().description("The lease's id, unique to this hold."))
        .attribute(Attribute::string("holder").computed().description("Who holds it: process, host, start time, and `IMMUTABLE_LEASE_OWNER` when set."))
        .attribute(Attribute::string("expires_at").computed().description("When the lease ends unless renewed, in RFC 3339, as of opening: each renewal moves it on.")),
    )
}

#[tonic::async_trait]
impl EphemeralResource for LeaseEphemeral {
    fn type_name(&self) -> &'static str {
        "immutable_lease"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        super::validate_colours(config, diags);
    }

    async fn open(&self, _ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Opened> {
        let Some(listener) = super::listener(&self.shared, config).await else {
            diags.error(
                "Unknown listener",
                "listener_arn and the target group ARNs must be known when the lease is opened.",
            );
            return None;
        };
        // Kept where the deployments keep theirs: beside the records, or in S3.
        let listener = s3::kept(self.shared.aws.s3_leases().await, Arc::new(listener));
        let held = match lease::hold_open(&*listener).await {
            Ok(held) => held,
            Err(Refused::Held(why)) => {
                diags.attribute_error(
                    AttributePath::attr("listener_arn"),
                    "Another writer is releasing to this listener",
                    why,
                );
                return None;
            }
            Err(Refused::Failed(e)) => {
                diags.attribute_error(
                    AttributePath::attr("listener_arn"),
                    "Cannot read the listener",
                    e.to_string(),
                );
                return None;
            }
        };
        let taken = held.lease();
        let mut result = config.clone();
        for (name, value) in [
            ("id", taken.id.clone()),
            ("holder", taken.to_string()),
            ("expires_at", taken.expires_at()),
        ] {
            set(&mut result, name, value);
        }
        self.open
            .lock()
            .expect("open leases")
            .insert(taken.id.clone(), (listener, Arc::new(held)));
        Some(Opened {
            result,
            private: taken.id.into_bytes(),
            renew_at: Some(SystemTime::now() + lease::RENEW),
        })
    }

    async fn renew(
        &self,
        _ctx: &Ctx,
        private: &[u8],
        diags: &mut Diagnostics,
    ) -> Option<SystemTime> {
        let Some((listener, held)) = self.opened(private) else {
            diags.error(
                "No such lease",
                "This provider process opened no lease with that id; it cannot be renewed.",
            );
            return None;
        };
        match lease::renew(&*listener, &held).await {
            Ok(()) => {}
            Err(NotRenewed::Lost) => {
                diags.error(
                    "The lease was lost",
                    format!(
                        "Another writer holds the lease on {} now: it expired or was broken. What this run still writes there is no longer protected from other writers.",
                        listener.name()
                    ),
                );
                return None;
            }
            Err(NotRenewed::Failed(e)) => diags.warning(
                "The lease could not be renewed",
                format!("{e}. It is tried again; the lease holds until it expires."),
            ),
        }
        Some(SystemTime::now() + lease::RENEW)
    }

    async fn close(&self, _ctx: &Ctx, private: &[u8], _diags: &mut Diagnostics) {
        let id = std::str::from_utf8(private).unwrap_or_default();
        let Some((listener, held)) = self.open.lock().expect("open leases").remove(id) else {
            return;
        };
        lease::close(&*listener, &held).await;
    }
}
