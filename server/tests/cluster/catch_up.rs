//! A new member joins a cluster holding 100,000 keys while writes go on.
//! With `--snapshot-count 200` (and rollcall keeping only 100 entries after
//! a snapshot) the leader has snapshotted and purged the log the newcomer
//! would need, so it must catch up from a streamed snapshot of
//! the leader's database (rollcall's log says so), then follow the log:
//! every key and every write acknowledged meanwhile is there, counted the
//! same as on the leader. Prints the catch-up time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::request_op::Request as Op;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use rollcall_tests::grpc::{b, prefix_end};
use rollcall_tests::{Backend, Cluster, ServerProcess};

use crate::membership::{add_learner, start_fourth};
use crate::support::{RECOVER, caught_up, channel, put, put_req};

backend_tests!(a_new_member_catches_up_on_100k_keys_from_a_snapshot);

const KEYS: usize = 100_000;
/// etcd's default `--max-txn-ops`.
const PUTS_PER_TXN: usize = 128;
const WRITERS: usize = 8;
const SNAPSHOT_COUNT: &str = "200";
/// Entries kept after a snapshot (rollcall's; etcd 3.4 always keeps
/// 5,000), fewer than the fill writes, so the newcomer needs the snapshot.
const CATCHUP_ENTRIES: &str = "100";

/// The snapshot flags of `backend`.
fn snapshot_args(backend: &Backend) -> Vec<String> {
    let mut args = vec!["--snapshot-count".to_string(), SNAPSHOT_COUNT.to_string()];
    if !backend.is_etcd() {
        args.extend([
            "--experimental-snapshot-catchup-entries".to_string(),
            CATCHUP_ENTRIES.to_string(),
        ]);
    }
    args
}

/// `prefix`'s key count as `member` sees it; every key for "".
async fn count(member: &ServerProcess, prefix: &str, serializable: bool) -> i64 {
    let (key, range_end) = if prefix.is_empty() {
        (b("\0"), b("\0"))
    } else {
        (b(prefix), prefix_end(prefix))
    };
    KvClient::new(channel(member))
        .range(RangeRequest {
            key,
            range_end,
            count_only: true,
            serializable,
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count
}

/// Writes `KEYS` keys under `bulk/`, 128 per transaction, from several
/// writers spread over the members.
async fn fill(cluster: &Cluster) {
    let chunks: Vec<usize> = (0..KEYS).step_by(PUTS_PER_TXN).collect();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let mut kv = KvClient::new(channel(cluster.member(w % 3)));
        let mine: Vec<usize> = chunks.iter().skip(w).step_by(WRITERS).copied().collect();
        writers.spawn(async move {
            for start in mine {
                let success = (start..(start + PUTS_PER_TXN).min(KEYS))
                    .map(|i| RequestOp {
                        request: Some(Op::RequestPut(put_req(
                            &format!("bulk/{i:06}"),
                            &format!("value of key {i}, long enough to be a real entry"),
                        ))),
                    })
                    .collect();
                kv.txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
}

async fn a_new_member_catches_up_on_100k_keys_from_a_snapshot(backend: Backend) {
    let snapshots = snapshot_args(&backend);
    let cluster = Cluster::builder(backend.clone(), 3)
        .peer_args(move |layout, i| {
            let mut args = layout.etcd_peer_args(i);
            args.extend(snapshots.iter().cloned());
            args
        })
        .start()
        .await
        .unwrap();
    fill(&cluster).await;
    assert_eq!(count(cluster.member(0), "bulk/", false).await, KEYS as i64);

    // Writes go on through the whole join: one put after another, the
    // index of the last acknowledged one kept.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writer = {
        let stop = stop.clone();
        let acknowledged = acknowledged.clone();
        let mut kv = KvClient::new(channel(cluster.member(2)));
        tokio::spawn(async move {
            // Bounded: the stop flag, or 20,000 puts.
            for n in 1..=20_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if kv
                    .put(PutRequest {
                        key: b(&format!("live/{n:05}")),
                        value: b("v"),
                        ..PutRequest::default()
                    })
                    .await
                    .is_ok()
                {
                    acknowledged.store(n, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let port = rollcall_tests::ports::free_port().unwrap();
    let peer_url = format!("http://127.0.0.1:{port}");
    add_learner(&cluster, &peer_url).await;
    let joined = Instant::now();
    let snapshots = snapshot_args(&backend);
    let snapshots: Vec<&str> = snapshots.iter().map(String::as_str).collect();
    let fourth = start_fourth(backend.clone(), &cluster, &peer_url, &snapshots).await;
    let last_key = format!("bulk/{:06}", KEYS - 1);
    caught_up(
        &fourth,
        &last_key,
        &format!("value of key {}, long enough to be a real entry", KEYS - 1),
    )
    .await;
    let took = joined.elapsed();
    put(cluster.member(0), "after-join", "1").await.unwrap();
    caught_up(&fourth, "after-join", "1").await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let last = acknowledged.load(Ordering::Relaxed);
    assert!(last > 0, "no write was acknowledged during the join");
    caught_up(&fourth, &format!("live/{last:05}"), "v").await;
    let deadline = Instant::now() + RECOVER;
    let on_leader = count(cluster.member(0), "", false).await;
    loop {
        let on_fourth = count(&fourth, "", true).await;
        if on_fourth == on_leader {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "m4 holds {on_fourth} keys, the cluster {on_leader}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&fourth, "bulk/", true).await, KEYS as i64);
    if !backend.is_etcd() {
        let log = fourth.log_text();
        assert!(
            log.contains("installed a raft snapshot from the leader"),
            "m4 caught up without a snapshot; its log:\n{}",
            fourth.log_tail(40)
        );
    }
    eprintln!(
        "{}: a new member caught up on {KEYS} keys in {took:?} ({last} puts acknowledged meanwhile)",
        backend.name()
    );
}
