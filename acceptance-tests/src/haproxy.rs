//! A real HAProxy (`haproxy -W`, master-worker) on loopback, started by the test, no root needed:
//! the router the provider drives through HAProxy's Runtime API (the stats socket).
//!
//! [`Haproxy::start`] writes a config into a temporary directory of its own:
//!
//! ```text
//! global
//!     stats socket <dir>/admin.sock mode 600 level admin   # level per settings, or none at all
//!     hard-stop-after 5s
//! defaults
//!     mode http
//!     timeout connect 1s / client 10s / server 10s / check 1s
//!     option idle-close-on-response                      # hitless reloads (see the notes)
//! frontend fe
//!     bind 127.0.0.1:<free port>
//!     default_backend <backend>
//! backend <backend>                                      # "web" by default; no servers
//!     balance roundrobin
//!     option httpchk GET <health path>                   # "/health" by default
//! ```
//!
//! and runs `haproxy -W -f <cfg> [-f <fragment dir>]`. Servers are added at run time, as the
//! provider does: `add server web/blue_1 127.0.0.1:PORT check inter 100ms weight 100`, then
//! `enable health web/blue_1` and `enable server web/blue_1` (a new server starts in maintenance).
//! `default-server` lines do not apply to runtime-added servers, so check timing (`inter`) belongs
//! on the `add server` line; the config's `timeout check` bounds each check. Runtime-added servers
//! vanish on [`reload`](Haproxy::reload): that is why the provider treats a reload as drift, and
//! why [`HaproxySettings::fragment_dir`] exists (HAProxy cannot reopen a section in a second file,
//! so a fragment that keeps servers must define the whole backend: see
//! [`HaproxySettings::define_backend`]).
//!
//! # Lifetime
//! HAProxy runs in its own process group (master and workers), with its output in files of the
//! temporary directory ([`Haproxy::log`]). Dropping the handle kills the group (SIGTERM, up to
//! 3 s, then SIGKILL) and removes the directory, unless the thread is panicking: then the
//! directory stays for a post-mortem and its path is printed. The master is also spawned with
//! `PR_SET_PDEATHSIG(SIGKILL)` from a thread that never ends (as [`crate::moto`] does), so no
//! HAProxy outlives a test process that dies without unwinding; its workers leave when their
//! master is gone.
//!
//! Everything here is synchronous and bounded (socket exchanges, start, reload, waits), and
//! usable from a `#[tokio::test]`: each call blocks for milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

/// How long [`Haproxy::start`] and [`Haproxy::reload`] wait for a worker to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// The bound of one Runtime API exchange ([`Haproxy::command`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The backend's name unless [`HaproxySettings::backend`] says otherwise.
pub const DEFAULT_BACKEND: &str = "web";
const INSTALL_HINT: &str = "run `bash scripts/tools.sh install` in the repository (installs \
     Debian's haproxy) or set HAPROXY to a haproxy executable";

/// The privilege of the stats socket (`level ...`): only `Admin` may change servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketLevel {
    Admin,
    Operator,
    User,
}

impl SocketLevel {
    fn keyword(self) -> &'static str {
        match self {
            SocketLevel::Admin => "admin",
            SocketLevel::Operator => "operator",
            SocketLevel::User => "user",
        }
    }
}

