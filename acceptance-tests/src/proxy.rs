//! A fault-injecting HTTP proxy on loopback, in front of moto, for tests in which the ELBv2
//! endpoint goes down mid-apply, answers 5xx or throttling errors in bursts, or in which the
//! number of ELBv2 calls per action matters.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0`; point the provider's `endpoints { elbv2 }` (or
//! [`crate::elb::client`]) at [`FaultProxy::endpoint`]. Each request is a real HTTP/1.1 exchange
//! (keep-alive, `Content-Length` or chunked bodies, through hyper), forwarded to the upstream over
//! a pooled connection unless the current [`Fault`] says otherwise. Every request forwarded or
//! answered is counted under its `Action` ([`FaultProxy::calls`]), read from the form-encoded
//! body of the AWS Query protocol (`Action=DescribeListeners&Version=2015-12-01&...`).
//!
//! Like [`crate::app::TestApp`], the proxy runs on a thread of its own with its own runtime, so it
//! keeps serving whatever the test's runtime does, and [`FaultProxy::set`] is synchronous: when
//! `set(Fault::Down)` returns, the port refuses connections and every open connection is closed;
//! when a switch back returns, the same port accepts again.
//!
//! [`FaultProxy::start_with`] puts a [`Hook`] behind the faults: each request the fault lets
//! through goes to the hook as an [`Exchange`] (its action, decoded form and headers), which may
//! answer by itself or [`forward`](Exchange::forward) the request, or a rewritten body, to the
//! upstream. This is what the ALB emulator ([`crate::alb`]) is built on: faults stay in front of
//! it, and [`FaultProxy::calls`] counts what clients sent, not what the hook does.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// What the proxy does with the next requests. Switch with [`FaultProxy::set`] at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward every request to the upstream.
    Pass,
    /// The port refuses connections (the listener is closed) and open connections are closed.
    /// Switching to anything else binds the same port again.
    Down,
    /// Answer the next `times` requests with this HTTP status and an AWS Query error body (for
    /// 5xx: `Receiver` / `InternalFailure`; otherwise `Sender` / `InjectedFault`), then [`Pass`].
    ///
    /// [`Pass`]: Fault::Pass
    Status { code: u16, times: u32 },
    /// Answer the next `times` requests with HTTP 400 and the ELBv2 throttling error
    /// (`Sender` / `Throttling` / `Rate exceeded`), then [`Pass`](Fault::Pass).
    Throttle { times: u32 },
    /// Forward until `count` requests of `action` (e.g. `"ModifyListener"`) have been forwarded,
    /// then behave as [`Down`](Fault::Down). The response to the last of them still reaches the
    /// client, but only once the port refuses connections; the connection it came on, and every
    /// other one, is closed after its response. `count: 0` is `Down` at once.
    DownAfter { action: String, count: u32 },
    /// Every request of `action` is read and never answered, nor forwarded: the connection
    /// stays open and silent, as with a server or a middlebox that hangs. Other requests
    /// pass. Switching the fault leaves the requests already held unanswered.
    Hang { action: String },
}

