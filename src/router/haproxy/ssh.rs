//! The SSH transport to HAProxy's Runtime API: one request/response exchange with a Unix socket
//! on a remote host, through an SSH `direct-streamlocal@openssh.com` channel (what
//! `ssh -L local:/remote/socket` uses), with [russh] doing all of the SSH protocol.
//!
//! * The server's host key must EQUAL the pinned `host_key` (an OpenSSH public key line; the
//!   algorithm and key blob are compared, the comment is ignored). Only the pinned key's algorithm
//!   is offered in the key exchange, so a server with several host keys presents the one pinned.
//!   russh checks the server's signature over the exchange hash before asking us about the key,
//!   and a mismatch ends the connection before authentication: nothing of ours is sent.
//! * Authentication: public key only, with an unencrypted private key (OpenSSH format as
//!   ssh-keygen writes it; PEM PKCS#1/PKCS#8 too). Ed25519, ECDSA and RSA (rsa-sha2-512/256).
//! * One exchange: open the channel, write the input, send EOF, read until the server's EOF or
//!   close. The whole of it (TCP connect, handshake, authentication, channel, I/O) is bounded by
//!   the caller's `timeout`.
//! * Session reuse: an authenticated session is kept for [`REUSE_FOR`] after its last use and
//!   reused by the next exchange with an identical [`SshTarget`] (same host, port, user, keys),
//!   so the several exchanges of one apply cost one handshake. A cached session that turns out
//!   dead before anything was written is replaced by a fresh connection transparently; nothing is
//!   ever re-sent once written. Idle sessions close themselves (russh's inactivity timeout).
//!
//! The private key is never logged, formatted or put into an error text.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

/// How long an idle authenticated session is kept for the next exchange with the same target.
pub const REUSE_FOR: Duration = Duration::from_secs(10);

const HOST_KEY_EXPECTED: &str =
    "an OpenSSH public key line such as `ssh-ed25519 AAAAC3Nza... host` (the content of the \
     host's /etc/ssh/ssh_host_ed25519_key.pub, or one line of `ssh-keyscan -t ed25519 HOST` \
     without the host name)";
const PRIVATE_KEY_EXPECTED: &str =
    "an unencrypted private key in OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`, as \
     `ssh-keygen -t ed25519 -N ''` writes it; PEM RSA/PKCS#8 keys are read too)";

/// Where and as whom to connect. `private_key` is the key's text (never printed: see `Debug`),
/// `None` where Terraform withholds a write-only key (a plan, a refresh, a destroy).
#[derive(Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_key: Option<String>,
    pub host_key: String,
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("private_key", &format_args!("<sensitive>"))
            .field("host_key", &self.host_key)
            .finish()
    }
}

impl SshTarget {
    /// `host:port`, with brackets around an IPv6 address.
    fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Checks that `line` is an OpenSSH public key line (`ALGORITHM BASE64 [COMMENT]`).
pub fn parse_host_key(line: &str) -> Result<(), String> {
    pinned_key(line).map(|_| ())
}

/// Checks that `pem` is a private key this transport can authenticate with.
pub fn parse_private_key(pem: &str) -> Result<(), String> {
    private_key(pem).map(|_| ())
}

/// Sends `input` to the Unix socket `socket_path` on the SSH host and returns everything the
/// socket sent back until it closed, failing once that exceeds `limit` bytes. Errors are
/// complete sentences for a Terraform diagnostic.
pub async fn exchange(
    target: &SshTarget,
    socket_path: &str,
    input: &[u8],
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let pinned = pinned_key(&target.host_key)?;
    let key = private_key(target.private_key.as_deref().ok_or(
        "ssh.private_key_wo is write-only: Terraform gives it to the provider only during an \
         apply, so HAProxy cannot be reached over SSH here",
    )?)?;
    let addr = target.addr();
    match tokio::time::timeout(
        timeout,
        exchange_inner(target, pinned, key, socket_path, input, timeout, limit),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the exchange with the Unix socket {socket_path} over SSH to {addr} did not finish \
             within {timeout:?} (TCP connect, SSH handshake, authentication and the socket's \
             answer all count)"
        )),
    }
}

