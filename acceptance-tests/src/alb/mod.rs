//! An ALB emulator in front of moto, for acceptance tests that need ELBv2 to behave as AWS
//! does (see shared/aws-elbv2-behaviour.md), not as moto does.
//!
//! It is a [`FaultProxy`] with a hook: faults still apply in front of it and
//! [`FaultProxy::calls`] still counts what clients send. moto stays the store of record for
//! load balancers, target groups, listeners, rules and tags; the emulator adds what moto lacks:
//!
//! * targets keyed by (id, port), kept by the emulator, with health from real health checks
//!   (loopback targets only) and AWS's states, reasons and timings, scaled by
//!   [`Settings::time_scale`];
//! * AWS's validation of forward actions, with a record of every refusal ([`Refusal`]);
//! * AWS's read-back shape of single-group forwards, and `LoadBalancerArns` kept up to date;
//! * AWS's throttling (token buckets per family, account and region);
//! * a data plane: a loopback port per listener ([`AlbEmulator::listener_url`]) that routes as
//!   the listener's rules and weights say, the weights a moment after they change.
//!
//! Requests signed for any other service than `elasticloadbalancing` (the fixtures' EC2 calls)
//! pass through untouched and unthrottled.
//!
//! Like the fault proxy, the emulator runs on threads of its own (its own runtime), so its
//! API is synchronous and usable from any test.

mod checker;
mod checks;
mod control;
pub mod dataplane;
mod form;
mod health;
mod listeners;
mod model;
mod routing;
mod state;
mod targets;
pub mod testenv;
mod throttle;
mod validate;
mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::proxy::{FaultProxy, Reply};
use dataplane::{RequestHead, Route, RouteTable};
use health::Timing;
use state::State;
use throttle::Buckets;
pub use throttle::{Bucket, Throttling};

/// The longest scaled duration: a year is forever for a test.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// How the emulator behaves; [`Settings::default`] suits the acceptance suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Real time per AWS second, for health check intervals and timeouts, the registration
    /// time and deregistration delays: 0.05 makes a 5 s interval 250 ms.
    pub time_scale: f64,
    /// How long a new target stays `initial` / `Elb.RegistrationInProgress`, in AWS time
    /// (scaled). AWS publishes no figure.
    pub registration_time: Duration,
    /// How long a just-registered target is missing from DescribeTargetHealth (eventual
    /// consistency), in real time.
    pub registration_lag: Duration,
    /// How long after a listener's default actions change the data plane uses the new ones,
    /// in real time (the control plane answers the new ones at once).
    pub weight_delay: Duration,
    /// `None`: no throttling.
    pub throttling: Option<Throttling>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            time_scale: 0.05,
            registration_time: Duration::from_secs(4),
            registration_lag: Duration::from_millis(100),
            weight_delay: Duration::from_millis(50),
            throttling: Some(Throttling::default()),
        }
    }
}

impl Settings {
    /// An AWS duration on the test's clock (at most [`LONGEST`], so that instants never
    /// overflow whatever the scale).
    fn scaled(&self, aws: Duration) -> Duration {
        let scale = if self.time_scale.is_finite() {
            self.time_scale.max(0.0)
        } else {
            1.0
        };
        Duration::try_from_secs_f64(aws.as_secs_f64() * scale).map_or(LONGEST, |d| d.min(LONGEST))
    }

    fn timing(&self) -> Timing {
        Timing {
            registration: self.scaled(self.registration_time),
            hidden: self.registration_lag,
        }
    }
}

/// A request the emulator refused itself (validation, or a target group that does not
/// exist), throttling aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub action: String,
    pub code: String,
    pub message: String,
    /// The request came from the provider (its User-Agent names `terraform-provider-immutable`).
    pub from_provider: bool,
}

/// How many requests were answered `Throttling`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttled {
    pub total: u64,
    /// Of those, the provider's.
    pub from_provider: u64,
}

