//! proptest strategies for the commands of the write path: small key spaces
//! (so puts, deletes, compares and leases collide often) and every command
//! kind, with the edge cases that matter to etcd's semantics (from-key and
//! prefix ranges, ignore_value/ignore_lease, nested txns, compaction at any
//! revision, unknown leases, NOSPACE raised and disarmed).

use bytes::Bytes;
use proptest::prelude::*;
use rollcall_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, Compare, DeleteRangeRequest, LeaseCheckpoint,
    LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, alarm_request, compare, request_op,
};

use crate::apply::Command;

pub(crate) const KEYS: &[&[u8]] = &[
    b"a", b"b", b"c", b"k", b"k/1", b"k/2", b"k/3", b"k/4", b"k0", b"z",
];

pub(crate) fn key() -> impl Strategy<Value = Bytes> {
    prop::sample::select(KEYS).prop_map(Bytes::from_static)
}

pub(crate) fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from)
}

/// A range end for `key`: a single key, every key from it, a prefix, or
/// another key of the space (possibly below `key`: an empty range).
pub(crate) fn range_end() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Bytes::from_static(b"\0"))),
        1 => Just(Some(Bytes::from_static(b"k0"))),
        1 => key().prop_map(Some),
    ]
}

fn with_end(key: Bytes, end: Option<Bytes>) -> (Bytes, Bytes) {
    (key, end.unwrap_or_default())
}

pub(crate) fn put(leases: bool) -> impl Strategy<Value = PutRequest> {
    let lease = if leases { 0..5i64 } else { 0..1i64 };
    (key(), value(), lease, any::<bool>(), 0..20u8).prop_map(
        move |(key, value, lease, prev_kv, odd)| {
            PutRequest {
                key,
                // ignore_value/ignore_lease need an empty value/no lease (the
                // API checks that); rare, as in real traffic.
                value: if odd == 0 { Bytes::new() } else { value },
                lease: if odd <= 1 { 0 } else { lease },
                prev_kv,
                ignore_value: leases && odd == 0,
                ignore_lease: leases && odd == 1,
            }
        },
    )
}

pub(crate) fn delete_range() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, end, prev_kv)| {
        let (key, range_end) = with_end(key, end);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        }
    })
}

pub(crate) fn range() -> impl Strategy<Value = RangeRequest> {
    (key(), range_end(), 0..3i64).prop_map(|(key, end, limit)| {
        let (key, range_end) = with_end(key, end);
        RangeRequest {
            key,
            range_end,
            limit,
            ..Default::default()
        }
    })
}

pub(crate) fn compare() -> impl Strategy<Value = Compare> {
    (key(), 0..4i32, 0..4i32, value(), 0..6i64).prop_map(|(key, target, result, v, n)| {
        let target_union = match target {
            0 => compare::TargetUnion::Version(n),
            1 => compare::TargetUnion::CreateRevision(n * 3),
            2 => compare::TargetUnion::ModRevision(n * 3),
            _ => compare::TargetUnion::Value(v),
        };
        Compare {
            result,
            target,
            key,
            range_end: Bytes::new(),
            target_union: Some(target_union),
        }
    })
}

fn op(leases: bool, nested: bool) -> BoxedStrategy<RequestOp> {
    let leaf = prop_oneof![
        range().prop_map(request_op::Request::RequestRange),
        put(leases).prop_map(request_op::Request::RequestPut),
        delete_range().prop_map(request_op::Request::RequestDeleteRange),
    ];
    let request = if nested {
        prop_oneof![
            6 => leaf,
            1 => txn_of(leases, false).prop_map(request_op::Request::RequestTxn),
        ]
        .boxed()
    } else {
        leaf.boxed()
    };
    request
        .prop_map(|request| RequestOp {
            request: Some(request),
        })
        .boxed()
}

fn txn_of(leases: bool, nested: bool) -> BoxedStrategy<TxnRequest> {
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op(leases, nested), 0..4),
        prop::collection::vec(op(leases, nested), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
        .boxed()
}

/// Any txn, nested ones included.
pub(crate) fn txn() -> BoxedStrategy<TxnRequest> {
    txn_of(true, true)
}

/// Any command, leases and alarms included.
pub(crate) fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        8 => put(true).prop_map(Command::Put),
        3 => delete_range().prop_map(Command::DeleteRange),
        4 => txn().prop_map(Command::Txn),
        1 => (0..120i64).prop_map(|revision| Command::Compact(CompactionRequest {
            revision,
            physical: false,
        })),
        2 => (1..5i64, 1..100i64).prop_map(|(id, ttl)| Command::LeaseGrant(LeaseGrantRequest { id, ttl })),
        1 => (0..6i64).prop_map(|id| Command::LeaseRevoke(LeaseRevokeRequest { id })),
        1 => proptest::collection::vec((0..6i64, 0..100i64), 1..4).prop_map(|pairs| {
            Command::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: pairs
                    .into_iter()
                    .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                    .collect(),
            })
        }),
        // Raised less often than disarmed, so NOSPACE refusals happen but
        // do not refuse most of a sequence.
        1 => (0..5i32).prop_map(|action| Command::Alarm(AlarmRequest {
            action: match action {
                0 => alarm_request::AlarmAction::Get,
                1 => alarm_request::AlarmAction::Activate,
                _ => alarm_request::AlarmAction::Deactivate,
            } as i32,
            member_id: 7,
            alarm: AlarmType::Nospace as i32,
        })),
    ]
}
