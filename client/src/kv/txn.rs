//! The transaction builder: [`Txn`] with its [`Compare`]s and [`Op`]s.
//!
//! ```
//! use rollcall_client::{Compare, CompareOp, Op, Txn};
//! // Create /lock only if it does not exist yet; otherwise read it.
//! let txn = Txn::new()
//!     .when([Compare::create_revision("/lock", CompareOp::Equal, 0)])
//!     .and_then([Op::put("/lock", "me")])
//!     .or_else([Op::get("/lock")]);
//! assert_eq!(txn.request().compare.len(), 1);
//! ```

use rollcall_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rollcall_proto::etcdserverpb::request_op::Request;
use rollcall_proto::etcdserverpb::{self as pb, RequestOp, TxnRequest};

use super::options::{DeleteOptions, GetOptions, PutOptions};
use crate::key::{IntoBytes, RangeEnd};

/// How a compare relates the key's current field to the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

impl From<CompareOp> for CompareResult {
    fn from(op: CompareOp) -> Self {
        match op {
            CompareOp::Equal => Self::Equal,
            CompareOp::NotEqual => Self::NotEqual,
            CompareOp::Greater => Self::Greater,
            CompareOp::Less => Self::Less,
        }
    }
}

/// One condition of a transaction's guard. A missing key has version,
/// create and mod revision 0 and lease 0; a value compare on it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(key: impl IntoBytes, op: CompareOp, target: CompareTarget, union: TargetUnion) -> Self {
        Self(pb::Compare {
            result: CompareResult::from(op) as i32,
            target: target as i32,
            key: key.into_bytes(),
            range_end: bytes::Bytes::new(),
            target_union: Some(union),
        })
    }

    /// Compares the key's value.
    pub fn value(key: impl IntoBytes, op: CompareOp, value: impl IntoBytes) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Value,
            TargetUnion::Value(value.into_bytes()),
        )
    }

    /// Compares the key's version (puts since creation; 0 if absent).
    pub fn version(key: impl IntoBytes, op: CompareOp, version: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    }

    /// Compares the key's create revision (0 if absent).
    pub fn create_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Create,
            TargetUnion::CreateRevision(revision),
        )
    }

    /// Compares the key's last modification revision (0 if absent).
    pub fn mod_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Self {
        Self::new(
            key,
            op,
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision),
        )
    }

    /// Compares the key's lease id (0 if none).
    pub fn lease(key: impl IntoBytes, op: CompareOp, lease: i64) -> Self {
        Self::new(key, op, CompareTarget::Lease, TargetUnion::Lease(lease))
    }

    /// Applies the compare to every key in `[key, end)` instead of the key alone.
    #[must_use]
    pub fn with_range_end(mut self, end: impl IntoBytes) -> Self {
        self.0.range_end = end.into_bytes();
        self
    }

    /// Applies the compare to every key starting with the key.
    #[must_use]
    pub fn with_prefix(mut self) -> Self {
        let (key, end) = RangeEnd::Prefix.resolve(std::mem::take(&mut self.0.key));
        self.0.key = key;
        self.0.range_end = end;
        self
    }

    pub fn as_proto(&self) -> &pb::Compare {
        &self.0
    }
}

impl From<Compare> for pb::Compare {
    fn from(c: Compare) -> Self {
        c.0
    }
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Op(RequestOp);

impl Op {
    fn new(request: Request) -> Self {
        Self(RequestOp {
            request: Some(request),
        })
    }

    pub fn get(key: impl IntoBytes) -> Self {
        Self::get_with(key, GetOptions::default())
    }

    pub fn get_with(key: impl IntoBytes, options: GetOptions) -> Self {
        Self::new(Request::RequestRange(options.to_request(key.into_bytes())))
    }

    pub fn put(key: impl IntoBytes, value: impl IntoBytes) -> Self {
        Self::put_with(key, value, PutOptions::default())
    }

    pub fn put_with(key: impl IntoBytes, value: impl IntoBytes, options: PutOptions) -> Self {
        Self::new(Request::RequestPut(
            options.to_request(key.into_bytes(), value.into_bytes()),
        ))
    }

    pub fn delete(key: impl IntoBytes) -> Self {
        Self::delete_with(key, DeleteOptions::default())
    }

    pub fn delete_with(key: impl IntoBytes, options: DeleteOptions) -> Self {
        Self::new(Request::RequestDeleteRange(
            options.to_request(key.into_bytes()),
        ))
    }

    /// A nested transaction.
    pub fn txn(txn: Txn) -> Self {
        Self::new(Request::RequestTxn(txn.into_request()))
    }

