//! KV behaviour through the generated client: Range options (single key,
//! prefix, from-key, all keys, limit/more/count, count_only, keys_only, sort,
//! revision filters, historical reads), Put and DeleteRange, and the revision
//! / version / create_revision rules of etcd's MVCC.

use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rollcall_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use rollcall_tests::Backend;

use crate::support::{
    Client, all_req, b, del_prefix_req, del_req, from_key_req, get_req, keys, kv, prefix_req,
    put_req, rev, start, values,
};

backend_tests!(
    put_get,
    fresh_store_starts_at_revision_one,
    prefix_range,
    from_key_range,
    all_keys_range,
    range_end_before_key_is_empty,
    limit_more_count,
    count_only,
    keys_only,
    sort_orders_and_targets,
    sort_target_without_order_sorts_ascending,
    sort_with_limit,
    revision_filters,
    historical_reads,
    delete_semantics,
    version_resets_after_delete,
    prev_kv_on_put_and_delete,
    ignore_value_and_ignore_lease,
    serializable_reads,
    binary_keys_and_values,
);

async fn put_get(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put("foo", "bar").await;
    let r1_rev = rev(&r1.header);
    assert_eq!(r1.prev_kv, None);
    let got = c.get("foo").await;
    assert_eq!(got.kvs, vec![kv("foo", "bar", r1_rev, r1_rev, 1)]);
    assert_eq!(got.count, 1);
    assert!(!got.more);
    assert_eq!(rev(&got.header), r1_rev);

    let r2_rev = c.put_rev("foo", "baz").await;
    assert_eq!(r2_rev, r1_rev + 1, "every put is one revision");
    assert_eq!(
        c.get_kv("foo").await,
        Some(kv("foo", "baz", r1_rev, r2_rev, 2))
    );

    let missing = c.get("nope").await;
    assert!(missing.kvs.is_empty());
    assert_eq!(missing.count, 0);
    assert_eq!(
        rev(&missing.header),
        r2_rev,
        "a read's header has the current revision"
    );

    // An empty value is a value.
    let r3_rev = c.put_rev("empty", "").await;
    assert_eq!(
        c.get_kv("empty").await,
        Some(kv("empty", "", r3_rev, r3_rev, 1))
    );
}

async fn fresh_store_starts_at_revision_one(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let empty = c.range(all_req()).await;
    assert_eq!(rev(&empty.header), 1);
    assert!(empty.kvs.is_empty());
    assert_eq!(empty.count, 0);
    assert_eq!(c.put_rev("a", "1").await, 2);
    assert_eq!(c.put_rev("b", "1").await, 3);
}

async fn fill(c: &mut Client, pairs: &[(&str, &str)]) -> Vec<i64> {
    let mut revs = Vec::new();
    for (k, v) in pairs {
        revs.push(c.put_rev(k, v).await);
    }
    revs
}

async fn prefix_range(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    fill(
        &mut c,
        &[
            ("a", "0"),
            ("a/2", "2"),
            ("a/1", "1"),
            ("a/3", "3"),
            ("a0", "x"),
            ("b/1", "b"),
        ],
    )
    .await;
    let r = c.range(prefix_req("a/")).await;
    assert_eq!(keys(&r.kvs), ["a/1", "a/2", "a/3"]);
    assert_eq!(values(&r.kvs), ["1", "2", "3"]);
    assert_eq!(r.count, 3);
    let r = c.range(prefix_req("a")).await;
    assert_eq!(keys(&r.kvs), ["a", "a/1", "a/2", "a/3", "a0"]);
    let r = c.range(prefix_req("c")).await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 0);
}

async fn from_key_range(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    fill(
        &mut c,
        &[("d", "4"), ("a", "1"), ("c", "3"), ("b", "2"), ("bb", "22")],
    )
    .await;
    let r = c.range(from_key_req("b")).await;
    assert_eq!(keys(&r.kvs), ["b", "bb", "c", "d"]);
    assert_eq!(r.count, 4);
    let r = c.range(from_key_req("e")).await;
    assert!(r.kvs.is_empty());
    // An explicit [key, end) range excludes the end.
    let r = c
        .range(RangeRequest {
            key: b("a"),
            range_end: b("c"),
            ..RangeRequest::default()
        })
        .await;
    assert_eq!(keys(&r.kvs), ["a", "b", "bb"]);
}

