//! `mvcc/view.rs`: etcd's Range semantics over one worked store (etcd's
//! `kv_test.go` style), history events, and HashKV.
//!
//! The store every range test reads (`seeded`):
//!
//! ```text
//! rev 2 put a=3   rev 3 put b=1   rev 4 put c=2
//! rev 5 put a=0   rev 6 put d=9   rev 7 put b=5
//! now: a (ver 2, create 2, mod 5, "0")   b (ver 2, create 3, mod 7, "5")
//!      c (ver 1, create 4, mod 4, "2")   d (ver 1, create 6, mod 6, "9")
//! ```

use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rollcall_proto::etcdserverpb::{RangeRequest, RangeResponse};
use rollcall_proto::mvccpb::event::EventType;

use super::fixture::{Scratch, compact, delete, key_range, put, range_req};
use crate::error::{Error, Refusal};

fn seeded() -> Scratch {
    let mut s = Scratch::new();
    s.apply_all(&[
        put("a", "3"),
        put("b", "1"),
        put("c", "2"),
        put("a", "0"),
        put("d", "9"),
        put("b", "5"),
    ]);
    assert_eq!(s.rev, 7);
    s
}

fn range(s: &Scratch, req: &RangeRequest) -> Result<RangeResponse, Error> {
    s.read(|view| view.range(req))
}

fn keys(resp: &RangeResponse) -> String {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// All four keys with the given tweaks.
fn all(tweak: impl FnOnce(&mut RangeRequest)) -> RangeRequest {
    let mut req = range_req("a", "z");
    tweak(&mut req);
    req
}

fn sorted(target: SortTarget, order: SortOrder) -> RangeRequest {
    all(|r| {
        r.sort_target = target as i32;
        r.sort_order = order as i32;
    })
}

#[test]
fn a_range_returns_live_keys_in_key_order_with_their_metadata() {
    let s = seeded();
    let resp = range(&s, &all(|_| {})).expect("range");
    assert_eq!(keys(&resp), "abcd");
    let a = &resp.kvs[0];
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_ref()
        ),
        (2, 5, 2, &b"0"[..])
    );
    assert_eq!((resp.count, resp.more), (4, false));
    assert_eq!(resp.header.map(|h| h.revision), Some(7));
}

#[test]
fn limit_truncates_and_sets_more() {
    let s = seeded();
    let resp = range(&s, &all(|r| r.limit = 2)).expect("range");
    assert_eq!(keys(&resp), "ab");
    assert!(resp.more);
}

#[test]
fn a_limit_at_or_above_the_key_count_has_no_more() {
    let s = seeded();
    for limit in [4, 5] {
        let resp = range(&s, &all(|r| r.limit = limit)).expect("range");
        assert_eq!(
            (keys(&resp).as_str(), resp.more),
            ("abcd", false),
            "limit {limit}"
        );
    }
}

#[test]
fn count_is_unaffected_by_limit_and_filters() {
    let s = seeded();
    let limited = range(&s, &all(|r| r.limit = 1)).expect("range");
    let filtered = range(&s, &all(|r| r.min_mod_revision = 7)).expect("range");
    assert_eq!((limited.kvs.len(), limited.count), (1, 4));
    assert_eq!((filtered.kvs.len(), filtered.count), (1, 4));
}

#[test]
fn sort_by_key_descending() {
    let s = seeded();
    let resp = range(&s, &sorted(SortTarget::Key, SortOrder::Descend)).expect("range");
    assert_eq!(keys(&resp), "dcba");
}

#[test]
fn sort_by_every_target_in_both_orders_keeps_key_order_on_ties() {
    let s = seeded();
    let cases = [
        (SortTarget::Version, SortOrder::Ascend, "cdab"),
        (SortTarget::Version, SortOrder::Descend, "abcd"),
        (SortTarget::Create, SortOrder::Ascend, "abcd"),
        (SortTarget::Create, SortOrder::Descend, "dcba"),
        (SortTarget::Mod, SortOrder::Ascend, "cadb"),
        (SortTarget::Mod, SortOrder::Descend, "bdac"),
        (SortTarget::Value, SortOrder::Ascend, "acbd"),
        (SortTarget::Value, SortOrder::Descend, "dbca"),
    ];
    for (target, order, want) in cases {
        let resp = range(&s, &sorted(target, order)).expect("range");
        assert_eq!(keys(&resp), want, "{target:?} {order:?}");
    }
}

#[test]
fn a_non_key_sort_target_without_an_order_sorts_ascending() {
    let s = seeded();
    let resp = range(&s, &sorted(SortTarget::Mod, SortOrder::None)).expect("range");
    assert_eq!(keys(&resp), "cadb");
}

#[test]
fn a_non_key_target_without_an_order_sorts_only_what_the_limit_fetched() {
    // etcd fetches limit+1 keys in key order, then sorts them: with limit 2
    // the keys sorted are a, b, c, so d (mod 6) never competes.
    let s = seeded();
    let mut req = sorted(SortTarget::Mod, SortOrder::None);
    req.limit = 2;
    let resp = range(&s, &req).expect("range");
    assert_eq!((keys(&resp).as_str(), resp.more), ("ca", true));
}

