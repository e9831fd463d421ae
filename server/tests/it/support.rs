//! Shared test helpers: which backends exist, a bundle of gRPC clients for one
//! server, request and compare builders, and asserts on gRPC errors.

use std::path::PathBuf;

use bytes::Bytes;
use rollcall_proto::etcdserverpb::cluster_client::ClusterClient;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse, compare, request_op, response_op,
};
use rollcall_proto::mvccpb::KeyValue;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
}

/// The etcd backend, or `None` (after printing SKIPPED) when etcd is missing.
pub fn etcd(test: &str) -> Option<Backend> {
    require_or_skip(Tool::Etcd, test).then_some(Backend::Etcd)
}

/// Starts `backend` with its defaults, panicking with the log on failure.
pub async fn start(backend: &Backend) -> ServerProcess {
    match backend.start().await {
        Ok(s) => s,
        Err(e) => panic!("cannot start {}: {e}", backend.name()),
    }
}

/// The gRPC clients of one server, over one channel.
#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
    pub cluster: ClusterClient<Channel>,
}

impl Client {
    pub async fn connect(server: &ServerProcess) -> Self {
        let channel = server
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", server.endpoint()));
        Self::over(channel)
    }

    pub fn over(channel: Channel) -> Self {
        Self {
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            maintenance: MaintenanceClient::new(channel.clone()),
            cluster: ClusterClient::new(channel),
        }
    }

    pub async fn try_put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.kv.put(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv.range(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_delete(
        &mut self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        self.kv
            .delete_range(req)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv.txn(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_compact(&mut self, revision: i64) -> Result<CompactionResponse, Status> {
        self.kv
            .compact(CompactionRequest {
                revision,
                physical: false,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Put `key` = `value`; returns the response.
    pub async fn put(&mut self, key: &str, value: &str) -> PutResponse {
        self.try_put(put_req(key, value))
            .await
            .unwrap_or_else(|e| panic!("put {key}={value}: {e:?}"))
    }

    /// Put and return the revision it got.
    pub async fn put_rev(&mut self, key: &str, value: &str) -> i64 {
        rev(&self.put(key, value).await.header)
    }

    pub async fn range(&mut self, req: RangeRequest) -> RangeResponse {
        let shown = format!("{req:?}");
        self.try_range(req)
            .await
            .unwrap_or_else(|e| panic!("range {shown}: {e:?}"))
    }

    /// Get one key (at the current revision).
    pub async fn get(&mut self, key: &str) -> RangeResponse {
        self.range(get_req(key)).await
    }

    /// The single kv of `key`, or None.
    pub async fn get_kv(&mut self, key: &str) -> Option<KeyValue> {
        let mut resp = self.get(key).await;
        assert!(resp.kvs.len() <= 1, "one key gave {resp:?}");
        resp.kvs.pop()
    }

    pub async fn delete(&mut self, req: DeleteRangeRequest) -> DeleteRangeResponse {
        let shown = format!("{req:?}");
        self.try_delete(req)
            .await
            .unwrap_or_else(|e| panic!("delete {shown}: {e:?}"))
    }

    pub async fn txn(&mut self, req: TxnRequest) -> TxnResponse {
        let shown = format!("{req:?}");
        self.try_txn(req)
            .await
            .unwrap_or_else(|e| panic!("txn {shown}: {e:?}"))
    }

    pub async fn compact(&mut self, revision: i64) -> CompactionResponse {
        self.try_compact(revision)
            .await
            .unwrap_or_else(|e| panic!("compact {revision}: {e:?}"))
    }

    pub async fn status(&mut self) -> StatusResponse {
        self.maintenance
            .status(StatusRequest {})
            .await
            .expect("Status")
            .into_inner()
    }

    /// The store's current revision (header of a read).
    pub async fn revision(&mut self) -> i64 {
        rev(&self.get("\0nothing").await.header)
    }

    /// All keys with their records, in key order.
    pub async fn all(&mut self) -> Vec<KeyValue> {
        self.range(all_req()).await.kvs
    }
}

/// The revision of a response header (panics when the header is missing).
pub fn rev(header: &Option<rollcall_proto::etcdserverpb::ResponseHeader>) -> i64 {
    header.expect("response has a header").revision
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The range end that selects every key with prefix `p` (clientv3's
/// GetPrefixRangeEnd): increment the last byte that is not 0xff; a prefix of
/// only 0xff bytes gives `\0` (every key from it on).
pub fn prefix_end(p: &[u8]) -> Bytes {
    let mut end = p.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return Bytes::from(end);
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    }
}

pub fn get_req(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        ..RangeRequest::default()
    }
}

pub fn prefix_req(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: b(prefix),
        range_end: prefix_end(prefix.as_bytes()),
        ..RangeRequest::default()
    }
}

pub fn from_key_req(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: b("\0"),
        ..RangeRequest::default()
    }
}

pub fn all_req() -> RangeRequest {
    from_key_req("\0")
}

pub fn del_req(key: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        ..DeleteRangeRequest::default()
    }
}

pub fn del_prefix_req(prefix: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(prefix),
        range_end: prefix_end(prefix.as_bytes()),
        ..DeleteRangeRequest::default()
    }
}

pub fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, value))),
    }
}

