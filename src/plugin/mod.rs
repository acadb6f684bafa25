//! go-plugin plumbing: the handshake, the listener, AutoMTLS and the services Terraform's
//! plugin client expects around the provider itself.

pub mod handshake;
pub mod listener;
mod services;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Server as GrpcServer;

use crate::tfplugin::grpc::{tfplugin5, tfplugin6};
use crate::tfplugin::server::Server;
use handshake::Address;
use services::PluginServices;

/// The provider's address in the registry, as debug mode's reattach line names it.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/immutable-infra/immutable";

/// How long operations in flight get to back out once the provider is told to end (or
/// finds Terraform gone); with the rest of the exit, the process is gone within 10 s.
const DRAIN: Duration = Duration::from_secs(7);

/// How often the provider checks that Terraform, its parent, is still there.
const PARENT_POLL: Duration = Duration::from_millis(250);

/// Serves the provider to the Terraform process that started it, until Terraform asks
/// it to shut down, sends SIGTERM or SIGHUP, or dies: operations in flight then back out
/// (up to [`DRAIN`]) before the process exits.
pub async fn serve(core: Arc<Server>) -> ExitCode {
    let protocol = match handshake::negotiate_protocol(
        std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok().as_deref(),
    ) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let bound = match listener::bind() {
        Ok(b) => b,
        Err(e) => return fail(&format!("cannot listen for Terraform: {e}")),
    };
    let tls = match std::env::var("PLUGIN_CLIENT_CERT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        Some(pem) => match tls::server_tls(&pem) {
            Ok(tls) => Some(tls),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    let line = handshake::handshake_line(
        protocol,
        &bound.address,
        tls.as_ref().map(|t| t.cert_der.as_slice()),
    );
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone(), false);
    watch_parent(shutdown.clone());
    let incoming = bound.incoming(tls.map(|t| t.config));
    let router = router(Arc::clone(&core), protocol, shutdown.clone()).await;
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(line.as_bytes())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        return fail("cannot write the handshake to stdout");
    }
    drop(stdout);
    tracing::debug!(protocol, address = %line.trim_end(), "serving");
    until_drained(
        router.serve_with_incoming_shutdown(incoming, drained(&core, &shutdown)),
        &shutdown,
    )
    .await
}

/// Resolves once `shutdown` is cancelled and the operations in flight have backed out.
fn drained(core: &Arc<Server>, shutdown: &CancellationToken) -> impl Future<Output = ()> {
    let (core, shutdown) = (Arc::clone(core), shutdown.clone());
    async move {
        shutdown.cancelled().await;
        core.drain(DRAIN).await;
    }
}

/// Serves until the server ends, or until shortly after the drain once `shutdown` is
/// cancelled, whichever comes first: a connection Terraform keeps open never holds the
/// exit up.
async fn until_drained(
    serving: impl Future<Output = Result<(), tonic::transport::Error>>,
    shutdown: &CancellationToken,
) -> ExitCode {
    tokio::select! {
        result = serving => finish(result),
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN + Duration::from_secs(1)).await;
        } => ExitCode::SUCCESS,
    }
}

/// Debug mode: serves without the handshake, so a debugger can run the provider and
/// Terraform attach to it through `TF_REATTACH_PROVIDERS`. Ends on Ctrl-C.
pub async fn serve_debug(core: Arc<Server>) -> ExitCode {
    let bound = match listener::bind() {
        Ok(b) => b,
        Err(e) => return fail(&format!("cannot listen: {e}")),
    };
    let reattach = reattach_json(&bound.address);
    println!(
        "Provider started. To attach Terraform CLI, set the TF_REATTACH_PROVIDERS environment \
         variable with the following:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n"
    );
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone(), true);
    let incoming = bound.incoming(None);
    let router = router(Arc::clone(&core), 6, shutdown.clone()).await;
    until_drained(
        router.serve_with_incoming_shutdown(incoming, drained(&core, &shutdown)),
        &shutdown,
    )
    .await
}

/// The value of `TF_REATTACH_PROVIDERS` that points Terraform at this process.
fn reattach_json(address: &Address) -> String {
    serde_json::json!({
        PROVIDER_ADDRESS: {
            "Protocol": "grpc",
            "ProtocolVersion": 6,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": { "Network": address.network(), "String": address.to_string() },
        }
    })
    .to_string()
}

async fn router(
    core: Arc<Server>,
    protocol: u32,
    shutdown: CancellationToken,
) -> tonic::transport::server::Router {
    use tfplugin_proto::plugin::{
        grpc_broker_server::GrpcBrokerServer, grpc_controller_server::GrpcControllerServer,
        grpc_stdio_server::GrpcStdioServer,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let plugin = PluginServices { shutdown };
    let mut builder = GrpcServer::builder();
    let router = builder
        .add_service(health_service)
        .add_service(GrpcControllerServer::new(plugin.clone()))
        .add_service(GrpcStdioServer::new(plugin.clone()))
        .add_service(GrpcBrokerServer::new(plugin));
    if protocol == 5 {
        router.add_service(tfplugin5::server(core))
    } else {
        router.add_service(tfplugin6::server(core))
    }
}

/// SIGTERM and SIGHUP shut down (after the drain); SIGINT is ignored outside debug mode,
/// as go-plugin's servers do, because Terraform gets the same Ctrl-C and stops the
/// provider through StopProvider, which lets in-flight work restore traffic before it
/// returns.
fn watch_signals(shutdown: CancellationToken, debug: bool) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {
                    if debug { break }
                    tracing::debug!("interrupt signal ignored: Terraform stops the provider through StopProvider");
                }
                _ = term.recv() => break,
                _ = hup.recv() => break,
            }
        }
        tracing::warn!("terminated by a signal: backing out what is in flight, then exiting");
        shutdown.cancel();
    });
    #[cfg(not(unix))]
    let _ = (shutdown, debug);
}

/// Shuts down when the parent process (Terraform) is gone: SIGKILLed or OOM-killed, it
/// sends nothing, and an orphaned provider must neither run on nor leave traffic split.
fn watch_parent(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(PARENT_POLL) => {}
                }
                if std::os::unix::process::parent_id() != parent {
                    tracing::warn!(
                        parent,
                        "Terraform is gone: backing out what is in flight, then exiting"
                    );
                    shutdown.cancel();
                    return;
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = shutdown;
}

fn finish(result: Result<(), tonic::transport::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("gRPC server failed: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("terraform-provider-immutable: {message}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reattach_names_the_provider_and_its_socket() {
        let json = reattach_json(&Address::Unix("/tmp/x/provider.sock".into()));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let entry = &v[PROVIDER_ADDRESS];
        assert_eq!(entry["Protocol"], "grpc");
        assert_eq!(entry["ProtocolVersion"], 6);
        assert_eq!(entry["Addr"]["Network"], "unix");
        assert_eq!(entry["Addr"]["String"], "/tmp/x/provider.sock");
    }
}
