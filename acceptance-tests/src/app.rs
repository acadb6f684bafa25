//! A controllable HTTP app on loopback, standing in for a release ("blue", "green") whose
//! health the provider gates on.
//!
//! It is a real server (HTTP/1.1 with keep-alive, optionally TLS from a CA made at
//! start), so the probes exercise real sockets: connection reuse, refused connections,
//! timeouts and certificate checks behave as they do against a real fleet.
//!
//! The server runs on a thread of its own with its own runtime. That keeps it answering
//! whatever the test's runtime is doing, and lets [`TestApp::set`] be synchronous and
//! exact: when `set(Behavior::Down)` returns, the port refuses connections.
//!
//! Every path answers by the [`Behavior`], except these:
//!
//! * `POST /_control/behavior` switches the behaviour from outside the process (see
//!   `src/bin/test-app.rs`); the body is parsed by [`Behavior`]'s `FromStr` (`failing 503`).
//! * `POST /_control/faults` sets [`Faults`] in real traffic; the body is parsed by their
//!   `FromStr`: an error share and a delay, `0.05 0s` or `0 300ms`.
//! * `GET /metrics` answers 200 in Prometheus' text format whatever the behaviour (unless
//!   [`Behavior::Down`]), with no delay: `app_requests_total{release,code}` and the histogram
//!   `app_request_duration_seconds{release}`, over every request but `/metrics` and control
//!   ones, artificial delays included. `release` is the version the app was started with, so a
//!   metrics gate can tell the releases apart as it would in production.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How many distinct header pairs [`TestApp::saw_header`] remembers.
const HEADERS_SEEN_CAP: usize = 10_000;

/// The path that switches behaviour over HTTP.
pub const CONTROL_PATH: &str = "/_control/behavior";
/// The path that sets [`Faults`] over HTTP.
pub const FAULTS_PATH: &str = "/_control/faults";
/// The path of the metrics, in Prometheus' text exposition format.
pub const METRICS_PATH: &str = "/metrics";
/// The path [`Faults`] spare, so that a release can pass its health checks and still fail its
/// users.
pub const HEALTH_PATH: &str = "/health";
/// The upper bounds of `app_request_duration_seconds`' buckets, `+Inf` aside.
const DURATION_BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How the app answers from now on. Switch with [`TestApp::set`] at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with `{"version":..,"status":"ok"}`.
    Healthy,
    /// This status with `"status":"failing"`.
    Failing(u16),
    /// 200, after this delay.
    Slow(Duration),
    /// Per request to a path, in a cycle: `healthy` answers 200, then `failing` answer 503.
    Flapping { healthy: u32, failing: u32 },
    /// The port refuses connections: the listener is closed and open connections are
    /// dropped. Switching to anything else binds the same port again.
    Down,
    /// 503 (`"status":"starting"`) until this long after the switch, then 200.
    HealthyAfter(Duration),
    /// 302 to this location.
    Redirect(String),
    /// This status, with the request's headers in the body (`name: value` lines), as a
    /// debug endpoint answers: what a secret header leaking through a body looks like.
    Echo(u16),
}

/// The control syntax: `healthy`, `failing 503`, `slow 3s`, `flapping 2 1`, `down`,
/// `healthy-after 10s`, `redirect http://elsewhere/`, `echo 500`.
impl FromStr for Behavior {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let duration = |w: &str| humantime::parse_duration(w).map_err(|e| format!("{w:?}: {e}"));
        let number = |w: &str| w.parse::<u32>().map_err(|e| format!("{w:?}: {e}"));
        let status = |w: &str| match w.parse::<u16>() {
            Ok(s) if (100..=599).contains(&s) => Ok(s),
            _ => Err(format!("{w:?} is not an HTTP status from 100 to 599")),
        };
        match words.as_slice() {
            ["healthy"] => Ok(Behavior::Healthy),
            ["failing", code] => Ok(Behavior::Failing(status(code)?)),
            ["slow", delay] => Ok(Behavior::Slow(duration(delay)?)),
            ["flapping", healthy, failing] => Ok(Behavior::Flapping {
                healthy: number(healthy)?,
                failing: number(failing)?,
            }),
            ["down"] => Ok(Behavior::Down),
            ["healthy-after", delay] => Ok(Behavior::HealthyAfter(duration(delay)?)),
            ["redirect", location] => Ok(Behavior::Redirect(location.to_string())),
            ["echo", code] => Ok(Behavior::Echo(status(code)?)),
            _ => Err(format!(
                "{text:?} is not a behaviour: use healthy, failing 503, slow 3s, flapping 2 1, \
                 down, healthy-after 10s, redirect URL or echo 500"
            )),
        }
    }
}

