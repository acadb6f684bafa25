use std::process::ExitCode;
use std::sync::Arc;

use terraform_provider_immutable::plugin::{self, handshake};
use terraform_provider_immutable::{lease, logging, provider, tfplugin};

fn main() -> ExitCode {
    lease::note_start();
    let debug = std::env::args()
        .skip(1)
        .any(|a| a == "-debug" || a == "--debug");
    let cookie = std::env::var(handshake::MAGIC_COOKIE_KEY).ok();
    if !debug && !handshake::cookie_present(cookie.as_deref()) {
        eprintln!("{}", handshake::RUN_BY_HAND);
        return ExitCode::FAILURE;
    }
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("terraform-provider-immutable: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let provider = Arc::new(provider::ImmutableProvider::default());
    let core = Arc::new(tfplugin::server::Server::new(provider));
    let code = runtime.block_on(async move {
        if debug {
            plugin::serve_debug(core).await
        } else {
            plugin::serve(core).await
        }
    });
    // In-flight work was cancelled by the shutdown; do not wait for stragglers.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
