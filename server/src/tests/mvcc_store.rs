//! `mvcc/store.rs`: a store opened on disk, written through the proposer
//! (the applier thread), and opened again: the rebuilt index, revisions,
//! leases and compaction must be those the member had before.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::fixture::{
    Node, b, compact, delete, grant, key_range, put, put_leased, revoke, set_meta,
};
use crate::apply::Applied;
use crate::error::{Error, Refusal};
use crate::mvcc::Revision;
use crate::storage::MetaKey;

/// Everything a reader can observe of the index: the live keys with their
/// (mod, create, version) at every readable revision.
type IndexDump = BTreeMap<i64, Vec<(Bytes, i64, i64, i64)>>;

fn dump(node: &Node) -> (IndexDump, i64, i64) {
    let committed = node.committed();
    let everything = key_range("\0", "\0");
    let mut out = BTreeMap::new();
    for at in committed.snapshot.compact_rev.max(1)..=committed.snapshot.rev {
        let keys = committed
            .snapshot
            .index
            .live_keys(&everything, at)
            .into_iter()
            .map(|(k, found)| (k, found.modified.main, found.created.main, found.version))
            .collect();
        out.insert(at, keys);
    }
    (out, committed.snapshot.rev, committed.snapshot.compact_rev)
}

fn leases(node: &Node) -> Vec<(i64, i64, Vec<Bytes>)> {
    let committed = node.committed();
    committed
        .leases
        .ids()
        .map(|(id, ttl)| {
            let keys = committed
                .leases
                .get(id)
                .map(|e| e.keys.iter().cloned().collect())
                .unwrap_or_default();
            (id, ttl, keys)
        })
        .collect()
}

async fn ok(node: &Node, command: crate::apply::Command) -> Applied {
    match node.propose(command).await {
        Ok(applied) => applied,
        Err(e) => panic!("refused: {e}"),
    }
}

/// A history with every kind of change: updates, deletes, re-creation,
/// leases (one revoked), a txn-like multi-key delete.
async fn busy_history(node: &Node) {
    ok(node, grant(10, 60)).await;
    ok(node, grant(11, 60)).await;
    ok(node, put("a", "1")).await;
    ok(node, put_leased("b", "1", 10)).await;
    ok(node, put_leased("c", "1", 11)).await;
    ok(node, put("a", "2")).await;
    ok(node, delete("a", "")).await;
    ok(node, put("a", "3")).await;
    ok(node, put_leased("d", "1", 10)).await;
    ok(node, revoke(11)).await;
    ok(node, put("e", "1")).await;
    ok(node, delete("d", "f")).await;
    ok(node, put_leased("f", "1", 10)).await;
}

#[tokio::test]
async fn a_new_store_starts_at_revision_1_uncompacted_with_identities() {
    let node = Node::start();
    let (_, rev, compact_rev) = dump(&node);
    assert_eq!((rev, compact_rev), (1, -1));
    assert_ne!(node.store.identity.cluster_id, 0);
    assert_ne!(node.store.identity.member_id, 0);
    assert!(node.history_keys().is_empty());
}

#[tokio::test]
async fn a_write_through_the_proposer_is_committed_before_it_is_answered() {
    let node = Node::start();
    let rev = node.put("k", "v").await;
    assert_eq!(rev, 2);
    // Answered means readable and durable.
    assert_eq!(node.store.current_rev(), 2);
    assert_eq!(
        node.store.meta(MetaKey::CurrentRevision).expect("meta"),
        Some(2)
    );
    let value = node
        .read(|v| v.get(&b("k")).expect("get"))
        .map(|kv| kv.value);
    assert_eq!(value, Some(b("v")));
}

#[tokio::test]
async fn concurrent_writes_each_get_their_own_revision() {
    let node = Node::start();
    let newest = node.put_many("k", 50).await;
    assert_eq!(newest, 51);
    let mut revs: Vec<i64> = node.history_keys().iter().map(|k| k.0).collect();
    revs.dedup();
    assert_eq!(revs, (2..=51).collect::<Vec<_>>());
    assert_eq!(
        node.store.meta(MetaKey::AppliedIndex).expect("meta"),
        Some(50)
    );
}