/// What [`Haproxy::start`] configures. `Default` is the config shown in the module docs.
#[derive(Clone, Debug)]
pub struct HaproxySettings {
    /// The backend the frontend sends everything to.
    pub backend: String,
    /// The path of the backend's HTTP health check (`option httpchk GET <path>`).
    pub health_path: String,
    /// The stats socket's level; `None`: no stats socket at all ([`Haproxy::socket_path`] then
    /// names a path that does not exist, and readiness is the frontend accepting connections).
    pub socket_level: Option<SocketLevel>,
    /// `timeout check` (in `defaults`): it bounds every health check, runtime-added servers'
    /// too.
    pub check_timeout: Duration,
    /// Lines added to `global`.
    pub global_lines: Vec<String>,
    /// Lines added to the backend section (ignored without [`define_backend`](Self::define_backend)).
    pub backend_lines: Vec<String>,
    /// Lines after everything else: start them with a section keyword (`backend other`).
    pub extra_config: Vec<String>,
    /// A directory passed as a second `-f`: HAProxy loads its `*.cfg` files in name order, at
    /// start and at every reload. Created if missing. Where the provider may keep its servers.
    pub fragment_dir: Option<PathBuf>,
    /// Whether the generated config defines the backend. Set it to false when a file in the
    /// fragment directory defines it (a second `backend web` is a config error).
    pub define_backend: bool,
}

impl Default for HaproxySettings {
    fn default() -> Self {
        HaproxySettings {
            backend: DEFAULT_BACKEND.to_string(),
            health_path: "/health".to_string(),
            socket_level: Some(SocketLevel::Admin),
            check_timeout: Duration::from_secs(1),
            global_lines: Vec::new(),
            backend_lines: Vec::new(),
            extra_config: Vec::new(),
            fragment_dir: None,
            define_backend: true,
        }
    }
}

