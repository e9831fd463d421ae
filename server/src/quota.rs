//! The backend quota (`--quota-backend-bytes`, etcd's default 2 GiB): a write
//! that would take the database file past it is refused with etcd's
//! "database space exceeded" and raises the NOSPACE alarm. Costs follow
//! etcd's estimate: the bytes a request adds plus a fixed per-key overhead.
//!
//! Pure arithmetic, used by `apply` (which writes a NOSPACE alarm refuses)
//! and by the API's admission check (`api/quota_guard.rs`), so it depends on
//! neither.

use rollcall_proto::etcdserverpb::{PutRequest, TxnRequest, request_op};

/// etcd's default quota.
pub(crate) const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Index and page overhead etcd charges per key written.
const KV_OVERHEAD: u64 = 256;
/// What etcd charges a lease grant.
pub(crate) const LEASE_GRANT_COST: u64 = 64;

pub(crate) fn put_cost(req: &PutRequest) -> u64 {
    KV_OVERHEAD + req.key.len() as u64 + req.value.len() as u64
}

/// The bytes a txn may add: its costlier branch, nested txns included.
pub(crate) fn txn_cost(req: &TxnRequest) -> u64 {
    let branch = |ops: &[rollcall_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                Some(request_op::Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&req.success).max(branch(&req.failure))
}

/// Whether adding `cost` bytes to a database of `db_size` stays within `quota`.
pub(crate) fn fits(db_size: u64, cost: u64, quota: u64) -> bool {
    db_size.saturating_add(cost) <= quota
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rollcall_proto::etcdserverpb::RequestOp;

    fn put(key: &'static [u8], value: &'static [u8]) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: Bytes::from_static(key),
                value: Bytes::from_static(value),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn txn_cost_is_the_costlier_branch() {
        let txn = TxnRequest {
            success: vec![put(b"a", b"12345")],
            failure: vec![put(b"b", b"1"), put(b"c", b"1")],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), 2 * (KV_OVERHEAD + 2));
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
        assert!(fits(10, 5, 15) && !fits(10, 6, 15));
    }
}
