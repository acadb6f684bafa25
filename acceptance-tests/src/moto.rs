//! A moto server (`moto_server`, the fake AWS endpoint) on loopback for acceptance tests.
//!
//! [`Moto::start`] is synchronous (std::process): it blocks the calling thread for the ~0.5 s
//! moto needs to come up, which is fine from a `#[tokio::test]` too. [`shared`] gives one moto per
//! test process, started on first use.
//!
//! # No moto outlives its test process
//! * Every moto is spawned with `PR_SET_PDEATHSIG(SIGKILL)` (Linux `prctl`, set in a `pre_exec`
//!   hook): the kernel kills it when its parent dies, however the parent dies (normal exit, panic,
//!   `std::process::exit`, SIGKILL, nextest timeout). This is what stops the [`shared`] moto, whose
//!   `static` is never dropped; no `atexit` hook is involved.
//! * PDEATHSIG fires when the parent *thread* exits, not only the process. Test threads are short
//!   lived (and so are tokio's blocking threads), so every moto is spawned from the harness's
//!   one keeper thread ([`crate::keeper`]), which never returns: the signal therefore only
//!   comes at process exit.
//! * The `pre_exec` hook also checks that the parent is still the test process after `prctl`,
//!   which closes the race where the test dies between `fork` and `prctl`.
//! * An owned [`Moto`] is stopped on drop (SIGTERM to its process group, up to 3 s, then SIGKILL),
//!   which also runs while a panicking test unwinds.
//! * moto runs in its own process group (so a terminal's Ctrl-C reaches only the test, which then
//!   takes moto with it) and never holds the test's stdout/stderr (so neither cargo nor nextest
//!   waits on pipes a leftover would keep open).
//!
//! moto logs every request on stderr; a thread keeps draining it into a bounded ring buffer
//! ([`Moto::recent_log`]), since a full pipe would stall the server.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long [`Moto::start`] waits for moto to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many of moto's most recent stderr lines are kept.
const LOG_LINES: usize = 200;
const INSTALL_HINT: &str =
    "run `bash scripts/tools.sh` in the repository (installs moto[server]==5.2.5 into .venv) \
     or set MOTO_SERVER to a moto_server executable";

