//! Helpers of the KV suite: backends and the client conveniences whose
//! shape is this suite's. Clients, request and txn builders and error
//! asserts are the harness's.

use rollcall_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutResponse, RangeResponse,
    TxnRequest, TxnResponse,
};
use rollcall_proto::mvccpb::KeyValue;
use rollcall_tests::grpc::Clients;
pub use rollcall_tests::grpc::{
    COMPACTED, FUTURE_REV, assert_status, b, del_req, get_req, keys, prefix_end, prefix_req,
    put_req, rev,
};
pub use rollcall_tests::txn::*;
use rollcall_tests::{Backend, ServerProcess};
use tonic::Status;

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(env!("CARGO_BIN_EXE_rollcall").into())
}

/// Starts `backend` with its defaults, panicking with the log on failure.
pub async fn start(backend: &Backend) -> ServerProcess {
    match backend.start().await {
        Ok(s) => s,
        Err(e) => panic!("cannot start {}: {e}", backend.name()),
    }
}

rollcall_tests::suite_client!(
    /// The harness's clients, with this suite's conveniences.
    Client
);

impl Client {
    pub async fn connect(server: &ServerProcess) -> Self {
        Self(Clients::connect(server).await)
    }

    /// A compaction that does not wait for the old revisions to go.
    pub async fn try_compact(&mut self, revision: i64) -> Result<CompactionResponse, Status> {
        self.0.try_compact(revision, false).await
    }

    /// Put `key` = `value`; returns the response.
    pub async fn put(&mut self, key: &str, value: &str) -> PutResponse {
        let resp = self.try_put(put_req(key, value)).await;
        resp.unwrap_or_else(|e| panic!("put {key}={value}: {e:?}"))
    }

    /// Put and return the revision it got.
    pub async fn put_rev(&mut self, key: &str, value: &str) -> i64 {
        rev(&self.put(key, value).await.header)
    }

    /// Get one key (at the current revision).
    pub async fn get(&mut self, key: &str) -> RangeResponse {
        self.range(get_req(key)).await
    }

    pub async fn delete(&mut self, req: DeleteRangeRequest) -> DeleteRangeResponse {
        let shown = format!("{req:?}");
        let resp = self.try_delete(req).await;
        resp.unwrap_or_else(|e| panic!("delete {shown}: {e:?}"))
    }

    pub async fn txn(&mut self, req: TxnRequest) -> TxnResponse {
        let shown = format!("{req:?}");
        let resp = self.try_txn(req).await;
        resp.unwrap_or_else(|e| panic!("txn {shown}: {e:?}"))
    }

    pub async fn compact(&mut self, revision: i64) -> CompactionResponse {
        let resp = self.try_compact(revision).await;
        resp.unwrap_or_else(|e| panic!("compact {revision}: {e:?}"))
    }

    /// All keys with their records, in key order.
    pub async fn all(&mut self) -> Vec<KeyValue> {
        self.range(all_req()).await.kvs
    }
}