/// A running proxy. Dropping it stops accepting and closes every connection.
pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
    /// Dropped to tell the proxy thread to stop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to `upstream` (`http://127.0.0.1:PORT`,
    /// e.g. [`crate::moto::Moto::endpoint`]), in [`Fault::Pass`]. Panics if it cannot listen.
    pub fn start(upstream: &str) -> FaultProxy {
        Self::launch(upstream, None)
    }

    /// Like [`start`](Self::start), with `hook` deciding what each request that the fault lets
    /// through gets (see [`Hook`]). Faults still apply first, and every request they let through
    /// is counted by [`calls`](Self::calls) whatever the hook answers.
    pub fn start_with(upstream: &str, hook: Arc<dyn Hook>) -> FaultProxy {
        Self::launch(upstream, Some(hook))
    }

    fn launch(upstream: &str, hook: Option<Arc<dyn Hook>>) -> FaultProxy {
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("binding a loopback port for the fault proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (commands_tx, commands) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            state: Mutex::new(Fault::Pass),
            calls: Mutex::new(BTreeMap::new()),
            commands: commands_tx,
            hook,
        });
        let (stop, stopped) = oneshot::channel();
        let server = Server {
            shared: shared.clone(),
            port,
            commands,
        };
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fault proxy runtime");
                runtime.block_on(server.run(listener, stopped));
            })
            .expect("starting the fault proxy thread");
        FaultProxy {
            shared,
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for the provider's `endpoints { elbv2 }`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switches the fault; it applies from the next request on. Returns once it is in force:
    /// after `set(Fault::Down)` the port refuses connections and no connection is open; after
    /// switching back the port accepts again.
    pub fn set(&self, fault: Fault) {
        *self.shared.state.lock().unwrap() = match fault {
            Fault::Status { times: 0, .. } | Fault::Throttle { times: 0 } => Fault::Pass,
            Fault::DownAfter { count: 0, .. } => Fault::Down,
            fault => fault,
        };
        let (tx, rx) = mpsc::channel();
        self.shared
            .commands
            .send(Command {
                close: Close::Abort,
                ack: Box::new(move || {
                    let _ = tx.send(());
                }),
            })
            .expect("the fault proxy thread is gone");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the fault proxy did not switch its port");
    }

    /// The fault in force now: what was set, with `times` counted down (and [`Fault::Pass`] once
    /// they are used up), or [`Fault::Down`] once a [`Fault::DownAfter`] has fired.
    pub fn fault(&self) -> Fault {
        self.shared.state.lock().unwrap().clone()
    }

    /// How many requests were forwarded or answered per `Action` since the start (or the last
    /// [`reset_calls`](Self::reset_calls)), e.g. `{"DescribeListeners": 3}`. A request refused
    /// or cut off while [`Fault::Down`] is not counted; one without an `Action` counts as
    /// `"(none)"`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The count for one action (0 when never called).
    pub fn calls_of(&self, action: &str) -> u64 {
        self.shared
            .calls
            .lock()
            .unwrap()
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_calls(&self) {
        self.shared.calls.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The proxy thread ends its runtime, and with it every connection, at once.
            let _ = thread.join();
        }
    }
}

/// What the handle, the server loop and the connections share.
struct Shared {
    upstream: String,
    state: Mutex<Fault>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// To the server loop: make the listener follow the state.
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    hook: Option<Arc<dyn Hook>>,
}

/// Tells the server loop to open or close the port as the state now says (read when the command
/// is handled, so that racing switches end where the state ends), then to call `ack`.
struct Command {
    close: Close,
    ack: Box<dyn FnOnce() + Send>,
}

/// How open connections are closed when the port closes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// At once, whatever they are doing ([`FaultProxy::set`]).
    Abort,
    /// Each after the response it is writing, if any ([`Fault::DownAfter`], whose last
    /// response must still get out).
    Graceful,
}

/// What one request gets.
enum Decision {
    /// Cut the connection without an answer (the port is down).
    Drop,
    /// Never answer ([`Fault::Hang`]).
    Hang,
    Forward {
        /// This was the request a [`Fault::DownAfter`] waited for.
        then_down: bool,
    },
    Answer {
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: String,
    },
}

impl Shared {
    fn decide(&self, action: &str) -> Decision {
        let mut state = self.state.lock().unwrap();
        let decision = match &mut *state {
            Fault::Pass => Decision::Forward { then_down: false },
            Fault::Down => return Decision::Drop,
            Fault::Status { code, times } => {
                let code = *code;
                *times -= 1;
                if *times == 0 {
                    *state = Fault::Pass;
                }
                if code >= 500 {
                    Decision::Answer {
                        status: code,
                        kind: "Receiver",
                        code: "InternalFailure",
                        message: "We encountered an internal error. Please try again.".into(),
                    }
                } else {
                    Decision::Answer {
                        status: code,
                        kind: "Sender",
                        code: "InjectedFault",
                        message: format!("HTTP {code} injected by the fault proxy"),
                    }
                }
            }
            Fault::Throttle { times } => {
                *times -= 1;
                if *times == 0 {
                    *state = Fault::Pass;
                }
                Decision::Answer {
                    status: 400,
                    kind: "Sender",
                    code: "Throttling",
                    message: "Rate exceeded".into(),
                }
            }
            Fault::Hang { action: wanted } if action == wanted => Decision::Hang,
            Fault::Hang { .. } => Decision::Forward { then_down: false },
            Fault::DownAfter {
                action: wanted,
                count,
            } => {
                if action == wanted {
                    *count -= 1;
                }
                if *count == 0 {
                    // Later requests are cut off from now on, even before the port closes.
                    *state = Fault::Down;
                    Decision::Forward { then_down: true }
                } else {
                    Decision::Forward { then_down: false }
                }
            }
        };
        drop(state);
        *self.calls.lock().unwrap().entry(action.into()).or_insert(0) += 1;
        decision
    }
}

/// The proxy thread's side.
struct Server {
    shared: Arc<Shared>,
    port: u16,
    commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
}