async fn all_keys_range(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    fill(
        &mut c,
        &[("z", "1"), ("\u{1}", "low"), ("m", "2"), ("a", "3")],
    )
    .await;
    let r = c.range(all_req()).await;
    assert_eq!(keys(&r.kvs), ["\u{1}", "a", "m", "z"]);
    assert_eq!(r.count, 4);
}

async fn range_end_before_key_is_empty(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    fill(&mut c, &[("a", "1"), ("b", "2"), ("c", "3")]).await;
    let r = c
        .range(RangeRequest {
            key: b("c"),
            range_end: b("a"),
            ..RangeRequest::default()
        })
        .await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 0);
}

async fn limit_more_count(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    fill(
        &mut c,
        &[
            ("p/1", "a"),
            ("p/2", "b"),
            ("p/3", "c"),
            ("p/4", "d"),
            ("p/5", "e"),
            ("q", "x"),
        ],
    )
    .await;
    let limited = |limit| RangeRequest {
        limit,
        ..prefix_req("p/")
    };
    let r = c.range(limited(2)).await;
    assert_eq!(keys(&r.kvs), ["p/1", "p/2"]);
    assert!(r.more);
    assert_eq!(r.count, 5, "count is the total in the range, not the page");
    let r = c.range(limited(4)).await;
    assert_eq!(r.kvs.len(), 4);
    assert!(r.more);
    let r = c.range(limited(5)).await;
    assert_eq!(r.kvs.len(), 5);
    assert!(!r.more);
    assert_eq!(r.count, 5);
    let r = c.range(limited(50)).await;
    assert_eq!(r.kvs.len(), 5);
    assert!(!r.more);
    let r = c.range(limited(0)).await;
    assert_eq!(r.kvs.len(), 5, "limit 0 is no limit");
    assert!(!r.more);
    // Pagination from the last key seen.
    let r = c
        .range(RangeRequest {
            key: b("p/3"),
            range_end: b("p0"),
            limit: 2,
            ..RangeRequest::default()
        })
        .await;
    assert_eq!(keys(&r.kvs), ["p/3", "p/4"]);
    assert!(r.more);
    assert_eq!(r.count, 3);
}

async fn count_only(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let revs = fill(
        &mut c,
        &[("c/1", "a"), ("c/2", "b"), ("c/3", "c"), ("d", "x")],
    )
    .await;
    let r = c
        .range(RangeRequest {
            count_only: true,
            ..prefix_req("c/")
        })
        .await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 3);
    assert!(!r.more);
    assert_eq!(rev(&r.header), revs[3]);
    let r = c
        .range(RangeRequest {
            count_only: true,
            limit: 1,
            ..prefix_req("c/")
        })
        .await;
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 3);
    let r = c
        .range(RangeRequest {
            count_only: true,
            ..all_req()
        })
        .await;
    assert_eq!(r.count, 4);
}

async fn keys_only(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let revs = fill(&mut c, &[("k/1", "one"), ("k/2", "two"), ("k/1", "uno")]).await;
    let r = c
        .range(RangeRequest {
            keys_only: true,
            ..prefix_req("k/")
        })
        .await;
    assert_eq!(
        r.kvs,
        vec![
            kv("k/1", "", revs[0], revs[2], 2),
            kv("k/2", "", revs[1], revs[1], 1)
        ]
    );
    assert_eq!(r.count, 2);
}

/// Four keys under `s/` whose value, version, create and mod revisions all
/// order differently from their key order:
/// create c < a < d < b; mod d < b < c < a; version b = d = 1 < c = 2 < a = 3;
/// value b (`a`) < a (`m`) < d (`q`) < c (`z`).
async fn sort_fixture(c: &mut Client) {
    fill(
        c,
        &[
            ("s/c", "y"),
            ("s/a", "k"),
            ("s/d", "q"),
            ("s/b", "a"),
            ("s/a", "l"),
            ("s/c", "z"),
            ("s/a", "m"),
        ],
    )
    .await;
}

