//! Maintenance.Defragment, checked against etcd too: it shrinks the database
//! file after a compaction freed space, without changing the data, the
//! revision or the hash (also after a restart); and it succeeds, losing
//! nothing, while clients keep reading and writing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_proto::etcdserverpb::DeleteRangeRequest;

use crate::quota::BIG;
use crate::support::{Kind, Member, b, blob, eventually, get_at, prefix_end};

backend_tests!(
    defrag_shrinks_file_keeps_data_revision_and_hash,
    defrag_while_clients_read_and_write,
);

async fn defrag_shrinks_file_keeps_data_revision_and_hash(kind: Kind) {
    let mut m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    let value = blob(BIG);
    for i in 0..60 {
        c.put(&format!("big/{i:03}"), &value).await;
        if i % 6 == 0 {
            c.put(&format!("keep/{i:03}"), &format!("v{i}")).await;
            c.put(&format!("keep/{i:03}"), &format!("w{i}")).await;
        }
    }
    let gone = c
        .try_delete(DeleteRangeRequest {
            key: b("big/"),
            range_end: prefix_end("big/"),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(gone.deleted, 60);
    let compact_at = c.revision().await;
    c.compact(compact_at).await;
    c.put("keep/late", "x").await;

    let (revision, data) = c.all_at(0).await;
    let hash = c.hash_kv(0).await;
    let status_size = c.status().await.db_size;
    let file_size = std::fs::metadata(m.db_file()).unwrap().len();
    assert!(
        status_size > 2_000_000,
        "{status_size} bytes: compaction alone shrank the file?"
    );

    c.try_defragment().await.expect("defragment");

    let status_after = c.status().await.db_size;
    let file_after = std::fs::metadata(m.db_file()).unwrap().len();
    assert!(
        status_after < status_size / 2,
        "Status.db_size {status_size} -> {status_after}"
    );
    assert!(
        file_after < file_size / 2,
        "file {} {file_size} -> {file_after} bytes",
        m.db_file().display()
    );
    assert_eq!(
        c.all_at(0).await,
        (revision, data.clone()),
        "data and revision"
    );
    let hash_after = c.hash_kv(0).await;
    assert_eq!(
        (hash_after.hash, hash_after.compact_revision),
        (hash.hash, hash.compact_revision)
    );
    // History after the compaction is still there.
    assert_eq!(
        c.range(get_at("keep/000", compact_at)).await.kvs[0].value,
        b("w0")
    );
    assert_eq!(c.put("next", "1").await, revision + 1);

    // The defragmented database opens again with the same content.
    m.restart().await;
    let mut c = m.client().await;
    let (revision2, data2) = c.all_at(0).await;
    assert_eq!(revision2, revision + 1);
    let mut expected = data;
    expected.retain(|kv| kv.key != b("next"));
    assert_eq!(
        data2
            .into_iter()
            .filter(|kv| kv.key != b("next"))
            .collect::<Vec<_>>(),
        expected
    );
}

async fn defrag_while_clients_read_and_write(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    for i in 0..400 {
        c.put(&format!("seed/{i:03}"), &blob(2000)).await;
    }
    // Free some space so there is something to defragment.
    for i in 0..200 {
        c.put(&format!("seed/{i:03}"), "small").await;
    }
    let now = c.revision().await;
    c.compact(now).await;

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(Mutex::new(0_u64));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (stop, reads, mut c) = (stop.clone(), reads.clone(), c.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (_, all) = c.all_at(0).await;
                assert!(
                    all.len() >= 400,
                    "a read during defragment saw {}",
                    all.len()
                );
                *reads.lock().unwrap() += 1;
            }
        }));
    }
    let acks: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let writer = {
        let (stop, acks, mut c) = (stop.clone(), acks.clone(), c.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w/{n:06}");
                let r = c.put(&key, &n.to_string()).await;
                acks.lock().unwrap().push((key, r));
                n += 1;
            }
        })
    };
    let busy = eventually(Duration::from_secs(10), Duration::from_millis(10), || {
        let ready = *reads.lock().unwrap() >= 3 && acks.lock().unwrap().len() >= 3;
        async move { ready.then_some(()) }
    })
    .await;
    assert!(
        busy.is_some(),
        "the readers and the writer did not get going"
    );

    let mut failures = Vec::new();
    for round in 0..20 {
        if let Err(e) = c.try_defragment().await {
            failures.push(format!("round {round}: {:?} {:?}", e.code(), e.message()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in readers.into_iter().chain([writer]) {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a client task stops")
            .expect("a client task did not panic");
    }
    let acks = acks.lock().unwrap().clone();
    for (key, r) in &acks {
        let kv = c.get(key).await.unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(kv.mod_revision, *r, "{key}");
    }
    assert_eq!(c.revision().await, acks.last().map_or(now, |a| a.1));
    assert!(
        failures.is_empty(),
        "Defragment failed while clients read and wrote: {failures:?}"
    );
    // And once they stopped, it works.
    c.try_defragment().await.expect("defragment when idle");
}