/// One server's row of `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStat {
    pub name: String,
    /// `127.0.0.1`
    pub addr: String,
    pub port: u16,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`; while a check sequence is under way
    /// `UP 1/3` (going down) or `DOWN 1/2` (going up).
    pub status: String,
    /// The effective weight (stat `weight`).
    pub weight: u32,
    /// The weight set in the config or by `set server ... weight` (stat `uweight`; `weight`
    /// where HAProxy has no such column).
    pub uweight: u32,
    /// `L7OK`, `L4CON`, `L7STS`, `INI` (no check finished yet), ... (without the `* ` that marks
    /// a check in progress); empty without checks.
    pub check_status: String,
    /// The HTTP status of the last check, if any.
    pub check_code: Option<u16>,
    /// Current sessions (open requests): what a drain waits on.
    pub scur: u64,
    /// Sessions so far: in HTTP mode, requests this server was sent (health checks aside).
    pub stot: u64,
    pub hrsp_2xx: u64,
    pub hrsp_5xx: u64,
    /// Connection errors to this server.
    pub econ: u64,
    /// Response errors from this server.
    pub eresp: u64,
}

impl ServerStat {
    /// Up, with the last check passed (not merely the optimistic state a new server starts in).
    pub fn is_up(&self) -> bool {
        self.status == "UP" && matches!(self.check_status.as_str(), "L7OK" | "L6OK" | "L4OK" | "")
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

/// The backend's own row of `show stat` (`svname` `BACKEND`): totals over all its servers,
/// plus what no server answered (a 503 for want of servers counts in `hrsp_5xx` here only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStat {
    /// `UP` while some server is up, `DOWN` when all are down or in maintenance; an empty
    /// backend (no server at all) shows `UP` on 2.6.
    pub status: String,
    /// The sum of the effective weights of its up servers.
    pub weight: u32,
    pub scur: u64,
    /// Requests the backend handled, answered by a server or not.
    pub stot: u64,
    pub hrsp_2xx: u64,
    pub hrsp_5xx: u64,
    pub econ: u64,
    pub eresp: u64,
}

/// A running HAProxy. See the module's documentation.
pub struct Haproxy {
    child: Child,
    pid: u32,
    exe: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    frontend: SocketAddr,
    settings: HaproxySettings,
}

impl Haproxy {
    /// Starts HAProxy and waits (at most [`READY_TIMEOUT`]) until it answers: `show info` on the
    /// socket, or, without one, a connection to the frontend. Panics with HAProxy's output if it
    /// does not; see [`try_start`](Self::try_start).
    pub fn start(settings: HaproxySettings) -> Haproxy {
        Self::try_start(settings).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start), with a failure (no haproxy, a bad config, no answer in time) as
    /// an error whose text includes HAProxy's output. A free port taken by someone else between
    /// choosing it and HAProxy's bind is retried on another one.
    pub fn try_start(settings: HaproxySettings) -> Result<Haproxy, String> {
        let exe = find_haproxy()?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = crate::keeper::free_port()
                .map_err(|e| format!("finding a free loopback port: {e}"))?;
            match Self::launch(&exe, &settings, port) {
                Ok(haproxy) => return Ok(haproxy),
                Err(e) if e.contains("cannot bind socket") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn launch(exe: &Path, settings: &HaproxySettings, port: u16) -> Result<Haproxy, String> {
        let dir = crate::keeper::temp_dir("haproxy")
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let config = dir.join("haproxy.cfg");
        let frontend = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let text = config_text(settings, &dir.join("admin.sock"), frontend);
        std::fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("-W").arg("-f").arg(&config);
        if let Some(fragments) = &settings.fragment_dir {
            std::fs::create_dir_all(fragments)
                .map_err(|e| format!("creating {}: {e}", fragments.display()))?;
            cmd.arg("-f").arg(fragments);
        }
        let output = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map(Stdio::from)
                .map_err(|e| format!("creating {}/{name}: {e}", dir.display()))
        };
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(output("stdout.log")?)
            .stderr(output("stderr.log")?);
        let child = crate::keeper::spawn(cmd).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            format!("cannot run {}: {e}; {INSTALL_HINT}", exe.display())
        })?;
        // Owned from here on: a failed start below drops it, which kills HAProxy.
        let mut haproxy = Haproxy {
            pid: child.id(),
            child,
            exe: exe.to_path_buf(),
            dir,
            config,
            frontend,
            settings: settings.clone(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                let log = haproxy.log();
                haproxy.discard();
                return Err(format!(
                    "haproxy exited ({status}) at start; its output:\n{log}"
                ));
            }
            if haproxy.answers() {
                return Ok(haproxy);
            }
            if Instant::now() >= deadline {
                let log = haproxy.log();
                haproxy.discard();
                return Err(format!(
                    "haproxy did not answer within {READY_TIMEOUT:?}; its output:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a worker answers: `show info` with a `Pid`, or the frontend accepting.
    fn answers(&self) -> bool {
        if self.settings.socket_level.is_some() {
            self.try_command("show info")
                .map(|info| parse_info(&info).contains_key("Pid"))
                .unwrap_or(false)
        } else {
            TcpStream::connect_timeout(&self.frontend, Duration::from_millis(200)).is_ok()
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn frontend_url(&self) -> String {
        format!("http://{}", self.frontend)
    }

    pub fn frontend_addr(&self) -> SocketAddr {
        self.frontend
    }

    /// `<dir>/admin.sock`; it exists only if the settings asked for a socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    /// `unix:///tmp/.../admin.sock`: the Runtime API address, as the provider's config names it.
    pub fn runtime_api(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    /// The backend's name.
    pub fn backend(&self) -> &str {
        &self.settings.backend
    }

    pub fn settings(&self) -> &HaproxySettings {
        &self.settings
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The temporary directory (config, socket, output).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The master's process id (also the process group's).
    pub fn master_pid(&self) -> u32 {
        self.pid
    }

    /// The current worker's process id (`show info`'s `Pid`).
    pub fn worker_pid(&self) -> u32 {
        self.info()
            .get("Pid")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("show info has no Pid; output:\n{}", self.log()))
    }

    /// HAProxy's stdout and stderr so far (the master's notices and alerts).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let (out, err) = (read("stdout.log"), read("stderr.log"));
        if out.is_empty() {
            err
        } else {
            format!("{out}{err}")
        }
    }

    /// One Runtime API exchange: sends `line` (commands separated by `;`), returns everything
    /// HAProxy answers until it closes, within [`COMMAND_TIMEOUT`]. Panics if the socket cannot
    /// be used; see [`try_command`](Self::try_command).
    pub fn command(&self, line: &str) -> String {
        self.try_command(line).unwrap_or_else(|e| {
            panic!(
                "haproxy runtime API {:?}: {e}; its output:\n{}",
                line,
                self.log()
            )
        })
    }

    /// [`command`](Self::command), with I/O failures (no socket, a timeout) as errors.
    pub fn try_command(&self, line: &str) -> io::Result<String> {
        runtime_exchange(&self.socket_path(), line, COMMAND_TIMEOUT)
    }

    /// `show info` as name → value (`Version`, `Pid`, `Uptime_sec`, ...).
    pub fn info(&self) -> BTreeMap<String, String> {
        parse_info(&self.command("show info"))
    }

    /// The version of the running HAProxy (`2.6.12-1+deb12u4`): from `show info`, or from
    /// `haproxy -v` without a socket.
    pub fn version(&self) -> String {
        if self.settings.socket_level.is_some() {
            if let Some(v) = self.info().get("Version") {
                return v.clone();
            }
        }
        binary_version(&self.exe).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `show stat` rows of the backend's servers, in HAProxy's order.
    pub fn servers(&self) -> Vec<ServerStat> {
        let stat = self.command("show stat");
        parse_stat(&stat)
            .into_iter()
            .filter(|row| {
                row.text("pxname") == self.backend()
                    && !matches!(row.text("svname"), "BACKEND" | "FRONTEND")
            })
            .map(|row| row.server())
            .collect()
    }

    /// The server called `name` in the backend, if there is one.
    pub fn server(&self, name: &str) -> Option<ServerStat> {
        self.servers().into_iter().find(|s| s.name == name)
    }

    /// The backend's `BACKEND` row of `show stat`.
    pub fn backend_stat(&self) -> BackendStat {
        let stat = self.command("show stat");
        parse_stat(&stat)
            .into_iter()
            .find(|row| row.text("pxname") == self.backend() && row.text("svname") == "BACKEND")
            .map(|row| row.backend())
            .unwrap_or_else(|| {
                panic!(
                    "show stat has no BACKEND row for {}:\n{stat}",
                    self.backend()
                )
            })
    }

    /// The summed [`uweight`](ServerStat::uweight)s of the servers named `blue_*` and `green_*`:
    /// the weights the provider set.
    pub fn weights_by_colour(&self) -> (u32, u32) {
        let servers = self.servers();
        let sum = |prefix: &str| {
            servers
                .iter()
                .filter(|s| s.name.starts_with(prefix))
                .map(|s| s.uweight)
                .sum()
        };
        (sum("blue_"), sum("green_"))
    }

    /// Requests sent to each server so far ([`ServerStat::stot`]), by server name. Two readings
    /// taken around a load give what each server served of it ([`served_between`]); with the
    /// apps started under the servers' names (`TestApp::start("blue_1")`), that is
    /// `LoadReport::served_by` counted by HAProxy.
    pub fn served_by_server(&self) -> BTreeMap<String, u64> {
        self.servers()
            .into_iter()
            .map(|s| (s.name, s.stot))
            .collect()
    }

    /// Adds a server the way the provider does (one line: `add server` with `check inter 100ms`
    /// and the weight, `enable health`, `enable server`); panics unless HAProxy registered it.
    /// Returns at once: see [`wait_server`](Self::wait_server) for its first check.
    pub fn add_server(&self, name: &str, addr: &str, weight: u32) -> String {
        let b = self.backend();
        let reply = self.command(&format!(
            "add server {b}/{name} {addr} check inter 100ms weight {weight}; \
             enable health {b}/{name}; enable server {b}/{name}"
        ));
        assert!(
            reply.contains("New server registered."),
            "add server {b}/{name} {addr}: {reply:?}"
        );
        reply
    }

    /// Waits (polling `show stat`, at most `timeout`) until the server `name` satisfies `ready`;
    /// returns its row. Panics with the last row seen otherwise.
    pub fn wait_server(
        &self,
        name: &str,
        timeout: Duration,
        ready: impl Fn(&ServerStat) -> bool,
    ) -> ServerStat {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.server(name);
            if let Some(server) = seen.as_ref().filter(|s| ready(s)) {
                return server.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "server {}/{name} not ready within {timeout:?}; last seen: {seen:?}",
                    self.backend()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`wait_server`](Self::wait_server) until [`ServerStat::is_up`].
    pub fn wait_up(&self, name: &str, timeout: Duration) -> ServerStat {
        self.wait_server(name, timeout, ServerStat::is_up)
    }

    /// Reloads (SIGUSR2 to the master, which re-reads the config and the fragment directory and
    /// starts a new worker) and waits, at most [`READY_TIMEOUT`], until the new worker answers.
    /// Runtime-added servers are gone afterwards. Panics if the reload failed (HAProxy then
    /// keeps the old worker); see [`try_reload`](Self::try_reload).
    pub fn reload(&self) {
        self.try_reload().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`reload`](Self::reload), with a failed reload (a bad fragment) as an error whose text
    /// includes HAProxy's output since the signal.
    ///
    /// A master that has only just started (its first worker answers already) may swallow a
    /// SIGUSR2 without reloading (measured on 2.6.12: about one start in two when signalled at
    /// once; never after 0.1 s). So while the master has not logged `Reloading HAProxy`, the
    /// signal is sent again every 250 ms, at most 4 times in all: a late first signal can then
    /// make a second reload right after the first, which changes nothing a test can see.
    pub fn try_reload(&self) -> Result<(), String> {
        let old_worker = self.settings.socket_level.map(|_| self.worker_pid());
        let old_len = std::fs::metadata(self.dir.join("stderr.log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let since = || self.log_since(old_len);
        let signal = || {
            // SAFETY: plain kill(2) on our own child.
            if unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGUSR2) } != 0 {
                return Err(format!(
                    "SIGUSR2 to haproxy: {}",
                    io::Error::last_os_error()
                ));
            }
            Ok(())
        };
        signal()?;
        let (mut signals, mut last_signal) = (1, Instant::now());
        let deadline = Instant::now() + READY_TIMEOUT;
        // Answers in a row from a new worker: for a moment after the new worker answers,
        // the old one may still take a connection to the stats socket (seen in CI).
        let mut new_answers = 0;
        loop {
            let log = since();
            if log.contains("Loading failure")
                || log.contains("Reexecuting Master process in waitpid mode")
            {
                return Err(format!(
                    "haproxy reload failed; its output since the signal:\n{log}"
                ));
            }
            let done = match old_worker {
                Some(old) => {
                    let answered_new = self
                        .try_command("show info")
                        .ok()
                        .and_then(|info| parse_info(&info).get("Pid").and_then(|p| p.parse().ok()))
                        .is_some_and(|pid: u32| pid != old);
                    new_answers = if answered_new { new_answers + 1 } else { 0 };
                    new_answers >= 3
                }
                // Without a socket: the master says so.
                None => log.contains("Loading success") && self.answers(),
            };
            if done {
                return Ok(());
            }
            if !log.contains("Reloading HAProxy")
                && signals < 4
                && last_signal.elapsed() >= Duration::from_millis(250)
            {
                signal()?;
                (signals, last_signal) = (signals + 1, Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no new haproxy worker answered within {READY_TIMEOUT:?} of SIGUSR2; \
                     its output since:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_since(&self, offset: usize) -> String {
        let err = std::fs::read(self.dir.join("stderr.log")).unwrap_or_default();
        String::from_utf8_lossy(err.get(offset..).unwrap_or_default()).into_owned()
    }

    /// Kills the process group and waits for the master; idempotent.
    fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // Workers leave with their master; a straggler still gets the group's SIGKILL.
            // SAFETY: plain kill(2) on the group we created (its leader is only just gone).
            unsafe { libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL) };
            return;
        }
        let group = -(self.pid as libc::pid_t);
        // SAFETY: plain kill(2) on the group we created (process_group(0)).
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above; also takes any worker still finishing.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Stops HAProxy and removes the directory (a failed start: the error has the output).
    fn discard(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "haproxy fixture: keeping {} (config, output) for the failed test",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What each server served between two readings of [`Haproxy::served_by_server`] (servers
/// added in between count from zero; removed ones are left out).
pub fn served_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, n)| {
            let was = before.get(name).copied().unwrap_or(0);
            (name.clone(), n.saturating_sub(was))
        })
        .collect()
}

/// The HAProxy to run: `$HAPROXY` if set, else `haproxy` on `PATH`, else `/usr/sbin/haproxy`.
pub fn find_haproxy() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("HAPROXY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "HAPROXY={} does not exist; {INSTALL_HINT}",
                path.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("haproxy"))
            .find(|p| p.is_file())
    });
    let debian = PathBuf::from("/usr/sbin/haproxy");
    on_path
        .or_else(|| debian.is_file().then_some(debian))
        .ok_or_else(|| {
            format!("haproxy not found (looked at $HAPROXY, PATH and /usr/sbin/haproxy); {INSTALL_HINT}")
        })
}

