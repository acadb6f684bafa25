//! A load generator for cut-over tests: a steady, bounded stream of GET requests through one
//! URL (the ALB emulator's data plane, HAProxy, or an app itself), recording every request and
//! counting every failure.
//!
//! Each worker holds one keep-alive HTTP/1.1 connection ([`Connection`]: no pool, no retry),
//! with one request at a time, at its share of the total rate. When its connection fails under
//! a request, or the server closes it, that request counts as failed (a [`Transport`] error)
//! and the worker connects again at its next turn, never sooner, so reconnections are bounded
//! by the rate. A pooled client would instead re-send the request on another connection and
//! hide the very failure a cut-over test looks for.
//!
//! The load runs on a thread of its own with its own runtime, like [`crate::app::TestApp`], so
//! its pace and its latencies do not depend on what the test's runtime is doing (a synchronous
//! `TestApp::set`, a Terraform run). It stops by itself at its bounds (time and count), and at
//! once when dropped.
//!
//! ```ignore
//! let load = Load::start(&url, LoadSettings { workers: 4, rate_per_second: 200.0, ..Default::default() });
//! let shifted = load.mark("shifted to 20%");
//! // ...
//! let report = load.stop().await;
//! println!("{report}");
//! assert_eq!(report.failed(), 0, "{}", report.failures());
//! let check = report.share_within("v2", shifted..report.elapsed(), 0.2, 3.0);
//! assert!(check.within(), "{check}");
//! ```

mod connection;
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Uri};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

pub use connection::{is_loopback, Connection, Transport, MAX_BODY};
pub use report::{LoadReport, Mark, Outcome, Sample, Share, ShareCheck, Tally, TARGET_HEADER};

/// The shape and the bounds of a load.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    /// Connections, each with one request in flight at most.
    pub workers: usize,
    /// Requests started per second, all workers together. A worker whose request outlasts its
    /// turn skips the turns it missed rather than bursting to catch up.
    pub rate_per_second: f64,
    /// No request starts after this long.
    pub max_duration: Duration,
    /// No more requests than this start.
    pub max_requests: u64,
    /// A request without a complete answer by then fails as [`Transport::Timeout`] (its
    /// connection is closed). Connecting counts in it.
    pub request_timeout: Duration,
}

impl Default for LoadSettings {
    fn default() -> Self {
        LoadSettings {
            workers: 4,
            rate_per_second: 100.0,
            max_duration: Duration::from_secs(60),
            max_requests: 100_000,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A running load. See the module's documentation.
pub struct Load {
    started: Instant,
    marks: Mutex<Vec<Mark>>,
    /// Set to true to stop starting requests.
    stop: watch::Sender<bool>,
    /// What the load thread hands back once every worker has ended.
    run: Option<oneshot::Receiver<Run>>,
    /// Dropped to end the load thread at once, requests in flight or not.
    abort: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts the load against `url` (`http://127.0.0.1:PORT/path?query`; the host must be a
    /// loopback IP address or `localhost`). Needs no runtime. Panics on a URL or settings that
    /// cannot make a load: that is the test's own mistake.
    pub fn start(url: &str, settings: LoadSettings) -> Load {
        let target = Target::parse(url).unwrap_or_else(|e| panic!("load on {url:?}: {e}"));
        assert!(settings.workers > 0, "a load needs at least one worker");
        let period =
            Duration::try_from_secs_f64(settings.workers as f64 / settings.rate_per_second)
                .ok()
                .filter(|_| settings.rate_per_second > 0.0)
                .unwrap_or_else(|| {
                    panic!("rate_per_second {} is not a rate", settings.rate_per_second)
                })
                // tokio's interval needs a period.
                .max(Duration::from_micros(1));
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let (run_tx, run) = oneshot::channel();
        let (abort, aborted) = oneshot::channel::<()>();
        let plan = Plan {
            target,
            settings,
            period,
            started,
            claimed: AtomicU64::new(0),
        };
        let thread = std::thread::Builder::new()
            .name("load".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("load runtime");
                runtime.block_on(async move {
                    tokio::select! {
                        done = Arc::new(plan).run(stopped) => { let _ = run_tx.send(done); }
                        _ = aborted => {}
                    }
                });
            })
            .expect("starting the load thread");
        Load {
            started,
            marks: Mutex::new(Vec::new()),
            stop,
            run: Some(run),
            abort: Some(abort),
            thread: Some(thread),
        }
    }

    /// Time since the start, on the clock of [`Sample::start`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks this moment (kept in the report) and returns it, e.g. as one end of a
    /// [`LoadReport::share_of`] window.
    pub fn mark(&self, label: &str) -> Duration {
        let at = self.elapsed();
        self.marks.lock().unwrap().push(Mark {
            label: label.to_string(),
            at,
        });
        at
    }

    /// Stops starting requests, waits for those in flight (each bounded by the request
    /// timeout), and reports. Returns at once if the load already ended at its bounds.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.send_replace(true);
        let run = self.run.take().expect("a load stops once");
        let Run {
            samples,
            connections,
            elapsed,
        } = run.await.expect("the load thread failed");
        let marks = std::mem::take(&mut *self.marks.lock().unwrap());
        LoadReport::new(samples, marks, connections, elapsed)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        drop(self.abort.take());
        if let Some(thread) = self.thread.take() {
            // The thread drops its runtime, and every connection with it, at once.
            let _ = thread.join();
        }
    }
}

/// What the workers recorded.
struct Run {
    samples: Vec<Sample>,
    connections: u64,
    elapsed: Duration,
}

/// Where requests go.
struct Target {
    addr: SocketAddr,
    /// The URL's authority, as `Host`.
    host: HeaderValue,
    path: PathAndQuery,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("only http:// URLs".into());
        }
        let authority = uri.authority().ok_or("no host")?;
        let host = authority.host();
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST.into()
        } else {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("{host:?} is neither an IP address nor localhost"))?
        };
        Ok(Target {
            addr: SocketAddr::new(ip, authority.port_u16().unwrap_or(80)),
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
            path: uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = Uri::from(self.path.clone());
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        request
    }
}