#[test]
fn an_explicit_sort_order_sorts_everything_before_the_limit() {
    let s = seeded();
    let mut req = sorted(SortTarget::Mod, SortOrder::Descend);
    req.limit = 2;
    let resp = range(&s, &req).expect("range");
    assert_eq!((keys(&resp).as_str(), resp.more), ("bd", true));
}

#[test]
fn mod_revision_filters_are_inclusive() {
    let s = seeded();
    let min = range(&s, &all(|r| r.min_mod_revision = 6)).expect("range");
    let max = range(&s, &all(|r| r.max_mod_revision = 5)).expect("range");
    let both = range(
        &s,
        &all(|r| {
            r.min_mod_revision = 5;
            r.max_mod_revision = 6;
        }),
    )
    .expect("range");
    assert_eq!(
        (
            keys(&min).as_str(),
            keys(&max).as_str(),
            keys(&both).as_str()
        ),
        ("bd", "ac", "ad")
    );
}

#[test]
fn create_revision_filters_are_inclusive() {
    let s = seeded();
    let min = range(&s, &all(|r| r.min_create_revision = 4)).expect("range");
    let max = range(&s, &all(|r| r.max_create_revision = 3)).expect("range");
    assert_eq!((keys(&min).as_str(), keys(&max).as_str()), ("cd", "ab"));
}

#[test]
fn a_filter_with_a_limit_truncates_what_the_filter_kept() {
    let s = seeded();
    let resp = range(
        &s,
        &all(|r| {
            r.min_mod_revision = 5;
            r.limit = 1;
        }),
    )
    .expect("range");
    assert_eq!((keys(&resp).as_str(), resp.more), ("a", true));
}

#[test]
fn keys_only_drops_values_and_keeps_the_rest() {
    let s = seeded();
    let resp = range(&s, &all(|r| r.keys_only = true)).expect("range");
    assert_eq!(keys(&resp), "abcd");
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(resp.kvs[1].mod_revision, 7);
}

#[test]
fn count_only_returns_the_count_and_no_key() {
    let s = seeded();
    let resp = range(
        &s,
        &all(|r| {
            r.count_only = true;
            r.limit = 1;
        }),
    )
    .expect("range");
    assert!(resp.kvs.is_empty());
    assert_eq!((resp.count, resp.more), (4, false));
}

#[test]
fn a_single_key_range_finds_that_key_only() {
    let s = seeded();
    let resp = range(&s, &range_req("b", "")).expect("range");
    assert_eq!((keys(&resp).as_str(), resp.count), ("b", 1));
    let missing = range(&s, &range_req("bb", "")).expect("range");
    assert_eq!((missing.kvs.len(), missing.count), (0, 0));
}

#[test]
fn a_from_key_range_reaches_the_last_key() {
    let s = seeded();
    let resp = range(&s, &range_req("b", "\0")).expect("range");
    assert_eq!(keys(&resp), "bcd");
}

#[test]
fn a_range_end_at_or_below_the_key_is_empty() {
    let s = seeded();
    for end in ["b", "a"] {
        let resp = range(&s, &range_req("b", end)).expect("range");
        assert_eq!((resp.kvs.len(), resp.count), (0, 0), "end {end}");
    }
}

#[test]
fn a_read_at_an_older_revision_sees_that_revision() {
    let mut s = seeded();
    s.apply(&delete("c", "")).ok(); // rev 8
    let at4 = range(&s, &all(|r| r.revision = 4)).expect("range");
    let values: Vec<_> = at4
        .kvs
        .iter()
        .map(|kv| (kv.value.clone(), kv.version))
        .collect();
    assert_eq!(keys(&at4), "abc");
    assert_eq!(values[0], (bytes::Bytes::from_static(b"3"), 1));
    assert_eq!(at4.count, 3);
    // The header still names the newest revision.
    assert_eq!(at4.header.map(|h| h.revision), Some(8));
    assert_eq!(
        keys(&range(&s, &all(|r| r.revision = 7)).expect("range")),
        "abcd"
    );
    assert_eq!(keys(&range(&s, &all(|_| {})).expect("range")), "abd");
    assert_eq!(range(&s, &all(|r| r.revision = 1)).expect("range").count, 0);
}

#[test]
fn a_negative_revision_reads_the_newest() {
    let s = seeded();
    assert_eq!(
        keys(&range(&s, &all(|r| r.revision = -3)).expect("range")),
        "abcd"
    );
}

#[test]
fn a_read_below_the_compact_revision_fails_and_at_it_succeeds() {
    let mut s = seeded();
    s.apply(&compact(5)).ok();
    assert!(matches!(
        range(&s, &all(|r| r.revision = 4)),
        Err(Error::Refused(Refusal::Compacted))
    ));
    let at5 = range(&s, &all(|r| r.revision = 5)).expect("range at the compact revision");
    assert_eq!(keys(&at5), "abc");
    assert_eq!(at5.kvs[0].value.as_ref(), b"0");
}

