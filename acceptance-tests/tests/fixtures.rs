//! Tests of the harness itself against a real moto: the blue/green fixture reads back what it
//! writes, and no moto outlives the test process that started it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acceptance_tests::elb::BlueGreenFixture;
use acceptance_tests::moto::{self, Moto};

fn enabled() -> bool {
    if std::env::var_os("TF_ACC").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    eprintln!("skipped: set TF_ACC=1 to run acceptance tests");
    false
}

fn map<const N: usize>(entries: [(&str, i32); N]) -> std::collections::BTreeMap<String, i32> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => {
            !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z'))
        }
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, within: Duration) -> Duration {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < within,
            "moto (pid {pid}) still runs {within:?} after its test process ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[tokio::test]
async fn fixture_listeners_start_on_blue() {
    if !enabled() {
        return;
    }
    let started = Instant::now();
    let moto = moto::shared();
    let moto_ready = started.elapsed();
    let started = Instant::now();
    let fx = BlueGreenFixture::create(moto, "fixture-start").await;
    eprintln!(
        "shared moto ready in {moto_ready:?}, fixture created in {:?}",
        started.elapsed()
    );

    assert_eq!(fx.subnet_ids.len(), 2);
    assert!(fx.vpc_id.starts_with("vpc-"), "{}", fx.vpc_id);
    assert_ne!(fx.blue_tg_arn, fx.green_tg_arn);
    assert_ne!(fx.listener_arn, fx.test_listener_arn);
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        map([("blue", 100), ("green", 0)])
    );
    assert_eq!(fx.weights(&fx.test_listener_arn).await, map([("blue", 1)]));
    assert_eq!(fx.targets(&fx.blue_tg_arn).await, vec![]);
    assert_eq!(fx.tags(&fx.blue_tg_arn).await, Default::default());
}

#[tokio::test]
async fn fixture_weights_read_back_as_set() {
    if !enabled() {
        return;
    }
    let fx = BlueGreenFixture::create(moto::shared(), "fixture-weights").await;
    for (blue, green) in [(0, 100), (90, 10), (30, 70), (100, 0)] {
        fx.set_weights(&fx.listener_arn, blue, green).await;
        assert_eq!(
            fx.weights(&fx.listener_arn).await,
            map([("blue", blue), ("green", green)])
        );
    }
    // A hand change of the test listener does not touch the production one.
    fx.set_weights(&fx.test_listener_arn, 0, 100).await;
    assert_eq!(
        fx.weights(&fx.test_listener_arn).await,
        map([("blue", 0), ("green", 100)])
    );
    assert_eq!(
        fx.weights(&fx.listener_arn).await,
        map([("blue", 100), ("green", 0)])
    );
}

#[tokio::test]
async fn fixture_registers_targets_and_tags() {
    if !enabled() {
        return;
    }
    let fx = BlueGreenFixture::create(moto::shared(), "fixture-targets").await;
    fx.register(
        &fx.green_tg_arn,
        &[("10.0.1.11", 8080), ("10.0.2.12", 8081)],
    )
    .await;
    assert_eq!(
        fx.targets(&fx.green_tg_arn).await,
        vec![
            ("10.0.1.11".to_string(), 8080, "healthy".to_string()),
            ("10.0.2.12".to_string(), 8081, "healthy".to_string()),
        ]
    );
    assert_eq!(fx.targets(&fx.blue_tg_arn).await, vec![]);

    fx.add_tags(
        &fx.green_tg_arn,
        &[("immutable:release", "v2"), ("immutable:generation", "1")],
    )
    .await;
    let tags = fx.tags(&fx.green_tg_arn).await;
    assert_eq!(
        tags.get("immutable:release").map(String::as_str),
        Some("v2")
    );
    assert_eq!(
        tags.get("immutable:generation").map(String::as_str),
        Some("1")
    );
    assert_eq!(fx.tags(&fx.blue_tg_arn).await, Default::default());
}

