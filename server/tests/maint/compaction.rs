//! Auto-compaction. Periodic mode with a 2 s retention is etcd's behaviour
//! and is checked against etcd too: a revision becomes unreadable (compacted)
//! within a bounded wait, not before the retention has passed, and the
//! current data stays. Revision mode (etcd checks only every five minutes, so
//! rollcall alone, with `--auto-compaction-interval-ms 100`) keeps the
//! compact revision at current − retention. Invalid retentions are refused
//! at start.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::support::{COMPACTED, Client, Kind, Member, b, eventually, get_at, run_rollcall};

backend_tests!(periodic_retention_2s_compacts_on_schedule);

/// Bound on waiting for an automatic compaction.
const WAIT: Duration = Duration::from_secs(15);

/// Waits (bounded) until a read of `key` at `revision` answers "compacted";
/// returns when that was seen. Any other error fails the test.
async fn until_compacted(c: &Client, key: &str, revision: i64) -> Option<Instant> {
    eventually(WAIT, Duration::from_millis(100), || {
        let mut c = c.clone();
        async move {
            match c.try_range(get_at(key, revision)).await {
                Ok(_) => None,
                Err(s) if s.code() == Code::OutOfRange && s.message() == COMPACTED => {
                    Some(Instant::now())
                }
                Err(s) => panic!("read of {key} at {revision}: {s:?}"),
            }
        }
    })
    .await
}

async fn periodic_retention_2s_compacts_on_schedule(kind: Kind) {
    let m = Member::start(
        kind,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    )
    .await;
    let mut c = m.client().await;

    for round in 0..2 {
        let old = c.put("a", &format!("old{round}")).await;
        let written = Instant::now();
        let new = c.put("a", &format!("new{round}")).await;
        // Within the retention the old revision is still readable.
        let read = c.try_range(get_at("a", old)).await;
        if written.elapsed() < Duration::from_secs(1) {
            let read = read.unwrap_or_else(|e| {
                panic!("revision {old} compacted right after it was written: {e:?}")
            });
            assert_eq!(read.kvs[0].value, b(&format!("old{round}")));
        }
        let Some(seen) = until_compacted(&c, "a", old).await else {
            panic!("round {round}: revision {old} still readable {WAIT:?} after it was replaced")
        };
        let after = seen - written;
        assert!(
            after >= Duration::from_millis(1800),
            "round {round}: compacted {after:?} after the write, before the 2 s retention"
        );
        // Compacted exactly to the newest revision one retention old, which
        // is the current one: it stays readable, and so is the data.
        let hash = c.hash_kv(0).await;
        assert_eq!(hash.compact_revision, new, "round {round}");
        let current = c.range(get_at("a", new)).await;
        assert_eq!(current.kvs[0].value, b(&format!("new{round}")));
        assert_eq!(c.get("a").await.unwrap().mod_revision, new);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_mode_keeps_the_newest_5_revisions() {
    let m = Member::start(
        Kind::Rollcall,
        &[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "5",
            "--auto-compaction-interval-ms",
            "100",
        ],
    )
    .await;
    let mut c = m.client().await;

    let mut current = c.revision().await;
    for (round, writes) in [(0, 20), (1, 7)] {
        for i in 0..writes {
            current = c.put("k", &format!("{round}-{i}")).await;
            // Never more than the retention: current − 5 stays readable.
            if current > 5 {
                c.try_range(get_at("k", current - 5))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("revision {} compacted at {current}: {e:?}", current - 5)
                    });
            }
        }
        let target = current - 5;
        let reached = eventually(WAIT, Duration::from_millis(50), || {
            let mut c = c.clone();
            async move { (c.hash_kv(0).await.compact_revision == target).then_some(()) }
        })
        .await;
        let got = c.hash_kv(0).await.compact_revision;
        assert!(
            reached.is_some(),
            "round {round}: compact revision {got}, want {target} (current {current})"
        );
        let at_target = c.range(get_at("k", target)).await;
        assert_eq!(at_target.kvs[0].mod_revision, target);
        let below = c.try_range(get_at("k", target - 1)).await;
        crate::support::assert_status(below, Code::OutOfRange, COMPACTED);
        // With no new writes it stays there.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(c.hash_kv(0).await.compact_revision, target);
        assert_eq!(c.revision().await, current, "compaction wrote no revision");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_retention_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = format!(
        "http://127.0.0.1:{}",
        rollcall_tests::ports::free_port().unwrap()
    );
    let metrics = format!(
        "http://127.0.0.1:{}",
        rollcall_tests::ports::free_port().unwrap()
    );
    for (mode, retention) in [("revision", "1h"), ("periodic", "5x")] {
        let run = run_rollcall(&[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen-client-urls",
            &client,
            "--listen-metrics-urls",
            &metrics,
            "--auto-compaction-mode",
            mode,
            "--auto-compaction-retention",
            retention,
        ])
        .await;
        assert!(!run.success(), "{mode} {retention} was accepted: {run:?}");
        assert!(
            run.stderr.contains("auto-compaction-retention") && run.stderr.contains(retention),
            "unclear message for {mode} {retention}: {}",
            run.stderr
        );
    }
}
