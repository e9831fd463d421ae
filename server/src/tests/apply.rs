//! `apply.rs`: each command kind applied to a scratch store as the applier
//! would, what it answers, which changes (watch events) and side-state
//! changes it makes, and that a refused command leaves nothing behind.

use rollcall_proto::etcdserverpb::alarm_request::AlarmAction;
use rollcall_proto::etcdserverpb::{AlarmType, DeleteRangeRequest, PutRequest, TxnRequest};

use super::fixture::{
    Outcome, Scratch, alarm, b, compact, delete, grant, op_delete, op_put, op_put_leased, op_range,
    put, put_leased, put_req, range_req, revoke, txn,
};
use crate::apply::side_state::SideChange;
use crate::apply::{Applied, Command, read_only_txn};
use crate::error::{Error, Refusal};
use crate::mvcc::Record;

const MEMBER: u64 = 42;

fn value_of(s: &Scratch, key: &str) -> Option<(String, i64)> {
    s.read(|v| v.get(&b(key)).expect("get"))
        .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.lease))
}

fn lease_keys(s: &Scratch, id: i64) -> Option<Vec<String>> {
    s.leases.get(id).map(|entry| {
        entry
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    })
}

/// Asserts a refusal changed nothing: no revision, no change, no side
/// change, history untouched.
fn assert_refused_cleanly(s: &Scratch, out: Outcome<Applied>, history: &[(i64, i64)]) -> Error {
    let rev_before = history.last().map_or(1, |k| k.0);
    assert!(out.changes.is_empty(), "changes: {:?}", out.changes);
    assert!(out.side.is_empty(), "side changes: {:?}", out.side);
    assert_eq!(out.rev, rev_before);
    assert_eq!(s.history_keys(), history);
    out.err()
}

#[test]
fn a_put_answers_with_its_revision_and_the_previous_key_when_asked() {
    let mut s = Scratch::new();
    s.apply(&put("k", "1")).ok();
    let out = s.apply(&Command::Put(PutRequest {
        prev_kv: true,
        ..put_req("k", "2")
    }));
    let Applied::Put(resp) = out.ok() else {
        panic!("not a put response")
    };
    assert_eq!(resp.header.map(|h| h.revision), Some(3));
    let prev = resp.prev_kv.expect("prev_kv");
    assert_eq!((prev.value.as_ref(), prev.mod_revision), (&b"1"[..], 2));
}

#[test]
fn a_put_without_prev_kv_does_not_return_the_previous_key() {
    let mut s = Scratch::new();
    s.apply(&put("k", "1")).ok();
    let Applied::Put(resp) = s.apply(&put("k", "2")).ok() else {
        panic!("not a put response")
    };
    assert_eq!(resp.prev_kv, None);
}

#[test]
fn a_put_with_an_unknown_lease_is_refused_and_leaves_no_effect() {
    let mut s = Scratch::new();
    s.apply(&put("k", "1")).ok();
    let history = s.history_keys();
    let out = s.apply(&put_leased("k", "2", 99));
    assert!(matches!(
        assert_refused_cleanly(&s, out, &history),
        Error::Refused(Refusal::LeaseNotFound)
    ));
    assert_eq!(value_of(&s, "k"), Some(("1".into(), 0)));
}

#[test]
fn ignore_value_keeps_the_value_and_ignore_lease_keeps_the_lease() {
    let mut s = Scratch::new();
    s.apply_all(&[grant(5, 60), put_leased("k", "v", 5)]);
    s.apply(&Command::Put(PutRequest {
        ignore_value: true,
        lease: 0,
        ..put_req("k", "")
    }))
    .ok();
    assert_eq!(value_of(&s, "k"), Some(("v".into(), 0)));
    s.apply(&put_leased("k", "v", 5)).ok();
    s.apply(&Command::Put(PutRequest {
        ignore_lease: true,
        ..put_req("k", "new")
    }))
    .ok();
    assert_eq!(value_of(&s, "k"), Some(("new".into(), 5)));
    assert_eq!(lease_keys(&s, 5), Some(vec!["k".into()]));
}

#[test]
fn ignore_value_on_a_missing_key_is_refused_as_key_not_found() {
    let mut s = Scratch::new();
    for req in [
        PutRequest {
            ignore_value: true,
            ..put_req("k", "")
        },
        PutRequest {
            ignore_lease: true,
            ..put_req("k", "v")
        },
    ] {
        let out = s.apply(&Command::Put(req));
        assert!(matches!(
            assert_refused_cleanly(&s, out, &[]),
            Error::Refused(Refusal::KeyNotFound)
        ));
    }
}