pub fn op_range(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

pub fn op_get(key: &str) -> RequestOp {
    op_range(get_req(key))
}

pub fn op_del(req: DeleteRangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(req)),
    }
}

pub fn op_txn(req: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(req)),
    }
}

pub fn txn_req(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub use compare::CompareResult as Cmp;

pub fn cmp(key: &str, result: Cmp, target: compare::TargetUnion) -> Compare {
    let t = match &target {
        compare::TargetUnion::Version(_) => compare::CompareTarget::Version,
        compare::TargetUnion::CreateRevision(_) => compare::CompareTarget::Create,
        compare::TargetUnion::ModRevision(_) => compare::CompareTarget::Mod,
        compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
        compare::TargetUnion::Lease(_) => compare::CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: t as i32,
        key: b(key),
        range_end: Bytes::new(),
        target_union: Some(target),
    }
}

pub fn cmp_value(key: &str, result: Cmp, value: &str) -> Compare {
    cmp(key, result, compare::TargetUnion::Value(b(value)))
}

pub fn cmp_version(key: &str, result: Cmp, version: i64) -> Compare {
    cmp(key, result, compare::TargetUnion::Version(version))
}

pub fn cmp_create(key: &str, result: Cmp, revision: i64) -> Compare {
    cmp(key, result, compare::TargetUnion::CreateRevision(revision))
}

pub fn cmp_mod(key: &str, result: Cmp, revision: i64) -> Compare {
    cmp(key, result, compare::TargetUnion::ModRevision(revision))
}

pub fn cmp_lease(key: &str, result: Cmp, lease: i64) -> Compare {
    cmp(key, result, compare::TargetUnion::Lease(lease))
}

/// The range response inside a txn response op.
pub fn as_range(op: &ResponseOp) -> &RangeResponse {
    match &op.response {
        Some(response_op::Response::ResponseRange(r)) => r,
        other => panic!("expected a range response, got {other:?}"),
    }
}

pub fn as_put(op: &ResponseOp) -> &PutResponse {
    match &op.response {
        Some(response_op::Response::ResponsePut(r)) => r,
        other => panic!("expected a put response, got {other:?}"),
    }
}

pub fn as_delete(op: &ResponseOp) -> &DeleteRangeResponse {
    match &op.response {
        Some(response_op::Response::ResponseDeleteRange(r)) => r,
        other => panic!("expected a delete response, got {other:?}"),
    }
}

pub fn as_txn(op: &ResponseOp) -> &TxnResponse {
    match &op.response {
        Some(response_op::Response::ResponseTxn(r)) => r,
        other => panic!("expected a txn response, got {other:?}"),
    }
}

/// The keys of `kvs`, as strings, in order.
pub fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// The values of `kvs`, as strings, in order.
pub fn values(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .collect()
}

/// A full record, for exact comparisons.
pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: b(key),
        create_revision: create,
        mod_revision: modified,
        version,
        value: b(value),
        lease: 0,
    }
}

/// Asserts that `result` is an error with exactly this code and message.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} {message:?}, got Ok({v:?})"),
        Err(s) => assert_eq!(
            (s.code(), s.message()),
            (code, message),
            "wrong error (full status: {s:?})"
        ),
    }
}

pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
