//! A real Prometheus (Debian's `prometheus` 2.42) on loopback, started by the test: the metrics
//! source a metrics-gated release is judged by, with its error ratio and latency computed as a
//! real Prometheus computes them (scrapes, `rate`, `histogram_quantile`), not as the app counts.
//!
//! [`Prometheus::start`] writes a config into a temporary directory of its own:
//!
//! ```text
//! global:
//!   scrape_interval: 1s
//!   scrape_timeout: 1s
//!   evaluation_interval: 1s
//! scrape_configs:
//!   - job_name: app
//!     file_sd_configs:
//!       - files: [<dir>/targets.json]
//!         refresh_interval: 1s
//! ```
//!
//! and runs `prometheus --config.file=<dir>/prometheus.yml --storage.tsdb.path=<dir>/data
//! --web.listen-address=127.0.0.1:<free port> --log.level=warn`. Targets are added while it runs
//! ([`Prometheus::scrape`]) by rewriting `targets.json` (a new file renamed over the old one),
//! which Prometheus watches, and re-reads every second besides. Prometheus hands what it
//! discovered to its scrapers on a 5 s tick of its own (fixed in 2.42; a SIGHUP does not hurry
//! it), so a target is first scraped 5 to 10 s after it is added: give
//! [`Prometheus::wait_for_target`] [`TARGET_TIMEOUT`].
//!
//! # Lifetime
//! As [`crate::haproxy`]: spawned through [`crate::keeper`] (a process group of its own,
//! `PR_SET_PDEATHSIG`), output in files of the directory ([`Prometheus::log`]). Dropping the
//! handle kills it and removes the directory, unless the thread is panicking: then the
//! directory stays for a post-mortem and its path is printed.
//!
//! Everything here is synchronous and bounded, over a small HTTP/1.0 client on a std socket:
//! usable from any thread or runtime (a blocking reqwest client may not be dropped inside one).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long [`Prometheus::start`] waits for `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The bound of one HTTP exchange with Prometheus.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Enough for a new target's first scrape (see the module's documentation).
pub const TARGET_TIMEOUT: Duration = Duration::from_secs(15);
/// The job every target is scraped in (its `job` label).
pub const JOB: &str = "app";
const TARGETS_FILE: &str = "targets.json";
const DEBIAN_PATH: &str = "/usr/bin/prometheus";
const INSTALL_HINT: &str = "run `bash scripts/tools.sh install` in the repository (installs \
     Debian's prometheus) or set PROMETHEUS to a prometheus executable";