#[test]
fn a_delete_answers_with_the_count_and_the_previous_keys_when_asked() {
    let mut s = Scratch::new();
    s.apply_all(&[put("a", "1"), put("b", "2"), put("c", "3")]);
    let out = s.apply(&Command::DeleteRange(DeleteRangeRequest {
        prev_kv: true,
        ..super::fixture::delete_req("a", "c")
    }));
    let Applied::DeleteRange(resp) = out.ok() else {
        panic!("not a delete response")
    };
    assert_eq!(resp.deleted, 2);
    assert_eq!(resp.header.map(|h| h.revision), Some(5));
    let prev: Vec<_> = resp.prev_kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(prev, vec![b("1"), b("2")]);
}

#[test]
fn a_delete_of_nothing_answers_zero_at_the_current_revision_with_no_event() {
    let mut s = Scratch::new();
    s.apply(&put("a", "1")).ok();
    let out = s.apply(&delete("x", ""));
    assert!(out.changes.is_empty());
    let Applied::DeleteRange(resp) = out.ok() else {
        panic!("not a delete response")
    };
    assert_eq!(
        (resp.deleted, resp.header.map(|h| h.revision)),
        (0, Some(2))
    );
}

#[test]
fn a_txn_refused_by_its_last_operation_applies_none_of_its_operations() {
    let mut s = Scratch::new();
    s.apply_all(&[put("a", "1"), put("b", "1")]);
    let history = s.history_keys();
    let out = s.apply(&txn(TxnRequest {
        success: vec![
            op_put("a", "2"),
            op_delete("b", ""),
            op_put_leased("c", "1", 77),
        ],
        ..Default::default()
    }));
    assert!(matches!(
        assert_refused_cleanly(&s, out, &history),
        Error::Refused(Refusal::LeaseNotFound)
    ));
    assert_eq!(value_of(&s, "a"), Some(("1".into(), 0)));
    assert_eq!(value_of(&s, "b"), Some(("1".into(), 0)));
}

#[test]
fn a_txn_put_with_ignore_value_of_a_missing_key_refuses_the_txn() {
    let mut s = Scratch::new();
    s.apply(&put("a", "1")).ok();
    let history = s.history_keys();
    let ignore = rollcall_proto::etcdserverpb::RequestOp {
        request: Some(
            rollcall_proto::etcdserverpb::request_op::Request::RequestPut(PutRequest {
                ignore_value: true,
                ..put_req("missing", "")
            }),
        ),
    };
    let out = s.apply(&txn(TxnRequest {
        success: vec![op_put("a", "2"), ignore],
        ..Default::default()
    }));
    assert!(matches!(
        assert_refused_cleanly(&s, out, &history),
        Error::Refused(Refusal::KeyNotFound)
    ));
}

#[test]
fn a_txn_put_keeps_lease_attachments_in_step() {
    let mut s = Scratch::new();
    s.apply(&grant(3, 60)).ok();
    let out = s.apply(&txn(TxnRequest {
        success: vec![op_put_leased("x", "1", 3), op_put_leased("y", "1", 3)],
        ..Default::default()
    }));
    assert_eq!(out.changes.len(), 2);
    assert_eq!(lease_keys(&s, 3), Some(vec!["x".into(), "y".into()]));
}

#[test]
fn a_lease_grant_records_the_lease_and_a_second_grant_of_its_id_is_refused() {
    let mut s = Scratch::new();
    let out = s.apply(&grant(9, 30));
    assert_eq!(out.side, vec![SideChange::Grant { id: 9, ttl: 30 }]);
    assert!(out.changes.is_empty());
    let Applied::LeaseGrant(resp) = out.ok() else {
        panic!("not a grant response")
    };
    assert_eq!(
        (resp.id, resp.ttl, resp.header.map(|h| h.revision)),
        (9, 30, Some(1))
    );
    let again = s.apply(&grant(9, 60));
    assert!(matches!(
        assert_refused_cleanly(&s, again, &[]),
        Error::Refused(Refusal::LeaseExists)
    ));
    assert_eq!(s.leases.get(9).map(|e| e.ttl), Some(30));
}

#[test]
fn a_put_attaches_its_key_to_its_lease_and_a_plain_put_or_delete_detaches_it() {
    let mut s = Scratch::new();
    s.apply_all(&[grant(1, 60), grant(2, 60)]);
    let attach = s.apply(&put_leased("k", "v", 1));
    assert!(attach.side.contains(&SideChange::Attach {
        key: b("k"),
        lease: 1
    }));
    assert_eq!(lease_keys(&s, 1), Some(vec!["k".into()]));
    s.apply(&put_leased("k", "v", 2)).ok();
    assert_eq!(lease_keys(&s, 1), Some(vec![]));
    assert_eq!(lease_keys(&s, 2), Some(vec!["k".into()]));
    s.apply(&put("k", "plain")).ok();
    assert_eq!(lease_keys(&s, 2), Some(vec![]));
    s.apply(&put_leased("k", "v", 2)).ok();
    let detach = s.apply(&delete("k", ""));
    assert_eq!(detach.side, vec![SideChange::Detach { key: b("k") }]);
    assert_eq!(lease_keys(&s, 2), Some(vec![]));
}

