//! [`KeepAlive`]: one LeaseKeepAlive stream whose every wait is bounded.

use std::time::Duration;

use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Channel;

/// Bound on one wait for a keep-alive answer.
pub const STREAM_WAIT: Duration = Duration::from_secs(10);

/// One keep-alive stream: requests go in through `tx`, answers come back in
/// order through `responses`.
pub struct KeepAlive {
    pub tx: mpsc::Sender<LeaseKeepAliveRequest>,
    pub responses: mpsc::Receiver<Result<LeaseKeepAliveResponse, Status>>,
}

impl KeepAlive {
    /// Opens a stream. It returns at once: a gRPC-Go server (etcd) sends the
    /// response headers of a bidirectional stream only with its first
    /// message, so the call is awaited in a task that forwards the answers.
    #[must_use]
    pub fn open(lease: &LeaseClient<Channel>) -> Self {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let (out_tx, out_rx) = mpsc::channel(16 * 1024);
        let mut lease = lease.clone();
        tokio::spawn(async move {
            let mut responses = match lease.lease_keep_alive(ReceiverStream::new(rx)).await {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    let _ = out_tx.send(Err(status)).await;
                    return;
                }
            };
            loop {
                let next = match responses.message().await {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => return,
                    Err(status) => Err(status),
                };
                let failed = next.is_err();
                if out_tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        Self {
            tx,
            responses: out_rx,
        }
    }

    /// Queues a renewal of `id`.
    ///
    /// # Panics
    /// When the stream is gone.
    pub async fn send(&self, id: i64) {
        self.tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .unwrap_or_else(|_| panic!("keep-alive stream closed"));
    }

    /// The next answer, within [`STREAM_WAIT`].
    ///
    /// # Panics
    /// When none comes in time or the stream fails or ends.
    pub async fn recv(&mut self) -> LeaseKeepAliveResponse {
        match tokio::time::timeout(STREAM_WAIT, self.responses.recv()).await {
            Err(_) => panic!("no keep-alive response within {STREAM_WAIT:?}"),
            Ok(None) => panic!("keep-alive stream ended"),
            Ok(Some(Err(status))) => panic!("keep-alive stream failed: {status:?}"),
            Ok(Some(Ok(m))) => m,
        }
    }

    /// One renewal, waited for.
    pub async fn once(&mut self, id: i64) -> LeaseKeepAliveResponse {
        self.send(id).await;
        self.recv().await
    }
}
