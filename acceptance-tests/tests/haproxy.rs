//! `immutable_haproxy_deployment` against a real HAProxy (Debian's, started by each test on
//! loopback with its stats socket in a temporary directory) and real apps, with the real
//! Terraform CLI. Journeys run under a steady load through HAProxy's frontend (one
//! connection per worker, no retries) and assert what a user would see: no failed request
//! while the releases involved are healthy, no request served by a release whose gate never
//! passed, and the share of each traffic step within `Z` standard errors of its weight, the
//! weights read from HAProxy's own `show stat` while the apply runs. HAProxy's counters
//! (`hrsp_5xx`, `econ`, `eresp`) cross-check the load generator.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acceptance_tests::app::{Behavior, TestApp};
use acceptance_tests::haproxy::{Haproxy, HaproxySettings, SocketLevel};
use acceptance_tests::hcl;
use acceptance_tests::load::{Load, LoadReport, LoadSettings};
use acceptance_tests::sshd::Sshd;
use acceptance_tests::terraform::{clis, Needs, On, Terraform};
use acceptance_tests::workspace::{Output, Step, Workspace};

const APPLY: &[&str] = &["apply", "-no-color", "-input=false", "-auto-approve"];
/// Between two reads of the weights.
const POLL: Duration = Duration::from_millis(40);
/// Kept inside each window of one set of weights.
const MARGIN: Duration = Duration::from_millis(200);
const SHORTEST_CHECKED: Duration = Duration::from_millis(500);
const Z: f64 = 4.0;

fn load_on(proxy: &Haproxy, longest: Duration) -> Load {
    Load::start(
        &format!("{}/", proxy.frontend_url()),
        LoadSettings {
            workers: 4,
            rate_per_second: 150.0,
            max_duration: longest,
            ..LoadSettings::default()
        },
    )
}

fn config(proxy: &Haproxy, release: &str, app: &TestApp, extra: &str) -> String {
    hcl::haproxy(
        &proxy.runtime_api(),
        proxy.backend(),
        release,
        &[app.port()],
        extra,
    )
}

/// The weights (blue, green) HAProxy had, each with when it was first seen and the start
/// of the poll before (the write landed in between).
#[derive(Clone, Debug)]
struct Seen {
    weights: (u32, u32),
    after: Duration,
    by: Duration,
}

