//! The streams of accepted client connections handed to tonic: TCP_NODELAY
//! on (without it a response's trailers wait ~40 ms for the peer's delayed
//! ACK), TLS when configured, each wrapped in the [`AuthorityFix`] shim.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
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

impl Connected for AuthorityFix<TlsStream<TcpStream>> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().get_ref().0.connect_info()
    }
}

/// Handshakes in flight at once per listener; more wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS connections: handshakes run concurrently so a slow or hostile client
/// cannot hold up others; failed handshakes are logged and dropped.
pub(crate) fn incoming_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = std::io::Result<AuthorityFix<TlsStream<TcpStream>>>> {
    let (tx, rx) = mpsc::channel(MAX_PENDING_HANDSHAKES);
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(AuthorityFix::new(tls))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

pub(crate) fn incoming(
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