/// The version `haproxy -v` prints (`2.6.12-1+deb12u4`).
pub fn binary_version(exe: &Path) -> Result<String, String> {
    let out = Command::new(exe)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} -v: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("HAProxy version "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| format!("{} -v printed {text:?}", exe.display()))
}

/// One exchange on a Runtime API socket: `line` and a newline out, everything until EOF back,
/// all within `timeout`.
pub fn runtime_exchange(socket: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                )
            })
    };
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no end of answer within {timeout:?}"),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// `Name: value` lines (`show info`).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One row of `show stat`, by column name.
pub struct StatRow {
    columns: std::sync::Arc<HashMap<String, usize>>,
    values: Vec<String>,
}

impl StatRow {
    /// The value of a column; empty if the column is absent or empty.
    pub fn text(&self, column: &str) -> &str {
        self.columns
            .get(column)
            .and_then(|&i| self.values.get(i))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// A numeric column; 0 if absent or empty.
    pub fn number(&self, column: &str) -> u64 {
        self.text(column).parse().unwrap_or(0)
    }

    fn server(&self) -> ServerStat {
        let addr = self.text("addr");
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
        let weight = self.number("weight") as u32;
        ServerStat {
            name: self.text("svname").to_string(),
            addr: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: port.parse().unwrap_or(0),
            status: self.text("status").to_string(),
            weight,
            uweight: if self.columns.contains_key("uweight") {
                self.number("uweight") as u32
            } else {
                weight
            },
            check_status: self
                .text("check_status")
                .trim_start_matches("* ")
                .to_string(),
            check_code: self.text("check_code").parse().ok(),
            scur: self.number("scur"),
            stot: self.number("stot"),
            hrsp_2xx: self.number("hrsp_2xx"),
            hrsp_5xx: self.number("hrsp_5xx"),
            econ: self.number("econ"),
            eresp: self.number("eresp"),
        }
    }

    fn backend(&self) -> BackendStat {
        BackendStat {
            status: self.text("status").to_string(),
            weight: self.number("weight") as u32,
            scur: self.number("scur"),
            stot: self.number("stot"),
            hrsp_2xx: self.number("hrsp_2xx"),
            hrsp_5xx: self.number("hrsp_5xx"),
            econ: self.number("econ"),
            eresp: self.number("eresp"),
        }
    }
}

/// `show stat` CSV (`# pxname,svname,...` then one row per proxy and server) into rows.
pub fn parse_stat(text: &str) -> Vec<StatRow> {
    let mut lines = text.lines();
    let Some(header) = lines.find_map(|l| l.strip_prefix("# ")) else {
        return Vec::new();
    };
    let columns: HashMap<String, usize> = csv_fields(header)
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let columns = std::sync::Arc::new(columns);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| StatRow {
            columns: columns.clone(),
            values: csv_fields(l),
        })
        .collect()
}