#[test]
fn a_lease_revoke_deletes_every_attached_key_in_one_revision_in_key_order() {
    let mut s = Scratch::new();
    s.apply_all(&[
        grant(7, 60),
        put_leased("c", "1", 7),
        put_leased("a", "1", 7),
        put("other", "1"),
        put_leased("b", "1", 7),
    ]);
    let out = s.apply(&revoke(7));
    let deleted: Vec<_> = out
        .changes
        .iter()
        .map(|c| {
            assert!(matches!(c, Record::Tombstone(_)), "{c:?}");
            (
                String::from_utf8_lossy(&c.kv().key).into_owned(),
                c.kv().mod_revision,
            )
        })
        .collect();
    assert_eq!(
        deleted,
        vec![("a".into(), 6), ("b".into(), 6), ("c".into(), 6)]
    );
    assert_eq!(s.history_keys().iter().filter(|k| k.0 == 6).count(), 3);
    let Applied::LeaseRevoke(resp, id) = out.ok() else {
        panic!("not a revoke response")
    };
    assert_eq!((resp.header.map(|h| h.revision), id), (Some(6), 7));
    assert!(!s.leases.contains(7));
    assert_eq!(value_of(&s, "other"), Some(("1".into(), 0)));
}

#[test]
fn revoking_a_lease_without_keys_creates_no_revision() {
    let mut s = Scratch::new();
    s.apply(&grant(7, 60)).ok();
    let out = s.apply(&revoke(7));
    assert!(out.changes.is_empty());
    assert_eq!(out.side, vec![SideChange::Revoke { id: 7 }]);
    assert_eq!(out.rev, 1);
}

#[test]
fn revoking_an_unknown_lease_is_refused() {
    let mut s = Scratch::new();
    let out = s.apply(&revoke(7));
    assert!(matches!(
        assert_refused_cleanly(&s, out, &[]),
        Error::Refused(Refusal::LeaseNotFound)
    ));
}

#[test]
fn a_compaction_answers_at_the_current_revision_and_creates_none() {
    let mut s = Scratch::new();
    s.apply_all(&[put("a", "1"), put("a", "2"), put("a", "3")]);
    let out = s.apply(&compact(3));
    assert!(out.changes.is_empty());
    let Applied::Compact(resp, at) = out.ok() else {
        panic!("not a compaction response")
    };
    assert_eq!((resp.header.map(|h| h.revision), at), (Some(4), 3));
    assert_eq!((s.rev, s.compact_rev), (4, 3));
    assert_eq!(s.history_keys(), vec![(3, 0), (4, 0)]);
}

#[test]
fn a_compaction_at_or_below_the_compact_revision_or_in_the_future_is_refused() {
    let mut s = Scratch::new();
    s.apply_all(&[put("a", "1"), put("a", "2")]);
    assert!(matches!(
        s.apply(&compact(4)).err(),
        Error::Refused(Refusal::FutureRevision)
    ));
    s.apply(&compact(2)).ok();
    assert!(matches!(
        s.apply(&compact(2)).err(),
        Error::Refused(Refusal::Compacted)
    ));
    assert!(matches!(
        s.apply(&compact(1)).err(),
        Error::Refused(Refusal::Compacted)
    ));
    assert_eq!(s.compact_rev, 2);
}

#[test]
fn alarms_are_raised_listed_and_disarmed_without_a_revision() {
    let mut s = Scratch::new();
    let raised = s.apply(&alarm(AlarmAction::Activate, MEMBER));
    assert_eq!(
        raised.side,
        vec![SideChange::Activate {
            member: MEMBER,
            alarm: AlarmType::Nospace as i32
        }]
    );
    assert_eq!(raised.rev, 1);
    let Applied::Alarm(listed) = s.apply(&alarm(AlarmAction::Get, 0)).ok() else {
        panic!("not an alarm response")
    };
    assert_eq!(listed.alarms.len(), 1);
    assert_eq!(listed.alarms[0].member_id, MEMBER);
    let Applied::Alarm(disarmed) = s.apply(&alarm(AlarmAction::Deactivate, MEMBER)).ok() else {
        panic!("not an alarm response")
    };
    assert_eq!(disarmed.alarms.len(), 1);
    let Applied::Alarm(again) = s.apply(&alarm(AlarmAction::Deactivate, MEMBER)).ok() else {
        panic!("not an alarm response")
    };
    assert!(again.alarms.is_empty());
    assert!(s.alarms.is_empty());
}

