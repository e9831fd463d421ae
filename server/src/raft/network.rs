//! Raft traffic to the other members: openraft's `RaftNetwork` over the
//! peer service (`proto/protos/raft.proto`) on each member's first peer URL.
//! Requests and answers are postcard bytes; a member's own refusal
//! (`RaftError`) comes back inside the answer, a transport failure as
//! `Unreachable` so openraft backs off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prometheus_client::metrics::histogram::Histogram;
use rollcall_proto::rollcallraftpb::RaftMessage;
use rollcall_proto::rollcallraftpb::peer_client::PeerClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use super::codec;
use super::quorum::PeerContact;
use super::types::{MemberNode, TypeConfig};
use crate::metrics::{Metrics, PeerLabels};

/// Largest peer message: append-entries batches and snapshot chunks.
pub(crate) const MAX_PEER_MESSAGE: usize = 256 * 1024 * 1024;

/// A lazily connected client of one member's peer service; an https://
/// URL is called over TLS with `tls` (`--peer-trusted-ca-file`, and this
/// member's `--peer-cert-file` for peers that require one).
pub(crate) fn peer_client(
    url: &str,
    tls: Option<&TlsConnector>,
) -> Result<PeerClient<Channel>, PeerUrlError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| PeerUrlError::Invalid(e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(3));
    let channel = if url.starts_with("https://") {
        let connector = tls.ok_or(PeerUrlError::NoTls)?.clone();
        endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: http::Uri| {
            dial_tls(connector.clone(), uri)
        }))
    } else {
        endpoint.connect_lazy()
    };
    Ok(PeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE))
}

/// A peer URL this member cannot call.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PeerUrlError {
    #[error("invalid peer URL: {0}")]
    Invalid(String),
    #[error("an https:// peer URL needs --peer-trusted-ca-file")]
    NoTls,
}

/// TCP to `uri`'s host and port, then the TLS handshake (within the
/// endpoint's connect timeout, which wraps this).
async fn dial_tls(
    connector: TlsConnector,
    uri: http::Uri,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(2380);
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((address, port)).await?;
    tcp.set_nodelay(true)?;
    let tls = rollcall_client::tls_handshake(&connector, host, tcp).await?;
    Ok(TokioIo::new(tls))
}

/// Whether a failed peer call provably never reached the member: its
/// connection was refused. Only such a call may be sent again elsewhere; any
/// other failure could have come after the member acted on it.
pub(crate) fn never_sent(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = error.source();
    }
    false
}

/// Makes one [`PeerConnection`] per target member.
#[derive(Clone)]
pub(crate) struct Network {
    pub metrics: Arc<Metrics>,
    /// TLS for https:// peer URLs.
    pub tls: Option<TlsConnector>,
    /// Every answer a member gives is recorded here (check-quorum).
    pub contact: Arc<PeerContact>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &MemberNode) -> PeerConnection {
        let url = node.peer_urls.first().cloned().unwrap_or_default();
        let round_trip = self
            .metrics
            .peer_round_trip_seconds
            .get_or_create(&PeerLabels {
                To: format!("{target:x}"),
            })
            .clone();
        PeerConnection {
            target,
            client: peer_client(&url, self.tls.as_ref()).map_err(|e| e.to_string()),
            round_trip,
            contact: self.contact.clone(),
        }
    }
}

pub(crate) struct PeerConnection {
    target: u64,
    client: Result<PeerClient<Channel>, String>,
    /// Heartbeats' round trips to this peer (`etcd_network_peer_round_trip_time_seconds`).
    round_trip: Histogram,
    contact: Arc<PeerContact>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

type Rpc<T, E> = Result<T, RPCError<u64, MemberNode, RaftError<u64, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        request: &Req,
        timeout: Duration,
    ) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(&Transport(
                    e.clone(),
                ))));
            }
        };
        let data =
            codec::to_bytes(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut message = tonic::Request::new(RaftMessage { data: data.into() });
        message.set_timeout(timeout);
        let mut client = client;
        let reply = match kind {
            Kind::Append => client.append_entries(message).await,
            Kind::Vote => client.vote(message).await,
            Kind::Snapshot => client.install_snapshot(message).await,
        };
        let reply = reply.map_err(|status| {
            let e = Transport(format!("{}: {}", status.code(), status.message()));
            match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })?;
        self.contact.answered(self.target);
        let answer: Result<Resp, RaftError<u64, E>> =
            codec::from_bytes(&reply.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        // A heartbeat carries no entries and costs the peer no fsync: its
        // round trip is the link's, as etcd's prober measures it.
        let heartbeat = rpc.entries.is_empty();
        let sent = Instant::now();
        let answer = self.call(Kind::Append, &rpc, option.hard_ttl()).await;
        if heartbeat && answer.is_ok() {
            self.round_trip.observe(sent.elapsed().as_secs_f64());
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        if rpc.offset == 0 {
            tracing::info!(
                target_member = format_args!("{:x}", self.target),
                snapshot = %rpc.meta.snapshot_id,
                "sending a snapshot"
            );
        }
        if rpc.done {
            tracing::info!(
                target_member = format_args!("{:x}", self.target),
                snapshot = %rpc.meta.snapshot_id,
                bytes = rpc.offset + rpc.data.len() as u64,
                "sent the last chunk of a snapshot"
            );
        }
        self.call(Kind::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(Kind::Vote, &rpc, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use rollcall_proto::rollcallraftpb::ReadIndexRequest;

    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_known_unsent() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut client = peer_client(&format!("http://127.0.0.1:{port}"), None).expect("valid url");
        let status = client
            .read_index(ReadIndexRequest {})
            .await
            .expect_err("nobody listens");
        assert!(
            never_sent(&status),
            "refused connection not recognised: {status:?}"
        );
        assert!(!never_sent(&tonic::Status::unavailable("connection reset")));
    }
}
