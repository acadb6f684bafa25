//! Debian's real OpenSSH server (`/usr/sbin/sshd`) on loopback, for the SSH transport to
//! HAProxy's Runtime API socket (the `direct-streamlocal@openssh.com` channel).
//!
//! [`Sshd::start`] is synchronous (std::process), like [`crate::moto::Moto::start`]: it blocks
//! the calling thread for the few milliseconds sshd needs, which is fine from a `#[tokio::test]`.
//! Each [`Sshd`] has its own temporary directory with:
//! * `host_key`, `host_key.pub`: a fresh ed25519 host key ([`Sshd::host_key_line`] is the pin);
//! * `client_key`, `client_key.pub`: a fresh ed25519 client key, authorized in `authorized_keys`
//!   ([`Sshd::private_key`]); more keys can be authorized with [`Sshd::authorize`];
//! * `other_host_key.pub`: a key sshd does NOT have ([`Sshd::wrong_host_key_line`]);
//! * `sshd_config`, `sshd.pid`; and room for Unix sockets ([`Sshd::dir`], short enough for the
//!   108-byte socket path limit).
//!
//! sshd listens on 127.0.0.1 only, allows public key authentication only, as the current user
//! (root in CI: `PermitRootLogin prohibit-password`), and allows stream-local forwarding. (It
//! keeps sshd's default `AllowTcpForwarding yes`: OpenSSH also denies `direct-streamlocal`
//! channels when `AllowTcpForwarding` is `no` or `remote`.)
//!
//! # No sshd outlives its test process
//! As for moto: sshd runs in its own process group, is spawned from a process-long keeper
//! thread with `PR_SET_PDEATHSIG(SIGKILL)`, and is stopped on drop (SIGTERM, up to 3 s, then
//! SIGKILL). sshd's per-connection children put themselves in their own sessions; they end when
//! their client disconnects (a client dropping its connection, or exiting).
//!
//! sshd runs with `-e` (logs on stderr): a thread drains it into a bounded ring buffer
//! ([`Sshd::recent_log`]), which start-up failures quote.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "ssh-keygen";
/// How long [`Sshd::start`] waits for sshd to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many of sshd's most recent stderr lines are kept.
const LOG_LINES: usize = 200;
const INSTALL_HINT: &str =
    "run `bash scripts/tools.sh install` in the repository (installs openssh-server)";