/// Faults in real traffic (every path but [`HEALTH_PATH`] and [`METRICS_PATH`]), on top of
/// the [`Behavior`] and independent of it. Set with [`TestApp::set_faults`]; the default is none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// The share of requests answered 500 (`"status":"error"`), from 0 to 1. Deterministic and
    /// evenly spread: request `n` (counted from 0 since the faults were set) fails when
    /// `floor((n+1)·share) > floor(n·share)`, so `0.1` fails requests 9, 19, 29, ... and any
    /// `N` requests hold exactly `floor(N·share)` failures.
    pub error_share: f64,
    /// Added to every such request's answer time, failing or not.
    pub delay: Duration,
}

impl Faults {
    fn check(self) -> Result<Faults, String> {
        if (0.0..=1.0).contains(&self.error_share) {
            Ok(self)
        } else {
            Err(format!(
                "error share {} is not from 0 to 1",
                self.error_share
            ))
        }
    }
}

/// The control syntax: an error share and a delay, `0.05 0s`, `0 300ms`, `0.5 1s`.
impl FromStr for Faults {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage =
            || format!("{text:?} is not faults: use an error share and a delay, e.g. 0.05 0s");
        let [share, delay] = text.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(usage());
        };
        Faults {
            error_share: share.parse().map_err(|_| usage())?,
            delay: humantime::parse_duration(delay).map_err(|e| format!("{delay:?}: {e}"))?,
        }
        .check()
    }
}

/// A running app. Dropping it stops the server and closes its ports.
pub struct TestApp {
    shared: Arc<Shared>,
    scheme: &'static str,
    port: u16,
    control_port: Option<u16>,
    /// Dropped to tell the server thread to stop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Plain HTTP on `127.0.0.1`, on a free port.
    pub async fn start(version: &str) -> TestApp {
        Self::start_on(version, 0, None)
            .await
            .expect("binding a loopback port")
    }

    /// HTTPS on `127.0.0.1`, on a free port, with a certificate for `127.0.0.1` and
    /// `localhost` signed by a CA made for this app; returns that CA's PEM.
    pub async fn start_tls(version: &str) -> (TestApp, String) {
        let (config, ca_pem) = tls::server_config();
        let app = Self::launch(version, 0, None, Some(TlsAcceptor::from(config)))
            .await
            .expect("binding a loopback port");
        (app, ca_pem)
    }

    /// Plain HTTP on a given port (0 = any free one), with an optional control port
    /// that answers only [`CONTROL_PATH`] and [`FAULTS_PATH`] and stays open while the app is
    /// [`Behavior::Down`].
    pub async fn start_on(
        version: &str,
        port: u16,
        control_port: Option<u16>,
    ) -> std::io::Result<TestApp> {
        Self::launch(version, port, control_port, None).await
    }

    async fn launch(
        version: &str,
        port: u16,
        control_port: Option<u16>,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<TestApp> {
        let app_listener = bind(port).await?;
        let port = app_listener.local_addr()?.port();
        let control_listener = match control_port {
            Some(p) => Some(bind(p).await?),
            None => None,
        };
        let control_port = match &control_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let shared = Arc::new(Shared::new(version));
        let (stop, stopped) = oneshot::channel();
        // Listeners move to the server's runtime as std sockets.
        let app_listener = app_listener.into_std()?;
        let control_listener = control_listener.map(|l| l.into_std()).transpose()?;
        let server = Server {
            // Subscribed here, not on the thread, so that no switch is missed.
            want_listening: shared.want_listening.subscribe(),
            shared: shared.clone(),
            port,
            tls: tls.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("test-app-{version}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test app runtime");
                runtime.block_on(server.run(app_listener, control_listener, stopped));
            })?;
        Ok(TestApp {
            shared,
            scheme: if tls.is_some() { "https" } else { "http" },
            port,
            control_port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// E.g. `http://127.0.0.1:41234`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The control port, when one was asked for.
    pub fn control_port(&self) -> Option<u16> {
        self.control_port
    }

    /// Switches behaviour. Returns once it is in force: after `set(Behavior::Down)` the
    /// port refuses connections, after switching back it accepts them again.
    pub fn set(&self, behavior: Behavior) {
        let up = self.shared.apply(behavior);
        self.shared.wait_listening(up);
    }

    /// Sets the faults in real traffic from now on, and restarts their count: see [`Faults`].
    /// Panics on an error share outside 0..=1 (the test's own mistake).
    pub fn set_faults(&self, faults: Faults) {
        self.shared
            .set_faults(faults.check().unwrap_or_else(|e| panic!("{e}")));
    }

    /// Requests answered so far, `/metrics` and control requests aside.
    pub fn requests(&self) -> u64 {
        self.shared.metrics.lock().unwrap().count
    }

    /// TCP connections accepted so far on the app port: with keep-alive, fewer than
    /// [`requests`](Self::requests).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Whether any request so far carried header `name` (lower case) with a value that
    /// contains `needle`: the last request may be a load balancer's health check.
    pub fn saw_header(&self, name: &str, needle: &str) -> bool {
        self.shared
            .headers_seen
            .lock()
            .unwrap()
            .iter()
            .any(|(n, v)| n == name && v.contains(needle))
    }

    /// The headers of the last request, names in lower case, in arrival order.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.shared.last_headers.lock().unwrap().clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The server thread ends its runtime, and with it every connection, at once.
            let _ = thread.join();
        }
    }
}

async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
}

