//! Maintenance.HashKV. rollcall's hash function is not etcd's, so hashes are
//! never compared with etcd; what is checked: two rollcall members given the
//! same writes give the same hashes at every revision (also after the same
//! compaction); a write changes the hash while the hash at an older revision
//! stays; and (against etcd too) the errors at compacted and future
//! revisions, the reported compact revision, and that a HashKV racing a
//! compaction sees the store before or after it, never half-compacted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use rollcall_tests::rng::SplitMix64;
use tonic::Code;

use crate::support::{
    COMPACTED, Client, FUTURE_REV, Kind, Member, assert_status, b, del_req, put_req, rev,
};

backend_tests!(
    hashkv_changes_after_a_write,
    hashkv_errors_at_compacted_and_future_revisions,
    hashkv_at_exactly_the_compact_revision,
    hashkv_compact_revision_before_any_compaction,
    hashkv_during_a_compaction_is_before_or_after_it,
);

/// Applies the `seed`ed sequence of writes to `c`; returns the revisions.
async fn apply_sequence(c: &mut Client, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed);
    let lease = 0x5eed;
    c.try_grant(600, lease).await.expect("grant");
    let mut revisions = Vec::new();
    for step in 0..150 {
        let index = rng.below(20);
        let key = format!("k{index:02}");
        let header = match rng.below(10) {
            0..=4 => {
                c.try_put(put_req(&key, &format!("v{step}")))
                    .await
                    .unwrap()
                    .header
            }
            5 => {
                c.try_put(PutRequest {
                    key: b(&key),
                    value: b(&format!("leased{step}")),
                    lease,
                    ..PutRequest::default()
                })
                .await
                .unwrap()
                .header
            }
            6 | 7 => c.try_delete(del_req(&key)).await.unwrap().header,
            8 => {
                c.try_delete(DeleteRangeRequest {
                    key: b("k1"),
                    range_end: b("k2"),
                    ..DeleteRangeRequest::default()
                })
                .await
                .unwrap()
                .header
            }
            _ => {
                let put = |k: String, v: String| RequestOp {
                    request: Some(request_op::Request::RequestPut(put_req(&k, &v))),
                };
                // A txn may not put one key twice: another key.
                let other = format!("k{:02}", (index + 1 + rng.below(19)) % 20);
                c.try_txn(TxnRequest {
                    compare: Vec::new(),
                    success: vec![
                        put(key.clone(), format!("t{step}")),
                        put(other, format!("u{step}")),
                    ],
                    failure: Vec::new(),
                })
                .await
                .unwrap()
                .header
            }
        };
        revisions.push(rev(header.as_ref()));
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashkv_equal_on_two_members_with_the_same_writes() {
    let (ma, mb) = tokio::join!(
        Member::start(Kind::Rollcall, &[]),
        Member::start(Kind::Rollcall, &[])
    );
    let (mut a, mut b) = (ma.client().await, mb.client().await);
    assert_ne!(a.member_id().await, b.member_id().await);
    let ra = apply_sequence(&mut a, 7).await;
    let rb = apply_sequence(&mut b, 7).await;
    assert_eq!(ra, rb, "the same writes got the same revisions");
    let current = *ra.last().unwrap();

    let ha = a.hash_kv(0).await;
    let hb = b.hash_kv(0).await;
    assert_eq!(ha.hash, hb.hash);
    assert_eq!(rev(ha.header.as_ref()), current);
    assert_eq!(
        a.hash_kv(0).await.hash,
        ha.hash,
        "stable when nothing changes"
    );
    // At every revision.
    let mut distinct = BTreeSet::new();
    for r in 1..=current {
        let (x, y) = (a.hash_kv(r).await.hash, b.hash_kv(r).await.hash);
        assert_eq!(x, y, "HashKV at revision {r}");
        distinct.insert(x);
    }
    assert!(
        distinct.len() > usize::try_from(current).unwrap() / 2,
        "only {} distinct hashes over {current} revisions",
        distinct.len()
    );

    // The same compaction on both: still equal.
    let mid = current / 2;
    a.compact(mid).await;
    b.compact(mid).await;
    let (ca, cb) = (a.hash_kv(0).await, b.hash_kv(0).await);
    assert_eq!(
        (ca.hash, ca.compact_revision),
        (cb.hash, cb.compact_revision)
    );
    assert_eq!(ca.compact_revision, mid);
    for r in mid + 1..=current {
        assert_eq!(a.hash_kv(r).await.hash, b.hash_kv(r).await.hash, "at {r}");
    }

    // A write on one member only: different; the same write on the other:
    // equal again.
    a.put("extra", "1").await;
    assert_ne!(a.hash_kv(0).await.hash, b.hash_kv(0).await.hash);
    assert_eq!(a.hash_kv(current).await.hash, b.hash_kv(current).await.hash);
    b.put("extra", "1").await;
    assert_eq!(a.hash_kv(0).await.hash, b.hash_kv(0).await.hash);

    // A different sequence gives a different hash.
    let mc = Member::start(Kind::Rollcall, &[]).await;
    let mut c = mc.client().await;
    let rc = apply_sequence(&mut c, 8).await;
    let hc = c.hash_kv(*rc.last().unwrap()).await;
    assert_ne!(hc.hash, ha.hash, "seed 8 vs seed 7");
}

async fn hashkv_changes_after_a_write(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    let r1 = c.put("a", "1").await;
    let h1 = c.hash_kv(0).await;
    assert_eq!(rev(h1.header.as_ref()), r1);
    let again = c.hash_kv(0).await;
    assert_eq!(again.hash, h1.hash, "same data, same hash");

    let r2 = c.put("b", "2").await;
    let h2 = c.hash_kv(0).await;
    assert_ne!(h2.hash, h1.hash, "a put changes the hash");
    assert_eq!(rev(h2.header.as_ref()), r2);
    assert_eq!(c.hash_kv(r1).await.hash, h1.hash, "the hash at {r1} stays");

    c.put("a", "1").await;
    let h3 = c.hash_kv(0).await;
    assert_ne!(
        h3.hash, h2.hash,
        "rewriting the same value changes the hash"
    );
    c.try_delete(del_req("a")).await.unwrap();
    let h4 = c.hash_kv(0).await;
    assert_ne!(h4.hash, h3.hash, "a delete changes the hash");
    assert_eq!(c.hash_kv(r2).await.hash, h2.hash);
}

async fn hashkv_errors_at_compacted_and_future_revisions(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    let mut current = 0;
    for i in 0..6 {
        current = c.put("k", &i.to_string()).await;
    }
    assert_status(
        c.try_hash_kv(current + 1).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    assert_status(
        c.try_hash_kv(current + 100).await,
        Code::OutOfRange,
        FUTURE_REV,
    );

    let compacted = current - 2;
    c.compact(compacted).await;
    assert_status(
        c.try_hash_kv(compacted - 1).await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(c.try_hash_kv(1).await, Code::OutOfRange, COMPACTED);
    let above = c.hash_kv(compacted + 1).await;
    assert_eq!(above.compact_revision, compacted);
    let now = c.hash_kv(0).await;
    assert_eq!(now.compact_revision, compacted);
    assert_eq!(rev(now.header.as_ref()), current);
    assert_status(
        c.try_hash_kv(current + 1).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
}

/// etcd refuses HashKV at the compact revision itself (`rev <= compactRev`),
/// although a Range at that revision is allowed.
async fn hashkv_at_exactly_the_compact_revision(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    let mut current = 0;
    for i in 0..4 {
        current = c.put("k", &i.to_string()).await;
    }
    let compacted = current - 1;
    c.compact(compacted).await;
    c.range(crate::support::get_at("k", compacted)).await;
    assert_status(c.try_hash_kv(compacted).await, Code::OutOfRange, COMPACTED);
}

/// etcd reports compact_revision -1 until the first compaction.
async fn hashkv_compact_revision_before_any_compaction(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    c.put("k", "v").await;
    assert_eq!(c.hash_kv(0).await.compact_revision, -1);
}

/// A HashKV racing a compaction sees the store before or after it, never
/// in between: for each reported compact revision there is one hash.
async fn hashkv_during_a_compaction_is_before_or_after_it(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    // Much history to delete, so the compaction takes a while.
    for round in 0..40 {
        let ops = (0..100)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(put_req(
                    &format!("k/{i:03}"),
                    &format!("{round}-{}", "x".repeat(200)),
                ))),
            })
            .collect();
        c.try_txn(TxnRequest {
            compare: Vec::new(),
            success: ops,
            failure: Vec::new(),
        })
        .await
        .unwrap();
    }
    let current = c.revision().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut hammers = Vec::new();
    for _ in 0..3 {
        let (stop, mut c) = (stop.clone(), c.clone());
        hammers.push(tokio::spawn(async move {
            let mut seen = BTreeMap::<i64, BTreeSet<u32>>::new();
            while !stop.load(Ordering::Relaxed) {
                let h = c.hash_kv(current).await;
                seen.entry(h.compact_revision).or_default().insert(h.hash);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.compact(current - 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeMap::<i64, BTreeSet<u32>>::new();
    for h in hammers {
        for (compact, hashes) in h.await.unwrap() {
            seen.entry(compact).or_default().extend(hashes);
        }
    }
    let after = c.hash_kv(current).await;
    assert_eq!(after.compact_revision, current - 1);
    assert!(
        seen.contains_key(&(current - 1)),
        "no HashKV after the compaction: {seen:?}"
    );
    for (compact, hashes) in &seen {
        assert_eq!(
            hashes.len(),
            1,
            "HashKV at {current} with compact revision {compact}: {hashes:?}"
        );
    }
    assert_eq!(seen[&(current - 1)].first(), Some(&after.hash));
}
