//! proptest strategies for etcd requests, biased to edge values: empty keys,
//! `\0` range ends, a small key space (so txns repeat keys), extreme
//! numbers, enum numbers outside the enums, deep nesting, oversized values.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, WatchCreateRequest, compare, request_op,
};

/// etcd's default request limit; the server's gRPC limit is 512 KiB more.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

pub fn key() -> BoxedStrategy<Bytes> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![0]),
        6 => "k[0-5]".prop_map(String::into_bytes),
        2 => vec(any::<u8>(), 1..12),
        1 => Just(vec![0xff, 0xff]),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

pub fn range_end() -> BoxedStrategy<Bytes> {
    prop_oneof![
        3 => Just(Bytes::new()),
        2 => Just(Bytes::from_static(b"\0")),
        2 => key(),
        1 => Just(Bytes::from_static(b"\xff")),
    ]
    .boxed()
}

pub fn int() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => -3i64..40,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(i64::MAX - 1),
        1 => any::<i64>(),
    ]
    .boxed()
}

/// An enum field: its values, just outside them, or anything.
pub fn enum_number(len: i32) -> BoxedStrategy<i32> {
    prop_oneof![3 => 0..len, 1 => Just(len), 1 => Just(-1), 1 => any::<i32>()].boxed()
}

pub fn value() -> BoxedStrategy<Bytes> {
    prop_oneof![
        40 => vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        1 => Just(Bytes::from(vec![b'v'; MAX_REQUEST_BYTES - 64])),
        1 => Just(Bytes::from(vec![b'v'; MAX_REQUEST_BYTES + 1])),
    ]
    .boxed()
}

/// Lease ids: the few the lease strategies grant, and extremes.
pub fn lease_id() -> BoxedStrategy<i64> {
    prop_oneof![
        1 => Just(0),
        3 => 1i64..4,
        1 => Just(-1),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => any::<i64>(),
    ]
    .boxed()
}

pub fn ttl() -> BoxedStrategy<i64> {
    prop_oneof![
        Just(0),
        Just(-1),
        Just(1),
        Just(60),
        Just(9_000_000_000),
        Just(9_000_000_001),
        Just(i64::MAX),
        Just(i64::MIN),
    ]
    .boxed()
}

pub fn range() -> BoxedStrategy<RangeRequest> {
    (
        (key(), range_end(), int(), int()),
        (enum_number(3), enum_number(5), any::<[bool; 3]>()),
        (int(), int(), int(), int()),
    )
        .prop_map(
            |(
                (key, range_end, limit, revision),
                (sort_order, sort_target, [serializable, keys_only, count_only]),
                (min_mod_revision, max_mod_revision, min_create_revision, max_create_revision),
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                serializable,
                keys_only,
                count_only,
                min_mod_revision,
                max_mod_revision,
                min_create_revision,
                max_create_revision,
            },
        )
        .boxed()
}

pub fn put() -> BoxedStrategy<PutRequest> {
    // The ignore flags are rare: either one set usually refuses the put.
    let rare = || proptest::bool::weighted(0.1);
    (key(), value(), lease_id(), (any::<bool>(), rare(), rare()))
        .prop_map(
            |(key, value, lease, (prev_kv, ignore_value, ignore_lease))| PutRequest {
                key,
                value,
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
        .boxed()
}

pub fn delete() -> BoxedStrategy<DeleteRangeRequest> {
    (key(), range_end(), any::<bool>())
        .prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        })
        .boxed()
}

pub fn compare() -> BoxedStrategy<Compare> {
    let target_union = prop_oneof![
        1 => Just(None),
        2 => int().prop_map(|v| Some(compare::TargetUnion::Version(v))),
        2 => int().prop_map(|v| Some(compare::TargetUnion::CreateRevision(v))),
        2 => int().prop_map(|v| Some(compare::TargetUnion::ModRevision(v))),
        2 => value().prop_map(|v| Some(compare::TargetUnion::Value(v))),
        2 => lease_id().prop_map(|v| Some(compare::TargetUnion::Lease(v))),
    ];
    (
        enum_number(4),
        enum_number(5),
        key(),
        range_end(),
        target_union,
    )
        .prop_map(|(result, target, key, range_end, target_union)| Compare {
            result,
            target,
            key,
            range_end,
            target_union,
        })
        .boxed()
}

fn leaf_op() -> BoxedStrategy<RequestOp> {
    prop_oneof![
        3 => range().prop_map(request_op::Request::RequestRange).prop_map(Some),
        4 => put().prop_map(request_op::Request::RequestPut).prop_map(Some),
        2 => delete().prop_map(request_op::Request::RequestDeleteRange).prop_map(Some),
        1 => Just(None),
    ]
    .prop_map(|request| RequestOp { request })
    .boxed()
}

/// Txns nested a few levels, each branch a few ops.
pub fn txn() -> BoxedStrategy<TxnRequest> {
    let leaf = (
        vec(compare(), 0..3),
        vec(leaf_op(), 0..4),
        vec(leaf_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    let nested = leaf.prop_recursive(4, 24, 4, |inner| {
        let op = prop_oneof![
            3 => leaf_op(),
            1 => inner.prop_map(|t| RequestOp {
                request: Some(request_op::Request::RequestTxn(t)),
            }),
        ];
        (vec(compare(), 0..3), vec(op.clone(), 0..4), vec(op, 0..3)).prop_map(
            |(compare, success, failure)| TxnRequest {
                compare,
                success,
                failure,
            },
        )
    });
    prop_oneof![
        20 => nested,
        1 => (1usize..140).prop_map(deep_txn),
        1 => (126usize..131).prop_map(wide_txn),
    ]
    .boxed()
}

/// A txn nested `depth` levels, a put at the bottom (prost refuses more
/// than 100 levels of message nesting).
fn deep_txn(depth: usize) -> TxnRequest {
    let mut txn = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: Bytes::from_static(b"deep"),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    for _ in 1..depth {
        txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(txn)),
            }],
            ..Default::default()
        };
    }
    txn
}

/// About `max-txn-ops` (128) distinct puts.
fn wide_txn(ops: usize) -> TxnRequest {
    TxnRequest {
        success: (0..ops)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: Bytes::from(format!("wide{i}")),
                    ..Default::default()
                })),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn compaction() -> BoxedStrategy<CompactionRequest> {
    (int(), any::<bool>())
        .prop_map(|(revision, physical)| CompactionRequest { revision, physical })
        .boxed()
}

pub fn grant() -> BoxedStrategy<LeaseGrantRequest> {
    (ttl(), lease_id())
        .prop_map(|(ttl, id)| LeaseGrantRequest { ttl, id })
        .boxed()
}

pub fn watch_create() -> BoxedStrategy<WatchCreateRequest> {
    (
        (key(), range_end(), int()),
        vec(enum_number(2), 0..3),
        (int(), any::<[bool; 3]>()),
    )
        .prop_map(
            |(
                (key, range_end, start_revision),
                filters,
                (watch_id, [progress_notify, prev_kv, fragment]),
            )| WatchCreateRequest {
                key,
                range_end,
                start_revision,
                progress_notify,
                filters,
                prev_kv,
                watch_id,
                fragment,
            },
        )
        .boxed()
}
