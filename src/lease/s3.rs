//! The lease kept in an S3 object instead of beside the records (`lease { s3_bucket }` in
//! the provider block), for teams that already keep their state in S3.
//!
//! S3's conditional writes make it a true compare-and-swap, as Terraform's own S3 backend
//! uses them for its lock file: the lease is written with `If-None-Match: *` when there
//! was none, and with `If-Match: <ETag>` of the lease last read when one expired or is
//! renewed; it is deleted with `If-Match` too. Whoever wrote in between makes the write
//! fail, so of two takers exactly one wins, whatever the timing, and no settle time is
//! needed. The wrapper keeps the ETag of its last read for that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;

use crate::router::{
    Color, MemberHealth, Record, RouterError, Routing, Split, Target, TrafficRouter,
};

/// Where leases are kept: one object per listener or backend under `prefix`.
#[derive(Clone, Debug)]
pub struct S3Leases {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

impl S3Leases {
    /// `router` with its lease kept in S3.
    pub fn keep<R: Lends>(&self, router: R) -> InS3<R> {
        InS3 {
            key: format!(
                "{}{}.lease",
                self.prefix,
                object_name(&router.lend().name())
            ),
            store: self.clone(),
            inner: router,
            etag: Mutex::new(None),
        }
    }
}

/// What lends the router whose lease is kept in S3: a borrow for one apply, an `Arc` for
/// a lease held open for the run.
pub trait Lends: Send + Sync {
    fn lend(&self) -> &dyn TrafficRouter;
}

impl<'a> Lends for &'a (dyn TrafficRouter + 'a) {
    fn lend(&self) -> &dyn TrafficRouter {
        *self
    }
}

impl Lends for Arc<dyn TrafficRouter> {
    fn lend(&self) -> &dyn TrafficRouter {
        &**self
    }
}

/// `router`, with its lease in S3 when the provider keeps leases there.
pub fn kept(leases: Option<&S3Leases>, router: Arc<dyn TrafficRouter>) -> Arc<dyn TrafficRouter> {
    match leases {
        Some(s3) => Arc::new(s3.keep(router)),
        None => router,
    }
}

/// What keeps a router's lease: the router itself, or S3 when the provider keeps leases
/// there.
pub enum Keeper<'a> {
    Itself(&'a dyn TrafficRouter),
    S3(InS3<&'a dyn TrafficRouter>),
}

impl<'a> Keeper<'a> {
    pub fn of(leases: Option<&'a S3Leases>, router: &'a dyn TrafficRouter) -> Keeper<'a> {
        match leases {
            Some(s3) => Keeper::S3(s3.keep(router)),
            None => Keeper::Itself(router),
        }
    }

    /// The router with its lease where it is kept.
    pub fn router(&self) -> &dyn TrafficRouter {
        match self {
            Keeper::Itself(router) => *router,
            Keeper::S3(in_s3) => in_s3,
        }
    }
}

/// An object name from what the router routes ("the listener arn:aws:…/app/web/…"):
/// letters, digits and `/._-` kept, anything else `_`.
fn object_name(name: &str) -> String {
    name.trim_start_matches("the ")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A router whose lease is an S3 object; everything else passes through.
pub struct InS3<R> {
    inner: R,
    store: S3Leases,
    key: String,
    /// The lease object's ETag as last read or written (`None`: there was none).
    etag: Mutex<Option<String>>,
}

impl<R> InS3<R> {
    fn failed(&self, operation: &str, e: impl std::error::Error) -> RouterError {
        RouterError::Failed(format!(
            "{operation} of the lease s3://{}/{} failed: {}",
            self.store.bucket,
            self.key,
            DisplayErrorContext(e)
        ))
    }

    fn lost_race(&self) -> RouterError {
        RouterError::Failed(format!(
            "another writer wrote the lease s3://{}/{} first",
            self.store.bucket, self.key
        ))
    }
}

/// Whether S3 refused a write for its condition: someone else wrote first.
fn condition_failed(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    )
}

#[tonic::async_trait]
impl<R: Lends> TrafficRouter for InS3<R> {
    fn name(&self) -> String {
        self.inner.lend().name()
    }

    fn checker(&self) -> &'static str {
        self.inner.lend().checker()
    }

    fn describe(&self, color: Color) -> String {
        self.inner.lend().describe(color)
    }

