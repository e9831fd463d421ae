//! The peer service on `--listen-peer-urls`: openraft's traffic between
//! members, and what a follower asks of the leader on its clients' behalf
//! (forwarded writes, read index, lease keep-alives and TimeToLive). Only
//! members talk to it.

use std::sync::Arc;

use rollcall_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use rollcall_proto::rollcallraftpb::peer_server::Peer;
use rollcall_proto::rollcallraftpb::{
    Batch, ForwardReply, PublishReply, PublishRequest, RaftMessage, ReadIndexReply,
    ReadIndexRequest,
};
use tonic::{Request, Response, Status};

use super::lease::LeaseAnswers;
use crate::error::{ClusterError, Error};
use crate::raft::codec;
use crate::raft::node::RaftNode;

pub(crate) struct PeerService {
    node: Arc<RaftNode>,
    leases: LeaseAnswers,
}

impl PeerService {
    pub(crate) fn new(node: Arc<RaftNode>, leases: LeaseAnswers) -> Self {
        Self { node, leases }
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(Error::from(ClusterError::NotLeader).into())
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(message: RaftMessage) -> Result<T, Status> {
    codec::from_bytes(&message.data).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    codec::to_bytes(value)
        .map(|data| Response::new(RaftMessage { data: data.into() }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(request.into_inner())?;
        encode(&self.node.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(request.into_inner())?;
        encode(&self.node.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<crate::raft::types::TypeConfig> =
            decode(request.into_inner())?;
        if rpc.done {
            tracing::info!(
                snapshot = %rpc.meta.snapshot_id,
                bytes = rpc.offset + rpc.data.len() as u64,
                "received the last chunk of a snapshot"
            );
        }
        encode(&self.node.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Batch>) -> Result<Response<ForwardReply>, Status> {
        self.require_leader()?;
        let commands = codec::batch_from_pb(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (results, log_index) = self.node.propose_as_leader(commands).await?;
        Ok(Response::new(ForwardReply {
            results: Some(codec::results_to_pb(&results)),
            log_index,
        }))
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        self.require_leader()?;
        // Shares a round with the leader's own reads and other followers'.
        let index = self.node.shared_read_index().await?;
        Ok(Response::new(ReadIndexReply { index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        self.require_leader()?;
        Ok(Response::new(
            self.leases.keep_alive(request.into_inner().id),
        ))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.require_leader()?;
        Ok(Response::new(
            self.leases.time_to_live(&request.into_inner()),
        ))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishReply>, Status> {
        self.require_leader()?;
        let req = request.into_inner();
        let node = crate::raft::types::MemberNode {
            name: req.name,
            peer_urls: req.peer_urls,
            client_urls: req.client_urls,
        };
        self.node.record_attributes(req.id, node).await?;
        Ok(Response::new(PublishReply {}))
    }
}
