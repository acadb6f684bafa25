//! Tests of the HAProxy fixture (`acceptance_tests::haproxy`) against real test apps: servers
//! added through the Runtime API come up and serve, weights split the traffic, a reload drops
//! runtime-added servers (why the provider treats a reload as drift), and a weight switch in one
//! line (raise first, then lower) under the load generator fails no request. No moto, no
//! Terraform.

use std::time::Duration;

use acceptance_tests::app::TestApp;
use acceptance_tests::haproxy::{served_between, Haproxy, HaproxySettings, SocketLevel};
use acceptance_tests::load::{Load, LoadSettings};

const UP_WITHIN: Duration = Duration::from_secs(3);
/// After a weight switch's answer, how long requests may still go by the old weights.
const SWITCH_MARGIN: Duration = Duration::from_millis(300);
/// A request whose start was taken just before a switch was sent can still be written after
/// HAProxy applied it (once in CI: started 0.4 ms before the mark, answered by the new server),
/// so each window also ends this long before the next switch is sent.
const IN_FLIGHT_MARGIN: Duration = Duration::from_millis(50);
/// The time between switches: long enough for a window of ~40 requests between the margins.
const PHASE: Duration = Duration::from_millis(450);

/// One GET through a fresh connection: (status, body).
async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The release (`"version"`) a JSON answer names.
fn release(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(json.get("version")?.as_str()?.to_string())
}

/// Adds `name` on `app`'s port with the raw Runtime API commands and waits until it is up.
fn add(haproxy: &Haproxy, name: &str, app: &TestApp, weight: u32) {
    let reply = haproxy.command(&format!(
        "add server web/{name} 127.0.0.1:{} check inter 100ms weight {weight}",
        app.port()
    ));
    assert!(reply.contains("New server registered."), "{reply:?}");
    let reply = haproxy.command(&format!(
        "enable health web/{name}; enable server web/{name}"
    ));
    assert!(reply.trim().is_empty(), "{reply:?}");
    let up = haproxy.wait_up(name, UP_WITHIN);
    assert_eq!((up.addr.as_str(), up.port), ("127.0.0.1", app.port()));
    assert_eq!(up.uweight, weight);
}

#[tokio::test]
async fn starts_empty_and_answers_on_its_socket() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    assert!(haproxy.socket_path().exists());
    assert_eq!(
        haproxy.runtime_api(),
        format!("unix://{}", haproxy.socket_path().display())
    );
    assert!(haproxy.frontend_url().starts_with("http://127.0.0.1:"));
    assert_eq!(haproxy.backend(), "web");
    let version = haproxy.version();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    println!("haproxy {version}, worker {}", haproxy.worker_pid());
    let config = std::fs::read_to_string(haproxy.config_path()).unwrap();
    assert!(config.contains("option httpchk GET /health"), "{config}");
    assert!(haproxy.servers().is_empty());
    assert_eq!(haproxy.weights_by_colour(), (0, 0));
    // No server: HAProxy fails closed.
    let (status, _) = get(&haproxy.frontend_url()).await;
    assert_eq!(status, 503);
    // (An empty backend's status reads UP: no server is down.)
    let backend = haproxy.backend_stat();
    assert_eq!((backend.hrsp_5xx, backend.stot), (1, 1));
}

#[tokio::test]
async fn runtime_servers_serve_and_weights_split_the_traffic() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    let blue = TestApp::start("blue_1").await;
    let green = TestApp::start("green_1").await;
    add(&haproxy, "blue_1", &blue, 100);
    add(&haproxy, "green_1", &green, 0);
    assert_eq!(haproxy.weights_by_colour(), (100, 0));
    let before = haproxy.served_by_server();
    for _ in 0..10 {
        let (status, body) = get(&format!("{}/x", haproxy.frontend_url())).await;
        assert_eq!((status, release(&body).as_deref()), (200, Some("blue_1")));
    }
    let served = served_between(&before, &haproxy.served_by_server());
    assert_eq!(served.get("blue_1"), Some(&10), "{served:?}");
    assert_eq!(served.get("green_1"), Some(&0), "{served:?}");
    // Health checks reached the apps, and do not count as served.
    assert!(green.requests() > 0);

    // 1:3, in one line: raise green first.
    let reply =
        haproxy.command("set server web/green_1 weight 75; set server web/blue_1 weight 25");
    assert!(reply.trim().is_empty(), "{reply:?}");
    assert_eq!(haproxy.weights_by_colour(), (25, 75));
    let before = haproxy.served_by_server();
    for _ in 0..40 {
        let (status, _) = get(&haproxy.frontend_url()).await;
        assert_eq!(status, 200);
    }
    let served = served_between(&before, &haproxy.served_by_server());
    // Round robin is deterministic: exactly 10 and 30 of 40.
    assert_eq!(
        (served["blue_1"], served["green_1"]),
        (10, 30),
        "{served:?}"
    );
    let backend = haproxy.backend_stat();
    assert_eq!(backend.hrsp_5xx, 0);
    assert_eq!(backend.econ + backend.eresp, 0);

    // The Runtime API's own errors are text.
    let reply = haproxy.command("set server web/blue_1 weight 300");
    assert!(reply.contains("between 0 and 256"), "{reply:?}");
    let reply = haproxy.command("set server web/nobody weight 1");
    assert!(reply.contains("No such server"), "{reply:?}");
}