async fn sort_orders_and_targets(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    sort_fixture(&mut c).await;
    let sorted = |order: SortOrder, target: SortTarget| RangeRequest {
        sort_order: order as i32,
        sort_target: target as i32,
        ..prefix_req("s/")
    };
    use SortOrder::{Ascend, Descend, None};
    use SortTarget::{Create, Key, Mod, Value, Version};
    let cases: &[(SortOrder, SortTarget, [&str; 4])] = &[
        (None, Key, ["s/a", "s/b", "s/c", "s/d"]),
        (Ascend, Key, ["s/a", "s/b", "s/c", "s/d"]),
        (Descend, Key, ["s/d", "s/c", "s/b", "s/a"]),
        (Ascend, Create, ["s/c", "s/a", "s/d", "s/b"]),
        (Descend, Create, ["s/b", "s/d", "s/a", "s/c"]),
        (Ascend, Mod, ["s/d", "s/b", "s/c", "s/a"]),
        (Descend, Mod, ["s/a", "s/c", "s/b", "s/d"]),
        (Ascend, Value, ["s/b", "s/a", "s/d", "s/c"]),
        (Descend, Value, ["s/c", "s/d", "s/a", "s/b"]),
        // Ties (b and d both have version 1) keep key order in both
        // directions: etcd sorts with a stable sort, reversed comparator.
        (Ascend, Version, ["s/b", "s/d", "s/c", "s/a"]),
        (Descend, Version, ["s/a", "s/c", "s/b", "s/d"]),
    ];
    for (order, target, want) in cases {
        let r = c.range(sorted(*order, *target)).await;
        assert_eq!(keys(&r.kvs), want, "sort {order:?} by {target:?}");
        assert_eq!(r.count, 4);
    }
}

async fn sort_target_without_order_sorts_ascending(backend: Backend) {
    // etcd quirk: a sort target other than KEY with order NONE sorts ASCEND.
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    sort_fixture(&mut c).await;
    for (target, want) in [
        (SortTarget::Value, ["s/b", "s/a", "s/d", "s/c"]),
        (SortTarget::Create, ["s/c", "s/a", "s/d", "s/b"]),
        (SortTarget::Mod, ["s/d", "s/b", "s/c", "s/a"]),
        (SortTarget::Version, ["s/b", "s/d", "s/c", "s/a"]),
    ] {
        let r = c
            .range(RangeRequest {
                sort_order: SortOrder::None as i32,
                sort_target: target as i32,
                ..prefix_req("s/")
            })
            .await;
        assert_eq!(keys(&r.kvs), want, "order NONE, target {target:?}");
    }
}

async fn sort_with_limit(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    sort_fixture(&mut c).await;
    // The limit applies after sorting: the two highest values.
    let r = c
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            limit: 2,
            ..prefix_req("s/")
        })
        .await;
    assert_eq!(keys(&r.kvs), ["s/c", "s/d"]);
    assert!(r.more);
    assert_eq!(r.count, 4);
    let r = c
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Key as i32,
            limit: 3,
            ..prefix_req("s/")
        })
        .await;
    assert_eq!(keys(&r.kvs), ["s/d", "s/c", "s/b"]);
    assert!(r.more);
}

async fn revision_filters(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    // f/a created at r0 and modified at r3; f/b created r1; f/c created r2.
    let r = fill(
        &mut c,
        &[("f/a", "1"), ("f/b", "1"), ("f/c", "1"), ("f/a", "2")],
    )
    .await;
    let filtered = |f: &dyn Fn(&mut RangeRequest)| {
        let mut req = prefix_req("f/");
        f(&mut req);
        req
    };
    let got = c.range(filtered(&|q| q.min_mod_revision = r[2])).await;
    assert_eq!(keys(&got.kvs), ["f/a", "f/c"]);
    assert_eq!(got.count, 3, "count is taken before the filters");
    let got = c.range(filtered(&|q| q.max_mod_revision = r[2])).await;
    assert_eq!(keys(&got.kvs), ["f/b", "f/c"]);
    let got = c.range(filtered(&|q| q.min_create_revision = r[1])).await;
    assert_eq!(keys(&got.kvs), ["f/b", "f/c"]);
    let got = c.range(filtered(&|q| q.max_create_revision = r[1])).await;
    assert_eq!(keys(&got.kvs), ["f/a", "f/b"]);
    let got = c
        .range(filtered(&|q| {
            q.min_create_revision = r[1];
            q.max_create_revision = r[1];
        }))
        .await;
    assert_eq!(keys(&got.kvs), ["f/b"]);
    let got = c
        .range(filtered(&|q| {
            q.min_mod_revision = r[0];
            q.max_mod_revision = r[1];
        }))
        .await;
    assert_eq!(keys(&got.kvs), ["f/b"], "f/a's mod revision is now r3");
    // Filters with a limit: the limit counts the filtered result.
    let got = c
        .range(filtered(&|q| {
            q.min_mod_revision = r[1];
            q.limit = 1;
        }))
        .await;
    assert_eq!(keys(&got.kvs), ["f/a"]);
    assert!(got.more);
    assert_eq!(got.count, 3);
}

