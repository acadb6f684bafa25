//! The ALB emulator (`acceptance_tests::alb`) as a process of its own, in front of a
//! `moto_server`, for `make demo` and `make bench`: ELBv2 as AWS behaves (targets health-checked
//! for real, AWS's validation and throttling, a data plane per listener), moto behind it as the
//! store of record. EC2 and other services' requests pass through to moto untouched.
//!
//! ```text
//! alb-emulator --moto http://127.0.0.1:PORT [--port 0] [--time-scale 0.05] [--no-throttling]
//! ```
//!
//! * `--moto`: the moto_server to put the emulator in front of (required).
//! * `--port`: the emulator's port on 127.0.0.1; 0 (the default) picks a free one. A given
//!   port is served by a plain TCP relay in this process to the emulator's own free port.
//! * `--time-scale`: real seconds per AWS second for health check intervals and timeouts,
//!   registration and deregistration delays (default 0.05: a 5 s interval takes 250 ms).
//! * `--no-throttling`: never answer `Throttling` (default: AWS's token buckets).
//!
//! Prints on stdout, a line each, as it happens:
//!
//! * `listening http://127.0.0.1:PORT` once it accepts requests: the endpoint for clients
//!   (boto3's `endpoint_url`, the provider's `endpoints { elbv2 }`);
//! * `listener ARN http://127.0.0.1:PORT` for every listener it learns (created, changed or
//!   its load balancer read through the emulator): that listener's data plane, which routes
//!   each request as the listener's rules and weights say;
//! * `refused ACTION CODE by-provider|by-client: MESSAGE` for every request it refused as AWS
//!   would (validation);
//! * `throttled N (P of the provider's)` when the number of requests it answered `Throttling`
//!   so far has changed;
//! * `calls N` when the number of requests it received so far (every service, every answer,
//!   throttled ones included) has changed, at most every 20 ms: a benchmark counts a
//!   command's requests from the last line before it and the last after it.
//!
//! Serves until SIGTERM or SIGINT, then prints `stopped: R refused (P of the provider's),
//! T throttled (Q of the provider's)` on stderr and exits 0.

use std::time::Duration;

use acceptance_tests::alb::{AlbEmulator, Settings};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str =
    "usage: alb-emulator --moto http://127.0.0.1:PORT [--port N] [--time-scale F] [--no-throttling]";

/// How often the listeners and refusals are looked at for new ones to print.
const POLL: Duration = Duration::from_millis(20);

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("alb-emulator: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let settings = Settings {
        time_scale: args.time_scale,
        throttling: if args.throttling {
            Settings::default().throttling
        } else {
            None
        },
        ..Settings::default()
    };
    let emulator = AlbEmulator::start(&args.moto, settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the alb-emulator's runtime");
    let status = runtime.block_on(serve(&emulator, args.port));
    let (refused, throttled) = (emulator.refusals(), emulator.throttled());
    let by_provider = refused.iter().filter(|r| r.from_provider).count();
    eprintln!(
        "alb-emulator: stopped: {} refused ({by_provider} of the provider's), {} throttled ({} of the provider's)",
        refused.len(),
        throttled.total,
        throttled.from_provider
    );
    drop(runtime);
    drop(emulator);
    std::process::exit(status);
}

/// Prints the endpoint, then the listeners and refusals as they come, until a signal.
async fn serve(emulator: &AlbEmulator, port: u16) -> i32 {
    let endpoint = if port == 0 {
        emulator.endpoint()
    } else {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => {
                tokio::spawn(relay(listener, emulator.proxy().port()));
                format!("http://127.0.0.1:{port}")
            }
            Err(e) => {
                eprintln!("alb-emulator: cannot listen on 127.0.0.1:{port}: {e}");
                return 1;
            }
        }
    };
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    // Rust's stdout is line-buffered, also into a file or a pipe: each line is out when printed.
    println!("listening {endpoint}");
    let mut listeners = std::collections::BTreeMap::new();
    let mut refusals = 0;
    let mut calls = 0;
    let mut throttled = 0;
    loop {
        for (arn, url) in emulator.listener_urls() {
            if listeners.get(&arn) != Some(&url) {
                println!("listener {arn} {url}");
                listeners.insert(arn, url);
            }
        }
        let refused = emulator.refusals();
        for r in refused.iter().skip(refusals) {
            let by = if r.from_provider {
                "by-provider"
            } else {
                "by-client"
            };
            println!("refused {} {} {by}: {}", r.action, r.code, r.message);
        }
        refusals = refused.len();
        let now = emulator.throttled();
        if now.total != throttled {
            println!(
                "throttled {} ({} of the provider's)",
                now.total, now.from_provider
            );
            throttled = now.total;
        }
        let total: u64 = emulator.proxy().calls().values().sum();
        if total != calls {
            println!("calls {total}");
            calls = total;
        }
        tokio::select! {
            _ = term.recv() => return 0,
            _ = int.recv() => return 0,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Relays every connection to `listener` to the emulator's own port, byte for byte.
async fn relay(listener: TcpListener, to: u16) {
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", to)).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

struct Args {
    moto: String,
    port: u16,
    time_scale: f64,
    throttling: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut moto, mut port, mut time_scale, mut throttling) =
            (None, 0, Settings::default().time_scale, true);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--moto" => {
                    let url = value()?;
                    if !url.starts_with("http://") && !url.starts_with("https://") {
                        return Err(format!("--moto {url}: not an http:// or https:// URL"));
                    }
                    moto = Some(url);
                }
                "--port" => {
                    let v = value()?;
                    port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
                }
                "--time-scale" => {
                    let v = value()?;
                    time_scale = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or(format!("--time-scale {v}: not a positive number"))?;
                }
                "--no-throttling" => throttling = false,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(Args {
            moto: moto.ok_or("--moto is required")?,
            port,
            time_scale,
            throttling,
        })
    }
}
