//! Where the provider listens: a unix socket only its owner can reach, or a loopback TCP
//! port in go-plugin's range where unix sockets are not available, and the stream of
//! connections (TLS-wrapped under AutoMTLS) that tonic serves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::handshake::Address;

/// A bound listener and the address to put on the handshake line. Dropping it removes
/// the socket's private directory.
pub struct Bound {
    pub address: Address,
    listener: Listener,
    _private_dir: Option<PrivateDir>,
}

enum Listener {
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

/// A directory only the owner may enter, removed with everything in it on drop.
struct PrivateDir(std::path::PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Binds as go-plugin does for this platform: a unix socket in `PLUGIN_UNIX_SOCKET_DIR`
/// (else the temp dir), or TCP on 127.0.0.1 within `PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT`.
pub fn bind() -> std::io::Result<Bound> {
    #[cfg(unix)]
    {
        let dir = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        bind_unix(&dir)
    }
    #[cfg(not(unix))]
    {
        let port = |name: &str, default: u16| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        bind_tcp(
            port("PLUGIN_MIN_PORT", 10000),
            port("PLUGIN_MAX_PORT", 25000),
        )
    }
}

/// Creates the socket inside a fresh 0700 directory, so that no other user can reach it
/// even in the moment between bind and chmod; the socket itself is 0600 as well.
#[cfg(unix)]
pub fn bind_unix(parent: &std::path::Path) -> std::io::Result<Bound> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut attempt = 0;
    let dir = loop {
        let candidate = parent.join(format!(
            "tf-immutable-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&candidate) {
            Ok(()) => break PrivateDir(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let path = dir.0.join("provider.sock");
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Bound {
        address: Address::Unix(path),
        listener: Listener::Unix(listener),
        _private_dir: Some(dir),
    })
}

/// Binds the first free loopback port in `min..=max`.
pub fn bind_tcp(min: u16, max: u16) -> std::io::Result<Bound> {
    let mut last_err = None;
    for port in min..=max {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                return Ok(Bound {
                    address: Address::Tcp(listener.local_addr()?),
                    listener: Listener::Tcp(listener),
                    _private_dir: None,
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no port in {min}..={max}"),
        )
    }))
}

/// One accepted connection, plain or TLS, as tonic wants it.
pub struct Conn(Pin<Box<dyn Io>>);

trait Io: AsyncRead + AsyncWrite + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + 'static> Io for T {}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
}

impl Bound {
    /// Accepts connections in the background. TLS handshakes run in their own tasks so
    /// that a stalled or refused client never holds up the others; refused ones are logged
    /// and dropped.
    pub fn incoming(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> ReceiverStream<std::io::Result<Conn>> {
        let (tx, rx) = mpsc::channel(16);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            let _dir = self._private_dir;
            loop {
                let accepted: std::io::Result<Pin<Box<dyn Io>>> = match &self.listener {
                    #[cfg(unix)]
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| Box::pin(s) as _),
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        Box::pin(s) as _
                    }),
                };
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        continue;
                    }
                };
                let tx = tx.clone();
                match acceptor.clone() {
                    None => {
                        if tx.send(Ok(Conn(stream))).await.is_err() {
                            return;
                        }
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match acceptor.accept(stream).await {
                                Ok(tls) => {
                                    let _ = tx.send(Ok(Conn(Box::pin(tls)))).await;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "refused a connection without Terraform's client certificate")
                                }
                            }
                        });
                    }
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn unix_socket_is_reachable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempdir();
        let bound = bind_unix(&parent).unwrap();
        let Address::Unix(path) = bound.address.clone() else {
            panic!("expected a unix socket")
        };
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(path.starts_with(&parent));
        let dir = path.parent().unwrap().to_path_buf();
        drop(bound);
        assert!(
            !dir.exists(),
            "the socket directory is removed with the listener"
        );
        std::fs::remove_dir_all(parent).unwrap();
    }

    #[tokio::test]
    async fn tcp_binds_loopback_within_the_range() {
        let first = bind_tcp(23100, 23200).unwrap();
        let Address::Tcp(a) = first.address else {
            panic!()
        };
        assert!(a.ip().is_loopback());
        assert!((23100..=23200).contains(&a.port()));
        let second = bind_tcp(a.port(), 23200).unwrap();
        let Address::Tcp(b) = second.address else {
            panic!()
        };
        assert!(b.port() > a.port(), "a taken port is skipped");
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("listener-test-{}", fastrand::u64(..)));
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}