async fn historical_reads(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("h", "v1").await;
    let r2 = c.put_rev("h", "v2").await;
    let r3 = rev(&c.delete(del_req("h")).await.header);
    let r4 = c.put_rev("h", "v3").await;
    let r5 = c.put_rev("other", "o").await;
    assert_eq!([r2, r3, r4, r5], [r1 + 1, r1 + 2, r1 + 3, r1 + 4]);
    let at = |revision| RangeRequest {
        revision,
        ..get_req("h")
    };
    let got = c.range(at(r1 - 1)).await;
    assert!(got.kvs.is_empty(), "before the first put");
    assert_eq!(
        rev(&got.header),
        r5,
        "historical reads carry the current revision"
    );
    assert_eq!(c.range(at(r1)).await.kvs, vec![kv("h", "v1", r1, r1, 1)]);
    assert_eq!(c.range(at(r2)).await.kvs, vec![kv("h", "v2", r1, r2, 2)]);
    let got = c.range(at(r3)).await;
    assert!(got.kvs.is_empty(), "deleted at r3");
    assert_eq!(got.count, 0);
    assert_eq!(c.range(at(r4)).await.kvs, vec![kv("h", "v3", r4, r4, 1)]);
    assert_eq!(c.range(at(r5)).await.kvs, vec![kv("h", "v3", r4, r4, 1)]);
    assert_eq!(
        c.range(at(0)).await.kvs,
        vec![kv("h", "v3", r4, r4, 1)],
        "0 = current"
    );
    // Historical range over several keys, with count.
    let all_at = |revision| RangeRequest {
        revision,
        ..all_req()
    };
    let got = c.range(all_at(r4)).await;
    assert_eq!(keys(&got.kvs), ["h"]);
    let got = c.range(all_at(r5)).await;
    assert_eq!(keys(&got.kvs), ["h", "other"]);
    assert_eq!(got.count, 2);
}

async fn delete_semantics(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let base = *fill(
        &mut c,
        &[("d/1", "a"), ("d/2", "b"), ("d/3", "c"), ("e", "e")],
    )
    .await
    .last()
    .expect("four puts");
    // Deleting nothing does not bump the revision.
    let nothing = c.delete(del_req("missing")).await;
    assert_eq!(nothing.deleted, 0);
    assert_eq!(rev(&nothing.header), base);
    let nothing = c.delete(del_prefix_req("zz/")).await;
    assert_eq!(nothing.deleted, 0);
    assert_eq!(rev(&nothing.header), base);
    assert_eq!(c.revision().await, base);
    // One key.
    let one = c.delete(del_req("d/2")).await;
    assert_eq!(one.deleted, 1);
    assert_eq!(rev(&one.header), base + 1);
    assert!(one.prev_kvs.is_empty(), "no prev_kv unless asked");
    // A range deletes all its keys in one revision.
    let many = c.delete(del_prefix_req("d/")).await;
    assert_eq!(many.deleted, 2);
    assert_eq!(rev(&many.header), base + 2);
    assert_eq!(keys(&c.all().await), ["e"]);
    // From-key delete.
    let all = c
        .delete(DeleteRangeRequest {
            key: b("\0"),
            range_end: b("\0"),
            prev_kv: false,
        })
        .await;
    assert_eq!(all.deleted, 1);
    assert_eq!(rev(&all.header), base + 3);
    assert!(c.all().await.is_empty());
    // History still has the keys.
    let old = c
        .range(RangeRequest {
            revision: base,
            ..all_req()
        })
        .await;
    assert_eq!(keys(&old.kvs), ["d/1", "d/2", "d/3", "e"]);
}