/// What the app's handle and its server thread share.
struct Shared {
    version: String,
    state: Mutex<State>,
    faults: Mutex<FaultState>,
    metrics: Mutex<Metrics>,
    connections: AtomicU64,
    last_headers: Mutex<Vec<(String, String)>>,
    /// Every (name, value) header pair received, up to [`HEADERS_SEEN_CAP`].
    headers_seen: Mutex<BTreeSet<(String, String)>>,
    /// Whether the app port should be open; the server thread follows it.
    want_listening: watch::Sender<bool>,
    /// Whether it is open, for `set` to wait on.
    listening: Mutex<bool>,
    listening_changed: Condvar,
}

struct State {
    behavior: Behavior,
    since: Instant,
    /// Requests received per path since the switch, for `Flapping`'s cycle: a load
    /// balancer's checks on one path do not shift the cycle another client sees on another.
    received: BTreeMap<String, u64>,
}

#[derive(Default)]
struct FaultState {
    faults: Faults,
    /// Requests the faults applied to since they were set.
    seen: u64,
}

impl FaultState {
    /// Applies the faults to what the behaviour would answer.
    fn apply(&mut self, reply: Reply) -> Reply {
        let (n, share) = (self.seen as f64, self.faults.error_share);
        self.seen += 1;
        let reply = if ((n + 1.0) * share).floor() > (n * share).floor() {
            Reply {
                delay: reply.delay,
                ..Reply::new(500, "error")
            }
        } else {
            reply
        };
        Reply {
            delay: reply.delay + self.faults.delay,
            ..reply
        }
    }
}

/// What `/metrics` exposes.
#[derive(Default)]
struct Metrics {
    by_code: BTreeMap<u16, u64>,
    /// Per bound of [`DURATION_BUCKETS`], requests answered within it (cumulative, as exposed).
    buckets: [u64; DURATION_BUCKETS.len()],
    seconds: f64,
    count: u64,
}

impl Metrics {
    fn record(&mut self, status: u16, took: Duration) {
        let took = took.as_secs_f64();
        *self.by_code.entry(status).or_insert(0) += 1;
        for (bucket, bound) in self.buckets.iter_mut().zip(DURATION_BUCKETS) {
            *bucket += u64::from(took <= bound);
        }
        self.seconds += took;
        self.count += 1;
    }