    pub fn as_proto(&self) -> &RequestOp {
        &self.0
    }
}

impl From<Op> for RequestOp {
    fn from(op: Op) -> Self {
        op.0
    }
}

/// A transaction: if every compare holds, run `and_then`'s ops, else `or_else`'s,
/// all at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn(TxnRequest);

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds compares to the guard (all must hold).
    #[must_use]
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.0.compare.extend(compares.into_iter().map(|c| c.0));
        self
    }

    /// Adds ops to the branch run when the guard holds.
    #[must_use]
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.0.success.extend(ops.into_iter().map(|o| o.0));
        self
    }

    /// Adds ops to the branch run when the guard fails.
    #[must_use]
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.0.failure.extend(ops.into_iter().map(|o| o.0));
        self
    }

    pub fn request(&self) -> &TxnRequest {
        &self.0
    }

    pub fn into_request(self) -> TxnRequest {
        self.0
    }
}

impl From<Txn> for TxnRequest {
    fn from(txn: Txn) -> Self {
        txn.0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rollcall_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn compares_carry_target_result_and_value() {
        let cases = [
            (
                Compare::value("k", CompareOp::Equal, "v"),
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b("v")),
            ),
            (
                Compare::version("k", CompareOp::Greater, 2),
                CompareTarget::Version,
                CompareResult::Greater,
                TargetUnion::Version(2),
            ),
            (
                Compare::create_revision("k", CompareOp::Less, 3),
                CompareTarget::Create,
                CompareResult::Less,
                TargetUnion::CreateRevision(3),
            ),
            (
                Compare::mod_revision("k", CompareOp::NotEqual, 4),
                CompareTarget::Mod,
                CompareResult::NotEqual,
                TargetUnion::ModRevision(4),
            ),
            (
                Compare::lease("k", CompareOp::Equal, 5),
                CompareTarget::Lease,
                CompareResult::Equal,
                TargetUnion::Lease(5),
            ),
        ];
        for (compare, target, result, union) in cases {
            assert_eq!(
                pb::Compare::from(compare),
                pb::Compare {
                    result: result as i32,
                    target: target as i32,
                    key: b("k"),
                    range_end: Bytes::new(),
                    target_union: Some(union),
                }
            );
        }
    }

    #[test]
    fn compare_ranges() {
        let c = Compare::version("a/", CompareOp::Equal, 0).with_prefix();
        assert_eq!((c.0.key, c.0.range_end), (b("a/"), b("a0")));
        let c = Compare::version("a", CompareOp::Equal, 0).with_range_end("c");
        assert_eq!(c.0.range_end, b("c"));
    }

    #[test]
    fn txn_builds_the_request_in_order() {
        let inner = Txn::new()
            .when([Compare::version("x", CompareOp::Equal, 1)])
            .and_then([Op::delete_with("x", DeleteOptions::new().prev_kv())]);
        let txn = Txn::new()
            .when([
                Compare::value("k", CompareOp::Equal, "v"),
                Compare::mod_revision("k", CompareOp::Less, 9),
            ])
            .and_then([
                Op::put_with("k", "w", PutOptions::new().lease(7).prev_kv()),
                Op::get_with("p/", GetOptions::new().prefix().limit(2)),
                Op::txn(inner.clone()),
            ])
            .or_else([Op::get("k"), Op::delete("k")]);

        let req = TxnRequest::from(txn);
        assert_eq!(req.compare.len(), 2);
        assert_eq!(req.compare[1].target, CompareTarget::Mod as i32);
        let success: Vec<_> = req.success.into_iter().filter_map(|o| o.request).collect();
        assert_eq!(
            success,
            vec![
                Request::RequestPut(PutRequest {
                    key: b("k"),
                    value: b("w"),
                    lease: 7,
                    prev_kv: true,
                    ..PutRequest::default()
                }),
                Request::RequestRange(RangeRequest {
                    key: b("p/"),
                    range_end: b("p0"),
                    limit: 2,
                    ..RangeRequest::default()
                }),
                Request::RequestTxn(TxnRequest {
                    compare: vec![Compare::version("x", CompareOp::Equal, 1).0],
                    success: vec![RequestOp {
                        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                            key: b("x"),
                            range_end: Bytes::new(),
                            prev_kv: true,
                        })),
                    }],
                    failure: vec![],
                }),
            ]
        );
        let failure: Vec<_> = req.failure.into_iter().filter_map(|o| o.request).collect();
        assert_eq!(
            failure,
            vec![
                Request::RequestRange(RangeRequest {
                    key: b("k"),
                    ..RangeRequest::default()
                }),
                Request::RequestDeleteRange(DeleteRangeRequest {
                    key: b("k"),
                    ..DeleteRangeRequest::default()
                }),
            ]
        );
    }

    #[test]
    fn when_and_branches_accumulate() {
        let txn = Txn::new()
            .when([Compare::version("a", CompareOp::Equal, 0)])
            .when([Compare::version("b", CompareOp::Equal, 0)])
            .and_then([Op::put("a", "1")])
            .and_then([Op::put("b", "1")]);
        assert_eq!(txn.request().compare.len(), 2);
        assert_eq!(txn.request().success.len(), 2);
        assert!(txn.request().failure.is_empty());
    }
}
