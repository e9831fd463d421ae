//! Builders of KV requests and transactions (ops, compares, the response
//! inside a txn op) and record helpers, for tests that speak the KV API.

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseOp, TxnRequest, TxnResponse, compare, request_op, response_op,
};
use rollcall_proto::mvccpb::KeyValue;

use crate::grpc::{b, get_req, prefix_end, put_req};

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