    fn none_healthy_means(&self) -> &'static str {
        self.inner.lend().none_healthy_means()
    }

    fn placeholders(&self, color: Color) -> Vec<(&'static str, String)> {
        self.inner.lend().placeholders(color)
    }

    async fn weights(&self) -> Result<Split, RouterError> {
        self.inner.lend().weights().await
    }

    async fn set_weights(&self, split: Split) -> Result<(), RouterError> {
        self.inner.lend().set_weights(split).await
    }

    async fn routing(&self) -> Result<Routing, RouterError> {
        self.inner.lend().routing().await
    }

    async fn restore(&self, routing: &Routing) -> Result<(), RouterError> {
        self.inner.lend().restore(routing).await
    }

    async fn members(&self, color: Color) -> Result<Vec<MemberHealth>, RouterError> {
        self.inner.lend().members(color).await
    }

    async fn add_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.inner.lend().add_members(color, targets).await
    }

    async fn remove_members(&self, color: Color, targets: &[Target]) -> Result<(), RouterError> {
        self.inner.lend().remove_members(color, targets).await
    }

    async fn records(&self) -> Result<[Record; 2], RouterError> {
        self.inner.lend().records().await
    }

    async fn set_record(&self, color: Color, record: &Record) -> Result<(), RouterError> {
        self.inner.lend().set_record(color, record).await
    }

    async fn lease(&self) -> Result<Option<String>, RouterError> {
        let got = self
            .store
            .client
            .get_object()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .send()
            .await;
        let (text, etag) = match got {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string);
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.failed("GetObject", e))?
                    .into_bytes();
                (Some(String::from_utf8_lossy(&bytes).into_owned()), etag)
            }
            Err(e) if e.code() == Some("NoSuchKey") => (None, None),
            Err(e) => return Err(self.failed("GetObject", e)),
        };
        *self.etag.lock().expect("etag") = etag;
        Ok(text)
    }

    async fn set_lease(&self, lease: Option<&str>) -> Result<(), RouterError> {
        let expected = self.etag.lock().expect("etag").clone();
        let client = &self.store.client;
        match lease {
            Some(text) => {
                let put = client
                    .put_object()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .body(ByteStream::from(text.as_bytes().to_vec()));
                let put = match &expected {
                    Some(etag) => put.if_match(etag),
                    None => put.if_none_match("*"),
                };
                match put.send().await {
                    Ok(out) => {
                        *self.etag.lock().expect("etag") = out.e_tag().map(str::to_string);
                        Ok(())
                    }
                    Err(e) if condition_failed(e.code()) => Err(self.lost_race()),
                    Err(e) => Err(self.failed("PutObject", e)),
                }
            }
            None => {
                let Some(etag) = expected else {
                    return Ok(());
                };
                match client
                    .delete_object()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .if_match(etag)
                    .send()
                    .await
                {
                    Ok(_) => {
                        *self.etag.lock().expect("etag") = None;
                        Ok(())
                    }
                    Err(e) if condition_failed(e.code()) => Err(self.lost_race()),
                    Err(e) => Err(self.failed("DeleteObject", e)),
                }
            }
        }
    }

    /// Conditional writes decide the race: no wait is needed.
    fn lease_settle(&self) -> Duration {
        Duration::ZERO
    }

    fn break_lease_command(&self) -> String {
        format!(
            "aws s3api delete-object --bucket {} --key {}",
            self.store.bucket, self.key
        )
    }

    async fn warm_up(&self, color: Color) -> Result<Option<String>, RouterError> {
        self.inner.lend().warm_up(color).await
    }

    async fn end_warm_up(&self, handle: &str) -> Result<(), RouterError> {
        self.inner.lend().end_warm_up(handle).await
    }

    async fn preflight(&self) -> Result<Vec<(Option<Color>, String)>, RouterError> {
        self.inner.lend().preflight().await
    }
}

#[cfg(test)]
mod tests {
    use super::object_name;

    #[test]
    fn object_names_keep_the_arn_readable() {
        assert_eq!(
            object_name(
                "the listener arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/ab/cd"
            ),
            "listener_arn_aws_elasticloadbalancing_us-east-1_1_listener/app/web/ab/cd"
        );
        assert_eq!(
            object_name("the backend web on unix:///run/h.sock"),
            "backend_web_on_unix_///run/h.sock"
        );
    }
}