#[tokio::test]
async fn a_failing_app_goes_down_and_a_weight_zero_server_is_no_fallback() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    let blue = TestApp::start("blue_1").await;
    let green = TestApp::start("green_1").await;
    haproxy.add_server("blue_1", &format!("127.0.0.1:{}", blue.port()), 100);
    haproxy.add_server("green_1", &format!("127.0.0.1:{}", green.port()), 0);
    haproxy.wait_up("blue_1", UP_WITHIN);
    haproxy.wait_up("green_1", UP_WITHIN);
    blue.set(acceptance_tests::app::Behavior::Failing(503));
    let down = haproxy.wait_server("blue_1", UP_WITHIN, |s| s.status == "DOWN");
    assert_eq!(
        (down.check_status.as_str(), down.check_code),
        ("L7STS", Some(503))
    );
    // green is up but at weight 0: HAProxy fails closed.
    let (status, _) = get(&haproxy.frontend_url()).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_reload_drops_runtime_servers() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    let blue = TestApp::start("blue_1").await;
    add(&haproxy, "blue_1", &blue, 100);
    assert_eq!(get(&haproxy.frontend_url()).await.0, 200);
    let (master, worker) = (haproxy.master_pid(), haproxy.worker_pid());
    haproxy.reload();
    assert_eq!(haproxy.master_pid(), master);
    assert_ne!(haproxy.worker_pid(), worker);
    assert!(haproxy.servers().is_empty(), "{:?}", haproxy.servers());
    assert_eq!(haproxy.weights_by_colour(), (0, 0));
    assert_eq!(get(&haproxy.frontend_url()).await.0, 503);
    // Still usable: add it again.
    add(&haproxy, "blue_1", &blue, 100);
    assert_eq!(get(&haproxy.frontend_url()).await.0, 200);
}