/// Splits one CSV line; HAProxy quotes values holding a comma or a quote (`"a ""b"", c"`).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn config_text(settings: &HaproxySettings, socket: &Path, frontend: SocketAddr) -> String {
    let mut c = String::new();
    let mut line = |l: &str| {
        c.push_str(l);
        c.push('\n');
    };
    line("global");
    if let Some(level) = settings.socket_level {
        line(&format!(
            "    stats socket {} mode 600 level {}",
            socket.display(),
            level.keyword()
        ));
    }
    line("    hard-stop-after 5s");
    for l in &settings.global_lines {
        line(&format!("    {l}"));
    }
    line("");
    line("defaults");
    line("    mode http");
    line("    timeout connect 1s");
    line("    timeout client 10s");
    line("    timeout server 10s");
    line(&format!(
        "    timeout check {}ms",
        settings.check_timeout.as_millis().max(1)
    ));
    line("    option idle-close-on-response");
    line("");
    line("frontend fe");
    line(&format!("    bind {frontend}"));
    line(&format!("    default_backend {}", settings.backend));
    if settings.define_backend {
        line("");
        line(&format!("backend {}", settings.backend));
        line("    balance roundrobin");
        line(&format!("    option httpchk GET {}", settings.health_path));
        for l in &settings.backend_lines {
            line(&format!("    {l}"));
        }
    }
    if !settings.extra_config.is_empty() {
        line("");
        for l in &settings.extra_config {
            line(l);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_csv() {
        assert_eq!(csv_fields("a,,b"), ["a", "", "b"]);
        assert_eq!(csv_fields(r#"x,"a, ""b""",y"#), ["x", r#"a, "b""#, "y"]);
    }

    #[test]
    fn parses_stat_rows_by_header() {
        let text =
            "# pxname,svname,scur,stot,status,weight,check_status,check_code,addr,uweight,\n\
                    web,blue_1,2,17,UP,100,L7OK,200,127.0.0.1:8080,100,\n\
                    web,BACKEND,2,20,UP,100,,,,,\n\n";
        let rows = parse_stat(text);
        assert_eq!(rows.len(), 2);
        let s = rows[0].server();
        assert_eq!(
            (s.name.as_str(), s.addr.as_str(), s.port),
            ("blue_1", "127.0.0.1", 8080)
        );
        assert_eq!((s.scur, s.stot, s.weight, s.uweight), (2, 17, 100, 100));
        assert_eq!(s.check_code, Some(200));
        assert!(s.is_up());
        let b = rows[1].backend();
        assert_eq!((b.status.as_str(), b.stot), ("UP", 20));
    }

    #[test]
    fn config_has_what_the_docs_say() {
        let text = config_text(
            &HaproxySettings::default(),
            Path::new("/tmp/x/admin.sock"),
            "127.0.0.1:8000".parse().unwrap(),
        );
        for want in [
            "stats socket /tmp/x/admin.sock mode 600 level admin",
            "hard-stop-after 5s",
            "option idle-close-on-response",
            "bind 127.0.0.1:8000",
            "default_backend web",
            "backend web",
            "balance roundrobin",
            "option httpchk GET /health",
            "timeout check 1000ms",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let bare = HaproxySettings {
            socket_level: None,
            define_backend: false,
            ..Default::default()
        };
        let text = config_text(&bare, Path::new("/s"), "127.0.0.1:1".parse().unwrap());
        assert!(
            !text.contains("stats socket") && !text.contains("\nbackend web"),
            "{text}"
        );
    }
}
