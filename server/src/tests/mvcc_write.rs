//! `mvcc/write.rs`: one request's changes inside a write transaction, in
//! worked examples (etcd's `kvstore_txn` tests): one revision per request,
//! `sub` counting the changes, no revision for a request that changes
//! nothing, versions and creation revisions across generations.

use super::fixture::{Scratch, b, key_range};
use crate::mvcc::Record;

fn kv_of(record: &Record) -> (String, i64, i64, i64, i64) {
    let kv = record.kv();
    (
        String::from_utf8_lossy(&kv.key).into_owned(),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease,
    )
}

#[test]
fn the_first_write_creates_revision_2() {
    let mut s = Scratch::new();
    let out = s.write(|w| w.put(&b("a"), b("1"), 0));
    assert_eq!(out.ok(), 2);
    assert_eq!(s.rev, 2);
    assert_eq!(s.history_keys(), vec![(2, 0)]);
}

#[test]
fn every_change_of_one_request_shares_its_revision_with_increasing_subs() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("c"), b("old"), 0)).ok(); // rev 2
    let out = s.write(|w| {
        w.put(&b("a"), b("1"), 0)?;
        w.put(&b("b"), b("2"), 0)?;
        w.delete_range(&key_range("c", ""))
    });
    assert_eq!(out.rev, 3);
    assert_eq!(out.changes.len(), 3);
    assert_eq!(s.history_keys(), vec![(2, 0), (3, 0), (3, 1), (3, 2)]);
    assert!(matches!(out.changes[2], Record::Tombstone(_)));
    assert_eq!(out.ok(), (1, 3));
}

#[test]
fn a_delete_that_deletes_nothing_creates_no_revision() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("a"), b("1"), 0)).ok();
    let out = s.write(|w| w.delete_range(&key_range("x", "z")));
    assert!(out.changes.is_empty());
    assert_eq!(out.rev, 2);
    assert_eq!(out.ok(), (0, 2));
    assert_eq!(s.history_keys(), vec![(2, 0)]);
}

#[test]
fn deleting_an_already_deleted_key_creates_no_revision() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("a"), b("1"), 0)).ok();
    s.write(|w| w.delete_range(&key_range("a", ""))).ok(); // rev 3
    let out = s.write(|w| w.delete_range(&key_range("a", "")));
    assert_eq!(out.ok(), (0, 3));
    assert_eq!(s.history_keys(), vec![(2, 0), (3, 0)]);
}

#[test]
fn rev_is_the_begin_revision_until_the_first_change() {
    let mut s = Scratch::new();
    let out = s.write(|w| {
        let before = w.rev();
        w.put(&b("a"), b("1"), 0)?;
        Ok((before, w.rev()))
    });
    assert_eq!(out.ok(), (1, 2));
}

#[test]
fn version_counts_puts_and_restarts_at_1_after_a_delete() {
    let mut s = Scratch::new();
    for v in ["1", "2", "3"] {
        s.write(|w| w.put(&b("k"), b(v), 0)).ok(); // revs 2, 3, 4
    }
    let third = s.read(|v| v.get(&b("k")).expect("get")).expect("live");
    assert_eq!(
        (third.version, third.create_revision, third.mod_revision),
        (3, 2, 4)
    );

    s.write(|w| w.delete_range(&key_range("k", ""))).ok(); // rev 5
    let out = s.write(|w| w.put(&b("k"), b("again"), 0)); // rev 6
    assert_eq!(kv_of(&out.changes[0]), ("k".into(), 6, 6, 1, 0));
}

#[test]
fn create_revision_stays_while_the_key_lives() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("other"), b("x"), 0)).ok(); // rev 2
    s.write(|w| w.put(&b("k"), b("1"), 0)).ok(); // rev 3
    let out = s.write(|w| w.put(&b("k"), b("2"), 7)); // rev 4
    assert_eq!(kv_of(&out.changes[0]), ("k".into(), 3, 4, 2, 7));
}

#[test]
fn a_tombstone_carries_the_key_and_the_delete_revision_only() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("k"), b("v"), 5)).ok();
    let out = s.write(|w| w.delete_range(&key_range("k", "")));
    let Record::Tombstone(kv) = &out.changes[0] else {
        panic!("expected a tombstone, got {:?}", out.changes[0]);
    };
    assert_eq!(kv.key, b("k"));
    assert_eq!(kv.mod_revision, 3);
    assert_eq!((kv.create_revision, kv.version, kv.lease), (0, 0, 0));
    assert!(kv.value.is_empty());
}

#[test]
fn reads_inside_a_request_see_its_own_earlier_changes() {
    let mut s = Scratch::new();
    s.write(|w| w.put(&b("a"), b("old"), 0)).ok(); // rev 2
    let out = s.write(|w| {
        w.put(&b("a"), b("new"), 0)?;
        w.put(&b("b"), b("1"), 0)?;
        let view = w.view();
        let a = view.get(&b("a"))?.map(|kv| kv.value);
        let count = view.range_keys(&key_range("a", "c"), 0, 0, true)?.count;
        Ok((a, count, view.rev))
    });
    assert_eq!(out.ok(), (Some(b("new")), 2, 3));
}

#[test]
fn a_put_and_a_delete_of_the_same_key_in_one_request_leave_it_deleted() {
    let mut s = Scratch::new();
    let out = s.write(|w| {
        w.put(&b("k"), b("v"), 0)?;
        w.delete_range(&key_range("k", ""))
    });
    assert_eq!(out.ok(), (1, 2));
    assert_eq!(s.history_keys(), vec![(2, 0), (2, 1)]);
    assert_eq!(s.read(|v| v.get(&b("k")).expect("get")), None);
    assert_eq!(
        s.read(|v| v
            .range_keys(&key_range("k", ""), 2, 0, true)
            .expect("count")
            .count),
        0
    );
}

#[test]
fn delete_range_deletes_the_live_keys_of_the_range_in_key_order() {
    let mut s = Scratch::new();
    for k in ["a", "b", "c", "d"] {
        s.write(|w| w.put(&b(k), b("v"), 0)).ok();
    }
    s.write(|w| w.delete_range(&key_range("c", ""))).ok(); // rev 6
    let out = s.write(|w| w.delete_range(&key_range("b", "\0")));
    let deleted: Vec<_> = out.changes.iter().map(kv_of).collect();
    assert_eq!(
        deleted,
        vec![("b".into(), 0, 7, 0, 0), ("d".into(), 0, 7, 0, 0)]
    );
    assert_eq!(out.ok(), (2, 7));
}
