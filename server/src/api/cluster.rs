//! The Cluster service: MemberList from the replicated membership (a single
//! member describes itself), and membership changes (`raft/membership.rs`)
//! made by the leader: a follower passes the call on to the leader's client
//! URL, so `etcdctl member add` works against any member. A single member
//! started without cluster flags cannot change membership (it has no peer
//! port): it answers UNIMPLEMENTED.

use std::sync::Arc;

use rollcall_proto::etcdserverpb::cluster_client::ClusterClient;
use rollcall_proto::etcdserverpb::cluster_server::Cluster;
use rollcall_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::error::{ClusterError, Error};
use crate::raft::node::RaftNode;

use super::header::HeaderFiller;
use crate::proposer::Proposer;

pub(crate) struct ClusterService {
    header: HeaderFiller,
    name: String,
    client_urls: Vec<String>,
    proposer: Proposer,
}

impl ClusterService {
    pub(crate) fn new(
        header: HeaderFiller,
        name: String,
        client_urls: Vec<String>,
        proposer: Proposer,
    ) -> Self {
        Self {
            header,
            name,
            client_urls,
            proposer,
        }
    }
}

impl ClusterService {
    fn node(&self) -> Result<&Arc<RaftNode>, Status> {
        self.proposer.node().ok_or_else(|| {
            Status::unimplemented(
                "membership changes need a cluster member (start with --initial-cluster)",
            )
        })
    }

    fn members(&self, node: &RaftNode) -> Vec<Member> {
        node.members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.node.name,
                peer_ur_ls: m.node.peer_urls,
                client_ur_ls: if m.id == node.id() && m.node.client_urls.is_empty() {
                    // Not published yet; this member knows its own.
                    self.client_urls.clone()
                } else {
                    m.node.client_urls
                },
                is_learner: m.is_learner,
            })
            .collect()
    }

    /// The leader's Cluster service, when another member leads. A leader
    /// that has just started may not have published its client URLs yet:
    /// waited for, up to the request timeout.
    async fn leader(&self, node: &RaftNode) -> Result<Option<ClusterClient<Channel>>, Status> {
        let deadline = tokio::time::Instant::now() + node.config.request_timeout();
        loop {
            if node.is_leader() {
                return Ok(None);
            }
            let url = node.leader().and_then(|leader| {
                node.members()
                    .into_iter()
                    .find(|m| m.id == leader)
                    .and_then(|m| m.node.client_urls.first().cloned())
            });
            if let Some(url) = url {
                let channel = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| Status::unavailable(e.to_string()))?
                    .connect_lazy();
                return Ok(Some(ClusterClient::new(channel)));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::from(ClusterError::Timeout).into());
            }
            tokio::time::sleep(node.config.heartbeat).await;
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let node = self.node()?;
        if let Some(mut leader) = self.leader(node).await? {
            return leader.member_add(request.into_inner()).await;
        }
        let req = request.into_inner();
        let id = node
            .add_member(req.peer_ur_ls.clone(), req.is_learner)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header.header(),
            member: Some(Member {
                id,
                name: String::new(),
                peer_ur_ls: req.peer_ur_ls,
                client_ur_ls: Vec::new(),
                is_learner: req.is_learner,
            }),
            members: self.members(node),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let node = self.node()?;
        if let Some(mut leader) = self.leader(node).await? {
            return leader.member_remove(request.into_inner()).await;
        }
        node.remove_member(request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header.header(),
            members: self.members(node),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let node = self.node()?;
        if let Some(mut leader) = self.leader(node).await? {
            return leader.member_update(request.into_inner()).await;
        }
        let req = request.into_inner();
        node.update_member(req.id, req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header.header(),
            members: self.members(node),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let node = self.node()?;
        if let Some(mut leader) = self.leader(node).await? {
            return leader.member_promote(request.into_inner()).await;
        }
        node.promote_member(request.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header.header(),
            members: self.members(node),
        }))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if let Some(node) = self.proposer.node() {
            let members = self.members(node);
            return Ok(Response::new(MemberListResponse {
                header: self.header.header(),
                members,
            }));
        }
        Ok(Response::new(MemberListResponse {
            header: self.header.header(),
            members: vec![Member {
                id: self.header.member_id(),
                name: self.name.clone(),
                // No peer listener: a single member talks to nobody.
                peer_ur_ls: Vec::new(),
                client_ur_ls: self.client_urls.clone(),
                is_learner: false,
            }],
        }))
    }
}