/// Every refusal of every emulator of this process, oldest first.
static REFUSALS: Mutex<Vec<Refusal>> = Mutex::new(Vec::new());

/// The refusals of the provider's requests by any emulator of this process: a test that
/// drives the provider can check that it sent nothing AWS would refuse.
pub fn provider_refusals() -> Vec<Refusal> {
    lock(&REFUSALS)
        .iter()
        .filter(|r| r.from_provider)
        .cloned()
        .collect()
}

/// A mutex's guard, also after a panic elsewhere (the data is counters and models, still
/// usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An AWS Query error the emulator answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsError {
    pub status: u16,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// HTTP 400, `Sender`.
    pub fn sender(code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            status: 400,
            kind: "Sender",
            code: code.into(),
            message: message.into(),
        }
    }

    /// moto's own error for a call the emulator made, or a 503 when moto could not be reached.
    fn from_sdk<E, R>(err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match err {
            SdkError::ServiceError(e) => AwsError::sender(
                e.err().code().unwrap_or("InternalFailure"),
                e.err().message().unwrap_or_default(),
            ),
            other => AwsError {
                status: 503,
                kind: "Receiver",
                code: "ServiceUnavailable".into(),
                message: format!(
                    "the ALB emulator could not reach moto: {}",
                    DisplayErrorContext(&other)
                ),
            },
        }
    }

    fn reply(&self) -> Reply {
        Reply::error(self.status, self.kind, &self.code, &self.message)
    }
}

/// What the hook, the health checkers and the data plane share.
struct Core {
    /// moto, directly (not through the proxy: the emulator's own calls are neither faulted
    /// nor counted nor throttled).
    moto: elbv2::Client,
    settings: Mutex<Settings>,
    buckets: Mutex<Buckets>,
    state: Mutex<State>,
    /// Serialises listener and rule writes with the refresh of the model that follows them,
    /// so that validation sees every write before it.
    writes: tokio::sync::Mutex<()>,
    refusals: Mutex<Vec<Refusal>>,
    throttled: Mutex<Throttled>,
    probes: reqwest::Client,
    rng: Mutex<fastrand::Rng>,
    runtime: tokio::runtime::Handle,
}

impl Core {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl RouteTable for Core {
    fn route(&self, listener_arn: &str, request: &RequestHead<'_>) -> Route {
        let mut rng = lock(&self.rng);
        self.state()
            .route(listener_arn, request, Instant::now(), &mut rng)
    }

