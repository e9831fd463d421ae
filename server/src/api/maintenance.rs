//! The Maintenance service: Status, Alarm (list, activate, disarm through the
//! proposer), Defragment (on the applier, logging how long writes waited),
//! HashKV and Snapshot (a consistent copy of the database streamed in etcd's
//! chunks with its SHA-256 trailer), MoveLeader with etcd's checks. Hash
//! (the whole-backend hash) answers UNIMPLEMENTED through the generated
//! default stub.
//!
//! MoveLeader: openraft 0.9 cannot hand leadership to a chosen member, so
//! after etcd's checks (`not leader` on a follower, `bad leader transferee`
//! for an unknown member or a learner) a move to the leader itself succeeds,
//! as on etcd, and a move to another member answers the error etcd gives
//! when a transfer does not complete: `request timed out, leader transfer
//! took too long`.

use rollcall_proto::etcdserverpb::maintenance_server::Maintenance;
use rollcall_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse,
    StatusRequest, StatusResponse,
};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::header::HeaderFiller;
use crate::apply::{Applied, Command};
use crate::error::{ClusterError, Error, MembershipError};
use crate::mvcc::Store;
use crate::proposer::Proposer;
use crate::raft::node::RaftPosition;
use crate::storage::MetaKey;
use crate::storage::snapshot;

/// The etcd API version rollcall is compatible with, reported in `version`:
/// clients (Kubernetes among them) gate features on it. rollcall's own version
/// is `rollcall --version`.
pub(crate) const ETCD_COMPATIBLE_VERSION: &str = "3.4.23";

pub(crate) struct MaintenanceService {
    store: Store,
    proposer: Proposer,
    header: HeaderFiller,
}

impl MaintenanceService {
    pub(crate) fn new(store: Store, proposer: Proposer) -> Self {
        let header = HeaderFiller::new(store.clone());
        Self {
            store,
            proposer,
            header,
        }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let before = self.store.db_size();
        let held = self.proposer.defragment().await?;
        tracing::info!(
            before,
            after = self.store.db_size(),
            writes_held_ms = held.as_millis(),
            "defragment"
        );
        Ok(Response::new(DefragmentResponse {
            header: self.header.header(),
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let requested = request.into_inner().revision;
        let (hash, compact_revision) = self
            .store
            .read(|view| Ok((view.hash_kv(requested)?.0, view.compact_rev)))?;
        Ok(Response::new(HashKvResponse {
            header: self.header.header(),
            hash,
            compact_revision,
        }))
    }

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let store = self.store.clone();
        let path = store
            .data_dir()
            .join(format!("snapshot-{:016x}.tmp", rand::random::<u64>()));
        let copy_path = path.clone();
        let digest = tokio::task::spawn_blocking(move || {
            snapshot::write_copy(&store.db(), &copy_path)?;
            snapshot::file_digest(&copy_path).map_err(|e| Error::DataDir {
                path: copy_path.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let digest = match digest {
            Ok(digest) => digest,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        };
        let (tx, rx) = mpsc::channel(4);
        let header = self.header.header();
        tokio::spawn(async move {
            if let Err(e) = stream_snapshot(&path, digest, header, &tx).await {
                let _ = tx
                    .send(Err(Status::internal(format!("snapshot: {e}"))))
                    .await;
            }
            let _ = tokio::fs::remove_file(&path).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        match self
            .proposer
            .propose(Command::Alarm(request.into_inner()))
            .await?
        {
            Applied::Alarm(mut resp) => {
                self.header.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal(
                "applier answered with the wrong response kind",
            )),
        }
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        let me = self.header.member_id();
        let voter = match self.proposer.node() {
            Some(node) => {
                if !node.is_leader() {
                    return Err(Error::Cluster(ClusterError::NotLeader).into());
                }
                node.members()
                    .iter()
                    .any(|m| m.id == target && !m.is_learner)
            }
            None => target == me,
        };
        if !voter {
            return Err(Error::Membership(MembershipError::BadLeaderTransferee).into());
        }
        if target != me {
            return Err(Error::Cluster(ClusterError::LeaderTransferTimeout).into());
        }
        Ok(Response::new(MoveLeaderResponse {
            header: self.header.header(),
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let position = match self.proposer.node() {
            Some(node) => node.position(),
            None => {
                let applied = self.store.meta(MetaKey::AppliedIndex)?.unwrap_or(0);
                RaftPosition {
                    leader: self.header.member_id(),
                    term: 1,
                    index: applied,
                    applied,
                    is_learner: false,
                }
            }
        };
        let db_size = self.store.db_size();
        let errors = self.store.read_committed().alarms.describe();
        Ok(Response::new(StatusResponse {
            header: self.header.header(),
            version: ETCD_COMPATIBLE_VERSION.into(),
            db_size,
            leader: position.leader,
            raft_index: position.index,
            raft_term: position.term,
            raft_applied_index: position.applied,
            errors,
            db_size_in_use: db_size,
            is_learner: position.is_learner,
        }))
    }
}

type SnapshotStream = tonic::codegen::BoxStream<SnapshotResponse>;

/// Chunk size of snapshot messages (etcd's).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// Sends the snapshot file, then its SHA-256, as `SnapshotResponse`s.
async fn stream_snapshot(
    path: &std::path::Path,
    digest: [u8; snapshot::TRAILER],
    header: Option<rollcall_proto::etcdserverpb::ResponseHeader>,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let total = file.metadata().await?.len() + snapshot::TRAILER as u64;
    let mut sent = 0u64;
    let mut header = header;
    let mut buf = vec![0u8; SNAPSHOT_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        let blob = if n == 0 {
            digest.to_vec()
        } else {
            buf[..n].to_vec()
        };
        sent += blob.len() as u64;
        let resp = SnapshotResponse {
            header: header.take(),
            remaining_bytes: total.saturating_sub(sent),
            blob: blob.into(),
        };
        if tx.send(Ok(resp)).await.is_err() || n == 0 {
            return Ok(());
        }
    }
}