#[tokio::test]
async fn reopening_rebuilds_the_same_index_revision_and_leases() {
    let node = Node::start();
    busy_history(&node).await;
    let (index, rev, compact_rev) = dump(&node);
    let leases_before = leases(&node);
    let identity = (
        node.store.identity.cluster_id,
        node.store.identity.member_id,
    );
    assert_eq!(leases_before.len(), 1, "{leases_before:?}");

    let node = node.restart();
    assert_eq!(dump(&node), (index, rev, compact_rev));
    assert_eq!(leases(&node), leases_before);
    assert_eq!(
        (
            node.store.identity.cluster_id,
            node.store.identity.member_id
        ),
        identity
    );
    // The rebuilt index goes on counting versions where the old one was.
    ok(&node, put("a", "4")).await;
    let a = node.read(|v| v.get(&b("a")).expect("get")).expect("live");
    assert_eq!((a.version, a.create_revision), (2, 7));
}

#[tokio::test]
async fn a_compaction_survives_a_restart() {
    let node = Node::start();
    busy_history(&node).await;
    let at = 9;
    ok(&node, compact(at)).await;
    let before = dump(&node);
    let history = node.history_keys();
    assert_eq!(before.2, at);

    let leases_before = leases(&node);
    let node = node.restart();
    assert_eq!(dump(&node), before);
    assert_eq!(node.history_keys(), history);
    assert_eq!(leases(&node), leases_before);
    let values_at = |node: &Node, rev| {
        node.read(|v| {
            v.range_keys(&key_range("a", "z"), rev, 0, false).map(|r| {
                r.kvs
                    .into_iter()
                    .map(|kv| (kv.key, kv.value))
                    .collect::<Vec<_>>()
            })
        })
        .expect("read at the compact revision")
    };
    assert_eq!(
        values_at(&node, at),
        vec![(b("a"), b("3")), (b("b"), b("1")), (b("d"), b("1"))]
    );
    let below = node.read(|v| {
        v.range_keys(&key_range("a", "z"), at - 1, 0, false)
            .map(|r| r.count)
    });
    assert!(matches!(below, Err(Error::Refused(Refusal::Compacted))));
    assert!(matches!(
        node.propose(compact(at)).await,
        Err(Error::Refused(Refusal::Compacted))
    ));
}

#[tokio::test]
async fn compaction_deletes_the_history_the_index_no_longer_holds() {
    let node = Node::start();
    busy_history(&node).await;
    let before = node.history_keys();
    let at = 9;
    ok(&node, compact(at)).await;
    let after = node.history_keys();
    let committed = node.committed();
    let held = |(main, sub): (i64, i64)| {
        ["a", "b", "c", "d", "e", "f"].iter().any(|k| {
            committed
                .snapshot
                .index
                .holds(k.as_bytes(), Revision::new(main, sub))
        })
    };
    for key in &before {
        let kept = after.contains(key);
        if key.0 >= at {
            assert!(kept, "{key:?} is at or above the compact revision");
        } else {
            assert_eq!(kept, held(*key), "{key:?}: kept iff the index holds it");
        }
    }
    // a's first generation and c's put went; b's put, a's re-creation and
    // d's put are what reads at the compact revision need.
    let below: Vec<_> = after.iter().filter(|k| k.0 < at).copied().collect();
    assert_eq!(below, vec![(3, 0), (7, 0), (8, 0)]);
    drop(committed);
    let at_compact = node.read(|v| {
        v.range_keys(&key_range("a", "z"), at, 0, false)
            .map(|r| r.kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>())
    });
    assert_eq!(
        at_compact.expect("read at the compact revision"),
        vec![b("a"), b("b"), b("d")]
    );
}

#[tokio::test]
async fn a_restart_does_not_resurrect_deleted_keys_or_revoked_leases() {
    let node = Node::start();
    busy_history(&node).await;
    let node = node.restart();
    assert_eq!(node.read(|v| v.get(&b("c")).expect("get")), None);
    assert!(!node.committed().leases.contains(11));
    assert!(matches!(
        node.propose(revoke(11)).await,
        Err(Error::Refused(Refusal::LeaseNotFound))
    ));
    // The surviving lease still owns its key, so revoking it deletes it.
    ok(&node, revoke(10)).await;
    assert_eq!(node.read(|v| v.get(&b("f")).expect("get")), None);
}

#[tokio::test]
async fn a_grant_through_the_proposer_starts_its_deadline_and_a_revoke_forgets_it() {
    let node = Node::start();
    ok(&node, grant(5, 10)).await;
    let now = tokio::time::Instant::now();
    let remaining = node.lessor.remaining(5, now).expect("deadline started");
    assert!(
        remaining > std::time::Duration::from_secs(9),
        "{remaining:?}"
    );
    assert!(node.committed().leases.contains(5));
    ok(&node, revoke(5)).await;
    assert_eq!(node.lessor.remaining(5, now), None);
    assert!(!node.committed().leases.contains(5));
}