async fn exchange_inner(
    target: &SshTarget,
    pinned: PublicKey,
    key: PrivateKey,
    socket_path: &str,
    input: &[u8],
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let addr = &target.addr();
    let cache_key = CacheKey::of(target);
    let mut channel = None;

    if let Some(handle) = cached(&cache_key) {
        // A cached session may have died (sshd restarted, network gone): bound the attempt and
        // fall back to a fresh connection. Nothing has been written to the socket at this point.
        match tokio::time::timeout(
            timeout / 3,
            handle.channel_open_direct_streamlocal(socket_path),
        )
        .await
        {
            Ok(Ok(ch)) => channel = Some((ch, handle)),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                return Err(channel_refused(addr, socket_path, &reason));
            }
            Ok(Err(_)) | Err(_) => forget(&cache_key),
        }
    }

    let (mut channel, handle) = match channel {
        Some(found) => found,
        None => {
            let handle = Arc::new(connect(target, addr, pinned, key, timeout).await?);
            let ch = handle
                .channel_open_direct_streamlocal(socket_path)
                .await
                .map_err(|e| match e {
                    russh::Error::ChannelOpenFailure(reason) => {
                        channel_refused(addr, socket_path, &reason)
                    }
                    e => format!(
                        "opening a channel to the Unix socket {socket_path} over SSH to {addr} \
                         failed: {e}"
                    ),
                })?;
            remember(cache_key.clone(), Arc::clone(&handle));
            (ch, handle)
        }
    };

    let io_failed = |e: russh::Error| {
        forget(&cache_key);
        format!("the exchange with the Unix socket {socket_path} over SSH to {addr} failed: {e}")
    };
    channel.data(input).await.map_err(io_failed)?;
    channel.eof().await.map_err(io_failed)?;
    let mut output = Vec::new();
    let mut complete = false;
    while let Some(msg) = channel.wait().await {
        match msg {
            russh::ChannelMsg::Data { data } => {
                output.extend_from_slice(&data);
                if output.len() > limit {
                    let _ = channel.close().await;
                    return Err(format!(
                        "the Unix socket {socket_path} over SSH to {addr} answered with more \
                         than {} KiB, more than any reply the provider reads",
                        limit / 1024
                    ));
                }
            }
            russh::ChannelMsg::Eof | russh::ChannelMsg::Close => {
                complete = true;
                break;
            }
            _ => {}
        }
    }
    let _ = channel.close().await;
    if !complete {
        // The session ended under the channel (its task is gone): what came so far may be cut.
        forget(&cache_key);
        return Err(format!(
            "the SSH connection to {addr} closed during the exchange with the Unix socket \
             {socket_path} (after {} bytes of the answer)",
            output.len()
        ));
    }
    touch(&cache_key, &handle);
    Ok(output)
}

