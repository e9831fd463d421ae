//! The KV service: validate, read from a snapshot or propose a command, and
//! fill the header. No storage logic lives here.

use prost::Message;
use rollcall_proto::etcdserverpb::kv_server::Kv;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::header::HeaderFiller;
use super::validate;
use crate::api::quota_guard::QuotaGuard;
use crate::apply::{self, Applied, Command};
use crate::error::{Error, Refusal};
use crate::mvcc::Store;
use crate::proposer::Proposer;
use crate::quota;

pub(crate) struct KvService {
    store: Store,
    proposer: Proposer,
    quota: QuotaGuard,
    header: HeaderFiller,
    max_request_bytes: usize,
    max_txn_ops: usize,
}

impl KvService {
    pub(crate) fn new(
        store: Store,
        proposer: Proposer,
        quota: QuotaGuard,
        max_request_bytes: usize,
        max_txn_ops: usize,
    ) -> Self {
        let header = HeaderFiller::new(store.clone());
        Self {
            store,
            proposer,
            quota,
            header,
            max_request_bytes,
            max_txn_ops,
        }
    }

    /// Proposes a write after etcd's size check on what would be replicated.
    async fn propose(&self, size: usize, command: Command) -> Result<Applied, Error> {
        if size > self.max_request_bytes {
            return Err(Error::Refused(Refusal::RequestTooLarge));
        }
        self.proposer.propose(command).await
    }
}

/// A command came back as another kind: a bug in the applier, never a client error.
fn mismatch() -> Status {
    Status::internal("applier answered with the wrong response kind")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        validate::check_range(&req)?;
        // Serializable reads answer from this member's applied state now;
        // linearizable ones first wait for a read index (at once on a
        // single member, whose committed state is both).
        if !req.serializable {
            self.proposer.read_barrier().await?;
        }
        let mut resp = self.store.read(|view| view.range(&req))?;
        self.header.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        // As etcd, the quota is checked before the request itself.
        self.quota.admit(quota::put_cost(&req)).await?;
        validate::check_put(&req)?;
        match self.propose(req.encoded_len(), Command::Put(req)).await? {
            Applied::Put(mut resp) => {
                self.header.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(mismatch()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        validate::check_delete(&req)?;
        match self
            .propose(req.encoded_len(), Command::DeleteRange(req))
            .await?
        {
            Applied::DeleteRange(mut resp) => {
                self.header.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(mismatch()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = request.into_inner();
        self.quota.admit(quota::txn_cost(&req)).await?;
        validate::check_txn(&req, self.max_txn_ops)?;
        let mut resp = if crate::txn::is_read_only(&req) {
            // Read-only txns change nothing: serve them from a snapshot, as
            // etcd does, after the same fence as a linearizable range.
            self.proposer.read_barrier().await?;
            self.store.read(|view| apply::read_only_txn(view, &req))?
        } else {
            match self.propose(req.encoded_len(), Command::Txn(req)).await? {
                Applied::Txn(resp) => resp,
                _ => return Err(mismatch()),
            }
        };
        self.header.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = request.into_inner();
        match self
            .propose(req.encoded_len(), Command::Compact(req))
            .await?
        {
            Applied::Compact(mut resp, _) => {
                self.header.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(mismatch()),
        }
    }
}