fn hash(node: &Node, rev: i64) -> (u32, i64) {
    node.read(|v| v.hash_kv(rev)).expect("hash")
}

#[tokio::test]
async fn hash_kv_is_the_same_after_a_restart() {
    let node = Node::start();
    busy_history(&node).await;
    let (newest, at7) = (hash(&node, 0), hash(&node, 7));
    let node = node.restart();
    assert_eq!((hash(&node, 0), hash(&node, 7)), (newest, at7));

    ok(&node, compact(9)).await;
    let (newest, at10) = (hash(&node, 0), hash(&node, 10));
    let node = node.restart();
    assert_eq!((hash(&node, 0), hash(&node, 10)), (newest, at10));
}

#[tokio::test]
async fn opening_finishes_a_compaction_a_crash_interrupted() {
    // The compact revision is committed with the batch; deleting history
    // happens after the commit. Stage a crash between the two: history
    // intact, compact revision recorded.
    let reference = Node::start();
    busy_history(&reference).await;
    ok(&reference, compact(9)).await;
    let compacted_history = reference.history_keys();
    let compacted = dump(&reference);

    let node = Node::start();
    busy_history(&node).await;
    let node = node.restart_with(|dir| set_meta(dir, MetaKey::CompactRevisionPlusOne, 10));
    assert_eq!(node.history_keys(), compacted_history);
    assert_eq!(dump(&node), compacted);
    assert_eq!(hash(&node, 0), hash(&reference, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_committed_consistent_state_while_writes_and_compactions_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let node = Arc::new(Node::start());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, done) = (node.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..200 {
                node.put(&format!("k{}", i % 20), &i.to_string()).await;
                if i % 25 == 24 {
                    let at = node.store.current_rev() - 10;
                    ok(&node, compact(at)).await;
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let reader = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || {
            let everything = key_range("\0", "\0");
            let mut reads = 0u64;
            let mut last_rev = 0;
            while !done.load(Ordering::Acquire) && reads < 1_000_000 {
                reads += 1;
                node.read(|v| {
                    assert!(v.rev >= last_rev, "the committed revision went back");
                    last_rev = v.rev;
                    let newest = v.range_keys(&everything, 0, 0, false).expect("newest read");
                    assert_eq!(
                        newest.kvs.len(),
                        usize::try_from(newest.count).expect("count")
                    );
                    assert!(newest.kvs.iter().all(|kv| kv.mod_revision <= v.rev));
                    // An older read either succeeds or is compacted; it never
                    // finds an indexed revision missing from history.
                    let older_rev = v.rev - 12;
                    if older_rev <= 0 {
                        return;
                    }
                    match v.range_keys(&everything, older_rev, 0, false) {
                        Ok(older) => {
                            assert!(older.kvs.iter().all(|kv| kv.mod_revision <= older_rev))
                        }
                        Err(
                            Error::Refused(Refusal::Compacted)
                            | Error::Refused(Refusal::FutureRevision),
                        ) => {}
                        Err(e) => panic!("read at {older_rev}: {e}"),
                    }
                });
            }
            reads
        })
    };
    writer.await.expect("writer");
    let reads = reader.await.expect("reader");
    assert!(reads > 0);
    assert_eq!(node.store.current_rev(), 201);
}

#[tokio::test]
async fn a_lease_revoked_and_granted_again_in_one_batch_keeps_a_deadline() {
    let node = Node::start();
    ok(&node, grant(7, 10)).await;
    // The revoke and the grant queue up behind a stalled batch and are
    // applied together in the next one.
    let stall = node.stall_applier();
    let stalled = {
        let proposer = node.proposer.clone();
        tokio::spawn(async move { proposer.propose(put("stall", "v")).await })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let both = {
        let proposer = node.proposer.clone();
        tokio::spawn(async move {
            tokio::join!(proposer.propose(revoke(7)), proposer.propose(grant(7, 10)))
        })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    drop(stall);
    assert!(stalled.await.expect("put task").is_ok());
    let (revoked, granted) = both.await.expect("task");
    assert!(
        revoked.is_ok() && granted.is_ok(),
        "{revoked:?} {granted:?}"
    );
    assert!(node.committed().leases.contains(7));
    assert!(
        node.lessor
            .remaining(7, tokio::time::Instant::now())
            .is_some(),
        "the lease granted again has no deadline: it would never expire"
    );
}