/// Polls HAProxy's weights per colour from a thread of its own.
struct Watcher {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(proxy: Arc<Haproxy>, origin: Instant) -> Watcher {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (seen, stop) = (seen.clone(), stop.clone());
            move || {
                let mut last_start = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let start = origin.elapsed();
                    let weights = proxy.weights_by_colour();
                    let mut seen = seen.lock().unwrap();
                    if seen.last().is_none_or(|s| s.weights != weights) {
                        seen.push(Seen {
                            weights,
                            after: last_start.unwrap_or(start),
                            by: origin.elapsed(),
                        });
                    }
                    drop(seen);
                    last_start = Some(start);
                    std::thread::sleep(POLL);
                }
            }
        });
        Watcher {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (at most 60 s) until HAProxy has had weights for which `done` holds.
    async fn wait_for(&self, what: &str, done: impl Fn((u32, u32)) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.seen.lock().unwrap().iter().any(|s| done(s.weights)) {
                return;
            }
            let seen = self.seen.lock().unwrap().clone();
            assert!(Instant::now() < deadline, "never {what}: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}

/// What one apply under load showed.
struct Measured {
    report: LoadReport,
    seen: Vec<Seen>,
    out: Output,
}

impl Measured {
    /// Every window of one set of weights, margins taken off, holds the new release's share
    /// of requests within `Z` standard errors (exactly, at 0 and 100%).
    fn assert_shares(&self, new_release: &str, new_colour_is_blue: bool) {
        for (i, s) in self.seen.iter().enumerate() {
            let end = self
                .seen
                .get(i + 1)
                .map_or(self.report.elapsed(), |next| next.after);
            let window: Range<Duration> = (s.by + MARGIN)..end.saturating_sub(MARGIN);
            if window.end <= window.start || window.end - window.start < SHORTEST_CHECKED {
                continue;
            }
            let (blue, green) = s.weights;
            if blue + green == 0 {
                continue;
            }
            let new = if new_colour_is_blue { blue } else { green };
            let expected = f64::from(new) / f64::from(blue + green);
            let check = self.report.share_within(new_release, window, expected, Z);
            assert!(check.within(), "{check}; weights {:?}", self.seen);
        }
    }

    /// No failed request, and HAProxy agrees.
    fn assert_no_failure(&self, proxy: &Haproxy) {
        assert_eq!(self.report.failed(), 0, "{}", self.report);
        let backend = proxy.backend_stat();
        assert_eq!(
            (backend.hrsp_5xx, backend.econ, backend.eresp),
            (0, 0, 0),
            "HAProxy's counters: {backend:?}"
        );
    }

    fn text(&self) -> String {
        flat(&self.out.text())
    }
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Applies `config` while a load runs through HAProxy, from `BASELINE` before the apply to
/// `TAIL` after it.
async fn apply_under_load(proxy: &Arc<Haproxy>, ws: &Workspace, config: &str) -> Measured {
    ws.write_config(config);
    let load = load_on(proxy, Duration::from_secs(60));
    let origin = Instant::now();
    let watcher = Watcher::start(proxy.clone(), origin);
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.mark("apply");
    let out = ws.terraform(APPLY, &[]).await;
    load.mark("applied");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let report = load.stop().await;
    let seen = watcher.stop();
    Measured { report, seen, out }
}

/// An apply of `config` under load, caught at its first split step (traffic on both
/// colours), for what a test does mid-shift.
struct MidShift {
    load: Load,
    watcher: Watcher,
    child: tokio::process::Child,
}

impl MidShift {
    async fn start(proxy: &Arc<Haproxy>, ws: &Workspace, config: &str) -> MidShift {
        ws.write_config(config);
        let load = load_on(proxy, Duration::from_secs(60));
        let watcher = Watcher::start(proxy.clone(), Instant::now());
        let child = ws.spawn(APPLY);
        watcher
            .wait_for("a split step", |(b, g)| b > 0 && g > 0)
            .await;
        MidShift {
            load,
            watcher,
            child,
        }
    }

    /// Waits (at most 60 s) for the apply to end, then stops the load half a second later.
    async fn finish(self) -> (std::process::Output, LoadReport) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.child.wait_with_output())
            .await
            .expect("the apply ends")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = self.load.stop().await;
        self.watcher.stop();
        (out, report)
    }
}

/// HAProxy with v1 live (first release, no load yet: the backend had no server).
async fn v1_live(tf: &Terraform, name: &str) -> (Arc<Haproxy>, Workspace, TestApp) {
    let proxy = Arc::new(Haproxy::start(HaproxySettings::default()));
    let v1 = TestApp::start("v1").await;
    let ws = Workspace::new(tf, name);
    ws.step(Step {
        config: config(&proxy, "v1", &v1, ""),
        ..Step::default()
    })
    .await;
    (proxy, ws, v1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_then_a_release_at_once_fail_no_request() {
    for tf in clis("haproxy_all_at_once", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, v1) = v1_live(&tf, "hx-at-once").await;
        // The first release went to blue, at full weight, checked by HAProxy.
        assert!(proxy.weights_by_colour().0 > 0);
        assert_eq!(proxy.weights_by_colour().1, 0);
        let blue = proxy.server("blue_1").expect("blue_1 added");
        assert!(blue.is_up(), "{blue:?}");
        assert_eq!(blue.port, v1.port());
        let state = ws.state().await;
        let attrs = resource(&state);
        assert_eq!(attrs["active_color"], "blue");
        assert_eq!(attrs["traffic_weights"]["blue"], 100);

        let v2 = TestApp::start("v2").await;
        let m = apply_under_load(&proxy, &ws, &config(&proxy, "v2", &v2, "")).await;
        assert!(m.out.success, "{}\n{}", m.text(), m.report);
        m.assert_no_failure(&proxy);
        m.assert_shares("v2", false);
        let served = m.report.served_by();
        assert!(
            served.get("v1").copied().unwrap_or(0) > 0
                && served.get("v2").copied().unwrap_or(0) > 0,
            "{}",
            m.report
        );
        // Both colours stay in the backend: v2 live at full weight, v1 warm at 0, still checked.
        let (blue, green) = proxy.weights_by_colour();
        assert_eq!(blue, 0);
        assert!(green > 0);
        assert!(proxy.server("blue_1").is_some_and(|s| s.is_up()));
        let state = ws.state().await;
        let attrs = resource(&state);
        assert_eq!(attrs["active_release"], "v2");
        assert_eq!(attrs["previous_release"], "v1");
        assert_eq!(attrs["generation"], 2);
        println!("haproxy-report: at-once {}", m.report);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_and_linear_serve_their_share_at_each_step_and_a_rollback_is_warm() {
    for tf in clis("haproxy_steps", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, v1) = v1_live(&tf, "hx-steps").await;
        let v2 = TestApp::start("v2").await;
        let canary = apply_under_load(
            &proxy,
            &ws,
            &config(&proxy, "v2", &v2, &hcl::canary(20, "3s")),
        )
        .await;
        assert!(canary.out.success, "{}\n{}", canary.text(), canary.report);
        canary.assert_no_failure(&proxy);
        assert!(
            canary
                .seen
                .iter()
                .any(|s| s.weights.1 > 0 && s.weights.0 > 0),
            "no canary step seen: {:?}",
            canary.seen
        );
        canary.assert_shares("v2", false);

        // Rollback: release back to v1, still warm on blue.
        let rollback = apply_under_load(&proxy, &ws, &config(&proxy, "v1", &v1, "")).await;
        assert!(rollback.out.success, "{}", rollback.text());
        rollback.assert_no_failure(&proxy);
        assert_eq!(proxy.weights_by_colour().1, 0);
        let attrs = resource(&ws.state().await).clone();
        assert_eq!(attrs["active_color"], "blue");
        assert_eq!(attrs["generation"], 3);

        let v3 = TestApp::start("v3").await;
        let linear = apply_under_load(
            &proxy,
            &ws,
            &config(&proxy, "v3", &v3, &hcl::linear(25, "2s")),
        )
        .await;
        assert!(linear.out.success, "{}", linear.text());
        linear.assert_no_failure(&proxy);
        let steps = linear
            .seen
            .iter()
            .filter(|s| s.weights.0 > 0 && s.weights.1 > 0)
            .count();
        assert!(
            steps >= 3,
            "linear steps 25/50/75 not all seen: {:?}",
            linear.seen
        );
        linear.assert_shares("v3", false);
        for m in [&canary, &rollback, &linear] {
            println!("haproxy-report: steps {}", m.report);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_fails_its_gate_serves_no_request() {
    for tf in clis("haproxy_broken", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, _v1) = v1_live(&tf, "hx-broken").await;
        let v2 = TestApp::start("v2").await;
        v2.set(Behavior::Failing(503));
        let extra = hcl::timeouts("6s");
        let m = apply_under_load(&proxy, &ws, &config(&proxy, "v2", &v2, &extra)).await;
        assert!(!m.out.success, "{}", m.text());
        let text = m.text();
        assert!(
            text.contains("traffic was not moved") || text.contains("Traffic was not moved"),
            "{text}"
        );
        m.assert_no_failure(&proxy);
        assert_eq!(m.report.served_by().get("v2"), None, "{}", m.report);
        assert!(m.seen.iter().all(|s| s.weights.1 == 0), "{:?}", m.seen);
        // The standby colour's servers are put back as they were (none), so the rollback to
        // v1's colour stays as it was.
        let attrs = resource(&ws.state().await).clone();
        assert_eq!(attrs["active_release"], "v1");
        assert_eq!(attrs["green_release"], serde_json::Value::Null);
        assert!(
            proxy.servers().iter().all(|s| s.name.starts_with("blue_")),
            "{:?}",
            proxy.servers()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_failing_at_its_step_is_moved_back_and_fails_only_its_own_requests() {
    for tf in clis("haproxy_canary_fails", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, _v1) = v1_live(&tf, "hx-canary-fails").await;
        let v2 = TestApp::start("v2").await;
        let shift = MidShift::start(
            &proxy,
            &ws,
            &config(&proxy, "v2", &v2, &hcl::canary(20, "8s")),
        )
        .await;
        v2.set(Behavior::Failing(500));
        let (out, report) = shift.finish().await;
        let text = flat(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("All traffic was moved back to blue"),
            "{text}"
        );
        assert_eq!(proxy.weights_by_colour().1, 0);
        let own = report
            .samples()
            .iter()
            .filter(|s| s.outcome.is_failure())
            .all(|s| s.release.as_deref() == Some("v2"));
        assert!(own, "a failure not from v2: {report}");
        println!("haproxy-report: canary-fails {report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_mid_shift_moves_traffic_back_and_fails_no_request() {
    for tf in clis("haproxy_ctrl_c", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, _v1) = v1_live(&tf, "hx-ctrl-c").await;
        let v2 = TestApp::start("v2").await;
        let shift = MidShift::start(
            &proxy,
            &ws,
            &config(&proxy, "v2", &v2, &hcl::linear(25, "10s")),
        )
        .await;
        let interrupted = Instant::now();
        Workspace::interrupt(&shift.child);
        shift
            .watcher
            .wait_for("all traffic back on blue", |(b, g)| b > 0 && g == 0)
            .await;
        let moved_back = interrupted.elapsed();
        let (out, report) = shift.finish().await;
        assert!(!out.status.success());
        assert!(
            moved_back < Duration::from_secs(2),
            "moved back after {moved_back:?}"
        );
        assert_eq!(report.failed(), 0, "{report}");
        let attrs = resource(&ws.state().await).clone();
        assert_eq!(attrs["active_color"], "blue");
        println!("haproxy-report: ctrl-c {report}, moved back in {moved_back:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_set_weight_and_a_reload_are_drift_that_apply_restores() {
    for tf in clis("haproxy_drift", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, v1) = v1_live(&tf, "hx-drift").await;
        let v2 = TestApp::start("v2").await;
        ws.step(Step {
            config: config(&proxy, "v2", &v2, ""),
            ..Step::default()
        })
        .await;
        // By hand: half the traffic back to blue.
        proxy.command("set server web/blue_1 weight 256");
        let plan = ws
            .terraform(
                &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
                &[],
            )
            .await;
        let text = flat(&plan.text());
        assert!(text.contains("~ \"blue\" = 50 -> 0"), "{text}");
        let m = apply_under_load(&proxy, &ws, &config(&proxy, "v2", &v2, "")).await;
        assert!(m.out.success, "{}", m.text());
        m.assert_no_failure(&proxy);
        assert_eq!(proxy.weights_by_colour().0, 0);

        // A reload drops every runtime server: the backend answers 503 until apply restores it.
        proxy.reload();
        assert!(proxy.servers().is_empty(), "{:?}", proxy.servers());
        let plan = ws
            .terraform(&["plan", "-no-color", "-input=false"], &[])
            .await;
        let text = flat(&plan.text());
        assert!(text.contains("~ \"green\" = 0 -> 100"), "{text}");
        ws.step(Step {
            config: config(&proxy, "v2", &v2, ""),
            ..Step::default()
        })
        .await;
        let green = proxy.server("green_1").expect("green_1 restored");
        assert!(green.is_up(), "{green:?}");
        assert_eq!(green.port, v2.port());
        let response = reqwest::get(format!("{}/", proxy.frontend_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("v2"));
        drop(v1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_haproxy_cannot_do_is_a_diagnostic_on_the_attribute() {
    for tf in clis("haproxy_errors", Needs::Any, On::Each) {
        let v1 = TestApp::start("v1").await;
        let cases: Vec<(HaproxySettings, &str, &str)> = vec![
            (
                HaproxySettings {
                    socket_level: None,
                    ..HaproxySettings::default()
                },
                "web",
                r"(?s)with immutable_haproxy_deployment.*runtime_api.*cannot reach HAProxy's Runtime API",
            ),
            (
                HaproxySettings::default(),
                "nothere",
                r#"(?s)Cannot read the backend.*backend "nothere" not found"#,
            ),
            (
                HaproxySettings {
                    socket_level: Some(SocketLevel::User),
                    ..HaproxySettings::default()
                },
                "web",
                r"(?s)level admin",
            ),
        ];
        for (i, (settings, backend, expected)) in cases.into_iter().enumerate() {
            let proxy = Haproxy::start(settings);
            let ws = Workspace::new(&tf, &format!("hx-errors-{i}"));
            let started = Instant::now();
            ws.step(Step {
                config: hcl::haproxy(&proxy.runtime_api(), backend, "v1", &[v1.port()], ""),
                expect_error: Some(expected),
                ..Step::default()
            })
            .await;
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "case {i} took {:?}",
                started.elapsed()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_at_validate_naming_the_attribute() {
    for tf in clis("haproxy_validate", Needs::Any, On::Each) {
        let ws = Workspace::new(&tf, "hx-validate");
        let ssh = |block: &str| {
            hcl::haproxy(
                "unix:///run/haproxy/admin.sock",
                "web",
                "v1",
                &[8080],
                block,
            )
        };
        let cases = [
            (
                hcl::haproxy("tcp://127.0.0.1:9999", "web", "v1", &[8080], ""),
                r"(?s)runtime_api.*unix://",
            ),
            (
                hcl::haproxy("unix:///run/haproxy/admin.sock", "web app", "v1", &[8080], ""),
                r"(?s)backend.*letters, digits",
            ),
            (
                hcl::haproxy("unix:///run/haproxy/admin.sock", "web", "v1", &[8080], "").replace(
                    "id = \"127.0.0.1\"",
                    "id = \"127.0.0.1:8080\"",
                ),
                r"(?s)targets.*not an IP address.*give the port in",
            ),
            (
                ssh("  ssh {\n    host        = \"127.0.0.1\"\n    user        = \"root\"\n    private_key = \"x\"\n  }\n"),
                r#"(?s)host_key.*(required|Missing)"#,
            ),
            (
                ssh("  ssh {\n    host        = \"127.0.0.1\"\n    user        = \"root\"\n    private_key = \"-----BEGIN OPENSSH PRIVATE KEY-----\"\n    host_key    = \"not a key\"\n  }\n"),
                r"(?s)host_key.*OpenSSH public key line",
            ),
        ];
        ws.assert_refused_at_validate(&cases).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_ssh_a_release_cuts_over_and_the_key_stays_secret() {
    for tf in clis("haproxy_ssh", Needs::Any, On::NewestAndOldest) {
        let sshd = Sshd::start();
        let proxy = Arc::new(Haproxy::start(HaproxySettings::default()));
        let v1 = TestApp::start("v1").await;
        let v2 = TestApp::start("v2").await;
        let ssh_block = |host_key: &str| {
            format!(
                "  ssh {{\n    host        = \"127.0.0.1\"\n    port        = {}\n    user        = \"{}\"\n    private_key = <<-EOT\n{}\nEOT\n    host_key    = \"{}\"\n  }}\n",
                sshd.port(),
                sshd.user(),
                sshd.private_key().trim_end(),
                host_key.trim()
            )
        };
        let remote = |release: &str, app: &TestApp, host_key: &str| {
            hcl::haproxy(
                &proxy.runtime_api(),
                proxy.backend(),
                release,
                &[app.port()],
                &ssh_block(host_key),
            )
        };
        let ws = Workspace::new(&tf, "hx-ssh");
        // A host presenting another key is refused before anything reaches HAProxy.
        ws.step(Step {
            config: remote("v1", &v1, &sshd.wrong_host_key_line()),
            expect_error: Some(r"(?s)SSH host key.*not the pinned ssh.host_key"),
            ..Step::default()
        })
        .await;
        assert!(proxy.servers().is_empty());

        ws.step(Step {
            config: remote("v1", &v1, &sshd.host_key_line()),
            ..Step::default()
        })
        .await;
        let m = apply_under_load(&proxy, &ws, &remote("v2", &v2, &sshd.host_key_line())).await;
        assert!(m.out.success, "{}", m.text());
        m.assert_no_failure(&proxy);
        assert!(proxy.weights_by_colour().1 > 0);

        // The key: only in the state's sensitive attribute, nowhere in plans, logs or errors.
        let key_line = sshd.private_key_line();
        let trace = ws
            .terraform(
                &["plan", "-no-color", "-input=false"],
                &[("TF_LOG".to_string(), "trace".to_string())],
            )
            .await;
        assert!(
            !trace.text().contains(&key_line),
            "the key is in TF_LOG=trace output"
        );
        let shown = ws.terraform(&["show", "-no-color"], &[]).await;
        assert!(!shown.text().contains(&key_line));
        let state = std::fs::read_to_string(ws.dir().join("terraform.tfstate")).unwrap();
        assert_eq!(
            state.matches(&key_line).count(),
            1,
            "the key outside ssh.private_key"
        );
        assert!(state.contains("\"sensitive_attributes\""));
    }
}

/// The attributes of the one deployment in `terraform show -json`.
fn resource(state: &serde_json::Value) -> &serde_json::Value {
    &state["values"]["root_module"]["resources"][0]["values"]
}

#[tokio::test(flavor = "multi_thread")]
async fn import_by_socket_and_backend_then_destroy_leaves_the_live_colour_serving() {
    for tf in clis("haproxy_import", Needs::Any, On::NewestAndOldest) {
        let (proxy, ws, _v1) = v1_live(&tf, "hx-import").await;
        let v2 = TestApp::start("v2").await;
        ws.step(Step {
            config: config(&proxy, "v2", &v2, "  retain_previous = false\n"),
            ..Step::default()
        })
        .await;
        let id = format!("{},{}", proxy.runtime_api(), proxy.backend());
        // deployed_at is when the cut-over finished: no router keeps it. The rest comes back
        // from HAProxy: the live colour, both releases, the generation, the live servers.
        ws.import_verify(
            "immutable_haproxy_deployment.web",
            &id,
            &["deployed_at", "health_check", "retain_previous"],
        )
        .await;
        let plan = ws
            .terraform(
                &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
                &[],
            )
            .await;
        let text = flat(&plan.text());
        assert!(!text.contains("traffic_weights"), "{text}");
        let destroyed = ws.destroy().await;
        assert!(destroyed.success, "{}", destroyed.text());
        // The live colour keeps serving; the records are cleared.
        let green = proxy.server("green_1").expect("the live colour stays");
        assert!(green.weight > 0);
        let vars = proxy.command("experimental-mode on; get var proc.immutable_web_green_release");
        assert!(vars.contains("value=<->"), "{vars}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_with_a_canary_goes_all_at_once() {
    for tf in clis("haproxy_first_canary", Needs::Any, On::NewestAndOldest) {
        let proxy = Haproxy::start(HaproxySettings::default());
        let v1 = TestApp::start("v1").await;
        let ws = Workspace::new(&tf, "hx-first-canary");
        // Nothing serves before v1: there is no traffic to share with another colour.
        ws.step(Step {
            config: config(&proxy, "v1", &v1, &hcl::canary(20, "30s")),
            ..Step::default()
        })
        .await;
        let (blue, green) = proxy.weights_by_colour();
        assert!(blue > 0 && green == 0, "{blue} {green}");
        assert!(proxy.servers().iter().all(|s| s.name.starts_with("blue_")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_config_fragment_a_reload_under_load_keeps_the_deployment() {
    for tf in clis("haproxy_fragment", Needs::Any, On::NewestAndOldest) {
        let fragments = acceptance_tests::keeper::temp_dir("hx-frag").unwrap();
        let fragment = fragments.join("web.cfg");
        std::fs::write(
            &fragment,
            "backend web\n    balance roundrobin\n    option httpchk GET /health\n",
        )
        .unwrap();
        let proxy = Arc::new(Haproxy::start(HaproxySettings {
            fragment_dir: Some(fragments.clone()),
            define_backend: false,
            ..HaproxySettings::default()
        }));
        let (v1, v2) = (TestApp::start("v1").await, TestApp::start("v2").await);
        let kept = format!("  config_fragment = \"{}\"\n", fragment.display());
        let ws = Workspace::new(&tf, "hx-fragment");
        for (release, app) in [("v1", &v1), ("v2", &v2)] {
            ws.step(Step {
                config: config(&proxy, release, app, &kept),
                ..Step::default()
            })
            .await;
        }
        let text = std::fs::read_to_string(&fragment).unwrap();
        assert!(
            text.starts_with("backend web\n    balance roundrobin\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("server green_1 127.0.0.1:{} check", v2.port())),
            "{text}"
        );
        assert!(text.contains("weight 256"), "{text}");

        // A reload under load: the servers come back from the fragment, at their weights.
        let load = load_on(&proxy, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.reload();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let report = load.stop().await;
        assert_eq!(report.failed(), 0, "{report}");
        assert_eq!(report.served_by().get("v1"), None, "{report}");
        let green = proxy
            .server("green_1")
            .expect("green_1 kept across the reload");
        assert!(green.weight > 0 && proxy.server("blue_1").is_some_and(|b| b.weight == 0));
        let plan = ws
            .terraform(
                &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
                &[],
            )
            .await;
        assert_eq!(plan.code, Some(0), "{}", plan.text());
        // And the next release after the reload replaces v1's servers, read from the file.
        let v3 = TestApp::start("v3").await;
        ws.step(Step {
            config: config(&proxy, "v3", &v3, &kept),
            ..Step::default()
        })
        .await;
        let text = std::fs::read_to_string(&fragment).unwrap();
        assert!(
            text.contains(&format!("server blue_1 127.0.0.1:{} check", v3.port())),
            "{text}"
        );
        println!("haproxy-report: reload-with-fragment {report}");
        let _ = std::fs::remove_dir_all(&fragments);
    }
}

/// HAProxy's own exporter, scraped by Prometheus: the canary's 5xx share, as HAProxy counted
/// the responses of the colour's servers.
const HAPROXY_ERROR_RATE: &str = r#"sum(rate(haproxy_server_http_responses_total{proxy="{backend}",server=~"{color}_.*",code="5xx"}[3s])) / sum(rate(haproxy_server_http_responses_total{proxy="{backend}",server=~"{color}_.*"}[3s]))"#;

#[tokio::test(flavor = "multi_thread")]
async fn analysis_on_haproxys_exporter_stops_a_canary_failing_real_requests() {
    let Some(tf) = clis("haproxy_analysis", Needs::Any, On::Newest)
        .into_iter()
        .next()
    else {
        return;
    };
    let exporter = acceptance_tests::keeper::free_port().unwrap();
    let proxy = Arc::new(Haproxy::start(HaproxySettings {
        extra_config: vec![
            "frontend stats".into(),
            format!("    bind 127.0.0.1:{exporter}"),
            "    http-request use-service prometheus-exporter if { path /metrics }".into(),
        ],
        ..HaproxySettings::default()
    }));
    let prom = acceptance_tests::prometheus::Prometheus::start();
    let target = format!("127.0.0.1:{exporter}");
    prom.scrape(&target, &[]);
    let v1 = TestApp::start("v1").await;
    let ws = Workspace::new(&tf, "hx-analysis");
    ws.step(Step {
        config: config(&proxy, "v1", &v1, ""),
        ..Step::default()
    })
    .await;
    prom.wait_for_target(&target, acceptance_tests::prometheus::TARGET_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
    let v2 = TestApp::start("v2").await;
    v2.set_faults(acceptance_tests::app::Faults {
        error_share: 0.05,
        delay: Duration::ZERO,
    });
    let analysis = format!(
        "  analysis {{\n    prometheus {{\n      address = \"{}\"\n    }}\n    metric {{\n      name     = \"error-rate\"\n      query    = \"{}\"\n      max      = 0.01\n      interval = \"1s\"\n    }}\n  }}\n",
        prom.address(),
        HAPROXY_ERROR_RATE.replace('"', "\\\"")
    );
    let measured = apply_under_load(
        &proxy,
        &ws,
        &config(&proxy, "v2", &v2, &(hcl::canary(20, "10s") + &analysis)),
    )
    .await;
    let text = flat(&measured.out.text());
    assert!(!measured.out.success, "{text}");
    assert!(
        text.contains("Analysis failed at 20% on green: metric \"error-rate\"")
            && text.contains(r#"proxy="web",server=~"green_.*""#)
            && text.contains("All traffic was moved back to blue"),
        "{text}"
    );
    assert_eq!(proxy.weights_by_colour().1, 0);
    let own = measured
        .report
        .samples()
        .iter()
        .filter(|s| s.outcome.is_failure())
        .all(|s| s.release.as_deref() == Some("v2"));
    assert!(own, "a failure not from v2: {}", measured.report);
    println!("haproxy-report: analysis {}", measured.report);
    drop((v1, v2));
}
