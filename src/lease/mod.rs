//! One writer at a time per listener or backend: a lease kept beside the colours' records
//! (a tag on the listener, a variable in HAProxy), taken before an apply's first write,
//! renewed while it runs, given back when it ends, and left to expire when its holder dies.
//!
//! Neither ELBv2 tags nor HAProxy variables can compare-and-swap: the last write wins. So
//! taking a lease is Fischer's protocol: read it free, write it, wait longer than any other
//! taker can take between its read and its write ([`TrafficRouter::lease_settle`]), and
//! read it back: of writers who raced, only the last one finds its own lease there. Each
//! write of the release is then fenced ([`fenced::Fenced`]): it reads the lease and the
//! records again and goes ahead only when both are still this apply's. What it does not
//! guarantee: a holder whose clock is minutes off, or a writer that ignores leases, can
//! still slip one write in between a fence and the write it guards.
//!
//! The lease can also be held for a whole Terraform run ([`hold_open`], by the ephemeral
//! resource `immutable_lease`): the releases of that run's provider process borrow it.

pub mod fenced;
pub mod s3;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::router::{Record, RouterError, TrafficRouter};

/// How long a lease lasts unless renewed: how long a dead holder blocks others.
pub const TTL: Duration = Duration::from_secs(120);
/// How often a held lease is renewed: several renewals fit into a [`TTL`].
pub const RENEW: Duration = Duration::from_secs(30);

/// When this process started, to tell one run of a pipeline from the next.
static STARTED: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

/// Notes when the process started; called once at start-up.
pub fn note_start() {
    LazyLock::force(&STARTED);
}

/// Who holds a lease and until when, as written beside the records:
/// `id;expires;pid;started;host;owner` (times in Unix seconds; the owner, last, may hold
/// anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Unique to one hold: two holds by one process differ.
    pub id: String,
    pub expires: u64,
    pub pid: u32,
    pub started: u64,
    pub host: String,
    /// `IMMUTABLE_LEASE_OWNER`, when set: a CI job's URL, say.
    pub owner: Option<String>,
}

/// The longest a lease is written: an ELBv2 tag value holds 256 characters.
const MAX_LEN: usize = 256;

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

impl Lease {
    /// A new lease for this process, expiring a [`TTL`] from now.
    pub fn new() -> Lease {
        Lease {
            id: format!("{:016x}", fastrand::u64(..)),
            expires: unix(SystemTime::now() + TTL),
            pid: std::process::id(),
            started: unix(*STARTED),
            host: this_host(),
            owner: std::env::var("IMMUTABLE_LEASE_OWNER")
                .ok()
                .filter(|o| !o.trim().is_empty()),
        }
    }

    pub fn encode(&self) -> String {
        let mut text = format!(
            "{};{};{};{};{};{}",
            self.id,
            self.expires,
            self.pid,
            self.started,
            self.host,
            self.owner.as_deref().unwrap_or("")
        );
        if text.len() > MAX_LEN {
            let mut end = MAX_LEN;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }

    pub fn decode(text: &str) -> Option<Lease> {
        let mut parts = text.splitn(6, ';');
        let mut next = || parts.next();
        Some(Lease {
            id: next()?.to_string(),
            expires: next()?.parse().ok()?,
            pid: next()?.parse().ok()?,
            started: next()?.parse().ok()?,
            host: next()?.to_string(),
            owner: next().filter(|o| !o.is_empty()).map(str::to_string),
        })
    }

    /// When it ends unless renewed, in RFC 3339.
    pub fn expires_at(&self) -> String {
        rfc3339(self.expires)
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        unix(now) >= self.expires
    }

    /// Whether the lease binds others now: unexpired, and its holder not known dead. A
    /// holder on this host whose process is gone (killed, crashed) holds nothing, so that
    /// the next apply on the same CI runner need not wait out the lease.
    pub fn binds(&self, now: SystemTime) -> bool {
        let holder_gone = self.host == this_host() && process_gone(self.pid);
        !self.expired(now) && !holder_gone
    }

    fn renewed(&self) -> Lease {
        Lease {
            expires: unix(SystemTime::now() + TTL),
            ..self.clone()
        }
    }
}

/// Whether no process runs as `pid` on this host, as /proc tells (where there is none,
/// every holder is taken to be alive; a pid reused since errs the same way).
fn process_gone(pid: u32) -> bool {
    std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This host's name, as leases name their holders'.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(';', "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

impl Default for Lease {
    fn default() -> Self {
        Lease::new()
    }
}

impl fmt::Display for Lease {
    /// "process 4242 on ci-runner-7 (started 2026-12-08T01:00:00Z, owner https://ci/job/5)"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process {} on {} (started {}",
            self.pid,
            self.host,
            rfc3339(self.started)
        )?;
        if let Some(owner) = &self.owner {
            write!(f, ", owner {owner}")?;
        }
        f.write_str(")")
    }
}

/// Why a lease was not taken.
#[derive(Debug)]
pub enum Refused {
    /// Someone else holds it.
    Held(String),
    /// It could not be read or written.
    Failed(RouterError),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Held(why) => f.write_str(why),
            Refused::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// What a reader finds where the lease is kept.
fn found(text: Option<String>) -> Option<Lease> {
    text.as_deref().and_then(Lease::decode)
}

/// The refusal when `other` holds the lease on `router`.
pub fn held_by(router: &dyn TrafficRouter, other: &Lease) -> String {
    let left = other.expires.saturating_sub(unix(SystemTime::now()));
    format!(
        "{} is being released by another writer: {other} holds its lease until {} (in {}s). \
         Nothing was changed; traffic was not moved. Run terraform apply again once it is \
         done. If that writer is gone and cannot give the lease back, its lease ends by \
         itself at that time, or break it now: {}",
        capital(&router.name()),
        rfc3339(other.expires),
        left,
        router.break_lease_command()
    )
}

fn capital(text: &str) -> String {
    crate::text::capitalised(text)
}

/// A lease this process holds: what it wrote last, and whether it was lost since.
#[derive(Debug)]
pub struct Held {
    lease: Arc<Mutex<Lease>>,
    /// Held open for the run by an ephemeral resource, which gives it back: the release
    /// that borrowed it does not.
    borrowed: bool,
    /// The colours' records, read with the lease when it was confirmed.
    records: Option<[Record; 2]>,
}

/// Leases this process holds open for the whole Terraform run (`ephemeral
/// "immutable_lease"`), by router name. Terraform opens the ephemeral resource in the
/// apply's own provider process, so a release there takes that lease as its own
/// instead of being refused by it.
static OPEN: LazyLock<Mutex<HashMap<String, Arc<Mutex<Lease>>>>> = LazyLock::new(Default::default);

impl Held {
    fn own(lease: Lease) -> Held {
        Held {
            lease: Arc::new(Mutex::new(lease)),
            borrowed: false,
            records: None,
        }
    }