/// TCP, handshake with the pinned host key, public key authentication.
async fn connect(
    target: &SshTarget,
    addr: &str,
    pinned: PublicKey,
    key: PrivateKey,
    timeout: Duration,
) -> Result<client::Handle<Pinned>, String> {
    let config = Arc::new(client::Config {
        // Idle sessions close themselves soon after they are no longer reused; an exchange that
        // is silent this long has already run out of its own timeout.
        inactivity_timeout: Some(REUSE_FOR.max(timeout) + Duration::from_secs(1)),
        preferred: russh::Preferred {
            key: Cow::Owned(host_key_algorithms(&pinned)),
            ..Default::default()
        },
        nodelay: true,
        ..Default::default()
    });
    let seen = Arc::new(Mutex::new(None));
    let handler = Pinned {
        pinned: pinned.clone(),
        seen: Arc::clone(&seen),
    };
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot connect to the SSH server at {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut handle = match client::connect_stream(config, tcp, handler).await {
        Ok(handle) => handle,
        Err(russh::Error::UnknownKey) => {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
            let seen = seen.unwrap_or_else(|| "a host certificate".to_string());
            return Err(format!(
                "the SSH host key of {addr} is {seen}, not the pinned ssh.host_key ({}); \
                 nothing was sent",
                pinned.fingerprint(HashAlg::Sha256)
            ));
        }
        Err(russh::Error::NoCommonAlgo {
            kind: russh::AlgorithmKind::Key,
            theirs,
            ..
        }) => {
            return Err(format!(
                "the SSH server at {addr} has no {} host key (it offers {}), so it cannot be \
                 the pinned ssh.host_key ({}); nothing was sent",
                pinned.algorithm().as_str(),
                theirs.join(", "),
                pinned.fingerprint(HashAlg::Sha256)
            ));
        }
        Err(e) => return Err(format!("the SSH handshake with {addr} failed: {e}")),
    };

    let hash = if key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| format!("the SSH handshake with {addr} failed: {e}"))?
            .flatten()
    } else {
        None
    };
    let user = &target.user;
    let refused = || {
        format!(
            "SSH authentication as {user} to {addr} was refused (is the key's public half in \
             authorized_keys?)"
        )
    };
    match handle
        .authenticate_publickey(
            user.as_str(),
            PrivateKeyWithHashAlg::new(Arc::new(key), hash),
        )
        .await
    {
        Ok(result) if result.success() => Ok(handle),
        Ok(_) => Err(refused()),
        Err(russh::Error::Disconnect | russh::Error::HUP) => Err(refused()),
        Err(e) => Err(format!(
            "SSH authentication as {user} to {addr} failed: {e}"
        )),
    }
}

fn channel_refused(addr: &str, socket_path: &str, reason: &russh::ChannelOpenFailure) -> String {
    let why = match reason {
        russh::ChannelOpenFailure::AdministrativelyProhibited => "administratively prohibited",
        russh::ChannelOpenFailure::ConnectFailed => "connect failed",
        russh::ChannelOpenFailure::UnknownChannelType => "unknown channel type",
        russh::ChannelOpenFailure::ResourceShortage => "resource shortage",
        russh::ChannelOpenFailure::Other { .. } => "refused",
    };
    format!(
        "the SSH server at {addr} refused a channel to the Unix socket {socket_path} ({why}): \
         sshd must allow it (`AllowStreamLocalForwarding yes`, the default; also \
         `AllowTcpForwarding` `yes` or `local`, no `DisableForwarding yes`, no `restrict` or \
         `no-port-forwarding` on the key in authorized_keys), and the socket path must exist \
         on that host and be writable by the SSH user"
    )
}

/// The host key algorithms to offer: only the pinned key's (RSA keys sign with SHA-2 first).
fn host_key_algorithms(pinned: &PublicKey) -> Vec<Algorithm> {
    match pinned.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Rsa { hash: None },
        ],
        other => vec![other],
    }
}

/// The russh client handler: accepts exactly the pinned host key, records any other.
struct Pinned {
    pinned: PublicKey,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                if key.key_data() == self.pinned.key_data() {
                    return Ok(true);
                }
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "{} {}",
                    key.algorithm().as_str(),
                    key.fingerprint(HashAlg::Sha256)
                ));
                Ok(false)
            }
            // Never advertised (Preferred::host_key_certificates is empty); refused all the same.
            PublicKeyOrCertificate::Certificate(_) => Ok(false),
        }
    }
}

fn pinned_key(line: &str) -> Result<PublicKey, String> {
    let lines: Vec<&str> = line
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = match lines.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "ssh.host_key is empty: expected {HOST_KEY_EXPECTED}"
            ))
        }
        _ => {
            return Err(format!(
                "ssh.host_key has {} lines: expected exactly one, {HOST_KEY_EXPECTED}",
                lines.len()
            ))
        }
    };
    if line.starts_with("-----BEGIN") {
        return Err(format!(
            "ssh.host_key looks like a private key or certificate in PEM form: expected the \
             host's PUBLIC key, {HOST_KEY_EXPECTED}"
        ));
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() >= 3 && Algorithm::new(fields[0]).is_err() && Algorithm::new(fields[1]).is_ok()
    {
        return Err(format!(
            "ssh.host_key looks like a known_hosts line: drop the host name(s) in front, \
             expected {HOST_KEY_EXPECTED}"
        ));
    }
    if fields.first().is_some_and(|a| a.contains("-cert-v01@")) {
        return Err(format!(
            "ssh.host_key is a host certificate, which is not supported: expected the host's \
             plain public key, {HOST_KEY_EXPECTED}"
        ));
    }
    PublicKey::from_openssh(line).map_err(|_| {
        format!("ssh.host_key is not a valid public key: expected {HOST_KEY_EXPECTED}")
    })
}

