//! `txn.rs`: how a txn picks its branches (every compare target and result,
//! nested txns depth first, all against the state before the txn), the checks
//! of the chosen operations, the executor, and `is_read_only`. The
//! duplicate-key rule lives in `api::validate` and is tested here too, being
//! a txn rule.
//!
//! The store the compare tests read (`seeded`): `a` = "m" (create 2, mod 4,
//! version 2, lease 0), `b` = "x" (create 3, mod 3, version 1, lease 7).

use rollcall_proto::etcdserverpb::compare::{CompareResult, TargetUnion};
use rollcall_proto::etcdserverpb::{
    Compare, RangeRequest, RequestOp, TxnRequest, request_op, response_op,
};

use super::fixture::{
    Scratch, b, cmp, compact, grant, op_delete, op_put, op_range, op_range_req, op_txn, put,
    put_leased, range_req, txn,
};
use crate::apply::Applied;
use crate::error::{Error, Refusal};
use crate::txn::{execute, is_read_only, plan};

use CompareResult::{Equal, Greater, Less, NotEqual};

fn seeded() -> Scratch {
    let mut s = Scratch::new();
    s.apply_all(&[
        grant(7, 60),
        put("a", "a"),
        put_leased("b", "x", 7),
        put("a", "m"),
    ]);
    assert_eq!(s.rev, 4);
    s
}

fn holds(s: &Scratch, c: Compare) -> bool {
    let req = TxnRequest {
        compare: vec![c],
        ..Default::default()
    };
    s.read(|view| plan(view, &req, &|_, _| Ok(())))
        .expect("plan")[0]
}