    /// The text exposition format (version 0.0.4).
    fn render(&self, release: &str) -> String {
        let release = format!("release=\"{}\"", label_value(release));
        let mut out = String::new();
        out.push_str(
            "# HELP app_requests_total Requests answered, by status code.\n\
             # TYPE app_requests_total counter\n",
        );
        for (code, n) in &self.by_code {
            let _ = writeln!(out, "app_requests_total{{{release},code=\"{code}\"}} {n}");
        }
        out.push_str(
            "# HELP app_request_duration_seconds Time to answer a request, delays included.\n\
             # TYPE app_request_duration_seconds histogram\n",
        );
        let bounds = DURATION_BUCKETS.iter().map(f64::to_string);
        let counts = self.buckets.iter().chain([&self.count]);
        for (le, n) in bounds.chain(["+Inf".to_string()]).zip(counts) {
            let _ = writeln!(
                out,
                "app_request_duration_seconds_bucket{{{release},le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "app_request_duration_seconds_sum{{{release}}} {}",
            self.seconds
        );
        let _ = writeln!(
            out,
            "app_request_duration_seconds_count{{{release}}} {}",
            self.count
        );
        out
    }
}

/// A label value escaped for the text format.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What one request gets.
struct Reply {
    delay: Duration,
    status: u16,
    word: &'static str,
    location: Option<String>,
    /// The body is the request's headers.
    echo: bool,
}

impl Reply {
    fn new(status: u16, word: &'static str) -> Self {
        Reply {
            delay: Duration::ZERO,
            status,
            word,
            location: None,
            echo: false,
        }
    }
}

impl Shared {
    fn new(version: &str) -> Self {
        Shared {
            version: version.to_string(),
            state: Mutex::new(State {
                behavior: Behavior::Healthy,
                since: Instant::now(),
                received: BTreeMap::new(),
            }),
            faults: Mutex::default(),
            metrics: Mutex::new(Metrics::default()),
            connections: AtomicU64::new(0),
            last_headers: Mutex::new(Vec::new()),
            headers_seen: Mutex::new(BTreeSet::new()),
            want_listening: watch::Sender::new(true),
            listening: Mutex::new(true),
            listening_changed: Condvar::new(),
        }
    }

    /// Puts a behaviour in force; returns whether the port should now be open.
    fn apply(&self, behavior: Behavior) -> bool {
        let up = behavior != Behavior::Down;
        *self.state.lock().unwrap() = State {
            behavior,
            since: Instant::now(),
            received: BTreeMap::new(),
        };
        self.want_listening.send_if_modified(|want| {
            let changed = *want != up;
            *want = up;
            changed
        });
        up
    }

    fn mark_listening(&self, up: bool) {
        *self.listening.lock().unwrap() = up;
        self.listening_changed.notify_all();
    }

    fn wait_listening(&self, up: bool) {
        let (_listening, timeout) = self
            .listening_changed
            .wait_timeout_while(
                self.listening.lock().unwrap(),
                Duration::from_secs(10),
                |listening| *listening != up,
            )
            .unwrap();
        assert!(!timeout.timed_out(), "the test app did not switch its port");
    }

    fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap() = FaultState { faults, seen: 0 };
    }

    /// The behaviour's answer, with the faults on real traffic.
    fn next_reply(&self, path: &str) -> Reply {
        let reply = self.behaviour_reply(path);
        if path == HEALTH_PATH {
            return reply;
        }
        self.faults.lock().unwrap().apply(reply)
    }

    fn behaviour_reply(&self, path: &str) -> Reply {
        let mut state = self.state.lock().unwrap();
        let received = state.received.entry(path.to_string()).or_insert(0);
        let n = *received;
        *received += 1;
        match &state.behavior {
            // `Down` is only seen by a request that raced the switch.
            Behavior::Healthy | Behavior::Down => Reply::new(200, "ok"),
            Behavior::Failing(status) => Reply::new(*status, "failing"),
            Behavior::Slow(delay) => Reply {
                delay: *delay,
                ..Reply::new(200, "ok")
            },
            Behavior::Flapping { healthy, failing } => {
                let cycle = u64::from(healthy + failing).max(1);
                if n % cycle < u64::from(*healthy) {
                    Reply::new(200, "ok")
                } else {
                    Reply::new(503, "failing")
                }
            }
            Behavior::HealthyAfter(after) if state.since.elapsed() >= *after => {
                Reply::new(200, "ok")
            }
            Behavior::HealthyAfter(_) => Reply::new(503, "starting"),
            Behavior::Redirect(location) => Reply {
                location: Some(location.clone()),
                ..Reply::new(302, "redirect")
            },
            Behavior::Echo(status) => Reply {
                echo: true,
                ..Reply::new(*status, "echo")
            },
        }
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    App,
    /// Answers only [`CONTROL_PATH`] and [`FAULTS_PATH`], and stays open while the app is down.
    Control,
}

/// The server thread's side.
struct Server {
    shared: Arc<Shared>,
    want_listening: watch::Receiver<bool>,
    port: u16,
    tls: Option<TlsAcceptor>,
}

impl Server {
    async fn run(
        mut self,
        app_listener: std::net::TcpListener,
        control_listener: Option<std::net::TcpListener>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut listener = Some(TcpListener::from_std(app_listener).expect("app listener"));
        let control = control_listener.map(|l| TcpListener::from_std(l).expect("control listener"));
        // App connections are dropped when the app goes down; control ones are not.
        let mut app_connections = JoinSet::new();
        let mut control_connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                Ok((stream, _)) = accept(listener.as_ref()) => {
                    self.shared.connections.fetch_add(1, Ordering::SeqCst);
                    app_connections.spawn(self.connection(stream, Port::App));
                }
                Ok((stream, _)) = accept(control.as_ref()) => {
                    control_connections.spawn(self.connection(stream, Port::Control));
                }
                Ok(()) = self.want_listening.changed() => {
                    let up = *self.want_listening.borrow_and_update();
                    if up && listener.is_none() {
                        listener = Some(bind(self.port).await.expect("re-binding the app port"));
                    } else if !up {
                        listener = None;
                        // Closed before `set` returns, so a client sees it at once.
                        app_connections.shutdown().await;
                    }
                    self.shared.mark_listening(up);
                }
                Some(_) = app_connections.join_next() => {}
                Some(_) = control_connections.join_next() => {}
            }
        }
    }

    /// Serves one connection, over TLS when the app has it.
    fn connection(
        &self,
        stream: tokio::net::TcpStream,
        port: Port,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let tls = self.tls.clone().filter(|_| port == Port::App);
        async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_http(stream, shared, port).await;
                    }
                }
                None => serve_http(stream, shared, port).await,
            }
        }
    }
}

