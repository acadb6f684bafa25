//! The emulator's data plane: one HTTP/1.1 server on a loopback port per listener.
//!
//! [`serve`] answers every request on its own: it asks [`RouteTable::route`] for each one
//! (never once per connection), so that a keep-alive client follows weight changes as it would
//! through a real ALB. A request is then answered by the load balancer itself, or proxied to the
//! target drawn, whose response goes back with [`TARGET_HEADER`] and [`TARGET_GROUP_HEADER`] so
//! that a test can tell which target served it.
//!
//! A proxied request is never retried: if the exchange with the target fails the client gets
//! 502, and 504 when the target does not answer in time, as from ALB. That is what makes a
//! cut-over test honest: every failure a real cut-over would cause reaches the client. Idle
//! upstream connections are kept per target address for reuse (ALB keeps them too); one found
//! closed is dropped before use, but one the target closes just as a request goes out fails
//! that request (502), as with ALB, where a target's keep-alive timeout must exceed the load
//! balancer's. The upstream side is [`crate::load::Connection`], the load generator's client:
//! no pool of its own, no retry, and loopback targets only (anything else is a 502 without
//! connecting: tests never send traffic anywhere but loopback).
//!
//! Bodies are read in full (up to [`MAX_BODY`]) before routing and before answering: the test
//! apps' are small, and a complete exchange is what [`RouteTable::finished`] reports.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::load::{Connection, Transport, MAX_BODY};

/// What the data plane needs to know of one request to route it.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string, without `?`, when there is one.
    pub query: Option<&'a str>,
    /// The request's headers; names in lower case.
    pub headers: &'a [(String, String)],
}

/// Where a request goes, as the listener's actions say at this moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Proxy the request to this target of this target group.
    Target {
        target_group: String,
        /// The target's id as registered (an IP address here).
        id: String,
        addr: SocketAddr,
    },
    /// Answer from the load balancer itself (a `fixed-response` action).
    Fixed {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// No action can serve it: the group it was drawn to has no registered target, or the
    /// listener is gone. ALB answers 503.
    Unavailable(String),
}

/// The control plane's side: routes one request of one listener. Called once per request
/// (never cached per connection), so that keep-alive connections follow new weights.
pub trait RouteTable: Send + Sync + 'static {
    fn route(&self, listener_arn: &str, request: &RequestHead<'_>) -> Route;

    /// Called when a proxied request to `route`'s target has finished (answered or failed),
    /// so that the control plane can count in-flight requests per target (a draining target
    /// finishes what it has).
    fn finished(&self, target_group: &str, id: &str, addr: SocketAddr);
}

pub use crate::load::TARGET_HEADER;

/// The response header naming the target group of the target that served a request.
pub const TARGET_GROUP_HEADER: &str = "x-alb-target-group";

/// How a listener's data plane behaves; [`Settings::default`] is what [`serve`] uses.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a target has to answer a proxied request in full, connecting included, before
    /// the client gets 504. (ALB's is the load balancer's idle timeout, 60 s by default; tests
    /// want to know sooner.)
    pub upstream_timeout: Duration,
    /// Idle upstream connections kept per target address.
    pub idle_per_target: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            upstream_timeout: Duration::from_secs(10),
            idle_per_target: 8,
        }
    }
}

/// Serves `listener` as the data plane of `listener_arn`, with default [`Settings`].
pub async fn serve(listener: TcpListener, listener_arn: String, table: Arc<dyn RouteTable>) {
    serve_with(listener, listener_arn, table, Settings::default()).await
}

/// Serves `listener` as the data plane of `listener_arn` until the task is aborted or its
/// runtime drops: every connection, upstream ones included, is owned by this future and closes
/// with it. Needs a runtime with time enabled (for the upstream timeout).
pub async fn serve_with(
    listener: TcpListener,
    listener_arn: String,
    table: Arc<dyn RouteTable>,
    settings: Settings,
) {
    let plane = Arc::new(Plane {
        listener_arn,
        port: listener.local_addr().map_or(0, |a| a.port()),
        table,
        settings,
        idle: Mutex::new(HashMap::new()),
    });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(plane.clone().connection(stream, peer));
                }
                // Out of descriptors, say: pause rather than spin, and keep the port.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One listener's data plane, shared by its connections.
