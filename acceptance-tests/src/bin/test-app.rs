//! The test app as a process of its own, for acceptance tests and the demo: a release
//! ("blue", "green") that Terraform's health gates probe.
//!
//! ```text
//! test-app --version v2 [--port 0] [--control-port 0]
//! ```
//!
//! Prints `listening http://127.0.0.1:PORT` (and `control http://127.0.0.1:PORT` with
//! `--control-port`) on stdout once it accepts connections, then serves until SIGTERM or
//! SIGINT. Every path but those below answers `{"version":"v2","status":"ok"}` while healthy.
//!
//! Switch behaviour with `POST /_control/behavior` and one of `healthy`, `failing 503`,
//! `slow 3s`, `flapping 2 1` (2 healthy answers, then 1 failing, in a cycle),
//! `healthy-after 10s`, `redirect URL` or `down` as the body, e.g.
//! `curl -d 'failing 503' http://127.0.0.1:PORT/_control/behavior`.
//! `down` closes the app port, so it is only taken on the control port, which stays open.
//!
//! Set faults in real traffic (every path but `/health` and `/metrics`, whatever the
//! behaviour) with `POST /_control/faults` and an error share and a delay as the body:
//! `0.05 0s` answers 500 to one request in 20, evenly spread; `0 300ms` delays every one;
//! `0 0s` clears them. E.g. `curl -d '0.05 0s' http://127.0.0.1:PORT/_control/faults`.
//!
//! `GET /metrics` answers Prometheus' text format at once, whatever the behaviour (unless
//! down): `app_requests_total{release="v2",code="500"}` and the histogram
//! `app_request_duration_seconds{release="v2"}`.

use acceptance_tests::app::TestApp;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("test-app: {e}\nusage: test-app --version V [--port N] [--control-port N]");
            std::process::exit(2);
        }
    };
    let app = match TestApp::start_on(&args.version, args.port, args.control_port).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("test-app: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("listening {}", app.url());
    if let Some(port) = app.control_port() {
        println!("control http://127.0.0.1:{port}");
    }
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

struct Args {
    version: String,
    port: u16,
    control_port: Option<u16>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut version, mut port, mut control_port) = (None, 0, None);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            let port_value = |v: String| v.parse::<u16>().map_err(|e| format!("{flag} {v}: {e}"));
            match flag.as_str() {
                "--version" => version = Some(value()?),
                "--port" => port = port_value(value()?)?,
                "--control-port" => control_port = Some(port_value(value()?)?),
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(Args {
            version: version.ok_or("--version is required")?,
            port,
            control_port,
        })
    }
}