/// A running `moto_server` on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Mutex<Child>,
    pid: u32,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p 0` and waits (at most 10 s) until it listens.
    ///
    /// The executable is `$MOTO_SERVER` when set, else `.venv/bin/moto_server` under the workspace
    /// root, else `moto_server` on `PATH`. A missing moto is an `ErrorKind::NotFound` error whose
    /// message says what to install.
    pub fn start() -> io::Result<Moto> {
        let exe = find_moto_server()?;
        let mut cmd = Command::new(&exe);
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1");

        let started = Instant::now();
        let mut child = crate::keeper::spawn(cmd).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {}: {e}; {INSTALL_HINT}", exe.display()),
            )
        })?;
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let (port_tx, port_rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::Builder::new()
                .name(format!("moto-{pid}-stderr"))
                .spawn(move || drain_stderr(stderr, &log, port_tx))?;
        }
        // The owned value from here on: a failed start below drops it, which kills moto.
        let moto_without_port = |port| Moto {
            child: Mutex::new(child),
            pid,
            port,
            log: Arc::clone(&log),
        };

        let port = match port_rx.recv_timeout(READY_TIMEOUT) {
            Ok(port) => port,
            Err(_) => {
                let moto = moto_without_port(0);
                let status = moto.child.lock().unwrap().try_wait().ok().flatten();
                let what = match status {
                    Some(status) => format!("exited ({status}) before listening"),
                    None => format!("did not report its port within {READY_TIMEOUT:?}"),
                };
                let tail = moto.recent_log().join("\n");
                drop(moto);
                return Err(io::Error::other(format!(
                    "{} {what}; its stderr:\n{tail}\n(is moto[server] installed correctly? {INSTALL_HINT})",
                    exe.display()
                )));
            }
        };
        let moto = moto_without_port(port);
        // werkzeug prints the URL after binding; make sure the socket accepts before returning.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > READY_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("moto reported port {port} but does not accept connections"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // moto imports its EC2 models (~1 s of Python imports and data files) on the first EC2
        // request; start that now in the background, so that it overlaps whatever the test does
        // before its first fixture. Requests arriving meanwhile simply wait for it.
        let _ = std::thread::Builder::new()
            .name(format!("moto-{pid}-warm-up"))
            .spawn(move || {
                let _ = http_post(
                    port,
                    "/",
                    &[("Authorization", EC2_AUTH)],
                    "Action=DescribeVpcs&Version=2016-11-15",
                );
            });
        Ok(moto)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The moto process id (to check that it is gone, or to kill it on purpose).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Clears all of moto's state (`POST /moto-api/reset`). Never call this on [`shared`]: tests
    /// running in parallel use it. Blocking (a few ms), usable from async code.
    pub fn reset(&self) {
        let status = http_post(self.port, "/moto-api/reset", &[], "")
            .unwrap_or_else(|e| panic!("POST {}/moto-api/reset: {e}", self.endpoint()));
        assert!(
            (200..300).contains(&status),
            "POST {}/moto-api/reset: HTTP {status}",
            self.endpoint()
        );
    }

    /// moto's most recent stderr lines (its request log), oldest first.
    pub fn recent_log(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().cloned().collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // The whole process group: moto is its leader (process_group(0)).
        let group = -(self.pid as libc::pid_t);
        // SAFETY: plain kill(2) on the group we created.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// One moto for the whole test process, started on first use and killed by the kernel when the
/// process exits (PDEATHSIG; see the module docs). Under nextest (a process per test) this is one
/// moto per test. Tests share it in parallel and never reset it: each test creates its own VPC,
/// load balancer, target groups and listeners, so they cannot collide.
///
/// Panics, on every call, if moto could not be started.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Moto::start().map_err(|e| e.to_string())) {
        Ok(moto) => moto,
        Err(e) => panic!("cannot start the shared moto server: {e}"),
    }
}

fn find_moto_server() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "MOTO_SERVER={} does not exist; {INSTALL_HINT}",
                    path.display()
                ),
            ))
        };
    }
    let workspace_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = workspace_root.join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "moto_server not found (looked at $MOTO_SERVER, {}, and PATH); {INSTALL_HINT}",
            venv.display()
        ),
    ))
}

/// Reads moto's stderr until EOF: reports the port from werkzeug's
/// ` * Running on http://127.0.0.1:PORT` line, keeps the last lines in `log`.
fn drain_stderr(stderr: impl Read, log: &Mutex<VecDeque<String>>, port_tx: mpsc::Sender<u16>) {
    let mut port_tx = Some(port_tx);
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        if let Some(port) = port_tx.as_ref().and_then(|_| parse_port(&line)) {
            let _ = port_tx.take().unwrap().send(port);
        }
        let mut log = log.lock().unwrap();
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

fn parse_port(line: &str) -> Option<u16> {
    const MARK: &str = "Running on http://127.0.0.1:";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&p| p != 0)
}

/// A SigV4-looking Authorization header whose credential scope names EC2 in us-east-1: moto's
/// single server routes requests by it (it checks no signature).
pub const EC2_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, \
     SignedHeaders=host, Signature=0";

/// A small HTTP/1.1 POST to 127.0.0.1:port, returning the status code.
fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    BufReader::new(stream).read_line(&mut response)?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad HTTP response: {response:?}")))
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn parses_werkzeug_banner() {
        assert_eq!(
            parse_port(" * Running on http://127.0.0.1:35449"),
            Some(35449)
        );
        assert_eq!(
            parse_port("\x1b[1m * Running on http://127.0.0.1:5000\x1b[0m"),
            Some(5000)
        );
        assert_eq!(parse_port("Press CTRL+C to quit"), None);
        assert_eq!(parse_port(" * Running on http://127.0.0.1:0"), None);
    }
}