struct Plane {
    listener_arn: String,
    /// The listener's port, for `X-Forwarded-Port`.
    port: u16,
    table: Arc<dyn RouteTable>,
    settings: Settings,
    /// Idle upstream connections per target address.
    idle: Mutex<HashMap<SocketAddr, Vec<Connection>>>,
}

impl Plane {
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn(move |request| {
            let plane = self.clone();
            async move { Ok::<_, Infallible>(plane.handle(request, peer).await) }
        });
        // A client that goes away is its own concern; the end of a proxied exchange it
        // abandons is still reported (see `InFlight`).
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        // Read before answering, so that the client's connection stays reusable whatever the
        // answer.
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            }
            Err(_) => return text(StatusCode::BAD_REQUEST, "incomplete request body"),
        };
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect();
        let head = RequestHead {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &headers,
        };
        match self.table.route(&self.listener_arn, &head) {
            Route::Target {
                target_group,
                id,
                addr,
            } => {
                let _in_flight = InFlight {
                    table: &*self.table,
                    target_group: &target_group,
                    id: &id,
                    addr,
                };
                let request = self.upstream_request(parts, body, peer, addr);
                let mut response = self.proxy(addr, request, &id).await;
                let headers = response.headers_mut();
                set(headers, TARGET_HEADER, &format!("{id}:{}", addr.port()));
                set(headers, TARGET_GROUP_HEADER, &target_group);
                response
            }
            Route::Fixed {
                status,
                content_type,
                body,
            } => match StatusCode::from_u16(status) {
                Ok(status) => answer(status, content_type.as_deref(), body),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("fixed-response status {status} is not an HTTP status"),
                ),
            },
            Route::Unavailable(why) => text(StatusCode::SERVICE_UNAVAILABLE, &why),
        }
    }

    /// The request as the target gets it: end-to-end headers, the client's `Host`, and the
    /// `X-Forwarded-*` headers ALB adds.
    fn upstream_request(
        &self,
        parts: request::Parts,
        body: Bytes,
        peer: SocketAddr,
        addr: SocketAddr,
    ) -> Request<Full<Bytes>> {
        let mut headers = end_to_end(&parts.headers);
        // The body goes out whole, with a length of its own.
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::EXPECT);
        let forwarded_for = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        set(&mut headers, "x-forwarded-for", &forwarded_for);
        set(&mut headers, "x-forwarded-proto", "http");
        set(&mut headers, "x-forwarded-port", &self.port.to_string());
        if !headers.contains_key(header::HOST) {
            set(&mut headers, "host", &addr.to_string());
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method;
        *request.uri_mut() = parts
            .uri
            .path_and_query()
            .cloned()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
        *request.headers_mut() = headers;
        request
    }

    /// One exchange with the target, in the time allowed: its response, or 502 / 504.
    async fn proxy(
        &self,
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
        id: &str,
    ) -> Response<Full<Bytes>> {
        let timeout = self.settings.upstream_timeout;
        let target = format!("target {id}:{}", addr.port());
        match tokio::time::timeout(timeout, self.exchange(addr, request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                parts.headers = end_to_end(&parts.headers);
                Response::from_parts(parts, Full::new(body))
            }
            Ok(Err(e)) => text(
                StatusCode::BAD_GATEWAY,
                &format!("502 Bad Gateway: {target}: {e}"),
            ),
            Err(_) => text(
                StatusCode::GATEWAY_TIMEOUT,
                &format!("504 Gateway Timeout: {target} did not answer within {timeout:?}"),
            ),
        }
    }

    /// Sends the request once, on an idle connection to `addr` or a new one.
    async fn exchange(
        &self,
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, Transport> {
        let mut connection = match self.idle_connection(addr).await {
            Some(connection) => connection,
            None => Connection::open(addr).await?,
        };
        let response = connection.exchange(request).await?;
        let mut idle = self.idle.lock().unwrap();
        let kept = idle.entry(addr).or_default();
        if kept.len() < self.settings.idle_per_target {
            kept.push(connection);
        }
        Ok(response)
    }

    /// An idle connection to `addr` that is still open, if any; closed ones are dropped.
    async fn idle_connection(&self, addr: SocketAddr) -> Option<Connection> {
        loop {
            let mut connection = self.idle.lock().unwrap().get_mut(&addr)?.pop()?;
            if connection.ready().await {
                return Some(connection);
            }
        }
    }
}

