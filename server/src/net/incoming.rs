//! The stream of accepted client connections handed to tonic: TCP_NODELAY
//! on (without it a response's trailers wait ~40 ms for the peer's delayed
//! ACK), each wrapped in the [`AuthorityFix`] shim.

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::authority::AuthorityFix;

impl Connected for AuthorityFix<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

pub fn incoming(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<AuthorityFix<TcpStream>>> {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a client connection");
        }
        Ok(AuthorityFix::new(stream))
    })
}