#[tokio::test]
async fn a_backend_in_the_fragment_directory_survives_a_reload() {
    let blue = TestApp::start("blue_1").await;
    let fragments = std::env::temp_dir().join(format!("haproxy-frag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fragments);
    std::fs::create_dir_all(&fragments).unwrap();
    std::fs::write(
        fragments.join("50-web.cfg"),
        format!(
            "backend web\n    balance roundrobin\n    option httpchk GET /health\n    \
             server blue_1 127.0.0.1:{} check inter 100ms weight 40\n",
            blue.port()
        ),
    )
    .unwrap();
    let haproxy = Haproxy::start(HaproxySettings {
        fragment_dir: Some(fragments.clone()),
        define_backend: false,
        ..Default::default()
    });
    haproxy.wait_up("blue_1", UP_WITHIN);
    assert_eq!(haproxy.weights_by_colour(), (40, 0));
    haproxy.command("set server web/blue_1 weight 7");
    haproxy.reload();
    // The fragment's server is back, at the fragment's weight: runtime changes are gone.
    haproxy.wait_up("blue_1", UP_WITHIN);
    assert_eq!(haproxy.weights_by_colour(), (40, 0));
    assert_eq!(get(&haproxy.frontend_url()).await.0, 200);

    // A bad fragment: the reload fails and the old worker keeps serving.
    std::fs::write(fragments.join("60-bad.cfg"), "backend web\n").unwrap();
    let err = haproxy.try_reload().unwrap_err();
    assert!(err.contains("same name"), "{err}");
    assert_eq!(get(&haproxy.frontend_url()).await.0, 200);
    drop(haproxy);
    std::fs::remove_dir_all(&fragments).unwrap();
}

#[tokio::test]
async fn a_non_admin_socket_refuses_changes_and_no_socket_is_possible() {
    let operator = Haproxy::start(HaproxySettings {
        socket_level: Some(SocketLevel::Operator),
        ..Default::default()
    });
    assert!(operator.info().contains_key("Version"));
    let reply = operator.command("add server web/blue_1 127.0.0.1:1 weight 1");
    assert!(
        reply.to_lowercase().contains("permission denied"),
        "{reply:?}"
    );
    assert!(operator.servers().is_empty());

    let none = Haproxy::start(HaproxySettings {
        socket_level: None,
        ..Default::default()
    });
    assert!(!none.socket_path().exists());
    assert!(none.try_command("show info").is_err());
    assert!(!none.version().is_empty());
    assert_eq!(get(&none.frontend_url()).await.0, 503);
    none.reload();
    assert_eq!(get(&none.frontend_url()).await.0, 503);
}

#[test]
fn dropping_it_kills_master_and_workers() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    let (master, worker, dir) = (
        haproxy.master_pid(),
        haproxy.worker_pid(),
        haproxy.dir().to_path_buf(),
    );
    let addr = haproxy.frontend_addr();
    drop(haproxy);
    // Gone, or a zombie its new parent has not reaped yet.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(
            |stat| !matches!(stat.rsplit(')').next(), Some(s) if s.trim_start().starts_with('Z')),
        )
    };
    // The master is reaped by then; the worker leaves with it (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while alive(worker) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(master) && !alive(worker),
        "master {master} or worker {worker} still runs"
    );
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// The notes' measurement, in small: switching weights between two servers in one Runtime API
/// line (raise first, then lower) under a strict load (keep-alive, no retry) fails no request,
/// and each switch applies to the next requests, on open connections too.
#[tokio::test]
async fn switching_weights_under_load_fails_no_request() {
    let haproxy = Haproxy::start(HaproxySettings::default());
    let blue = TestApp::start("blue_1").await;
    let green = TestApp::start("green_1").await;
    add(&haproxy, "blue_1", &blue, 256);
    add(&haproxy, "green_1", &green, 0);
    let before = haproxy.served_by_server();
    let load = Load::start(
        &format!("{}/", haproxy.frontend_url()),
        LoadSettings {
            workers: 8,
            rate_per_second: 400.0,
            max_duration: Duration::from_secs(5),
            ..Default::default()
        },
    );
    // (sent, applied, target): each phase's window runs from one switch's answer to the next
    // switch's sending, less the margins, so that no request in it could see another weight.
    let mut switches = Vec::new();
    for i in 0..6 {
        tokio::time::sleep(PHASE).await;
        let (to, from) = if i % 2 == 0 {
            ("green_1", "blue_1")
        } else {
            ("blue_1", "green_1")
        };
        let sent = load.mark(&format!("to {to}"));
        let reply = haproxy.command(&format!(
            "set server web/{to} weight 256; set server web/{from} weight 0"
        ));
        assert!(reply.trim().is_empty(), "{reply:?}");
        switches.push((sent, load.elapsed(), to));
    }
    tokio::time::sleep(PHASE).await;
    let report = load.stop().await;
    println!("{report}");
    assert_eq!(report.failed(), 0, "{}", report.failures());
    assert!(report.total() > 500, "{report}");
    // Persistent connections: no reconnection at any switch.
    assert_eq!(report.connections(), 8, "{report}");
    // After each switch (and a margin for requests in flight), only the target served.
    for (i, (_, applied, to)) in switches.iter().enumerate() {
        let end = switches
            .get(i + 1)
            .map(|(next, _, _)| *next)
            .unwrap_or(report.elapsed());
        // The margin: twice in ~25 runs, on a machine busy with other builds, one request
        // started 20 ms after the switch's answer still reached the old server (and up to
        // ~100 ms once, with every core busy), so the window starts 300 ms after it.
        let window = *applied + SWITCH_MARGIN..end - IN_FLIGHT_MARGIN;
        let check = report.share_within(to, window.clone(), 1.0, 3.0);
        let wrong: Vec<(Duration, Duration)> = report
            .samples()
            .iter()
            .filter(|s| window.contains(&s.start) && s.release.as_deref() != Some(*to))
            .map(|s| (s.start - *applied, s.latency))
            .collect();
        assert!(
            check.within(),
            "{check}; (start after the switch's answer, latency) of the others: {wrong:?}"
        );
    }
    // HAProxy's own count matches the load's.
    let served = served_between(&before, &haproxy.served_by_server());
    let by_release = report.served_by();
    assert_eq!(
        served.get("blue_1"),
        by_release.get("blue_1"),
        "{served:?} vs {report}"
    );
    assert_eq!(
        served.get("green_1"),
        by_release.get("green_1"),
        "{served:?} vs {report}"
    );
    let backend = haproxy.backend_stat();
    assert_eq!((backend.hrsp_5xx, backend.econ, backend.eresp), (0, 0, 0));
}
