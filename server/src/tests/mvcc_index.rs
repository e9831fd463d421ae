//! `mvcc/index.rs`: the in-memory key index (etcd's `index_test.go`): which
//! keys a range sees at a revision, compaction and what it keeps.
//!
//! The index every test starts from (`sample`):
//!
//! ```text
//! rev 2 put a   rev 3 put b   rev 4 put c   rev 5 put a
//! rev 6 del b   rev 7 put d   rev 8 put b
//! ```

use std::collections::HashSet;

use bytes::Bytes;

use super::fixture::{b, key_range};
use crate::mvcc::Revision;
use crate::mvcc::index::TreeIndex;
use crate::mvcc::key_range::KeyRange;

fn r(main: i64) -> Revision {
    Revision::new(main, 0)
}

fn sample() -> TreeIndex {
    let mut index = TreeIndex::default();
    index.put(&b("a"), r(2));
    index.put(&b("b"), r(3));
    index.put(&b("c"), r(4));
    index.put(&b("a"), r(5));
    assert!(index.tombstone(b"b", r(6)));
    index.put(&b("d"), r(7));
    index.put(&b("b"), r(8));
    index
}

fn live(index: &TreeIndex, range: &KeyRange, at: i64) -> String {
    index
        .live_keys(range, at)
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn a_single_key_range_sees_the_key_only_while_it_lives() {
    let index = sample();
    let single = key_range("b", "");
    assert_eq!(live(&index, &single, 2), "");
    assert_eq!(live(&index, &single, 5), "b");
    assert_eq!(live(&index, &single, 6), "");
    assert_eq!(live(&index, &single, 8), "b");
    assert_eq!(live(&index, &key_range("bb", ""), 8), "");
}

#[test]
fn a_span_is_half_open() {
    let index = sample();
    assert_eq!(live(&index, &key_range("a", "c"), 8), "ab");
    assert_eq!(live(&index, &key_range("b", "d"), 8), "bc");
    assert_eq!(live(&index, &key_range("a", "a\0"), 8), "a");
}

#[test]
fn a_from_key_range_reaches_every_larger_key() {
    let index = sample();
    assert_eq!(live(&index, &key_range("b", "\0"), 8), "bcd");
    // From the smallest key: the whole key space (etcd's `--from-key ""`
    // is sent as key "\0", range_end "\0").
    assert_eq!(live(&index, &key_range("\0", "\0"), 8), "abcd");
}

#[test]
fn a_span_whose_end_is_not_above_its_start_is_empty() {
    let index = sample();
    assert_eq!(live(&index, &key_range("c", "c"), 8), "");
    assert_eq!(live(&index, &key_range("c", "a"), 8), "");
}

#[test]
fn a_range_at_an_older_revision_sees_that_revision() {
    let index = sample();
    let everything = key_range("a", "\0");
    assert_eq!(live(&index, &everything, 1), "");
    assert_eq!(live(&index, &everything, 3), "ab");
    assert_eq!(live(&index, &everything, 6), "ac");
    assert_eq!(live(&index, &everything, 7), "acd");
}

#[test]
fn live_keys_report_the_revision_visible_at_the_read() {
    let index = sample();
    let at = |key: &str, rev| {
        index
            .get(key.as_bytes(), rev)
            .map(|k| (k.modified.main, k.created.main, k.version))
    };
    assert_eq!(at("a", 4), Some((2, 2, 1)));
    assert_eq!(at("a", 8), Some((5, 2, 2)));
    assert_eq!(at("b", 8), Some((8, 8, 1)));
    assert_eq!(at("b", 6), None);
}

#[test]
fn visit_stops_when_the_visitor_returns_false() {
    let index = sample();
    let mut seen = Vec::new();
    index.visit(&key_range("a", "\0"), 8, |k, _| {
        seen.push(k.clone());
        seen.len() < 2
    });
    assert_eq!(seen, vec![b("a"), b("b")]);
}

#[test]
fn tombstoning_a_key_that_is_not_live_is_refused() {
    let mut index = sample();
    assert!(!index.tombstone(b"zz", r(9)));
    assert!(index.tombstone(b"c", r(9)));
    assert!(!index.tombstone(b"c", r(10)));
}

#[test]
fn live_count_counts_the_keys_alive_at_a_revision() {
    let index = sample();
    let counts: Vec<usize> = (1..=8).map(|at| index.live_count(at)).collect();
    assert_eq!(counts, vec![0, 1, 2, 3, 3, 2, 3, 4]);
}

#[test]
fn compact_keeps_the_revision_each_live_key_is_read_at() {
    let mut index = sample();
    let keep = index.compact(5);
    // a: read at 5 (its put at 2 is superseded); b: live at 5 through its
    // put at 3; c: its only put.
    assert_eq!(keep, HashSet::from([r(5), r(3), r(4)]));
    assert!(!index.holds(b"a", r(2)));
    assert!(index.holds(b"a", r(5)));
    assert!(index.holds(b"b", r(3)) && index.holds(b"b", r(6)) && index.holds(b"b", r(8)));
    // Reads at and above the compact revision are unchanged.
    assert_eq!(live(&index, &key_range("a", "\0"), 5), "abc");
    assert_eq!(live(&index, &key_range("a", "\0"), 6), "ac");
    assert_eq!(live(&index, &key_range("a", "\0"), 8), "abcd");
}

#[test]
fn compact_past_a_delete_drops_the_deleted_generation() {
    let mut index = sample();
    let keep = index.compact(6);
    assert!(!keep.contains(&r(3)) && !keep.contains(&r(6)));
    assert!(!index.holds(b"b", r(3)));
    assert!(!index.holds(b"b", r(6)));
    assert!(index.holds(b"b", r(8)));
    assert_eq!(index.get(b"b", 8).map(|k| k.version), Some(1));
}

#[test]
fn compact_forgets_a_key_whose_whole_history_is_deleted() {
    let mut index = sample();
    assert!(index.tombstone(b"c", r(9)));
    let keep = index.compact(9);
    assert!(!index.holds(b"c", r(4)) && !index.holds(b"c", r(9)));
    assert!(!keep.contains(&r(4)) && !keep.contains(&r(9)));
    assert_eq!(live(&index, &key_range("a", "\0"), 9), "abd");
    // A new put of the key starts a fresh history.
    index.put(&b("c"), r(10));
    assert_eq!(
        index.get(b"c", 10).map(|k| (k.created.main, k.version)),
        Some((10, 1))
    );
}

#[test]
fn holds_is_false_for_unknown_keys_and_revisions() {
    let index = sample();
    assert!(!index.holds(b"zz", r(2)));
    assert!(!index.holds(b"a", r(3)));
    assert!(index.holds(b"a", r(2)));
}

#[test]
fn the_index_owns_its_keys_instead_of_pinning_the_request_buffer() {
    let buffer = Bytes::from(vec![b'k'; 4096]);
    let key = buffer.slice(0..1);
    let mut index = TreeIndex::default();
    index.put(&key, r(2));
    let found = index.live_keys(&key_range("k", ""), 2);
    assert_eq!(found.len(), 1);
    // A key sliced out of the buffer would share its pointer range.
    let stored = found[0].0.as_ptr() as usize;
    let start = buffer.as_ptr() as usize;
    assert!(!(start..start + buffer.len()).contains(&stored));
}
