//! The Cluster service for a one-member cluster: MemberList describes this
//! member. Membership changes answer UNIMPLEMENTED until replication exists.

use rollcall_proto::etcdserverpb::cluster_server::Cluster;
use rollcall_proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use super::header::HeaderFiller;

pub(crate) struct ClusterService {
    header: HeaderFiller,
    name: String,
    client_urls: Vec<String>,
}

impl ClusterService {
    pub(crate) fn new(header: HeaderFiller, name: String, client_urls: Vec<String>) -> Self {
        Self {
            header,
            name,
            client_urls,
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
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
