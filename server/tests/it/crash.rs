//! Crash test: concurrent writers put unique keys and record every
//! acknowledged (key, value, revision); the server is killed with SIGKILL at
//! a random moment (100 to 600 ms after the first acknowledgement),
//! restarted on the same data dir, and then
//!
//! - every acknowledged write is there with its value and with mod_revision
//!   equal to the acknowledged revision (acknowledged means durable);
//! - acknowledged revisions were all distinct;
//! - the revisions in the store are exactly 2..=current with no hole (every
//!   write in this test is a put of a new key, so each revision is one key):
//!   nothing committed was lost and no revision was skipped;
//! - the next put gets current + 1: revisions continue, never reused.
//!
//! Five cycles on the same data dir. (Throughput is measured by
//! `rollcall bench put`, not here.)

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_tests::Backend;
use rollcall_tests::rng::SplitMix64;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::support::{Client, prefix_req, put_req, rev, start};

backend_tests!(kill9_cycles);

const CYCLES: u32 = 5;
const WRITERS: u32 = 16;
/// Upper bound on puts per writer per cycle (the kill comes much earlier).
const MAX_PUTS_PER_WRITER: u32 = 20_000;
/// Upper bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// One acknowledged put.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
}

/// Puts `/crash/c<cycle>/w<writer>/<n>` until an error or `stop`; returns
/// what was acknowledged.
async fn writer(
    mut kv: KvClient<Channel>,
    cycle: u32,
    id: u32,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<Ack> {
    let mut acks = Vec::new();
    for n in 0..MAX_PUTS_PER_WRITER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("/crash/c{cycle}/w{id:02}/{n:06}");
        let value = format!("c{cycle}-w{id}-n{n}");
        match kv.put(put_req(&key, &value)).await {
            Ok(resp) => {
                acks.push(Ack {
                    key,
                    value,
                    revision: rev(&resp.into_inner().header),
                });
                acked.fetch_add(1, Ordering::Relaxed);
            }
            // The server is gone: everything after this is unacknowledged.
            Err(_) => break,
        }
    }
    acks
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1))
        .unwrap_or(1)
}

async fn kill9_cycles(backend: Backend) {
    tokio::time::timeout(TEST_TIMEOUT, run_cycles(backend))
        .await
        .expect("the crash test finishes in time");
}

async fn run_cycles(backend: Backend) {
    let seed = clock_seed();
    let mut rng = SplitMix64::new(seed);
    let mut server = start(&backend).await;
    let mut all_acked: Vec<Ack> = Vec::new();
    for cycle in 0..CYCLES {
        let delay = Duration::from_millis(rng.range_inclusive(100, 600));
        let channel = server.channel().await.expect("connect");
        let stop = Arc::new(AtomicBool::new(false));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let mut writers = JoinSet::new();
        for id in 0..WRITERS {
            writers.spawn(writer(
                KvClient::new(channel.clone()),
                cycle,
                id,
                stop.clone(),
                acked_count.clone(),
            ));
        }
        // The random moment is counted from the first acknowledgement, so a
        // slow machine still kills the server under load, not before it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked_count.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "{} cycle {cycle}: no write acknowledged within 20 s",
                backend.name()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(delay).await;
        server.kill9().expect("kill -9");
        stop.store(true, Ordering::Relaxed);
        let mut acked: Vec<Ack> = Vec::new();
        while let Some(done) = writers.join_next().await {
            acked.extend(done.expect("writer task"));
        }
        server.restart().await.expect("restart after kill -9");

        let context = format!(
            "{} cycle {cycle} (seed {seed}, killed after {delay:?}, {} acked this cycle)",
            backend.name(),
            acked.len()
        );
        assert!(
            !acked.is_empty(),
            "{context}: no write was acknowledged before the kill"
        );
        all_acked.extend(acked);
        let mut c = Client::connect(&server).await;
        check_store(&mut c, &all_acked, &context).await;
        println!("crash test {context}: all acknowledged writes present");
    }
}

async fn check_store(c: &mut Client, acked: &[Ack], context: &str) {
    // Acknowledged revisions are distinct.
    let mut seen = HashSet::new();
    for a in acked {
        assert!(
            seen.insert(a.revision),
            "{context}: revision {} acknowledged twice (second: {a:?})",
            a.revision
        );
    }
    let stored = c.range(prefix_req("/crash/")).await;
    let current = rev(&stored.header);
    let by_key: BTreeMap<&[u8], &rollcall_proto::mvccpb::KeyValue> =
        stored.kvs.iter().map(|kv| (kv.key.as_ref(), kv)).collect();
    // Every acknowledged write is there, as acknowledged.
    for a in acked {
        let Some(kv) = by_key.get(a.key.as_bytes()) else {
            panic!("{context}: acknowledged write lost: {a:?} (store at revision {current})");
        };
        assert_eq!(kv.value.as_ref(), a.value.as_bytes(), "{context}: {a:?}");
        assert_eq!(
            kv.mod_revision, a.revision,
            "{context}: {a:?} stored as {kv:?}"
        );
        assert_eq!(
            kv.create_revision, a.revision,
            "{context}: {a:?} stored as {kv:?}"
        );
        assert_eq!(kv.version, 1, "{context}: {a:?} stored as {kv:?}");
    }
    // Each revision 2..=current is exactly one stored key: no hole, no skip.
    let mut revisions: Vec<i64> = stored.kvs.iter().map(|kv| kv.mod_revision).collect();
    revisions.sort_unstable();
    let expected: Vec<i64> = (2..=current).collect();
    if revisions != expected {
        let present: HashSet<i64> = revisions.iter().copied().collect();
        let missing: Vec<i64> = expected
            .iter()
            .copied()
            .filter(|r| !present.contains(r))
            .take(10)
            .collect();
        panic!(
            "{context}: store revisions are not exactly 2..={current}: {} keys, first missing revisions {missing:?}",
            revisions.len()
        );
    }
    let max_acked = acked.iter().map(|a| a.revision).max().unwrap_or(1);
    assert!(
        current >= max_acked,
        "{context}: current {current} < acknowledged {max_acked}"
    );
    // The next write continues the sequence.
    let probe = format!("/crash/probe/{current}");
    let next = c.put_rev(&probe, "probe").await;
    assert_eq!(next, current + 1, "{context}: the next put after restart");
}