    /// The colours' records as read with the lease when it was confirmed, so that the
    /// check against the plan need not read them again.
    pub fn records(&self) -> Option<[Record; 2]> {
        self.records.clone()
    }

    pub fn id(&self) -> String {
        self.lease().id
    }

    /// The lease as this process last wrote it.
    pub fn lease(&self) -> Lease {
        self.lease.lock().expect("lease").clone()
    }

    /// Whether `text`, read where the lease is kept, is this hold's lease.
    pub fn is_mine(&self, text: Option<&str>) -> bool {
        text.and_then(Lease::decode)
            .is_some_and(|l| l.id == self.id())
    }
}

/// The lease this process holds open on `router`, when `current` (read there) is still it.
fn borrow_open(router: &dyn TrafficRouter, current: Option<&Lease>) -> Option<Held> {
    let current = current.filter(|l| !l.expired(SystemTime::now()))?;
    let open = OPEN
        .lock()
        .expect("open leases")
        .get(&router.name())?
        .clone();
    let mine = open.lock().expect("lease").id == current.id;
    mine.then_some(Held {
        lease: open,
        borrowed: true,
        records: None,
    })
}

/// Takes the lease on `router`, or says who holds it. A lease that expired is taken over;
/// one this process holds open for the run is borrowed, without a write.
pub async fn acquire(router: &dyn TrafficRouter) -> Result<Held, Refused> {
    claim(router).await?.confirm(router).await
}

/// A lease written but not yet read back: the caller may read the router meanwhile (its
/// preflight), so that the settle time is not all spent waiting.
#[must_use = "a claim is confirmed or abandoned"]
pub enum Claim {
    /// The lease this process holds open for the run.
    Borrowed(Held),
    Written {
        mine: Lease,
        /// When the lease may be read back.
        settled: tokio::time::Instant,
    },
}

/// Writes this process's lease where none is held (or the one held has expired).
pub async fn claim(router: &dyn TrafficRouter) -> Result<Claim, Refused> {
    let started = tokio::time::Instant::now();
    let current = found(router.lease().await.map_err(Refused::Failed)?);
    if let Some(open) = borrow_open(router, current.as_ref()) {
        return Ok(Claim::Borrowed(open));
    }
    if let Some(other) = current.filter(|l| l.binds(SystemTime::now())) {
        return Err(Refused::Held(held_by(router, &other)));
    }
    let mine = Lease::new();
    if let Err(e) = router.set_lease(Some(&mine.encode())).await {
        // A store that compares and swaps refuses the write when a rival wrote first.
        return Err(match found(router.lease().await.ok().flatten()) {
            Some(other) if other.binds(SystemTime::now()) => Refused::Held(held_by(router, &other)),
            _ => Refused::Failed(e),
        });
    }
    // A rival that read the lease free before this write lands writes its own within the
    // settle time (a taker whose read and write took longer waits as long, so that its
    // late write is seen by whoever checks after it).
    let settle = router.lease_settle().max(started.elapsed());
    Ok(Claim::Written {
        mine,
        settled: tokio::time::Instant::now() + settle,
    })
}

impl Claim {
    /// Reads the lease back once settled: of writers who raced, only the last finds its own.
    pub async fn confirm(self, router: &dyn TrafficRouter) -> Result<Held, Refused> {
        let (mine, settled) = match self {
            Claim::Borrowed(held) => return Ok(held),
            Claim::Written { mine, settled } => (mine, settled),
        };
        tokio::time::sleep_until(settled).await;
        let (now, records) = router.lease_and_records().await.map_err(Refused::Failed)?;
        match found(now) {
            Some(l) if l.id == mine.id => Ok(Held {
                records: Some(records),
                ..Held::own(mine)
            }),
            Some(other) => Err(Refused::Held(held_by(router, &other))),
            None => Err(Refused::Held(format!(
                "The lease on {} was removed while it was being taken: another writer is \
                 breaking leases on it. Nothing was changed; traffic was not moved.",
                router.name()
            ))),
        }
    }