#[test]
fn nospace_refuses_every_command_that_adds_data_and_nothing_else() {
    let mut s = Scratch::new();
    s.apply_all(&[
        grant(1, 60),
        put_leased("leased", "1", 1),
        put("a", "1"),
        put("b", "1"),
    ]);
    s.apply(&alarm(AlarmAction::Activate, MEMBER)).ok();
    let history = s.history_keys();

    let adds_data = [
        put("c", "1"),
        grant(2, 60),
        txn(TxnRequest {
            success: vec![op_put("c", "1")],
            ..Default::default()
        }),
        // Charged for its costlier branch, even when the other one would run.
        txn(TxnRequest {
            success: vec![op_delete("a", "")],
            failure: vec![op_put("c", "1")],
            ..Default::default()
        }),
    ];
    for command in &adds_data {
        let out = s.apply(command);
        assert!(
            matches!(
                assert_refused_cleanly(&s, out, &history),
                Error::Refused(Refusal::NoSpace)
            ),
            "{command:?}"
        );
    }

    let rev = s.rev;
    s.apply(&delete("a", "")).ok();
    s.apply(&txn(TxnRequest {
        success: vec![op_delete("b", ""), op_range("a", "z")],
        ..Default::default()
    }))
    .ok();
    s.apply(&revoke(1)).ok();
    s.apply(&compact(rev)).ok();
    assert_eq!(s.rev, rev + 3);
    assert_eq!(value_of(&s, "leased"), None);

    s.apply(&alarm(AlarmAction::Deactivate, MEMBER)).ok();
    s.apply(&put("c", "1")).ok();
}

#[test]
fn a_read_only_txn_answers_like_the_write_path_at_the_reader_revision() {
    let mut s = Scratch::new();
    s.apply_all(&[put("a", "1"), put("b", "2")]);
    let req = TxnRequest {
        compare: vec![super::fixture::cmp(
            "a",
            "",
            rollcall_proto::etcdserverpb::compare::CompareResult::Equal,
            rollcall_proto::etcdserverpb::compare::TargetUnion::Value(b("1")),
        )],
        success: vec![super::fixture::op_range_req(range_req("a", "z"))],
        failure: vec![],
    };
    let read = s
        .read(|view| read_only_txn(view, &req))
        .expect("read-only txn");
    let Applied::Txn(written) = s.apply(&txn(req)).ok() else {
        panic!("not a txn response")
    };
    assert_eq!(read, written);
    assert_eq!(read.header.map(|h| h.revision), Some(3));
}

fn checkpoint(pairs: &[(i64, i64)]) -> Command {
    use rollcall_proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
    Command::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: pairs
            .iter()
            .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect(),
    })
}

#[test]
fn a_lease_checkpoint_records_remaining_ttls_without_a_revision() {
    let mut s = Scratch::new();
    s.apply_all(&[grant(1, 600), grant(2, 600), put("k", "v")]);
    let out = s.apply(&checkpoint(&[(1, 120), (2, 30), (9, 5)]));
    let Applied::LeaseCheckpoint(resp) = out.ok() else {
        panic!("not a checkpoint answer");
    };
    // No key changed: the revision stays, and the unknown lease 9 is skipped.
    assert_eq!(resp.header.map(|h| h.revision), Some(2));
    let starting = |s: &Scratch, id| s.leases.get(id).map(|e| e.starting_ttl());
    assert_eq!((starting(&s, 1), starting(&s, 2)), (Some(120), Some(30)));
    // A reset (0) brings back the full TTL; a remainder never exceeds it.
    s.apply(&checkpoint(&[(2, 0), (1, 900)])).ok();
    assert_eq!((starting(&s, 1), starting(&s, 2)), (Some(600), Some(600)));
}

#[tokio::test]
async fn lease_checkpoints_survive_a_restart_and_go_with_their_lease() {
    use super::fixture::Node;
    let node = Node::start();
    for command in [
        grant(1, 600),
        grant(2, 600),
        grant(3, 600),
        checkpoint(&[(1, 120), (2, 30), (3, 40)]),
        checkpoint(&[(2, 0)]),
        revoke(3),
    ] {
        node.proposer.propose(command).await.expect("applied");
    }
    let node = node.restart();
    let committed = node.committed();
    let starting: Vec<_> = committed.leases.starting_ttls().collect();
    assert_eq!(starting, [(1, 600, 120), (2, 600, 600)]);
    // Only lease 1's record is on disk: reset and revoked ones are removed.
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = node.store.db();
    let txn = db.begin_read().expect("read");
    let rows = txn
        .open_table(crate::storage::LEASE_CHECKPOINTS)
        .expect("table")
        .len()
        .expect("len");
    assert_eq!(rows, 1);
}