/// A running Prometheus. See the module's documentation.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    /// Target address → its extra labels, as `targets.json` has them.
    targets: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Prometheus {
    /// Starts Prometheus with no target and waits (at most [`READY_TIMEOUT`]) until it is
    /// ready. Panics with its output if it is not. A free port taken by someone else between
    /// choosing it and Prometheus' bind is retried on another one.
    pub fn start() -> Prometheus {
        let exe = find_prometheus().unwrap_or_else(|e| panic!("{e}"));
        let mut last = String::new();
        for _ in 0..3 {
            let port = crate::keeper::free_port().expect("finding a free loopback port");
            match Self::launch(&exe, SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
                Ok(prometheus) => return prometheus,
                Err(e) if e.contains("address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    fn launch(exe: &Path, addr: SocketAddr) -> Result<Prometheus, String> {
        let dir = crate::keeper::temp_dir("prometheus")
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let child = spawn_in(exe, &dir, addr).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        // Owned from here on: a failed start drops it, which kills Prometheus.
        let mut prometheus = Prometheus {
            child,
            dir,
            addr,
            targets: Mutex::default(),
        };
        prometheus.wait_ready()?;
        Ok(prometheus)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "prometheus exited ({status}) at start; its output:\n{}",
                    self.log()
                ));
            }
            if matches!(http_get(self.addr, "/-/ready"), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "prometheus was not ready within {READY_TIMEOUT:?}; its output:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The temporary directory (config, targets, data, output).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Prometheus' output so far (warnings and errors only).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// Has Prometheus scrape `target` (`127.0.0.1:PORT`, at `/metrics`) in [`JOB`] with these
    /// extra labels (`("color", "green")`), or replaces its labels. Returns at once: see
    /// [`wait_for_target`](Self::wait_for_target). Panics if `targets.json` cannot be written.
    pub fn scrape(&self, target: &str, labels: &[(&str, &str)]) {
        let mut targets = self.targets.lock().unwrap();
        let labels = labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        targets.insert(target.to_string(), labels);
        let groups: Vec<Value> = targets
            .iter()
            .map(|(target, labels)| json!({ "targets": [target], "labels": labels }))
            .collect();
        write_atomically(
            &self.dir.join(TARGETS_FILE),
            &Value::from(groups).to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits (polling `/api/v1/targets`, at most `timeout`) until `target` was scraped
    /// successfully (health `up`); the error names what was last seen of it.
    pub fn wait_for_target(&self, target: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.target_health(target);
            if matches!(&seen, Ok(Some(health)) if health == "up") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "target {target} not up within {timeout:?}; last seen: {seen:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `up`, or the health and last error of an active target; `None` while Prometheus has
    /// not taken it yet.
    fn target_health(&self, target: &str) -> Result<Option<String>, String> {
        let data = self.api("/api/v1/targets?state=active")?;
        let mut active = data["activeTargets"].as_array().into_iter().flatten();
        Ok(active
            .find(|t| t["discoveredLabels"]["__address__"] == target)
            .map(|t| {
                let health = t["health"].as_str().unwrap_or("?");
                match t["lastError"].as_str() {
                    Some("") | None => health.to_string(),
                    Some(error) => format!("{health} ({error})"),
                }
            }))
    }

    /// An instant query (`/api/v1/query`, now): its one value, `None` for an empty result.
    /// An error when Prometheus refuses the query, answers several samples, or cannot be
    /// reached (e.g. after [`stop`](Self::stop)).
    pub fn query(&self, promql: &str) -> Result<Option<f64>, String> {
        self.api(&format!("/api/v1/query?query={}", percent_encode(promql)))
            .and_then(|data| single_value(&data))
            .map_err(|e| format!("query {promql:?}: {e}"))
    }

    /// A GET of the HTTP API: the `data` of a `success`, or the error.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.addr, path)?;
        let mut json: Value = serde_json::from_str(&body)
            .map_err(|_| format!("GET {path}: {status} with no JSON: {body:?}"))?;
        if json["status"] == "success" {
            Ok(json["data"].take())
        } else {
            Err(format!("{status} {}: {}", json["errorType"], json["error"]))
        }
    }

    /// Kills Prometheus: its address refuses connections from then on (the directory stays
    /// until drop). SIGKILL, as nothing here needs its storage closed cleanly. Idempotent.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on the process group we created, whose leader still runs.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "prometheus fixture: keeping {} (config, targets, output) for the failed test",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes the config and an empty target list into `dir`, and starts Prometheus there.
fn spawn_in(exe: &Path, dir: &Path, addr: SocketAddr) -> Result<Child, String> {
    let config = dir.join("prometheus.yml");
    let targets = dir.join(TARGETS_FILE);
    write_atomically(&targets, "[]")?;
    write_atomically(&config, &config_text(&targets))?;
    let output = |name: &str| {
        std::fs::File::create(dir.join(name))
            .map(Stdio::from)
            .map_err(|e| format!("creating {}/{name}: {e}", dir.display()))
    };
    let mut cmd = Command::new(exe);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output("stdout.log")?)
        .stderr(output("stderr.log")?);
    crate::keeper::spawn(cmd)
        .map_err(|e| format!("cannot run {}: {e}; {INSTALL_HINT}", exe.display()))
}

fn config_text(targets: &Path) -> String {
    // A JSON string is a YAML double-quoted string: the path needs no escaping of its own.
    let targets = Value::from(targets.display().to_string());
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: {JOB}\n    file_sd_configs:\n      \
         - files: [{targets}]\n        refresh_interval: 1s\n"
    )
}

/// Writes a new file and renames it over `path`, so that Prometheus never reads half of it.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let new = path.with_extension("new");
    std::fs::write(&new, text)
        .and_then(|()| std::fs::rename(&new, path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The Prometheus to run: `$PROMETHEUS` if set, else Debian's, else `prometheus` on `PATH`.
fn find_prometheus() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PROMETHEUS").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "PROMETHEUS={} does not exist; {INSTALL_HINT}",
                path.display()
            ))
        };
    }
    let on_path = || {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    };
    Some(PathBuf::from(DEBIAN_PATH))
        .filter(|p| p.is_file())
        .or_else(on_path)
        .ok_or_else(|| {
            format!("prometheus not found (looked at $PROMETHEUS, {DEBIAN_PATH} and PATH); {INSTALL_HINT}")
        })
}

