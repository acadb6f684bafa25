//! go-plugin's own gRPC services, served beside the provider: the controller through
//! which Terraform ends the process, and the stdio and broker streams its client opens.

use tfplugin_proto::plugin::{
    grpc_broker_server::GrpcBroker, grpc_controller_server::GrpcController,
    grpc_stdio_server::GrpcStdio, ConnInfo, Empty, StdioData,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// Serves go-plugin's services; `shutdown` ends the whole server.
#[derive(Clone)]
pub struct PluginServices {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl GrpcController for PluginServices {
    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("Terraform asked the provider to shut down");
        self.shutdown.cancel();
        Ok(Response::new(Empty {}))
    }
}

/// A stream that stays open and silent until the server shuts down, so that graceful
/// shutdown is not held up by it.
fn open_until_shutdown<T: Send + 'static>(
    shutdown: &CancellationToken,
) -> ReceiverStream<Result<T, Status>> {
    let (tx, rx) = mpsc::channel(1);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drop(tx);
    });
    ReceiverStream::new(rx)
}

#[tonic::async_trait]
impl GrpcStdio for PluginServices {
    type StreamStdioStream = ReceiverStream<Result<StdioData, Status>>;

    /// The provider writes nothing to stdout after the handshake and logs to stderr
    /// directly, so the stream carries nothing.
    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(open_until_shutdown(&self.shutdown)))
    }
}

#[tonic::async_trait]
impl GrpcBroker for PluginServices {
    type StartStreamStream = ReceiverStream<Result<ConnInfo, Status>>;

    /// Terraform's client always opens the broker stream, but providers never broker
    /// further connections.
    async fn start_stream(
        &self,
        _: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(open_until_shutdown(&self.shutdown)))
    }
}