    fn finished(&self, target_group: &str, id: &str, addr: SocketAddr) {
        self.state().finished(target_group, id, addr);
    }
}

/// A running emulator. Dropping it stops the proxy, the health checks and the data plane.
pub struct AlbEmulator {
    core: Arc<Core>,
    proxy: Option<FaultProxy>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl AlbEmulator {
    /// An emulator on a free loopback port in front of moto at `moto_endpoint`
    /// (`http://127.0.0.1:PORT`). Panics if it cannot start its runtime or listen.
    pub fn start(moto_endpoint: &str, settings: Settings) -> AlbEmulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("alb-emulator")
            .enable_all()
            .build()
            .expect("the ALB emulator's runtime");
        let buckets = Buckets::new(settings.throttling.unwrap_or_default());
        let core = Arc::new(Core {
            moto: crate::elb::client(moto_endpoint),
            settings: Mutex::new(settings),
            buckets: Mutex::new(buckets),
            state: Mutex::new(State::default()),
            writes: tokio::sync::Mutex::new(()),
            refusals: Mutex::new(Vec::new()),
            throttled: Mutex::new(Throttled::default()),
            probes: checks::client(),
            rng: Mutex::new(fastrand::Rng::new()),
            runtime: runtime.handle().clone(),
        });
        let proxy = FaultProxy::start_with(moto_endpoint, Arc::new(control::Hook(core.clone())));
        AlbEmulator {
            core,
            proxy: Some(proxy),
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, for the provider's `endpoints { elbv2 }` or
    /// [`crate::elb::client`].
    pub fn endpoint(&self) -> String {
        self.proxy().endpoint()
    }

    /// The fault proxy the emulator is built on, to inject faults or count calls.
    pub fn proxy(&self) -> &FaultProxy {
        self.proxy
            .as_ref()
            .expect("the proxy lives as long as the emulator")
    }

    /// The data plane's URL of a listener (`http://127.0.0.1:PORT`), once the emulator knows
    /// the listener (it was created, changed or its load balancer read through the emulator).
    pub fn listener_url(&self, listener_arn: &str) -> Option<String> {
        self.core
            .state()
            .planes
            .get(listener_arn)
            .map(|plane| format!("http://127.0.0.1:{}", plane.port))
    }

    /// Every listener the emulator knows, with its data plane's URL as [`Self::listener_url`]
    /// gives it, by ARN (for the `alb-emulator` binary, which prints them).
    pub fn listener_urls(&self) -> Vec<(String, String)> {
        self.core
            .state()
            .planes
            .iter()
            .map(|(arn, plane)| (arn.clone(), format!("http://127.0.0.1:{}", plane.port)))
            .collect()
    }

    pub fn settings(&self) -> Settings {
        self.core.settings()
    }

    /// Replaces the settings; new throttling sizes start with full buckets.
    pub fn set_settings(&self, settings: Settings) {
        if settings.throttling != self.core.settings().throttling {
            *lock(&self.core.buckets) = Buckets::new(settings.throttling.unwrap_or_default());
        }
        *lock(&self.core.settings) = settings;
    }

    /// Switches throttling on with these sizes, or off with `None`.
    pub fn set_throttling(&self, throttling: Option<Throttling>) {
        self.set_settings(Settings {
            throttling,
            ..self.settings()
        });
    }

    /// What this emulator refused, oldest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        lock(&self.core.refusals).clone()
    }

    pub fn throttled(&self) -> Throttled {
        *lock(&self.core.throttled)
    }

    /// Requests the data plane routed to targets of this group.
    pub fn served(&self, target_group: &str) -> u64 {
        self.core
            .state()
            .served
            .iter()
            .filter(|((group, _), _)| group == target_group)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests routed to targets of this group that have not finished yet.
    pub fn in_flight(&self, target_group: &str) -> u64 {
        self.core
            .state()
            .in_flight
            .iter()
            .filter(|((group, _), _)| group == target_group)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for AlbEmulator {
    fn drop(&mut self) {
        // No new request first, then every task (checks, data plane) with the runtime.
        drop(self.proxy.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One emulator for the whole test process, in front of [`crate::moto::shared`], started on
/// first use with [`Settings::default`]. Tests share it in parallel, like the shared moto:
/// change its settings only in a test process of your own.
pub fn shared() -> &'static AlbEmulator {
    static SHARED: OnceLock<AlbEmulator> = OnceLock::new();
    SHARED
        .get_or_init(|| AlbEmulator::start(&crate::moto::shared().endpoint(), Settings::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_scale_and_stay_finite() {
        let settings = Settings::default();
        assert_eq!(
            settings.scaled(Duration::from_secs(5)),
            Duration::from_millis(250)
        );
        assert_eq!(settings.timing().registration, Duration::from_millis(200));
        let huge = Settings {
            time_scale: 1e300,
            ..Settings::default()
        };
        assert_eq!(huge.scaled(Duration::from_secs(5)), LONGEST);
        let nan = Settings {
            time_scale: f64::NAN,
            ..Settings::default()
        };
        assert_eq!(nan.scaled(Duration::from_secs(5)), Duration::from_secs(5));
        let negative = Settings {
            time_scale: -1.0,
            ..Settings::default()
        };
        assert_eq!(negative.scaled(Duration::from_secs(5)), Duration::ZERO);
    }
}
