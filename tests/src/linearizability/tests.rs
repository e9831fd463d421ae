//! The checker's own tests on hand-written histories with a known verdict.

use std::time::Duration;

use super::*;

const KEY: &str = "k";

fn op(
    client: ClientId,
    kind: OpKind,
    invoke: Nanos,
    complete: Nanos,
    outcome: Outcome,
) -> Operation {
    Operation {
        client,
        key: KEY.into(),
        kind,
        invoke,
        complete,
        outcome,
    }
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn get(c: ClientId, t0: Nanos, t1: Nanos, seen: Option<&str>) -> Operation {
    op(
        c,
        OpKind::Get,
        t0,
        t1,
        Outcome::Ok(Observed::Get(seen.map(v))),
    )
}

fn put(c: ClientId, t0: Nanos, t1: Nanos, value: &str) -> Operation {
    op(
        c,
        OpKind::Put { value: v(value) },
        t0,
        t1,
        Outcome::Ok(Observed::Put),
    )
}

fn put_lost(c: ClientId, t0: Nanos, value: &str) -> Operation {
    op(
        c,
        OpKind::Put { value: v(value) },
        t0,
        t0 + 1,
        Outcome::Indeterminate,
    )
}

fn cas(
    c: ClientId,
    t0: Nanos,
    t1: Nanos,
    expected: Option<&str>,
    new: &str,
    ok: bool,
) -> Operation {
    let kind = OpKind::CompareAndSet {
        expected: expected.map(v),
        new: v(new),
    };
    op(
        c,
        kind,
        t0,
        t1,
        Outcome::Ok(Observed::CompareAndSet { succeeded: ok }),
    )
}

fn del(c: ClientId, t0: Nanos, t1: Nanos, deleted: bool) -> Operation {
    op(
        c,
        OpKind::Delete,
        t0,
        t1,
        Outcome::Ok(Observed::Delete { deleted }),
    )
}

#[track_caller]
fn passes(ops: &[Operation]) -> CheckReport {
    match check(ops, Budget::default()) {
        Ok(report) => report,
        Err(e) => panic!("expected linearizable, got: {e}"),
    }
}

#[track_caller]
fn fails(ops: &[Operation]) -> Violation {
    match check(ops, Budget::default()) {
        Err(CheckError::NotLinearizable(v)) => *v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn empty_history_passes() {
    assert_eq!(passes(&[]).keys, 0);
}

#[test]
fn concurrent_puts_with_reads_observing_either() {
    for seen in ["a", "b"] {
        passes(&[
            put(1, 0, 10, "a"),
            put(2, 0, 10, "b"),
            get(3, 20, 30, Some(seen)),
            get(4, 35, 40, Some(seen)),
        ]);
    }
    // A read overlapping both puts may also see neither, or one then the other.
    passes(&[
        put(1, 10, 30, "a"),
        put(2, 10, 30, "b"),
        get(3, 0, 15, None),
        get(4, 16, 20, Some("b")),
        get(5, 21, 25, Some("a")),
    ]);
}

#[test]
fn cas_race_where_exactly_one_succeeds() {
    passes(&[
        cas(1, 0, 10, None, "x", false),
        cas(2, 0, 10, None, "y", true),
        get(3, 20, 30, Some("y")),
    ]);
    passes(&[
        put(1, 0, 5, "a"),
        cas(2, 10, 20, Some("a"), "b", true),
        cas(3, 10, 20, Some("a"), "c", false),
        cas(4, 10, 20, Some("b"), "d", true),
        get(5, 30, 40, Some("d")),
    ]);
}

#[test]
fn indeterminate_writes_observed_or_never_observed() {
    // Taken effect, and seen.
    passes(&[put_lost(1, 0, "a"), get(2, 50, 60, Some("a"))]);
    // Never taken effect.
    passes(&[
        put_lost(1, 0, "a"),
        get(2, 50, 60, None),
        get(2, 70, 80, None),
    ]);
    // Taken effect long after the client gave up on it.
    passes(&[
        put_lost(1, 0, "a"),
        get(2, 50, 60, None),
        put(1, 61, 62, "b"),
        get(2, 70, 80, Some("a")),
    ]);
    // An indeterminate compare-and-set and delete.
    passes(&[
        op(
            1,
            OpKind::CompareAndSet {
                expected: None,
                new: v("x"),
            },
            0,
            5,
            Outcome::Indeterminate,
        ),
        get(2, 10, 20, Some("x")),
        op(1, OpKind::Delete, 21, 22, Outcome::Indeterminate),
        get(2, 30, 40, Some("x")),
        get(2, 50, 60, None),
    ]);
}

#[test]
fn an_unobserved_indeterminate_write_still_explains_a_failed_compare() {
    // Nothing reads "b", but only it explains why the compare against "a"
    // failed: pruning must not drop it.
    let report = passes(&[
        put(1, 0, 10, "a"),
        put_lost(2, 15, "b"),
        cas(3, 30, 40, Some("a"), "c", false),
        del(3, 42, 44, true),
        get(3, 50, 60, None),
    ]);
    assert_eq!(report.pruned_writes, 0);
}

#[test]
fn indeterminate_writes_are_pruned_or_pinned() {
    let report = passes(&[
        put_lost(1, 0, "never seen"),
        put_lost(2, 0, "seen"),
        get(3, 50, 60, Some("seen")),
        get(4, 70, 80, Some("seen")),
    ]);
    assert_eq!((report.pruned_writes, report.patched_writes), (1, 1));
    let lost_read = op(1, OpKind::Get, 0, 1, Outcome::Indeterminate);
    assert_eq!(passes(&[lost_read]).dropped_reads, 1);
}

#[test]
fn a_lost_write_of_a_repeated_value_is_not_pinned_to_its_first_reader() {
    // The first read of "a" is explained by the definite put; the lost put
    // of "a" takes effect only after "b", for the second read.
    let report = passes(&[
        put_lost(1, 0, "a"),
        put(2, 0, 5, "a"),
        get(3, 10, 20, Some("a")),
        put(2, 21, 25, "b"),
        get(3, 30, 35, Some("a")),
    ]);
    assert_eq!(report.patched_writes, 0);
}

#[test]
fn stale_read_after_a_completed_write_fails() {
    let violation = fails(&[
        put(1, 0, 10, "a"),
        put(2, 20, 30, "b"),
        get(3, 40, 50, Some("a")),
    ]);
    assert_eq!(violation.key, v(KEY));
    assert_eq!(violation.state, Register::Value(v("b")));
}

#[test]
fn two_compare_and_sets_on_the_same_value_both_succeeding_fail() {
    fails(&[
        put(1, 0, 10, "a"),
        cas(2, 20, 30, Some("a"), "b", true),
        cas(3, 20, 30, Some("a"), "c", true),
    ]);
}

#[test]
fn a_read_of_a_value_never_written_fails() {
    fails(&[put(1, 0, 10, "a"), get(2, 5, 15, Some("z"))]);
    // Nor may an indeterminate write be read before it was even invoked.
    fails(&[get(1, 0, 10, Some("a")), put_lost(2, 20, "a")]);
}

#[test]
fn a_read_going_back_in_time_fails() {
    fails(&[
        put(1, 0, 10, "a"),
        put(2, 20, 60, "b"),
        get(3, 30, 40, Some("b")),
        get(3, 45, 50, Some("a")),
    ]);
}

#[test]
fn a_lost_acknowledged_write_fails() {
    fails(&[put(1, 0, 10, "a"), get(2, 20, 30, None)]);
    fails(&[put(1, 0, 10, "a"), del(2, 20, 30, false)]);
    fails(&[del(1, 0, 10, true)]);
}

#[test]
fn a_violation_explains_itself() {
    let ops = [
        put(1, 0, 10, "a"),
        put(2, 20, 30, "b"),
        get(3, 40, 50, Some("a")),
    ];
    let text = fails(&ops).to_string();
    for part in [
        "key \"k\"",
        "#1 client 2 put \"b\"",
        "#2 client 3 get",
        "read \"a\" but the register holds \"b\"",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

#[test]
fn keys_are_checked_independently() {
    let mut other = put(1, 0, 10, "a");
    other.key = v("other");
    // "a" on another key does not explain a read of "a" on KEY.
    fails(&[other.clone(), get(2, 20, 30, Some("a"))]);
    let mut read = get(2, 20, 30, Some("a"));
    read.key = v("other");
    assert_eq!(passes(&[other, read, get(3, 0, 5, None)]).keys, 2);
}

#[test]
fn an_exhausted_budget_is_inconclusive_not_a_pass() {
    let ops: Vec<_> = (0..20).map(|i| put(i, 0, 10, &format!("v{i}"))).collect();
    let tight = Budget {
        max_steps_per_key: 5,
        max_time: Duration::from_secs(10),
    };
    assert!(matches!(
        check(&ops, tight),
        Err(CheckError::Inconclusive { .. })
    ));
    // A violation on any key wins over an inconclusive one.
    let mut bad = vec![put(1, 0, 10, "a"), get(2, 20, 30, None)];
    for op in &mut bad {
        op.key = v("zz");
    }
    bad.extend(ops);
    let tight = Budget {
        max_steps_per_key: 100,
        ..tight
    };
    assert!(matches!(
        check(&bad, tight),
        Err(CheckError::NotLinearizable(_))
    ));
}

#[test]
fn malformed_histories_are_rejected() {
    let mismatched = op(1, OpKind::Get, 0, 1, Outcome::Ok(Observed::Put));
    assert!(matches!(
        check(&[mismatched], Budget::default()),
        Err(CheckError::Malformed(_))
    ));
    assert!(matches!(
        check(&[put(1, 10, 5, "a")], Budget::default()),
        Err(CheckError::Malformed(_))
    ));
}

#[test]
fn lost_ops_take_effect_in_any_order_but_each_at_most_once() {
    let lost_delete = |c, t0| op(c, OpKind::Delete, t0, t0 + 1, Outcome::Indeterminate);
    let reads = |seen: &[Option<&str>]| -> Vec<Operation> {
        (0..seen.len())
            .map(|i| {
                let t = 10 + 20 * i as u64;
                get(9, t, t + 10, seen[i])
            })
            .collect()
    };
    let mut two_deletes = vec![
        put_lost(1, 0, "a"),
        put_lost(2, 0, "b"),
        lost_delete(3, 0),
        lost_delete(4, 0),
    ];
    two_deletes.extend(reads(&[Some("b"), None, Some("a"), None]));
    passes(&two_deletes);
    // The same reads with one lost delete: the key cannot vanish twice.
    let mut one_delete = vec![put_lost(1, 0, "a"), put_lost(2, 0, "b"), lost_delete(3, 0)];
    one_delete.extend(reads(&[Some("b"), None, Some("a"), None]));
    fails(&one_delete);
    // Nor can one lost put be read, overwritten and read again.
    let mut once = vec![put_lost(1, 0, "a"), put_lost(2, 0, "b")];
    once.extend(reads(&[Some("a"), Some("b"), Some("a")]));
    fails(&once);
    // A lost compare-and-set applies only where its compare holds.
    let lost_cas = op(
        1,
        OpKind::CompareAndSet {
            expected: Some(v("c")),
            new: v("d"),
        },
        0,
        1,
        Outcome::Indeterminate,
    );
    passes(&[
        lost_cas.clone(),
        put(2, 10, 15, "c"),
        get(3, 20, 25, Some("d")),
    ]);
    fails(&[lost_cas, put(2, 10, 15, "x"), get(3, 20, 25, Some("d"))]);
}