    /// Gives the lease back unconfirmed (the caller found it cannot go on); a borrowed one
    /// stays with the run that holds it open.
    pub async fn abandon(self, router: &dyn TrafficRouter) {
        if let Claim::Written { mine, .. } = self {
            release(router, &Held::own(mine)).await;
        }
    }
}

/// Why a held lease was not renewed.
#[derive(Debug)]
pub enum NotRenewed {
    /// Another writer holds it now (it expired, or was broken).
    Lost,
    /// It could not be read or written; it is still held until it expires.
    Failed(RouterError),
}

/// Renews the lease while it is still this hold's; leaves it alone once another holds it
/// (the fence then stops the release's next write).
pub async fn renew(router: &dyn TrafficRouter, held: &Held) -> Result<(), NotRenewed> {
    let text = router.lease().await.map_err(NotRenewed::Failed)?;
    if !held.is_mine(text.as_deref()) {
        return Err(NotRenewed::Lost);
    }
    let renewed = held.lease().renewed();
    router
        .set_lease(Some(&renewed.encode()))
        .await
        .map_err(NotRenewed::Failed)?;
    *held.lease.lock().expect("lease") = renewed;
    Ok(())
}

async fn keep_renewed(router: &dyn TrafficRouter, held: &Held) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(RENEW).await;
        match renew(router, held).await {
            Ok(()) => {}
            Err(NotRenewed::Lost) => tracing::warn!("the lease was taken by another writer"),
            Err(NotRenewed::Failed(e)) => {
                tracing::warn!(error = %e, "the lease could not be renewed")
            }
        }
    }
}

/// Takes the lease on `router` for the whole Terraform run: releases of this process
/// borrow it, and only [`close`] gives it back. Renewing it is the caller's ([`renew`]).
pub async fn hold_open(router: &dyn TrafficRouter) -> Result<Held, Refused> {
    let held = acquire(router).await?;
    if !held.borrowed {
        OPEN.lock()
            .expect("open leases")
            .insert(router.name(), held.lease.clone());
    }
    Ok(held)
}

/// Gives back a lease taken by [`hold_open`], unless it was borrowed from an earlier one.
pub async fn close(router: &dyn TrafficRouter, held: &Held) {
    if held.borrowed {
        return;
    }
    {
        let mut open = OPEN.lock().expect("open leases");
        if open
            .get(&router.name())
            .is_some_and(|l| Arc::ptr_eq(l, &held.lease))
        {
            open.remove(&router.name());
        }
    }
    release(router, held).await;
}

/// Gives the lease back, when it is still this hold's and not borrowed.
async fn release(router: &dyn TrafficRouter, held: &Held) {
    if held.borrowed {
        return;
    }
    match router.lease().await {
        Ok(text) if held.is_mine(text.as_deref()) => {
            if let Err(e) = router.set_lease(None).await {
                tracing::warn!(error = %e, "the lease could not be given back; it expires by itself");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the lease could not be read to give it back"),
    }
}

/// Runs `work` while `held`, the lease on `router`, is renewed every [`RENEW`]; gives
/// the lease back when `work` ends, unless it was borrowed from one held open.
pub async fn while_held<T>(
    router: &dyn TrafficRouter,
    held: &Held,
    work: impl Future<Output = T>,
) -> T {
    let out = {
        tokio::pin!(work);
        let renewing = keep_renewed(router, held);
        tokio::pin!(renewing);
        tokio::select! {
            out = &mut work => out,
            never = &mut renewing => match never {},
        }
    };
    release(router, held).await;
    out
}

#[cfg(test)]
mod tests;
