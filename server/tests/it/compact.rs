//! Compaction: reads below the compacted revision fail, reads at or above it
//! (up to the current revision) still see each key's state then, revisions
//! past the current one are in the future, and compacting is not repeatable.

use rollcall_proto::etcdserverpb::{CompactionRequest, RangeRequest};
use rollcall_tests::Backend;
use tonic::Code;

use crate::support::{
    COMPACTED, Client, FUTURE_REV, all_req, as_range, assert_status, del_req, get_req, keys, kv,
    op_range, rev, start, txn_req,
};

backend_tests!(
    compaction_errors,
    compaction_keeps_latest_versions,
    physical_compaction,
    compact_to_current_revision,
    negative_and_zero_revisions,
);

fn at(key: &str, revision: i64) -> RangeRequest {
    RangeRequest {
        revision,
        ..get_req(key)
    }
}

async fn compaction_errors(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("a", "1").await;
    let r2 = c.put_rev("a", "2").await;
    let r3 = c.put_rev("a", "3").await;
    let r4 = c.put_rev("b", "1").await;

    let resp = c.compact(r3).await;
    assert_eq!(
        rev(&resp.header),
        r4,
        "compaction header has the current revision"
    );
    assert_eq!(c.revision().await, r4, "compaction writes no revision");

    assert_status(c.try_range(at("a", r1)).await, Code::OutOfRange, COMPACTED);
    assert_status(c.try_range(at("a", r2)).await, Code::OutOfRange, COMPACTED);
    assert_eq!(
        c.range(at("a", r3)).await.kvs,
        vec![kv("a", "3", r1, r3, 3)]
    );
    assert_eq!(
        c.range(at("a", r4)).await.kvs,
        vec![kv("a", "3", r1, r3, 3)]
    );
    assert_status(
        c.try_range(at("a", r4 + 1)).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    assert_status(
        c.try_range(at("a", r4 + 100)).await,
        Code::OutOfRange,
        FUTURE_REV,
    );

    // Compacting again, at or below the compacted revision.
    assert_status(c.try_compact(r3).await, Code::OutOfRange, COMPACTED);
    assert_status(c.try_compact(r2).await, Code::OutOfRange, COMPACTED);
    assert_status(c.try_compact(r4 + 1).await, Code::OutOfRange, FUTURE_REV);
    // Inside a txn as well.
    assert_status(
        c.try_txn(txn_req(vec![], vec![op_range(at("a", r2))], vec![]))
            .await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        c.try_txn(txn_req(vec![], vec![op_range(at("a", r4 + 1))], vec![]))
            .await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    // Nothing changed.
    assert_eq!(c.revision().await, r4);
    // Writes continue normally after a compaction.
    assert_eq!(c.put_rev("a", "4").await, r4 + 1);
    assert_eq!(c.get_kv("a").await, Some(kv("a", "4", r1, r4 + 1, 4)));
    // And compacting forward works.
    c.compact(r4).await;
    assert_status(c.try_range(at("a", r3)).await, Code::OutOfRange, COMPACTED);
    assert_eq!(
        c.range(at("a", r4)).await.kvs,
        vec![kv("a", "3", r1, r3, 3)]
    );
}

async fn compaction_keeps_latest_versions(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let ra = c.put_rev("a", "1").await;
    let rb = c.put_rev("b", "1").await;
    let rc = c.put_rev("c", "1").await;
    let rc2 = c.put_rev("c", "2").await;
    let rdel = rev(&c.delete(del_req("b")).await.header);
    let rd = c.put_rev("d", "1").await;
    c.compact(rdel).await;
    let then = c
        .range(RangeRequest {
            revision: rdel,
            ..all_req()
        })
        .await;
    assert_eq!(
        then.kvs,
        vec![kv("a", "1", ra, ra, 1), kv("c", "2", rc, rc2, 2)],
        "at the compaction revision: latest versions kept, the tombstone gone"
    );
    assert_eq!(then.count, 2);
    let now = c.range(all_req()).await;
    assert_eq!(keys(&now.kvs), ["a", "c", "d"]);
    assert_eq!(now.kvs[2], kv("d", "1", rd, rd, 1));
    // Re-creating the deleted key starts at version 1.
    let rb2 = c.put_rev("b", "again").await;
    assert_eq!(c.get_kv("b").await, Some(kv("b", "again", rb2, rb2, 1)));
    assert!(rb < rb2);
}

async fn physical_compaction(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let mut last = 0;
    for i in 0..20 {
        last = c.put_rev(&format!("k{}", i % 4), &i.to_string()).await;
    }
    let resp =
        c.kv.compact(CompactionRequest {
            revision: last - 2,
            physical: true,
        })
        .await
        .expect("physical compaction")
        .into_inner();
    assert_eq!(rev(&resp.header), last);
    assert_status(
        c.try_range(at("k0", last - 3)).await,
        Code::OutOfRange,
        COMPACTED,
    );
    let all = c.range(all_req()).await;
    assert_eq!(keys(&all.kvs), ["k0", "k1", "k2", "k3"]);
    assert_eq!(all.kvs[3].version, 5);
}

async fn compact_to_current_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("a", "1").await;
    let r2 = rev(&c.delete(del_req("a")).await.header);
    c.compact(r2).await;
    assert!(c.range(at("a", r2)).await.kvs.is_empty());
    assert_status(c.try_range(at("a", r1)).await, Code::OutOfRange, COMPACTED);
    assert_status(c.try_compact(r2).await, Code::OutOfRange, COMPACTED);
    assert!(c.all().await.is_empty());
    assert_eq!(c.put_rev("a", "2").await, r2 + 1);
}

async fn negative_and_zero_revisions(backend: Backend) {
    // etcd's rules for revisions <= 0, which clients do send:
    // - a Range with revision <= 0 reads the current revision;
    // - the store starts "compacted at -1", so Compact(0) succeeds once and
    //   Compact(-1) is already compacted;
    // - but a range *inside a txn* is checked against the compacted revision
    //   as is: once anything was compacted, revision -1 there is compacted.
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r1 = c.put_rev("a", "1").await;
    let current = vec![kv("a", "1", r1, r1, 1)];
    let in_txn = || txn_req(vec![], vec![op_range(at("a", -1))], vec![]);
    assert_eq!(c.range(at("a", -1)).await.kvs, current);
    assert_eq!(as_range(&c.txn(in_txn()).await.responses[0]).kvs, current);
    assert_eq!(rev(&c.compact(0).await.header), r1);
    assert_status(c.try_compact(0).await, Code::OutOfRange, COMPACTED);
    assert_status(c.try_compact(-1).await, Code::OutOfRange, COMPACTED);
    assert_eq!(c.range(at("a", 0)).await.kvs, current);
    assert_eq!(c.range(at("a", -1)).await.kvs, current);
    assert_status(c.try_txn(in_txn()).await, Code::OutOfRange, COMPACTED);
    assert_eq!(c.revision().await, r1);
}
