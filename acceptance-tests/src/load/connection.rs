//! One HTTP/1.1 connection over TCP, with no pool and no retry.
//!
//! Both the load generator's workers and the ALB emulator's upstream side need this: each must
//! see every exchange that fails (to count it, or to answer 502 for it), where a pooled client
//! library would re-send a request that failed on a reused connection and hide the failure.
//!
//! It is also where the project's safety rule is enforced for both: [`Connection::open`]
//! connects to loopback addresses only, and refuses anything else without touching the network.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

/// The largest body read in full. A larger one fails the exchange as
/// [`Transport::Malformed`]: the test apps answer a few dozen bytes.
pub const MAX_BODY: usize = 1 << 20;

/// Why an exchange got no complete HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The address is not a loopback one: refused without connecting.
    NotLoopback,
    /// Connecting failed (refused, unreachable...).
    Connect(io::ErrorKind),
    /// The connection failed under the exchange (reset, broken pipe...).
    Io(io::ErrorKind),
    /// The peer closed the connection before answering in full.
    Closed,
    /// No complete answer within the time allowed (set by the caller).
    Timeout,
    /// The answer was not HTTP/1.1 as hyper reads it, or its body exceeded [`MAX_BODY`].
    Malformed,
}

/// Short and stable, as failure tallies are keyed by it: `connection reset`, `timeout`.
impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::NotLoopback => f.write_str("not a loopback address, not connected"),
            Transport::Connect(kind) => write!(f, "connect: {kind}"),
            Transport::Io(kind) => write!(f, "{kind}"),
            Transport::Closed => f.write_str("connection closed"),
            Transport::Timeout => f.write_str("timeout"),
            Transport::Malformed => f.write_str("malformed answer"),
        }
    }
}

impl From<&hyper::Error> for Transport {
    fn from(e: &hyper::Error) -> Self {
        if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            return Transport::Malformed;
        }
        let mut source = std::error::Error::source(e);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<io::Error>() {
                return Transport::Io(io.kind());
            }
            source = error.source();
        }
        // An incomplete message, or a request the connection dropped as it closed.
        Transport::Closed
    }
}

/// Whether `ip` is on this machine's loopback: 127.0.0.0/8 or ::1 (also as ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// An open HTTP/1.1 connection with keep-alive. Dropping it closes the socket at once, even
/// with an exchange in flight (a timed-out one, say).
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The task that drives the socket.
    driver: AbortHandle,
}

impl Connection {
    /// Connects (with `TCP_NODELAY`, as latencies are measured) and handshakes. Must run on a
    /// tokio runtime, which drives the connection from then on.
    pub async fn open(addr: SocketAddr) -> Result<Connection, Transport> {
        if !is_loopback(addr.ip()) {
            return Err(Transport::NotLoopback);
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Transport::Connect(e.kind()))?;
        // Without it, a request written in two segments waits on the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Transport::from(&e))?;
        let driver = tokio::spawn(async move {
            // How it ends shows in the exchange that was in flight, if any.
            let _ = connection.await;
        })
        .abort_handle();
        Ok(Connection { sender, driver })
    }

    /// Whether the connection can take a request: false once the peer has closed it (seen as
    /// soon as the connection's task has read the close), then it never can again.
    pub async fn ready(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }

    /// Sends one request and reads its whole answer. Never re-sent: if it fails, that is the
    /// result. The connection may be used again after a success (keep-alive), unless the peer
    /// closes it; after an error, drop it.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, Transport> {
        self.sender.ready().await.map_err(|_| Transport::Closed)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| Transport::from(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<hyper::Error>() {
                Some(e) => Transport::from(e),
                None => Transport::Malformed,
            })?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        for ip in ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.0.2.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn refuses_other_addresses_without_connecting() {
        let addr = SocketAddr::from(([192, 0, 2, 1], 80));
        assert!(matches!(
            Connection::open(addr).await,
            Err(Transport::NotLoopback)
        ));
    }

    #[test]
    fn kinds_read_well_in_a_tally() {
        assert_eq!(
            Transport::Io(io::ErrorKind::ConnectionReset).to_string(),
            "connection reset"
        );
        assert_eq!(
            Transport::Connect(io::ErrorKind::ConnectionRefused).to_string(),
            "connect: connection refused"
        );
        assert_eq!(Transport::Timeout.to_string(), "timeout");
    }
}
