//! The Cluster service: MemberList from the replicated membership (a single
//! member describes itself). Membership changes answer UNIMPLEMENTED until
//! they are built.

use rollcall_proto::etcdserverpb::cluster_server::Cluster;
use rollcall_proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

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

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if let Some(node) = self.proposer.node() {
            let members = node
                .members()
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
                .collect();
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