/// The one value of an instant query's `data`: a scalar, or a vector of at most one sample.
fn single_value(data: &Value) -> Result<Option<f64>, String> {
    let sample = match (data["resultType"].as_str(), &data["result"]) {
        (Some("scalar"), sample) => sample,
        (Some("vector"), Value::Array(samples)) => match samples.as_slice() {
            [] => return Ok(None),
            [one] => &one["value"],
            several => {
                return Err(format!(
                    "{} samples, not one: {}",
                    several.len(),
                    data["result"]
                ))
            }
        },
        _ => return Err(format!("not an instant vector or a scalar: {data}")),
    };
    // `[unix time, "value"]`; the value may be `NaN` or `+Inf`.
    sample[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| format!("no value in {sample}"))
}

/// A query-string value: everything but unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET over HTTP/1.0, so that the server closes the connection after its answer and the
/// body is everything until EOF: (status, body), within [`REQUEST_TIMEOUT`].
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let failed = |e: io::Error| format!("GET http://{addr}{path}: {e}");
    let reply = exchange(addr, path).map_err(failed)?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: not an HTTP answer: {reply:?}"))?;
    Ok((status, body.to_string()))
}

fn exchange(addr: SocketAddr, path: &str) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete answer within {REQUEST_TIMEOUT:?}"),
            )
        };
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_one_value_from_an_instant_query() {
        let data = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(
            single_value(&data(r#"{"resultType":"scalar","result":[1.5,"2"]}"#)),
            Ok(Some(2.0))
        );
        assert_eq!(
            single_value(&data(
                r#"{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.25"]}]}"#
            )),
            Ok(Some(0.25))
        );
        let nan = single_value(&data(
            r#"{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}"#,
        ));
        assert!(nan.unwrap().unwrap().is_nan());
        assert_eq!(
            single_value(&data(r#"{"resultType":"scalar","result":[1.5,"+Inf"]}"#)),
            Ok(Some(f64::INFINITY))
        );
        assert_eq!(
            single_value(&data(r#"{"resultType":"vector","result":[]}"#)),
            Ok(None)
        );
        let two = r#"{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}"#;
        assert!(single_value(&data(two)).unwrap_err().contains("2 samples"));
        assert!(single_value(&data(r#"{"resultType":"matrix","result":[]}"#)).is_err());
    }

    #[test]
    fn encodes_a_query() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{code=~"5.."}[5s])) / 2"#),
            "sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B5s%5D%29%29%20%2F%202"
        );
    }

    #[test]
    fn config_has_what_the_docs_say() {
        let text = config_text(Path::new("/tmp/p/targets.json"));
        for want in [
            "scrape_interval: 1s",
            "scrape_timeout: 1s",
            "evaluation_interval: 1s",
            "- job_name: app",
            r#"- files: ["/tmp/p/targets.json"]"#,
            "refresh_interval: 1s",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }
}