impl Server {
    async fn run(mut self, listener: std::net::TcpListener, mut stopped: oneshot::Receiver<()>) {
        let mut listener = Some(TcpListener::from_std(listener).expect("proxy listener"));
        let upstream = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("the proxy's upstream client");
        let forward = Arc::new(Forward {
            shared: self.shared.clone(),
            upstream,
        });
        // Bumped to close every connection gracefully.
        let closing = watch::Sender::new(0u64);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                Ok((stream, _)) = accept(listener.as_ref()) => {
                    // A connection that raced a DownAfter, before the port closed.
                    if *self.shared.state.lock().unwrap() == Fault::Down {
                        continue;
                    }
                    connections.spawn(serve(stream, forward.clone(), closing.subscribe()));
                }
                Some(command) = self.commands.recv() => {
                    let up = *self.shared.state.lock().unwrap() != Fault::Down;
                    if up && listener.is_none() {
                        listener = Some(self.bind().await);
                    } else if !up && listener.is_some() {
                        listener = None;
                        if command.close == Close::Graceful {
                            closing.send_modify(|n| *n += 1);
                        }
                    }
                    if !up && command.close == Close::Abort {
                        // Closed before `set` returns, so a client sees it at once.
                        connections.shutdown().await;
                    }
                    (command.ack)();
                }
                Some(_) = connections.join_next() => {}
            }
        }
    }

    /// Binds the proxy's port again (SO_REUSEADDR, as tokio sets it, makes this immediate).
    async fn bind(&self) -> TcpListener {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return listener,
                Err(e) if Instant::now() > deadline => {
                    panic!("the fault proxy cannot bind {addr} again: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// Accepts on a listener that may be closed (then never).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one client connection until it ends, or until `closing` changes (then it ends after
/// the response in progress, if any).
async fn serve(stream: TcpStream, forward: Arc<Forward>, mut closing: watch::Receiver<u64>) {
    let service = hyper::service::service_fn(move |request| {
        let forward = forward.clone();
        async move { forward.handle(request).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // A client that goes away, or a request cut off on purpose, ends the connection: no concern.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

struct Forward {
    shared: Arc<Shared>,
    upstream: reqwest::Client,
}

/// Headers that belong to one hop, not to the request or response.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::EXPECT,
    header::PROXY_AUTHORIZATION,
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out.remove("keep-alive");
    out.remove("proxy-connection");
    out
}

impl Forward {
    /// An `Err` makes hyper close the connection without an answer.
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Cut> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|_| Cut)?.to_bytes();
        let action = action_of(parts.uri.query(), &body);
        let then_down = match self.shared.decide(&action) {
            Decision::Drop => return Err(Cut),
            Decision::Hang => std::future::pending().await,
            Decision::Answer {
                status,
                kind,
                code,
                message,
            } => return Ok(Reply::error(status, kind, code, &message).into_response()),
            Decision::Forward { then_down } => then_down,
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let exchange = Exchange {
            form: decode_form(&body),
            action,
            // Host stays as the client sent it: it is part of what SigV4 signs.
            headers: end_to_end(&parts.headers),
            body,
            method: parts.method,
            url: format!("{}{path}", self.shared.upstream),
            client: self.upstream.clone(),
        };
        let reply = match &self.shared.hook {
            Some(hook) => hook.handle(exchange).await,
            None => exchange.forward().await,
        };
        let mut response = reply.into_response();
        if then_down {
            // The port closes before this response leaves, so the client's next connection is
            // refused; this connection closes after the response.
            let (tx, rx) = oneshot::channel();
            let command = Command {
                close: Close::Graceful,
                ack: Box::new(move || {
                    let _ = tx.send(());
                }),
            };
            if self.shared.commands.send(command).is_ok() {
                let _ = rx.await;
            }
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(response)
    }
}

/// Decides what a request that the fault let through gets: an answer of the hook's own, or
/// what the upstream answers to it (or to a rewritten body). It is called on the proxy's
/// thread, whose runtime also serves every connection: a hook with real work to do should run
/// it on a runtime of its own and await the result.
pub trait Hook: Send + Sync + 'static {
    fn handle(&self, exchange: Exchange) -> Pin<Box<dyn Future<Output = Reply> + Send>>;
}

/// One request as a [`Hook`] sees it, with the means to forward it to the upstream.
pub struct Exchange {
    action: String,
    form: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    method: Method,
    /// The upstream URL of this request (the upstream, then the request's path and query).
    url: String,
    client: reqwest::Client,
}

impl Exchange {
    /// The `Action`, as [`FaultProxy::calls`] counts it (`"(none)"` without one).
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The form-encoded body, decoded, in order.
    pub fn form(&self) -> &[(String, String)] {
        &self.form
    }

    /// The request's end-to-end headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value, when it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Sends the request as it came to the upstream and returns its answer (a 502
    /// `InternalFailure` when the upstream cannot be reached).
    pub async fn forward(&self) -> Reply {
        self.send(self.body.clone()).await
    }

    /// Sends the request with this body instead (same method, path and headers; the length is
    /// set anew). moto checks no signature, so a rewritten body passes.
    pub async fn forward_body(&self, body: String) -> Reply {
        self.send(Bytes::from(body)).await
    }

    async fn send(&self, body: Bytes) -> Reply {
        let sent = self
            .client
            .request(self.method.clone(), &self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await;
        let upstream = match sent {
            Ok(upstream) => upstream,
            Err(e) => return bad_gateway(&e),
        };
        let status = upstream.status().as_u16();
        let headers = end_to_end(upstream.headers());
        match upstream.bytes().await {
            Ok(body) => Reply {
                status,
                headers,
                body,
            },
            Err(e) => bad_gateway(&e),
        }
    }
}

/// An HTTP answer: the upstream's, or one a [`Hook`] or a fault makes.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// End-to-end headers only (the length is set from the body).
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// HTTP 200 with this XML body.
    pub fn xml(body: String) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        Reply {
            status: 200,
            headers,
            body: Bytes::from(body),
        }
    }

    /// An AWS Query (ELBv2) error: `<ErrorResponse><Error><Type/><Code/><Message/></Error>
    /// <RequestId/></ErrorResponse>`, with the request id in `x-amzn-RequestId` too.
    pub fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
        let request_id = request_id();
        let body = format!(
            r#"<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#,
            xml_escape(message)
        );
        let mut reply = Reply::xml(body);
        reply.status = status;
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            reply.headers.insert("x-amzn-requestid", id);
        }
        reply
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        *response.headers_mut() = self.headers;
        response
    }
}

/// The error that cuts a connection.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the fault proxy is down")
    }
}

