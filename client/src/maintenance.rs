//! Cluster and Maintenance calls on [`Client`]: the connected member's status
//! and the member list.

use rollcall_proto::etcdserverpb::{
    MemberListRequest, MemberListResponse, StatusRequest, StatusResponse,
};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// The status of the member this client is connected to: its etcd API
    /// version, db size, leader, raft index and term.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        let mut maintenance = self.maintenance_client();
        self.unary(
            StatusRequest {},
            |r| async move { maintenance.status(r).await },
        )
        .await
    }

    /// The members of the cluster, as the connected member knows them.
    pub async fn member_list(&self) -> Result<MemberListResponse, ClientError> {
        let mut cluster = self.cluster_client();
        self.unary(MemberListRequest::default(), |r| async move {
            cluster.member_list(r).await
        })
        .await
    }
}