#[test]
fn a_read_above_the_newest_revision_is_a_future_revision() {
    let s = seeded();
    assert!(matches!(
        range(&s, &all(|r| r.revision = 8)),
        Err(Error::Refused(Refusal::FutureRevision))
    ));
}

#[test]
fn events_lists_puts_and_deletes_of_the_range_in_revision_order() {
    let mut s = seeded();
    s.apply(&delete("b", "")).ok(); // rev 8
    let events = s
        .read(|v| v.events(&key_range("b", "c"), 1, 8))
        .expect("events");
    let summary: Vec<_> = events
        .iter()
        .map(|(rev, e)| (*rev, e.r#type, e.kv.as_ref().map(|kv| kv.value.clone())))
        .collect();
    let put_t = EventType::Put as i32;
    let del_t = EventType::Delete as i32;
    assert_eq!(
        summary,
        vec![
            (3, put_t, Some(bytes::Bytes::from_static(b"1"))),
            (7, put_t, Some(bytes::Bytes::from_static(b"5"))),
            (8, del_t, Some(bytes::Bytes::new())),
        ]
    );
    assert_eq!(events[2].1.kv.as_ref().map(|kv| kv.mod_revision), Some(8));
}

#[test]
fn events_are_bounded_by_both_revisions() {
    let s = seeded();
    let revs = |from, to| -> Vec<i64> {
        s.read(|v| v.events(&key_range("a", "z"), from, to))
            .expect("events")
            .into_iter()
            .map(|(rev, _)| rev)
            .collect()
    };
    assert_eq!(revs(4, 6), vec![4, 5, 6]);
    assert_eq!(revs(7, 100), vec![7]);
    assert!(revs(6, 5).is_empty());
}

#[test]
fn events_of_one_revision_keep_their_order_within_it() {
    let mut s = seeded();
    s.apply(&delete("a", "c")).ok(); // rev 8: a then b
    let events = s
        .read(|v| v.events(&key_range("a", "z"), 8, 8))
        .expect("events");
    let keys: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| e.kv.as_ref().map(|kv| kv.key.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            bytes::Bytes::from_static(b"a"),
            bytes::Bytes::from_static(b"b")
        ]
    );
}

#[test]
fn hash_kv_is_equal_for_equal_histories_and_covers_the_revision() {
    let (a, b) = (seeded(), seeded());
    let ha = a.read(|v| v.hash_kv(0)).expect("hash");
    assert_eq!(ha, b.read(|v| v.hash_kv(0)).expect("hash"));
    assert_eq!(ha.1, 7);
}

#[test]
fn hash_kv_of_a_past_revision_does_not_change_with_later_writes() {
    let mut s = seeded();
    let at5 = s.read(|v| v.hash_kv(5)).expect("hash");
    let newest = s.read(|v| v.hash_kv(0)).expect("hash");
    s.apply(&put("e", "1")).ok();
    assert_eq!(s.read(|v| v.hash_kv(5)).expect("hash"), at5);
    let after = s.read(|v| v.hash_kv(0)).expect("hash");
    assert_ne!(after.0, newest.0);
    assert_eq!(after.1, 8);
}

#[test]
fn hash_kv_differs_for_different_values() {
    let a = seeded();
    let mut b = Scratch::new();
    b.apply_all(&[
        put("a", "3"),
        put("b", "1"),
        put("c", "2"),
        put("a", "0"),
        put("d", "9"),
        put("b", "6"),
    ]);
    assert_ne!(
        a.read(|v| v.hash_kv(0)).expect("hash").0,
        b.read(|v| v.hash_kv(0)).expect("hash").0
    );
}

#[test]
fn hash_kv_is_the_same_before_and_after_compacted_history_is_deleted() {
    let mut s = seeded();
    s.apply(&delete("c", "")).ok(); // rev 8
    let keep = s.compact_logically(6);
    let logical = s.read(|v| v.hash_kv(0)).expect("hash");
    s.delete_history(6, &keep);
    assert_eq!(s.read(|v| v.hash_kv(0)).expect("hash"), logical);
}

#[test]
fn hash_kv_refuses_the_compact_revision_and_the_future() {
    let mut s = seeded();
    s.apply(&compact(5)).ok();
    assert!(matches!(
        s.read(|v| v.hash_kv(5)),
        Err(Error::Refused(Refusal::Compacted))
    ));
    assert!(matches!(
        s.read(|v| v.hash_kv(4)),
        Err(Error::Refused(Refusal::Compacted))
    ));
    assert!(s.read(|v| v.hash_kv(6)).is_ok());
    assert!(matches!(
        s.read(|v| v.hash_kv(8)),
        Err(Error::Refused(Refusal::FutureRevision))
    ));
}
