//! A router whose every write first checks that the lease and the colours' records are
//! still this apply's: the fence that makes a last-writer-wins lease safe to write under.
//! Reads, and the warm-up rule (which routes no request), pass straight through.
//!
//! A check is good for [`FRESH`]: writes in quick succession (register, then record) share
//! one, as the first write shares the read that confirmed the lease. Within that time only
//! a writer that breaks the lease by hand could come in between, and the next check sees
//! it. Fifty deployments at once read ELBv2 at the account's rate, so each read saved is
//! time saved for all.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{found, Held};
use crate::router::{
    Color, MemberHealth, Record, RouterError, Routing, Split, Target, TrafficRouter,
};

/// How long a check of the lease and the records is taken as still true.
pub const FRESH: Duration = Duration::from_secs(1);

pub struct Fenced<'a> {
    inner: &'a dyn TrafficRouter,
    held: &'a Held,
    /// The records as this apply last read or wrote them.
    records: Mutex<[Record; 2]>,
    /// When the lease and the records were last found to be this apply's.
    checked: Mutex<Instant>,
}

impl<'a> Fenced<'a> {
    /// `records` were read just now, with the lease or right after it was confirmed.
    pub fn new(inner: &'a dyn TrafficRouter, held: &'a Held, records: [Record; 2]) -> Self {
        Fenced {
            inner,
            held,
            records: Mutex::new(records),
            checked: Mutex::new(Instant::now()),
        }
    }

    /// Goes ahead when the lease is this apply's (or was removed: an HAProxy reload drops
    /// it, and a back-out must still be able to put traffic back) and the records are as
    /// this apply left them.
    async fn fence(&self) -> Result<(), RouterError> {
        if self.checked.lock().expect("checked").elapsed() < FRESH {
            return Ok(());
        }
        let (lease, records) = self.inner.lease_and_records().await?;
        if lease.is_some() && !self.held.is_mine(lease.as_deref()) {
            let holder = found(lease).map_or("another writer".to_string(), |l| l.to_string());
            return Err(RouterError::Failed(format!(
                "{holder} took the lease on {} while this apply held it; this apply wrote \
                 nothing more",
                self.inner.name()
            )));
        }
        let expected = self.records.lock().expect("records").clone();
        if records != expected {
            return Err(RouterError::Failed(format!(
                "The colours' records on {} were changed by another writer while this apply \
                 held the lease (blue: {}, green: {}); this apply wrote nothing more",
                self.inner.name(),
                described(&records[0]),
                described(&records[1]),
            )));
        }
        *self.checked.lock().expect("checked") = Instant::now();
        Ok(())
    }
}

fn described(record: &Record) -> String {
    format!(
        "{} at generation {}",
        record.release.as_deref().unwrap_or("no release"),
        record
            .generation
            .map_or("none".to_string(), |g| g.to_string())
    )
}

#[tonic::async_trait]
impl TrafficRouter for Fenced<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn checker(&self) -> &'static str {
        self.inner.checker()
    }

    fn describe(&self, color: Color) -> String {
        self.inner.describe(color)
    }

    fn none_healthy_means(&self) -> &'static str {
        self.inner.none_healthy_means()
    }

    fn placeholders(&self, color: Color) -> Vec<(&'static str, String)> {
        self.inner.placeholders(color)
    }

    async fn weights(&self) -> Result<Split, RouterError> {
        self.inner.weights().await
    }

    async fn set_weights(&self, split: Split) -> Result<(), RouterError> {
        self.fence().await?;
        self.inner.set_weights(split).await
    }

    async fn routing(&self) -> Result<Routing, RouterError> {
        self.inner.routing().await
    }

    async fn restore(&self, routing: &Routing) -> Result<(), RouterError> {
        self.fence().await?;
        self.inner.restore(routing).await
    }

    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError> {
        self.inner.members(color).await
    }

    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.fence().await?;
        self.inner.add_members(color, targets).await
    }

    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.fence().await?;
        self.inner.remove_members(color, targets).await
    }

    async fn records(&self) -> Result<[Record; 2], RouterError> {
        self.inner.records().await
    }

    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError> {
        self.fence().await?;
        let written = self.inner.set_record(color, record).await;
        // A write that failed may have happened: take whatever is there now as this
        // apply's, since only this apply could have written it.
        let now = match &written {
            Ok(()) => None,
            Err(_) => self.inner.records().await.ok(),
        };
        let mut records = self.records.lock().expect("records");
        match now {
            Some(now) => *records = now,
            None if written.is_ok() => records[color.index()] = record.clone(),
            None => {}
        }
        written
    }

    async fn lease(&self) -> Result<Option<String>, RouterError> {
        self.inner.lease().await
    }

    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError> {
        self.inner.set_lease(lease).await
    }

    async fn lease_and_records(&self) -> Result<(Option<String>, [Record; 2]), RouterError> {
        self.inner.lease_and_records().await
    }

    fn lease_settle(&self) -> Duration {
        self.inner.lease_settle()
    }

    fn break_lease_command(&self) -> String {
        self.inner.break_lease_command()
    }

    async fn warm_up(&self, color: Color) -> Result<Option<String>, RouterError> {
        self.inner.warm_up(color).await
    }

    async fn end_warm_up(&self, handle: &str) -> Result<(), RouterError> {
        self.inner.end_warm_up(handle).await
    }

    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError> {
        self.inner.preflight().await
    }
}