/// Accepts on a listener that may be closed (then never).
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve_http<S>(stream: S, shared: Arc<Shared>, port: Port)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(&shared, port, request).await) }
    });
    // A client that goes away mid-request is no concern of the app's.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn respond(shared: &Shared, port: Port, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        CONTROL_PATH | FAULTS_PATH => return control(shared, port, request).await,
        _ if port == Port::Control => {
            return text(
                StatusCode::NOT_FOUND,
                format!("only {CONTROL_PATH} and {FAULTS_PATH} here\n"),
            )
        }
        METRICS_PATH => return metrics(shared),
        _ => {}
    }
    let started = Instant::now();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    {
        let mut seen = shared.headers_seen.lock().unwrap();
        if seen.len() < HEADERS_SEEN_CAP {
            seen.extend(headers.iter().cloned());
        }
    }
    let echoed: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect();
    *shared.last_headers.lock().unwrap() = headers;
    let path = request.uri().path().to_string();
    // Read the body, as a real app would, so the connection stays reusable.
    let _ = request.into_body().collect().await;
    let reply = shared.next_reply(&path);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    shared
        .metrics
        .lock()
        .unwrap()
        .record(reply.status, started.elapsed());
    let body = if reply.echo {
        echoed
    } else {
        format!(
            r#"{{"version":"{}","status":"{}"}}"#,
            shared.version, reply.word
        )
    };
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    if let Some(location) = reply.location {
        response = response.header("location", location);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// `POST /_control/behavior` with a behaviour in the body, or `POST /_control/faults` with
/// faults.
async fn control(shared: &Shared, port: Port, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST a behaviour or faults\n".into(),
        );
    }
    let faults = request.uri().path() == FAULTS_PATH;
    let body = match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let applied = if faults {
        body.parse().map(|faults| shared.set_faults(faults))
    } else {
        match body.parse::<Behavior>() {
            // Closing the port this request came in on would cut off its own answer.
            Ok(Behavior::Down) if port == Port::App => {
                return text(
                    StatusCode::CONFLICT,
                    "down closes this port: send it to the control port\n".into(),
                )
            }
            parsed => parsed.map(|behavior| {
                shared.apply(behavior);
            }),
        }
    };
    match applied {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// `GET /metrics`: at once, whatever the behaviour.
fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let body = shared.metrics.lock().unwrap().render(&shared.version);
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

mod tls {
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A server config whose certificate (for `127.0.0.1` and `localhost`) is signed by a
    /// fresh CA, and that CA's PEM: a client trusts the server only when told of the CA,
    /// as with a private CA in production.
    pub(super) fn server_config() -> (Arc<rustls::ServerConfig>, String) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "immutable test app CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf = leaf.signed_by(&key, &ca).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        (Arc::new(config), ca.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(client: &reqwest::Client, url: &str) -> reqwest::Result<(u16, String)> {
        let response = client.get(url).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn answers_by_behaviour_and_counts() {
        let app = TestApp::start("v2").await;
        let c = client();
        assert_eq!(
            get(&c, &app.url()).await.unwrap(),
            (200, r#"{"version":"v2","status":"ok"}"#.to_string())
        );
        app.set(Behavior::Failing(503));
        assert_eq!(
            get(&c, &app.url()).await.unwrap(),
            (503, r#"{"version":"v2","status":"failing"}"#.to_string())
        );
        app.set(Behavior::Redirect("/elsewhere".into()));
        let response = c.get(app.url()).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/elsewhere");
        assert_eq!(app.requests(), 3);
        assert_eq!(app.connections(), 1, "keep-alive reuses one connection");
        let response = c
            .head(app.url())
            .header("x-probe", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        assert!(app
            .last_headers()
            .contains(&("x-probe".to_string(), "1".to_string())));
    }

    #[tokio::test]
    async fn flaps_in_a_cycle_and_starts_late() {
        let app = TestApp::start("v1").await;
        let c = client();
        app.set(Behavior::Flapping {
            healthy: 2,
            failing: 1,
        });
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(get(&c, &app.url()).await.unwrap().0);
        }
        assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
        app.set(Behavior::HealthyAfter(Duration::from_millis(300)));
        assert_eq!(get(&c, &app.url()).await.unwrap().0, 503);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(get(&c, &app.url()).await.unwrap().0, 200);
    }

    #[tokio::test]
    async fn down_refuses_then_comes_back_on_the_same_port() {
        let app = TestApp::start("v1").await;
        let c = client();
        get(&c, &app.url()).await.unwrap();
        app.set(Behavior::Down);
        // The pooled keep-alive connection was closed under the client...
        assert!(get(&c, &app.url()).await.is_err());
        // ...and a new one is refused.
        let err = get(&c, &app.url()).await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        app.set(Behavior::Healthy);
        assert_eq!(get(&c, &app.url()).await.unwrap().0, 200);
    }

    #[tokio::test]
    async fn control_requests_switch_behaviour() {
        let app = TestApp::start_on("v4", 0, Some(0)).await.unwrap();
        let control = format!(
            "http://127.0.0.1:{}{CONTROL_PATH}",
            app.control_port().unwrap()
        );
        let c = client();
        let post = |url: String, body: &'static str| {
            let c = c.clone();
            async move { c.post(url).body(body).send().await.unwrap().status() }
        };
        assert_eq!(
            post(format!("{}{CONTROL_PATH}", app.url()), "failing 500").await,
            200
        );
        assert_eq!(get(&c, &app.url()).await.unwrap().0, 500);
        assert_eq!(
            post(format!("{}{CONTROL_PATH}", app.url()), "down").await,
            409
        );
        assert_eq!(post(control.clone(), "sideways").await, 400);
        assert_eq!(post(control.clone(), "down").await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(get(&c, &app.url()).await.is_err());
        assert_eq!(post(control, "healthy").await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get(&c, &app.url()).await.unwrap().0, 200);
        assert_eq!(app.requests(), 2, "control requests are not counted");
    }

    #[tokio::test]
    async fn tls_is_trusted_through_the_returned_ca() {
        let (app, ca_pem) = TestApp::start_tls("v1").await;
        assert!(app.url().starts_with("https://127.0.0.1:"));
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        for host in ["127.0.0.1", "localhost"] {
            let c = reqwest::Client::builder()
                .no_proxy()
                .tls_certs_only([ca.clone()])
                .build()
                .unwrap();
            let url = format!("https://{host}:{}/health", app.port());
            assert_eq!(get(&c, &url).await.unwrap().0, 200, "{host}");
        }
        assert!(get(&client(), &app.url()).await.is_err());
    }

    #[tokio::test]
    async fn metrics_count_answers_by_code_and_time_them() {
        let app = TestApp::start("v\"9").await;
        let c = client();
        let metrics_url = format!("{}{METRICS_PATH}", app.url());
        get(&c, &app.url()).await.unwrap();
        app.set(Behavior::Failing(503));
        get(&c, &format!("{}{HEALTH_PATH}", app.url()))
            .await
            .unwrap();
        app.set(Behavior::Slow(Duration::from_millis(30)));
        get(&c, &app.url()).await.unwrap();
        // Answered at once, with 200, while the behaviour is slow.
        let response = c.get(&metrics_url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        let text = response.text().await.unwrap();
        let release = r#"release="v\"9""#;
        for want in [
            "# TYPE app_requests_total counter".to_string(),
            "# TYPE app_request_duration_seconds histogram".to_string(),
            format!("app_requests_total{{{release},code=\"200\"}} 2\n"),
            format!("app_requests_total{{{release},code=\"503\"}} 1\n"),
            format!("app_request_duration_seconds_bucket{{{release},le=\"0.025\"}} 2\n"),
            format!("app_request_duration_seconds_bucket{{{release},le=\"+Inf\"}} 3\n"),
            format!("app_request_duration_seconds_count{{{release}}} 3\n"),
        ] {
            assert!(text.contains(&want), "{want:?} not in:\n{text}");
        }
        let sum = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("app_request_duration_seconds_sum{{{release}}} "))
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert!(sum.is_some_and(|s| s >= 0.03), "{text}");
        assert_eq!(app.requests(), 3, "/metrics is not counted");
    }

    #[tokio::test]
    async fn faults_fail_an_even_share_of_real_traffic_only() {
        let app = TestApp::start_on("v1", 0, Some(0)).await.unwrap();
        let c = client();
        let (page, health) = (
            format!("{}/page", app.url()),
            format!("{}{HEALTH_PATH}", app.url()),
        );
        app.set_faults(Faults {
            error_share: 0.25,
            delay: Duration::ZERO,
        });
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(get(&c, &page).await.unwrap().0);
            // Health checks pass, and do not shift the share.
            assert_eq!(get(&c, &health).await.unwrap().0, 200);
        }
        assert_eq!(statuses, [200, 200, 200, 500, 200, 200, 200, 500]);
        assert_eq!(
            get(&c, &page).await.unwrap().1,
            r#"{"version":"v1","status":"ok"}"#
        );

        let control = format!(
            "http://127.0.0.1:{}{FAULTS_PATH}",
            app.control_port().unwrap()
        );
        let post = |body: &'static str| {
            let (c, control) = (c.clone(), control.clone());
            async move { c.post(control).body(body).send().await.unwrap().status() }
        };
        assert_eq!(post("1 100ms").await, 200);
        let started = Instant::now();
        assert_eq!(
            get(&c, &page).await.unwrap(),
            (500, r#"{"version":"v1","status":"error"}"#.to_string())
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        let started = Instant::now();
        assert_eq!(get(&c, &health).await.unwrap().0, 200);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "no delay on health"
        );
        assert_eq!(post("2 0s").await, 400);
        assert_eq!(post("0 0s").await, 200);
        assert_eq!(get(&c, &page).await.unwrap().0, 200);
    }

    #[test]
    fn parses_control_text() {
        assert_eq!("healthy".parse(), Ok(Behavior::Healthy));
        assert_eq!("failing 503".parse(), Ok(Behavior::Failing(503)));
        assert_eq!(
            " slow  3s ".parse(),
            Ok(Behavior::Slow(Duration::from_secs(3)))
        );
        assert_eq!(
            "flapping 2 1".parse(),
            Ok(Behavior::Flapping {
                healthy: 2,
                failing: 1
            })
        );
        assert_eq!("down".parse(), Ok(Behavior::Down));
        assert_eq!(
            "healthy-after 1m".parse(),
            Ok(Behavior::HealthyAfter(Duration::from_secs(60)))
        );
        assert_eq!("redirect /x".parse(), Ok(Behavior::Redirect("/x".into())));
        assert_eq!("echo 500".parse(), Ok(Behavior::Echo(500)));
        for bad in ["", "failing", "failing 99", "slow fast", "flapping 1", "up"] {
            assert!(bad.parse::<Behavior>().is_err(), "{bad}");
        }
        assert_eq!(
            "0.05 0s".parse(),
            Ok(Faults {
                error_share: 0.05,
                delay: Duration::ZERO
            })
        );
        assert_eq!(
            " 0  300ms ".parse(),
            Ok(Faults {
                error_share: 0.0,
                delay: Duration::from_millis(300)
            })
        );
        for bad in [
            "", "0.1", "1.5 0s", "-0.1 0s", "NaN 0s", "x 0s", "0.1 soon", "0 0s 1",
        ] {
            assert!(bad.parse::<Faults>().is_err(), "{bad}");
        }
    }
}