/// A running sshd on 127.0.0.1, stopped (and its directory removed) when dropped.
pub struct Sshd {
    child: Mutex<Child>,
    pid: u32,
    port: u16,
    dir: PathBuf,
    user: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Sshd {
    /// Generates the keys and the config, starts `sshd -D -e -f sshd_config` on a free loopback
    /// port and waits (at most 10 s) until it listens. Panics with what to do when sshd or
    /// ssh-keygen is missing, or sshd does not come up (quoting its log).
    pub fn start() -> Sshd {
        if !Path::new(SSHD).is_file() {
            panic!("{SSHD} not found; {INSTALL_HINT}");
        }
        let dir = crate::keeper::temp_dir("sshd")
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        keygen(&dir.join("host_key"), "sshd-fixture-host");
        keygen(&dir.join("client_key"), "sshd-fixture-client");
        keygen(&dir.join("other_host_key"), "sshd-fixture-other-host");
        let client_pub = read(&dir.join("client_key.pub"));
        write(&dir.join("authorized_keys"), &client_pub);
        privsep_dir();
        let user = current_user();

        // A free port can be taken by someone else between our probe and sshd's bind: retry.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = crate::keeper::free_port()
                .unwrap_or_else(|e| panic!("picking a free loopback port: {e}"));
            write(&dir.join("sshd_config"), &config(&dir, port));
            match launch(&dir, port, &user) {
                Ok(sshd) => return sshd,
                Err(Launch::AddressInUse(log)) => last_failure = log,
                Err(Launch::Failed(message)) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("{message}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "sshd could not bind a free loopback port in 5 tries; its last log:\n{last_failure}"
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1`
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The user to log in as: the one running the tests (sshd cannot switch users unless root).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host key's public line (`ssh-ed25519 AAAA... sshd-fixture-host`), the content of
    /// `host_key.pub`: what a configuration pins.
    pub fn host_key_line(&self) -> String {
        read(&self.dir.join("host_key.pub")).trim().to_string()
    }

    /// A valid ed25519 public key line that is NOT this server's host key.
    pub fn wrong_host_key_line(&self) -> String {
        read(&self.dir.join("other_host_key.pub"))
            .trim()
            .to_string()
    }

    /// The authorized client key, OpenSSH private key format, unencrypted.
    pub fn private_key(&self) -> String {
        read(&self.dir.join("client_key"))
    }

    /// A line of the private key's body: what a leak of the key would show.
    pub fn private_key_line(&self) -> String {
        self.private_key()
            .lines()
            .nth(1)
            .expect("a key body line")
            .to_string()
    }

    /// Adds a public key line to `authorized_keys` (sshd reads it at each authentication).
    pub fn authorize(&self, public_key_line: &str) {
        let path = self.dir.join("authorized_keys");
        let mut keys = read(&path);
        if !keys.ends_with('\n') {
            keys.push('\n');
        }
        keys.push_str(public_key_line.trim());
        keys.push('\n');
        write(&path, &keys);
    }

    /// This server's directory (keys, config, and room for test sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sshd listener's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// sshd's most recent stderr lines, oldest first.
    pub fn recent_log(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().cloned().collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        stop(child, self.pid);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Launch {
    /// sshd exited because the port was taken; its log.
    AddressInUse(String),
    Failed(String),
}

fn launch(dir: &Path, port: u16, user: &str) -> Result<Sshd, Launch> {
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = crate::keeper::spawn(cmd)
        .map_err(|e| Launch::Failed(format!("cannot run {SSHD}: {e}; {INSTALL_HINT}")))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
    let (ready_tx, ready_rx) = mpsc::channel();
    {
        let log = Arc::clone(&log);
        std::thread::Builder::new()
            .name(format!("sshd-{pid}-stderr"))
            .spawn(move || drain_stderr(stderr, &log, ready_tx))
            .map_err(|e| Launch::Failed(format!("cannot start a thread: {e}")))?;
    }
    // The owned value from here on: dropping it on failure stops sshd. The directory is the
    // caller's until success (it may retry with another port), so it is not removed here.
    let sshd = Sshd {
        child: Mutex::new(child),
        pid,
        port,
        dir: dir.to_path_buf(),
        user: user.to_string(),
        log,
    };
    let started = Instant::now();
    let outcome = loop {
        match ready_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => break Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err(None),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = sshd.child.lock().unwrap().try_wait() {
            break Err(Some(status));
        }
        if started.elapsed() > READY_TIMEOUT {
            break Err(None);
        }
    };
    match outcome {
        Ok(()) => Ok(sshd),
        Err(status) => {
            // Give the stderr thread a moment to collect sshd's last words.
            std::thread::sleep(Duration::from_millis(100));
            let tail = sshd.recent_log().join("\n");
            let mut sshd = sshd;
            stop(sshd.child.get_mut().unwrap(), pid);
            sshd.dir = PathBuf::new(); // not removed by this drop (see above)
            drop(sshd);
            if tail.contains("Address already in use") {
                return Err(Launch::AddressInUse(tail));
            }
            let what = match status {
                Some(status) => format!("exited ({status}) before listening"),
                None => format!("did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}"),
            };
            let mut hint = String::new();
            if tail.contains("privilege separation directory") {
                hint = " (sshd needs /run/sshd: `sudo mkdir -p /run/sshd`)".to_string();
            }
            Err(Launch::Failed(format!(
                "{SSHD} -D -e -f {} {what}{hint}; its stderr:\n{tail}",
                dir.join("sshd_config").display()
            )))
        }
    }
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "# sshd for acceptance tests (acceptance-tests/src/sshd.rs)\n\
         ListenAddress 127.0.0.1\n\
         Port {port}\n\
         HostKey {d}/host_key\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PubkeyAuthentication yes\n\
         AuthenticationMethods publickey\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitRootLogin prohibit-password\n\
         AllowStreamLocalForwarding yes\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         LoginGraceTime 30\n\
         LogLevel VERBOSE\n"
    )
}

/// `ssh-keygen -q -t ed25519 -N '' -C COMMENT -f PATH`
fn keygen(path: &Path, comment: &str) {
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SSH_KEYGEN}: {e}; {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{SSH_KEYGEN} -t ed25519 -f {} failed ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sshd needs its privilege separation directory (Debian's is /run/sshd, normally made by the
/// service unit). Created here when running as root; otherwise sshd's error says so.
fn privsep_dir() {
    let dir = Path::new("/run/sshd");
    // SAFETY: geteuid has no preconditions.
    if dir.is_dir() || unsafe { libc::geteuid() } != 0 {
        return;
    }
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => {}
        Err(_) if dir.is_dir() => {} // another test made it meanwhile
        Err(e) => panic!("creating {}: {e}", dir.display()),
    }
}

/// The effective user's login name.
fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage (or null); it is read at once, and
    // tests do not call getpwent-family functions concurrently in a way that matters here.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str() {
                return name.to_string();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| panic!("cannot tell the current user's name"))
}

fn stop(child: &mut Child, pid: u32) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // The whole process group: sshd is its leader (process_group(0)).
    let group = -(pid as libc::pid_t);
    // SAFETY: plain kill(2) on the group we created.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Reads sshd's stderr until EOF: signals `Server listening on ...`, keeps the last lines.
fn drain_stderr(stderr: impl Read, log: &Mutex<VecDeque<String>>, ready: mpsc::Sender<()>) {
    let mut ready = Some(ready);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("Server listening on") {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
        }
        let mut log = log.lock().unwrap();
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