/// Reports the end of a proxied exchange, however it ends: answered, failed, or abandoned with
/// the client's connection (the handler is dropped then).
struct InFlight<'a> {
    table: &'a dyn RouteTable,
    target_group: &'a str,
    id: &'a str,
    addr: SocketAddr,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.table.finished(self.target_group, self.id, self.addr);
    }
}

/// The headers that belong to the message itself, not to one hop of it (RFC 9110 §7.6.1).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    // Those the message names as hop-by-hop.
    for value in headers.get_all(header::CONNECTION) {
        for name in value.to_str().unwrap_or("").split(',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) {
                out.remove(name);
            }
        }
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        out.remove(name);
    }
    out
}

/// Sets a header, unless the value cannot be one (then the message goes without it).
fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn answer(status: StatusCode, content_type: Option<&str>, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        set(response.headers_mut(), "content-type", content_type);
    }
    response
}

/// The load balancer's own short answer.
fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    answer(
        status,
        Some("text/plain; charset=utf-8"),
        format!("{message}\n"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use tokio::io::AsyncReadExt;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::app::{Behavior, TestApp};
    use crate::load::{Load, LoadSettings};

    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2";

    /// Hands out its routes in turn, over and over, and records what it is told.
    #[derive(Default)]
    struct FakeTable {
        routes: Mutex<VecDeque<Route>>,
        /// `listener method path query` per request routed.
        routed: Mutex<Vec<String>>,
        finished: Mutex<Vec<(String, String, SocketAddr)>>,
    }

    impl RouteTable for FakeTable {
        fn route(&self, listener_arn: &str, request: &RequestHead<'_>) -> Route {
            self.routed.lock().unwrap().push(format!(
                "{listener_arn} {} {} {:?}",
                request.method, request.path, request.query
            ));
            let mut routes = self.routes.lock().unwrap();
            let route = routes.pop_front().expect("a route");
            routes.push_back(route.clone());
            route
        }

        fn finished(&self, target_group: &str, id: &str, addr: SocketAddr) {
            let entry = (target_group.to_string(), id.to_string(), addr);
            self.finished.lock().unwrap().push(entry);
        }
    }

    fn group(name: &str) -> String {
        format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/1")
    }

    fn target(name: &str, addr: SocketAddr) -> Route {
        Route::Target {
            target_group: group(name),
            id: addr.ip().to_string(),
            addr,
        }
    }

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A data plane on a free port, routing to `routes` in turn.
    async fn plane(
        routes: Vec<Route>,
        settings: Settings,
    ) -> (Arc<FakeTable>, SocketAddr, JoinHandle<()>) {
        let table = Arc::new(FakeTable {
            routes: Mutex::new(routes.into()),
            ..Default::default()
        });
        let listener = TcpListener::bind(local(0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_with(
            listener,
            LISTENER.into(),
            table.clone(),
            settings,
        ));
        (table, addr, task)
    }

    fn request(method: &str, path: &str, body: &'static str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "alb.test")
            .header("x-test", "1")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn get(client: &mut Connection, path: &str) -> Response<Bytes> {
        client.exchange(request("GET", path, "")).await.unwrap()
    }

    fn header<'a>(response: &'a Response<Bytes>, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
    }

    fn body(response: &Response<Bytes>) -> &str {
        std::str::from_utf8(response.body()).unwrap()
    }

    #[tokio::test]
    async fn routes_every_request_of_a_keep_alive_connection() {
        let (blue, green) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let routes = vec![
            target("blue", local(blue.port())),
            target("green", local(green.port())),
        ];
        let (table, addr, _serving) = plane(routes, Settings::default()).await;
        let mut client = Connection::open(addr).await.unwrap();
        for round in 0..2 {
            for (name, app, version) in [("blue", &blue, "v1"), ("green", &green, "v2")] {
                let response = get(&mut client, "/health?x=1").await;
                assert_eq!(response.status(), 200, "{round} {name}");
                assert!(body(&response).contains(&format!(r#""version":"{version}""#)));
                let served_by = format!("127.0.0.1:{}", app.port());
                assert_eq!(header(&response, TARGET_HEADER), served_by);
                assert_eq!(header(&response, TARGET_GROUP_HEADER), group(name));
                assert_eq!(header(&response, "content-type"), "application/json");
            }
        }
        let routed = format!("{LISTENER} GET /health Some(\"x=1\")");
        assert_eq!(*table.routed.lock().unwrap(), vec![routed; 4]);
        let finished: Vec<String> = table
            .finished
            .lock()
            .unwrap()
            .iter()
            .map(|(group, id, addr)| format!("{group} {id} {}", addr.port()))
            .collect();
        let blue_done = format!("{} 127.0.0.1 {}", group("blue"), blue.port());
        let green_done = format!("{} 127.0.0.1 {}", group("green"), green.port());
        assert_eq!(
            finished,
            [&blue_done, &green_done, &blue_done, &green_done].map(String::as_str)
        );
        for app in [&blue, &green] {
            assert_eq!(app.requests(), 2);
            assert_eq!(app.connections(), 1, "upstream connections are reused");
        }
        let headers = blue.last_headers();
        for (name, value) in [
            ("host", "alb.test".to_string()),
            ("x-test", "1".to_string()),
            ("x-forwarded-for", "127.0.0.1".to_string()),
            ("x-forwarded-proto", "http".to_string()),
            ("x-forwarded-port", addr.port().to_string()),
        ] {
            assert!(
                headers.contains(&(name.to_string(), value.clone())),
                "{name}: {value} in {headers:?}"
            );
        }
    }

    /// Sends each request to green with a probability that can change at any time, as the
    /// control plane does with weights.
    struct WeightedTable {
        blue: Route,
        green: Route,
        green_percent: AtomicU64,
    }

    impl RouteTable for WeightedTable {
        fn route(&self, _: &str, _: &RequestHead<'_>) -> Route {
            let green = fastrand::u64(0..100) < self.green_percent.load(Ordering::SeqCst);
            if green { &self.green } else { &self.blue }.clone()
        }

        fn finished(&self, _: &str, _: &str, _: SocketAddr) {}
    }

    #[tokio::test]
    async fn a_keep_alive_load_follows_weight_changes() {
        let (blue, green) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let table = Arc::new(WeightedTable {
            blue: target("blue", local(blue.port())),
            green: target("green", local(green.port())),
            green_percent: AtomicU64::new(0),
        });
        let listener = TcpListener::bind(local(0)).await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _serving = tokio::spawn(serve(listener, LISTENER.into(), table.clone()));
        let settings = LoadSettings {
            workers: 4,
            rate_per_second: 200.0,
            ..Default::default()
        };
        let load = Load::start(&url, settings);
        let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
        pause(500).await;
        let shifted = load.mark("20% to green");
        table.green_percent.store(20, Ordering::SeqCst);
        pause(1000).await;
        let cut_over = load.mark("100% to green");
        table.green_percent.store(100, Ordering::SeqCst);
        pause(500).await;
        let report = load.stop().await;
        println!("{report}");
        assert_eq!(report.failed(), 0, "{}", report.failures());
        assert_eq!(
            report.connections(),
            4,
            "the split is per request, not per connection"
        );
        // A request started just before a mark may be routed just after the change.
        let margin = Duration::from_millis(100);
        for (window, expected) in [
            (Duration::ZERO..shifted - margin, 0.0),
            (shifted + margin..cut_over - margin, 0.2),
            (cut_over + margin..report.elapsed(), 1.0),
        ] {
            let check = report.share_within("v2", window, expected, 4.0);
            assert!(check.within(), "{check}");
        }
        let mut green_served = report
            .samples()
            .iter()
            .filter(|s| s.release.as_deref() == Some("v2"));
        let at_green = format!("127.0.0.1:{}", green.port());
        assert!(green_served.clone().count() > 100);
        assert!(green_served.all(|s| s.target.as_deref() == Some(at_green.as_str())));
    }

    /// A target that reads a request's head, then closes the connection without answering;
    /// counts the requests it read.
    async fn hanging_up_target() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind(local(0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_failed_exchange_is_a_502_and_never_retried() {
        let (hanging_up, seen) = hanging_up_target().await;
        let app = TestApp::start("v1").await;
        let routes = vec![
            target("hangs-up", hanging_up),
            target("blue", local(app.port())),
        ];
        let (table, addr, _serving) = plane(routes, Settings::default()).await;
        let mut client = Connection::open(addr).await.unwrap();
        for n in 1..=3 {
            let response = get(&mut client, "/").await;
            assert_eq!(response.status(), 502);
            assert!(
                body(&response).contains("connection closed"),
                "{response:?}"
            );
            assert_eq!(seen.load(Ordering::SeqCst), n, "sent once, never again");
            assert_eq!(get(&mut client, "/").await.status(), 200);
        }
        assert_eq!(table.finished.lock().unwrap().len(), 6);

        // A target that is down: refused, 502, and nothing held against it afterwards.
        app.set(Behavior::Down);
        // Give the idle connection's task time to read that the app closed it: the pool then
        // drops it rather than fail a request on it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get(&mut client, "/").await.status(), 502);
        let response = get(&mut client, "/").await;
        assert_eq!(response.status(), 502);
        assert!(
            body(&response).contains("connection refused"),
            "{response:?}"
        );
        assert_eq!(header(&response, TARGET_GROUP_HEADER), group("blue"));
        app.set(Behavior::Healthy);
        assert_eq!(get(&mut client, "/").await.status(), 502);
        assert_eq!(get(&mut client, "/").await.status(), 200);
        assert_eq!(seen.load(Ordering::SeqCst), 5);
        assert_eq!((app.requests(), app.connections()), (4, 2));
        assert_eq!(table.finished.lock().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_slow_target_is_a_504_and_never_retried() {
        let app = TestApp::start("v1").await;
        app.set(Behavior::Slow(Duration::from_secs(1)));
        let settings = Settings {
            upstream_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let (table, addr, _serving) =
            plane(vec![target("blue", local(app.port()))], settings).await;
        let mut client = Connection::open(addr).await.unwrap();
        let started = Instant::now();
        let response = get(&mut client, "/").await;
        assert_eq!(response.status(), 504);
        assert!(body(&response).contains("did not answer within 200ms"));
        assert!(started.elapsed() < Duration::from_millis(800));
        assert_eq!(table.finished.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.connections(), 1, "no second attempt");
        app.set(Behavior::Healthy);
        assert_eq!(get(&mut client, "/").await.status(), 200);
    }

    #[tokio::test]
    async fn answers_fixed_and_unavailable_itself() {
        let routes = vec![
            Route::Fixed {
                status: 404,
                content_type: Some("text/plain".into()),
                body: "no such page".into(),
            },
            Route::Unavailable("target group blue has no registered target".into()),
            Route::Fixed {
                status: 1000,
                content_type: None,
                body: String::new(),
            },
        ];
        let (table, addr, _serving) = plane(routes, Settings::default()).await;
        let mut client = Connection::open(addr).await.unwrap();
        let response = client
            .exchange(request("POST", "/form", "a=1"))
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(header(&response, "content-type"), "text/plain");
        assert_eq!(body(&response), "no such page");
        let response = get(&mut client, "/").await;
        assert_eq!(response.status(), 503);
        assert_eq!(
            body(&response),
            "target group blue has no registered target\n"
        );
        assert_eq!(get(&mut client, "/").await.status(), 500);
        assert!(table.finished.lock().unwrap().is_empty());
        assert_eq!(table.routed.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn connects_to_loopback_targets_only() {
        let outside = SocketAddr::from(([192, 0, 2, 1], 80));
        let settings = Settings {
            upstream_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let (table, addr, _serving) = plane(vec![target("outside", outside)], settings).await;
        let mut client = Connection::open(addr).await.unwrap();
        let started = Instant::now();
        let response = get(&mut client, "/").await;
        assert_eq!(response.status(), 502);
        assert!(body(&response).contains("not a loopback address"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "never connected"
        );
        assert_eq!(header(&response, TARGET_HEADER), "192.0.2.1:80");
        assert_eq!(table.finished.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn ends_with_its_task() {
        let app = TestApp::start("v1").await;
        let (_table, addr, serving) =
            plane(vec![target("blue", local(app.port()))], Settings::default()).await;
        let mut client = Connection::open(addr).await.unwrap();
        assert_eq!(get(&mut client, "/").await.status(), 200);
        serving.abort();
        assert!(serving.await.unwrap_err().is_cancelled());
        assert!(client.exchange(request("GET", "/", "")).await.is_err());
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
