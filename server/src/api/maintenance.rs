//! The Maintenance service: member status. Alarms, defragmentation, hashes and
//! snapshots answer UNIMPLEMENTED until they exist.

use rollcall_proto::etcdserverpb::maintenance_server::Maintenance;
use rollcall_proto::etcdserverpb::{StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use super::header::{HeaderFiller, RAFT_TERM};
use crate::mvcc::Store;
use crate::storage::MetaKey;

/// The etcd API version rollcall is compatible with, reported in `version`:
/// clients (Kubernetes among them) gate features on it. rollcall's own version
/// is `rollcall --version`.
pub const ETCD_COMPATIBLE_VERSION: &str = "3.4.23";

pub struct MaintenanceService {
    store: Store,
    header: HeaderFiller,
}

impl MaintenanceService {
    pub fn new(store: Store) -> Self {
        let header = HeaderFiller::new(store.clone());
        Self { store, header }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let applied = self.store.meta(MetaKey::AppliedIndex)?.unwrap_or(0);
        let db_size = self.store.db_size();
        Ok(Response::new(StatusResponse {
            header: self.header.header(),
            version: ETCD_COMPATIBLE_VERSION.into(),
            db_size,
            leader: self.header.member_id(),
            raft_index: applied,
            raft_term: RAFT_TERM,
            raft_applied_index: applied,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }
}