fn private_key(pem: &str) -> Result<PrivateKey, String> {
    // Tolerate indentation and CRLF from heredocs and files edited elsewhere.
    let normalized: String =
        pem.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .fold(String::new(), |mut acc, l| {
                acc.push_str(l);
                acc.push('\n');
                acc
            });
    if normalized.is_empty() {
        return Err(format!(
            "the private key is empty: expected {PRIVATE_KEY_EXPECTED}"
        ));
    }
    let encrypted = || {
        "the private key is protected by a passphrase, which is not supported: give an \
         unencrypted key (for a copy without a passphrase: `ssh-keygen -p -N '' -f KEYFILE`)"
            .to_string()
    };
    if normalized.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || normalized.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(encrypted());
    }
    if normalized.starts_with("ssh-") || normalized.starts_with("ecdsa-") {
        return Err(format!(
            "the private key looks like a PUBLIC key line: expected {PRIVATE_KEY_EXPECTED}"
        ));
    }
    match russh::keys::decode_secret_key(&normalized, None) {
        Ok(key) if key.is_encrypted() => Err(encrypted()),
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(encrypted()),
        // The inner error is not shown: no part of a key may reach an error text.
        Err(russh::keys::Error::UnsupportedKeyType { .. }) => Err(format!(
            "the private key is of an unsupported key type: expected an Ed25519, ECDSA or RSA \
             key, {PRIVATE_KEY_EXPECTED}"
        )),
        Err(_) => Err(format!(
            "the private key is not a private key this provider can read: expected \
             {PRIVATE_KEY_EXPECTED}"
        )),
    }
}

// ---- Session reuse ---------------------------------------------------------------------------

/// Sessions are shared only between identical targets: same address, user, pinned key and
/// private key. (The key text is part of the map key; the map is never printed.)
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    host: String,
    port: u16,
    user: String,
    host_key: String,
    private_key: Option<String>,
}

impl CacheKey {
    fn of(t: &SshTarget) -> CacheKey {
        CacheKey {
            host: t.host.clone(),
            port: t.port,
            user: t.user.clone(),
            host_key: t.host_key.trim().to_string(),
            private_key: t.private_key.clone(),
        }
    }
}

struct CachedSession {
    handle: Arc<client::Handle<Pinned>>,
    last_used: Instant,
}

fn sessions() -> std::sync::MutexGuard<'static, HashMap<CacheKey, CachedSession>> {
    static SESSIONS: OnceLock<Mutex<HashMap<CacheKey, CachedSession>>> = OnceLock::new();
    SESSIONS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A live session for `key` used within [`REUSE_FOR`]; drops expired and closed ones.
fn cached(key: &CacheKey) -> Option<Arc<client::Handle<Pinned>>> {
    let mut map = sessions();
    // A session whose task has ended (sshd closed it, its runtime shut down) reports closed.
    map.retain(|_, s| s.last_used.elapsed() < REUSE_FOR && !s.handle.is_closed());
    map.get(key).map(|s| Arc::clone(&s.handle))
}

fn remember(key: CacheKey, handle: Arc<client::Handle<Pinned>>) {
    sessions().insert(
        key,
        CachedSession {
            handle,
            last_used: Instant::now(),
        },
    );
}

/// Marks the session used now, if it is still the cached one for `key`.
fn touch(key: &CacheKey, handle: &Arc<client::Handle<Pinned>>) {
    if let Some(s) = sessions().get_mut(key) {
        if Arc::ptr_eq(&s.handle, handle) {
            s.last_used = Instant::now();
        }
    }
}

fn forget(key: &CacheKey) {
    sessions().remove(key);
}