/// What the workers share.
struct Plan {
    target: Target,
    settings: LoadSettings,
    /// Between two requests of one worker.
    period: Duration,
    started: Instant,
    /// Requests started so far, against `max_requests`.
    claimed: AtomicU64,
}

impl Plan {
    async fn run(self: Arc<Self>, stopped: watch::Receiver<bool>) -> Run {
        let mut workers = JoinSet::new();
        for i in 0..self.settings.workers {
            // Staggered, so that the requests are spread evenly over each period.
            let first = self.started + self.period * i as u32 / self.settings.workers as u32;
            let worker = Worker {
                plan: self.clone(),
                connection: None,
                samples: Vec::new(),
                connections: 0,
            };
            workers.spawn(worker.run(first, stopped.clone()));
        }
        let mut samples = Vec::new();
        let mut connections = 0;
        while let Some(done) = workers.join_next().await {
            let worker = done.expect("a load worker failed");
            samples.extend(worker.samples);
            connections += worker.connections;
        }
        Run {
            samples,
            connections,
            elapsed: self.started.elapsed(),
        }
    }

    /// Takes a request's turn; false once `max_requests` have started.
    fn claim(&self) -> bool {
        self.claimed.fetch_add(1, Ordering::SeqCst) < self.settings.max_requests
    }
}

/// One connection's worth of the load.
struct Worker {
    plan: Arc<Plan>,
    connection: Option<Connection>,
    samples: Vec<Sample>,
    /// Connections opened.
    connections: u64,
}

impl Worker {
    async fn run(mut self, first: Instant, mut stopped: watch::Receiver<bool>) -> Worker {
        let mut turns = tokio::time::interval_at(first.into(), self.plan.period);
        turns.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let deadline =
            tokio::time::sleep_until((self.plan.started + self.plan.settings.max_duration).into());
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                // Bounds first: no request starts once they are reached.
                biased;
                // Also when the handle is gone (then the thread is ending anyway).
                _ = stopped.wait_for(|stop| *stop) => break,
                _ = &mut deadline => break,
                _ = turns.tick() => {}
            }
            if !self.plan.claim() {
                break;
            }
            let sample = self.request().await;
            self.samples.push(sample);
        }
        self
    }

    async fn request(&mut self) -> Sample {
        let start = Instant::now();
        let result = tokio::time::timeout(self.plan.settings.request_timeout, self.exchange())
            .await
            .unwrap_or(Err(Transport::Timeout));
        let latency = start.elapsed();
        if result.is_err() {
            // Whatever state it is in, it is not to be trusted with another request.
            self.connection = None;
        }
        Sample::of(start - self.plan.started, latency, result)
    }

    /// On the worker's connection, or a new one if it has none or the server closed it
    /// between two requests (no request lost there, so none counted).
    async fn exchange(&mut self) -> Result<hyper::Response<Bytes>, Transport> {
        let reusable = match self.connection.take() {
            Some(mut c) => c.ready().await.then_some(c),
            None => None,
        };
        let connection = match reusable {
            Some(c) => c,
            None => {
                let c = Connection::open(self.plan.target.addr).await?;
                self.connections += 1;
                c
            }
        };
        self.connection
            .insert(connection)
            .exchange(self.plan.target.request())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls() {
        let t = Target::parse("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(t.addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/health?x=1");
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(t.addr, SocketAddr::from(([127, 0, 0, 1], 80)));
        assert_eq!(t.path, "/");
        let t = Target::parse("http://[::1]:81/").unwrap();
        assert_eq!(t.addr, "[::1]:81".parse().unwrap());
        for bad in [
            "https://127.0.0.1/",
            "http://example.com/",
            "127.0.0.1:80",
            "nonsense",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