async fn version_resets_after_delete(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("v", "1").await;
    let r2 = c.put_rev("v", "2").await;
    let r3 = c.put_rev("v", "3").await;
    assert_eq!(c.get_kv("v").await, Some(kv("v", "3", r1, r3, 3)));
    assert_eq!(r2, r1 + 1);
    c.delete(del_req("v")).await;
    let r5 = c.put_rev("v", "again").await;
    assert_eq!(r5, r3 + 2);
    assert_eq!(
        c.get_kv("v").await,
        Some(kv("v", "again", r5, r5, 1)),
        "a re-created key starts over: version 1, new create_revision"
    );
}

async fn prev_kv_on_put_and_delete(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let with_prev = |k: &str, v: &str| PutRequest {
        prev_kv: true,
        ..put_req(k, v)
    };
    let first = c.try_put(with_prev("p", "1")).await.expect("put");
    assert_eq!(first.prev_kv, None, "no previous value");
    let r1 = rev(&first.header);
    let second = c.try_put(with_prev("p", "2")).await.expect("put");
    assert_eq!(second.prev_kv, Some(kv("p", "1", r1, r1, 1)));
    let r2 = rev(&second.header);
    let r3 = c.put_rev("p/x", "x").await;
    let deleted = c
        .delete(DeleteRangeRequest {
            prev_kv: true,
            ..del_prefix_req("p")
        })
        .await;
    assert_eq!(deleted.deleted, 2);
    assert_eq!(
        deleted.prev_kvs,
        vec![kv("p", "2", r1, r2, 2), kv("p/x", "x", r3, r3, 1)]
    );
    let none = c
        .delete(DeleteRangeRequest {
            prev_kv: true,
            ..del_req("p")
        })
        .await;
    assert_eq!(none.deleted, 0);
    assert!(none.prev_kvs.is_empty());
    // After a delete, the next put has no prev_kv.
    let again = c.try_put(with_prev("p", "3")).await.expect("put");
    assert_eq!(again.prev_kv, None);
}

async fn ignore_value_and_ignore_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("iv", "keep me").await;
    let r2 = c
        .try_put(PutRequest {
            key: b("iv"),
            ignore_value: true,
            prev_kv: true,
            ..PutRequest::default()
        })
        .await
        .expect("put with ignore_value");
    assert_eq!(r2.prev_kv, Some(kv("iv", "keep me", r1, r1, 1)));
    let r2 = rev(&r2.header);
    assert_eq!(r2, r1 + 1, "ignore_value still writes a revision");
    assert_eq!(
        c.get_kv("iv").await,
        Some(kv("iv", "keep me", r1, r2, 2)),
        "value kept, version and mod_revision advance"
    );
    let r3 = c
        .try_put(PutRequest {
            key: b("iv"),
            value: b("new"),
            ignore_lease: true,
            ..PutRequest::default()
        })
        .await
        .expect("put with ignore_lease");
    let r3 = rev(&r3.header);
    assert_eq!(c.get_kv("iv").await, Some(kv("iv", "new", r1, r3, 3)));
}

async fn serializable_reads(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r = c.put_rev("s", "1").await;
    let got = c
        .range(RangeRequest {
            serializable: true,
            ..get_req("s")
        })
        .await;
    assert_eq!(got.kvs, vec![kv("s", "1", r, r, 1)]);
    assert_eq!(rev(&got.header), r);
}

async fn binary_keys_and_values(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let key = bytes::Bytes::from_static(b"bin/\x00\xff\x01");
    let value = bytes::Bytes::from_static(b"\x00\x01\xfe\xff");
    let put = c
        .try_put(PutRequest {
            key: key.clone(),
            value: value.clone(),
            ..PutRequest::default()
        })
        .await
        .expect("binary put");
    let r = rev(&put.header);
    let got = c
        .range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })
        .await;
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].key, key);
    assert_eq!(got.kvs[0].value, value);
    assert_eq!(got.kvs[0].mod_revision, r);
    // 0xff-only prefix end: everything from the key on.
    let put = c
        .try_put(PutRequest {
            key: bytes::Bytes::from_static(b"\xff\xff"),
            value: b("top"),
            ..PutRequest::default()
        })
        .await
        .expect("put 0xff key");
    let got = c
        .range(RangeRequest {
            key: bytes::Bytes::from_static(b"\xff"),
            range_end: crate::support::prefix_end(b"\xff"),
            ..RangeRequest::default()
        })
        .await;
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].mod_revision, rev(&put.header));
}