fn when(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

fn applied_txn(s: &mut Scratch, req: TxnRequest) -> rollcall_proto::etcdserverpb::TxnResponse {
    match s.apply(&txn(req)).ok() {
        Applied::Txn(resp) => resp,
        other => panic!("not a txn response: {other:?}"),
    }
}

fn value_of(s: &Scratch, key: &str) -> Option<String> {
    s.read(|v| v.get(&b(key)).expect("get"))
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[test]
fn value_compares_order_bytes() {
    let s = seeded();
    let v = |x: &str| TargetUnion::Value(b(x));
    assert!(holds(&s, cmp("a", "", Equal, v("m"))));
    assert!(!holds(&s, cmp("a", "", Equal, v("n"))));
    assert!(holds(&s, cmp("a", "", NotEqual, v("n"))));
    assert!(holds(&s, cmp("a", "", Greater, v("l"))));
    assert!(holds(&s, cmp("a", "", Greater, v(""))));
    assert!(!holds(&s, cmp("a", "", Greater, v("m"))));
    assert!(holds(&s, cmp("a", "", Less, v("ma"))));
    assert!(!holds(&s, cmp("a", "", Less, v("m"))));
}

#[test]
fn version_create_mod_and_lease_compares_read_the_key_metadata() {
    let s = seeded();
    assert!(holds(&s, cmp("a", "", Equal, TargetUnion::Version(2))));
    assert!(holds(&s, cmp("a", "", Greater, TargetUnion::Version(1))));
    assert!(holds(
        &s,
        cmp("a", "", Equal, TargetUnion::CreateRevision(2))
    ));
    assert!(holds(
        &s,
        cmp("a", "", Less, TargetUnion::CreateRevision(3))
    ));
    assert!(holds(&s, cmp("a", "", Equal, TargetUnion::ModRevision(4))));
    assert!(holds(
        &s,
        cmp("a", "", NotEqual, TargetUnion::ModRevision(2))
    ));
    assert!(holds(&s, cmp("b", "", Equal, TargetUnion::Lease(7))));
    assert!(holds(&s, cmp("a", "", Equal, TargetUnion::Lease(0))));
    assert!(!holds(&s, cmp("b", "", Less, TargetUnion::Lease(7))));
}

#[test]
fn a_missing_key_compares_as_zero_metadata() {
    let s = seeded();
    assert!(holds(&s, cmp("zz", "", Equal, TargetUnion::Version(0))));
    assert!(holds(
        &s,
        cmp("zz", "", Equal, TargetUnion::CreateRevision(0))
    ));
    assert!(holds(&s, cmp("zz", "", Equal, TargetUnion::ModRevision(0))));
    assert!(holds(&s, cmp("zz", "", Equal, TargetUnion::Lease(0))));
    assert!(holds(&s, cmp("zz", "", Less, TargetUnion::ModRevision(1))));
}

#[test]
fn a_value_compare_of_a_missing_key_fails_whatever_the_result() {
    let s = seeded();
    for result in [Equal, NotEqual, Greater, Less] {
        assert!(
            !holds(&s, cmp("zz", "", result, TargetUnion::Value(b("")))),
            "{result:?}"
        );
    }
}

#[test]
fn a_range_compare_holds_only_when_every_key_satisfies_it() {
    let s = seeded();
    assert!(holds(
        &s,
        cmp("a", "c", Greater, TargetUnion::ModRevision(2))
    ));
    assert!(!holds(&s, cmp("a", "c", Equal, TargetUnion::Version(2))));
    assert!(holds(
        &s,
        cmp("a", "\0", Less, TargetUnion::CreateRevision(4))
    ));
    // An empty range compares like a missing key.
    assert!(holds(&s, cmp("x", "y", Equal, TargetUnion::Version(0))));
}

#[test]
fn every_compare_must_hold_for_the_success_branch() {
    let mut s = seeded();
    let resp = applied_txn(
        &mut s,
        when(
            vec![
                cmp("a", "", Equal, TargetUnion::Value(b("m"))),
                cmp("b", "", Equal, TargetUnion::Version(5)),
            ],
            vec![op_put("r", "success")],
            vec![op_put("r", "failure")],
        ),
    );
    assert!(!resp.succeeded);
    assert_eq!(value_of(&s, "r").as_deref(), Some("failure"));
}

#[test]
fn a_txn_without_compares_succeeds() {
    let mut s = seeded();
    let resp = applied_txn(&mut s, when(vec![], vec![op_put("r", "ok")], vec![]));
    assert!(resp.succeeded);
    assert_eq!(value_of(&s, "r").as_deref(), Some("ok"));
}

#[test]
fn the_failure_branch_runs_its_operations_in_order_and_answers_each() {
    let mut s = seeded();
    let resp = applied_txn(
        &mut s,
        when(
            vec![cmp("a", "", Equal, TargetUnion::Version(9))],
            vec![op_delete("a", "\0")],
            vec![op_put("c", "1"), op_range("a", "\0"), op_delete("b", "")],
        ),
    );
    assert!(!resp.succeeded);
    assert_eq!(resp.header.map(|h| h.revision), Some(5));
    let kinds: Vec<_> = resp
        .responses
        .iter()
        .map(|r| match &r.response {
            Some(response_op::Response::ResponsePut(p)) => {
                format!("put@{}", p.header.as_ref().map_or(0, |h| h.revision))
            }
            Some(response_op::Response::ResponseRange(r)) => format!("range:{}", r.count),
            Some(response_op::Response::ResponseDeleteRange(d)) => format!("del:{}", d.deleted),
            other => format!("{other:?}"),
        })
        .collect();
    // The range sees the put before it.
    assert_eq!(kinds, vec!["put@5", "range:3", "del:1"]);
    assert_eq!(value_of(&s, "a").as_deref(), Some("m"));
}

#[test]
fn nested_txns_decide_depth_first_in_operation_order() {
    let s = seeded();
    let inner = |ok: bool| {
        when(
            vec![cmp(
                "a",
                "",
                Equal,
                TargetUnion::Version(if ok { 2 } else { 3 }),
            )],
            vec![],
            vec![],
        )
    };
    let deep = TxnRequest {
        success: vec![op_txn(inner(false))],
        ..inner(true)
    };
    let req = when(
        vec![],
        vec![op_txn(deep), op_put("x", "1"), op_txn(inner(true))],
        vec![op_txn(inner(false))],
    );
    let path = s
        .read(|view| plan(view, &req, &|_, _| Ok(())))
        .expect("plan");
    assert_eq!(path, vec![true, true, false, true]);
}

#[test]
fn nested_compares_see_the_state_before_the_txn_not_its_earlier_writes() {
    let mut s = seeded();
    let nested = when(
        vec![cmp("new", "", Equal, TargetUnion::Version(0))],
        vec![op_put("seen", "before")],
        vec![op_put("seen", "after")],
    );
    let resp = applied_txn(
        &mut s,
        when(vec![], vec![op_put("new", "1"), op_txn(nested)], vec![]),
    );
    assert!(resp.succeeded);
    assert_eq!(value_of(&s, "seen").as_deref(), Some("before"));
}

#[test]
fn a_nested_txn_answers_with_an_empty_header_and_its_own_branch() {
    let mut s = seeded();
    let nested = when(
        vec![cmp("a", "", Equal, TargetUnion::Version(9))],
        vec![op_put("n", "success")],
        vec![op_put("n", "failure")],
    );
    let resp = applied_txn(&mut s, when(vec![], vec![op_txn(nested)], vec![]));
    let Some(response_op::Response::ResponseTxn(inner)) = &resp.responses[0].response else {
        panic!("expected a nested txn response: {resp:?}");
    };
    assert!(!inner.succeeded);
    assert_eq!(inner.header, Some(Default::default()));
    assert_eq!(resp.header.map(|h| h.revision), Some(5));
    assert_eq!(value_of(&s, "n").as_deref(), Some("failure"));
}

#[test]
fn all_changes_of_a_txn_nested_ones_included_share_one_revision() {
    let mut s = seeded();
    let out = s.apply(&txn(when(
        vec![],
        vec![
            op_put("x", "1"),
            op_txn(when(
                vec![],
                vec![op_put("y", "1"), op_delete("a", "")],
                vec![],
            )),
            op_put("z", "1"),
        ],
        vec![],
    )));
    let revs: Vec<_> = out.changes.iter().map(|c| c.kv().mod_revision).collect();
    assert_eq!(revs, vec![5, 5, 5, 5]);
    assert_eq!(out.rev, 5);
}

#[test]
fn check_op_sees_only_the_operations_of_the_chosen_branches() {
    let s = seeded();
    let nested = when(
        vec![cmp("a", "", Equal, TargetUnion::Version(9))],
        vec![op_put("nested-success", "")],
        vec![op_put("nested-failure", "")],
    );
    let req = when(
        vec![],
        vec![op_put("outer-success", ""), op_txn(nested)],
        vec![op_put("outer-failure", "")],
    );
    let seen = std::cell::RefCell::new(Vec::new());
    s.read(|view| {
        plan(view, &req, &|_, op| {
            if let request_op::Request::RequestPut(p) = op {
                seen.borrow_mut()
                    .push(String::from_utf8_lossy(&p.key).into_owned());
            }
            Ok(())
        })
    })
    .expect("plan");
    assert_eq!(seen.into_inner(), vec!["outer-success", "nested-failure"]);
}

#[test]
fn a_refused_operation_in_the_chosen_branch_refuses_the_whole_plan() {
    let s = seeded();
    let req = when(vec![], vec![op_put("a", ""), op_put("bad", "")], vec![]);
    let result = s.read(|view| {
        plan(view, &req, &|_, op| match op {
            request_op::Request::RequestPut(p) if p.key == b("bad") => {
                Err(Error::Refused(Refusal::LeaseNotFound))
            }
            _ => Ok(()),
        })
    });
    assert!(matches!(
        result,
        Err(Error::Refused(Refusal::LeaseNotFound))
    ));
}

fn ranged_at(revision: i64) -> RequestOp {
    op_range_req(RangeRequest {
        revision,
        ..range_req("a", "")
    })
}

#[test]
fn a_range_at_a_future_revision_in_the_chosen_branch_refuses_the_txn() {
    let s = seeded();
    let chosen = when(vec![], vec![ranged_at(5)], vec![]);
    let unchosen = when(vec![], vec![], vec![ranged_at(5)]);
    let plan_of = |req: &TxnRequest| s.read(|view| plan(view, req, &|_, _| Ok(())));
    assert!(matches!(
        plan_of(&chosen),
        Err(Error::Refused(Refusal::FutureRevision))
    ));
    assert_eq!(plan_of(&unchosen).expect("plan"), vec![true]);
    assert!(plan_of(&when(vec![], vec![ranged_at(4)], vec![])).is_ok());
}

#[test]
fn a_range_below_the_compact_revision_refuses_the_txn_before_any_write() {
    let mut s = seeded();
    s.apply(&compact(3)).ok();
    let out = s.apply(&txn(when(
        vec![],
        vec![op_put("w", "1"), ranged_at(2)],
        vec![],
    )));
    assert!(out.changes.is_empty());
    assert!(matches!(out.err(), Error::Refused(Refusal::Compacted)));
    assert_eq!(value_of(&s, "w"), None);
    assert_eq!(s.rev, 4);
}

#[test]
fn a_negative_range_revision_inside_a_txn_is_compared_raw_with_the_compact_revision() {
    // Outside a txn a negative revision reads the newest; inside one, etcd
    // compares it raw with the first revision (-1 before any compaction), so
    // -2 is "compacted" even in a store never compacted. Checked against
    // etcd 3.4.23 over gRPC (etcdctl drops negative revisions itself).
    let mut s = seeded();
    let plan_of = |s: &Scratch, rev| {
        let req = when(vec![], vec![ranged_at(rev)], vec![]);
        s.read(|view| plan(view, &req, &|_, _| Ok(())))
    };
    assert!(plan_of(&s, -1).is_ok());
    assert!(matches!(
        plan_of(&s, -2),
        Err(Error::Refused(Refusal::Compacted))
    ));
    s.apply(&compact(3)).ok();
    assert!(matches!(
        plan_of(&s, -1),
        Err(Error::Refused(Refusal::Compacted))
    ));
}

#[test]
fn a_compare_after_a_compaction_reads_the_newest_revision() {
    // compare reads the newest revision; nothing in a compare names one, so
    // a compaction does not break it.
    let mut s = seeded();
    s.apply(&compact(4)).ok();
    assert!(holds(&s, cmp("a", "", Equal, TargetUnion::ModRevision(4))));
}

#[test]
fn execute_follows_the_path_and_skips_empty_operations() {
    let nested = when(vec![], vec![op_put("n-s", "")], vec![op_put("n-f", "")]);
    let req = when(
        vec![],
        vec![],
        vec![
            op_put("f1", ""),
            RequestOp { request: None },
            op_txn(nested),
            op_delete("f2", ""),
        ],
    );
    let mut ran = Vec::new();
    let resp = execute(&req, &mut [false, false].into_iter(), &mut |op| {
        let (name, response) = match op {
            request_op::Request::RequestPut(p) => (
                p.key.clone(),
                response_op::Response::ResponsePut(Default::default()),
            ),
            request_op::Request::RequestDeleteRange(d) => (
                d.key.clone(),
                response_op::Response::ResponseDeleteRange(Default::default()),
            ),
            other => panic!("unexpected op {other:?}"),
        };
        ran.push(String::from_utf8_lossy(&name).into_owned());
        Ok(response)
    })
    .expect("execute");
    assert_eq!(ran, vec!["f1", "n-f", "f2"]);
    assert!(!resp.succeeded);
    assert_eq!(resp.responses.len(), 4);
    assert!(resp.responses[1].response.is_none());
    assert_eq!(resp.header, None);
}

#[test]
fn is_read_only_looks_at_both_branches_at_every_depth() {
    let reads = |ops: Vec<RequestOp>| when(vec![], ops, vec![]);
    assert!(is_read_only(&TxnRequest::default()));
    assert!(is_read_only(&reads(vec![
        op_range("a", ""),
        RequestOp { request: None }
    ])));
    assert!(is_read_only(&reads(vec![op_txn(reads(vec![op_range(
        "a", "z"
    )]))])));
    assert!(!is_read_only(&reads(vec![op_put("a", "")])));
    assert!(!is_read_only(&reads(vec![op_delete("a", "")])));
    assert!(!is_read_only(&when(
        vec![],
        vec![op_range("a", "")],
        vec![op_put("a", "")]
    )));
    assert!(!is_read_only(&reads(vec![op_txn(when(
        vec![],
        vec![],
        vec![op_delete("a", "")]
    ))])));
}

#[test]
fn a_read_only_txn_changes_nothing_and_creates_no_revision() {
    let mut s = seeded();
    let out = s.apply(&txn(when(vec![], vec![op_range("a", "\0")], vec![])));
    assert!(out.changes.is_empty());
    assert_eq!(out.rev, 4);
}

mod duplicate_keys {
    //! `api::validate::check_txn`: a txn may not write one key twice.
    use super::*;
    use crate::api::validate::check_txn;

    fn check(success: Vec<RequestOp>) -> Result<(), Error> {
        check_txn(&when(vec![], success, vec![]), 128)
    }

    #[test]
    fn two_puts_of_one_key_in_a_branch_are_refused() {
        assert!(matches!(
            check(vec![op_put("k", "1"), op_put("k", "2")]),
            Err(Error::Refused(Refusal::DuplicateKey))
        ));
    }

    #[test]
    fn a_put_inside_a_deleted_range_is_refused() {
        assert!(matches!(
            check(vec![op_delete("a", "c"), op_put("b", "1")]),
            Err(Error::Refused(Refusal::DuplicateKey))
        ));
        assert!(check(vec![op_delete("a", "c"), op_put("c", "1")]).is_ok());
    }

    #[test]
    fn a_nested_put_of_a_key_the_parent_puts_is_refused() {
        let nested = when(vec![], vec![op_put("k", "2")], vec![]);
        assert!(matches!(
            check(vec![op_put("k", "1"), op_txn(nested)]),
            Err(Error::Refused(Refusal::DuplicateKey))
        ));
    }

    #[test]
    fn the_two_branches_of_one_txn_may_put_the_same_key() {
        assert!(
            check_txn(
                &when(vec![], vec![op_put("k", "1")], vec![op_put("k", "2")]),
                128
            )
            .is_ok()
        );
        let nested = when(vec![], vec![op_put("k", "1")], vec![op_put("k", "2")]);
        assert!(check(vec![op_txn(nested)]).is_ok());
    }

    #[test]
    fn two_deletes_of_one_key_are_allowed() {
        assert!(check(vec![op_delete("k", ""), op_delete("k", "")]).is_ok());
    }
}

#[test]
fn put_checks_of_every_operation_come_before_range_revision_checks() {
    // etcd checks the puts of the whole txn first: a bad lease wins over a
    // future revision that comes earlier in the txn.
    let mut s = seeded();
    let out = s.apply(&txn(when(
        vec![],
        vec![
            ranged_at(99),
            op_put("ok", "1"),
            super::fixture::op_put_leased("x", "1", 404),
        ],
        vec![],
    )));
    assert!(matches!(out.err(), Error::Refused(Refusal::LeaseNotFound)));
}

#[test]
fn inside_a_txn_a_missing_key_is_reported_before_an_unknown_lease() {
    // Outside a txn etcd looks the lease up first (see `apply`); inside one
    // its put check looks for the previous key first.
    let mut s = seeded();
    let ignore_value = RequestOp {
        request: Some(request_op::Request::RequestPut(
            rollcall_proto::etcdserverpb::PutRequest {
                ignore_value: true,
                lease: 404,
                ..super::fixture::put_req("missing", "")
            },
        )),
    };
    let inside = s.apply(&txn(when(vec![], vec![ignore_value], vec![])));
    assert!(matches!(inside.err(), Error::Refused(Refusal::KeyNotFound)));
    let outside = s.apply(&crate::apply::Command::Put(
        rollcall_proto::etcdserverpb::PutRequest {
            ignore_value: true,
            lease: 404,
            ..super::fixture::put_req("missing", "")
        },
    ));
    assert!(matches!(
        outside.err(),
        Error::Refused(Refusal::LeaseNotFound)
    ));
}