#[tokio::test]
async fn fixture_deletes_listener_then_target_group() {
    if !enabled() {
        return;
    }
    let fx = BlueGreenFixture::create(moto::shared(), "fixture-delete").await;
    // Both listeners reference blue; green only through the production listener (at weight 0),
    // which is enough to keep it "in use".
    let in_use = fx
        .client
        .delete_target_group()
        .target_group_arn(&fx.green_tg_arn)
        .send()
        .await
        .expect_err("a target group a listener forwards to cannot be deleted");
    assert_eq!(
        in_use.into_service_error().meta().code(),
        Some("ResourceInUse")
    );

    fx.delete_listener(&fx.listener_arn).await;
    let gone = fx
        .client
        .describe_listeners()
        .listener_arns(&fx.listener_arn)
        .send()
        .await
        .expect_err("deleted listener");
    assert!(gone.into_service_error().is_listener_not_found_exception());

    fx.delete_target_group(&fx.green_tg_arn).await;
    let gone = fx
        .client
        .describe_target_health()
        .target_group_arn(&fx.green_tg_arn)
        .send()
        .await
        .expect_err("deleted target group");
    assert!(gone
        .into_service_error()
        .is_target_group_not_found_exception());
    // The test listener is untouched.
    assert_eq!(fx.weights(&fx.test_listener_arn).await, map([("blue", 1)]));
}

#[tokio::test]
async fn owned_moto_resets_and_stops_on_drop() {
    if !enabled() {
        return;
    }
    let started = Instant::now();
    let moto = Moto::start().expect("moto starts");
    eprintln!("owned moto ready in {:?}", started.elapsed());
    let fx = BlueGreenFixture::create(&moto, "fixture-reset").await;
    moto.reset();
    let err = fx
        .client
        .describe_listeners()
        .listener_arns(&fx.listener_arn)
        .send()
        .await
        .expect_err("reset forgets the listener");
    assert!(err.into_service_error().is_listener_not_found_exception());

    let pid = moto.pid();
    let stopping = Instant::now();
    drop(moto);
    eprintln!("owned moto stopped in {:?}", stopping.elapsed());
    assert!(!alive(pid), "moto (pid {pid}) survived its drop");
}

/// Runs this test binary's `moto_helper_process` in a child process in `mode`, waits until
/// it reports its shared moto's pid, and returns (the child, moto's pid).
fn start_helper(mode: &str) -> (std::process::Child, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "moto_helper_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FIXTURES_HELPER", mode)
        .env("TF_ACC", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the helper test process");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.expect("helper stdout");
        // libtest prints "test moto_helper_process ... " before the test's own output.
        if let Some((_, pid)) = line.split_once("MOTO_PID=") {
            return (child, pid.trim().parse().unwrap());
        }
    }
    let status = child.wait().unwrap();
    panic!("the helper process ended ({status}) without reporting moto's pid");
}

#[test]
fn no_moto_outlives_its_test_process() {
    if !enabled() {
        return;
    }
    // SIGKILL of the test process (e.g. a nextest timeout): nothing of ours runs, PDEATHSIG acts.
    let (mut helper, pid) = start_helper("sleep");
    assert!(alive(pid));
    helper.kill().unwrap();
    helper.wait().unwrap();
    let took = wait_gone(pid, Duration::from_secs(3));
    eprintln!("moto gone {took:?} after SIGKILL of its test process");

    // A panicking test: the harness reports it and the process exits; the shared moto's static
    // is never dropped, yet moto goes with the process.
    let (mut helper, pid) = start_helper("panic");
    let status = helper.wait().unwrap();
    assert!(!status.success(), "the helper test was meant to fail");
    let took = wait_gone(pid, Duration::from_secs(3));
    eprintln!("moto gone {took:?} after its test process panicked and exited");
}

/// Not a test on its own: `no_moto_outlives_its_test_process` runs it in a child process.
#[test]
#[ignore = "helper process for no_moto_outlives_its_test_process"]
fn moto_helper_process() {
    let Ok(mode) = std::env::var("FIXTURES_HELPER") else {
        return;
    };
    // Started from a short-lived thread on purpose: moto must survive that thread's exit.
    let pid = std::thread::spawn(|| moto::shared().pid()).join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "moto died with the thread that started it");
    println!("MOTO_PID={pid}");
    match mode.as_str() {
        "panic" => panic!("helper panics on purpose"),
        _ => std::thread::sleep(Duration::from_secs(60)),
    }
}