impl std::error::Error for Cut {}

fn bad_gateway(e: &reqwest::Error) -> Reply {
    Reply::error(
        502,
        "Receiver",
        "InternalFailure",
        &format!("the fault proxy could not reach its upstream: {e}"),
    )
}

/// The `Action` of an AWS Query request: from the form-encoded body, else from the query
/// string; `"(none)"` without one.
fn action_of(query: Option<&str>, body: &[u8]) -> String {
    let find = |form: &[u8]| {
        decode_form(form)
            .into_iter()
            .find(|(key, _)| key == "Action")
            .map(|(_, value)| value)
    };
    find(body)
        .or_else(|| query.and_then(|q| find(q.as_bytes())))
        .filter(|action| !action.is_empty())
        .unwrap_or_else(|| "(none)".into())
}

/// An `application/x-www-form-urlencoded` body as its `(key, value)` pairs, in order. A pair
/// without `=` has an empty value; malformed escapes are kept as they are.
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(hex)) => {
                let digit = |b: u8| char::from(b).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(hex[0]) << 4 | digit(hex[1]));
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random UUID-shaped id, as AWS request ids are.
pub fn request_id() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap())
            .collect()
    };
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

/// Escapes text for an XML element.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_action() {
        assert_eq!(
            action_of(None, b"Action=DescribeListeners&Version=2015-12-01"),
            "DescribeListeners"
        );
        assert_eq!(
            action_of(
                None,
                b"Version=2015-12-01&ListenerArns.member.1=a%3Db&Action=ModifyListener"
            ),
            "ModifyListener"
        );
        assert_eq!(
            action_of(Some("Action=DescribeTags&x=1"), b""),
            "DescribeTags"
        );
        assert_eq!(action_of(None, b"Version=1"), "(none)");
        assert_eq!(action_of(None, b""), "(none)");
        assert_eq!(percent_decode("a%3Db+c%2"), "a=b c%2");
        assert_eq!(
            decode_form(b"A=1&B.member.1=x%2Fy&&C&D=%zz"),
            [("A", "1"), ("B.member.1", "x/y"), ("C", ""), ("D", "%zz")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn error_bodies_are_aws_query_errors() {
        let reply = Reply::error(400, "Sender", "Throttling", "Rate exceeded");
        assert_eq!(reply.status, 400);
        assert!(reply.headers.contains_key("x-amzn-requestid"));
        assert!(reply.text().contains("<Code>Throttling</Code>"));
        assert!(!reply.is_success());
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(xml_escape("a<b&c>"), "a&lt;b&amp;c&gt;");
    }
}
