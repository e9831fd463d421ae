//! The client against real servers: the `rollcall` binary and a real etcd
//! 3.4, each started on free loopback ports in a temp dir by
//! `rollcall-tests`. Every test runs once per server.
//!
//! The rollcall binary is the one cargo built next to this test (the
//! workspace's `target/<profile>/rollcall`, which `cargo test --workspace`
//! builds for the server's own tests), or `$ROLLCALL_BIN`; when neither
//! exists the rollcall half prints SKIPPED. etcd follows the harness's rule:
//! SKIPPED when missing unless `ROLLCALL_REQUIRE_ETCD=1`. The twins come from
//! the harness's `backend_tests!`.

use std::collections::HashSet;
use std::time::Duration;

use rollcall_client::bench::{
    LeaseExpiryBenchOptions, LeaseKeepAliveBenchOptions, PutBenchOptions, RangeBenchOptions,
    RegisterChurnBenchOptions, TxnCasBenchOptions, WatchLatencyBenchOptions, run_lease_expiry,
    run_lease_keepalive, run_put, run_range, run_register_churn, run_txn_cas, run_watch_latency,
};
use rollcall_client::{
    Client, ClientError, EtcdErrorKind, EventKind, HasHeader, LeaseLost, PutOptions, WatchBatch,
    WatchError, WatchOptions, Watcher,
};
use rollcall_tests::{Backend, ServerProcess};

/// Bound on waiting for any one expected event.
const WAIT: Duration = Duration::from_secs(10);

rollcall_tests::backend_tests!(
    rollcall = rollcall_tests::backend::built_rollcall();
    lease_calls,
    keeper_renews_then_reports_a_revoke,
    watch_delivers_puts_deletes_and_filters,
    watch_resumes_after_a_server_restart,
    compacted_start_is_an_error,
    a_fragmented_revision_arrives_whole,
    many_watchers_share_one_stream,
    bench_scenarios_run_clean,
);

async fn start(backend: &Backend) -> (ServerProcess, Client) {
    let server = backend.start().await.expect("server starts");
    let client = Client::connect([server.endpoint()])
        .await
        .expect("client connects");
    (server, client)
}

async fn next_batch(watcher: &mut Watcher) -> WatchBatch {
    match tokio::time::timeout(WAIT, watcher.next()).await {
        Ok(Some(Ok(batch))) => batch,
        Ok(other) => panic!("watcher ended: {other:?}"),
        Err(_) => panic!("no batch within {WAIT:?}"),
    }
}

/// Collects events until `n` have arrived: (kind, key, value, revision).
async fn next_events(watcher: &mut Watcher, n: usize) -> Vec<(EventKind, String, String, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        for e in next_batch(watcher).await.events {
            out.push((
                e.kind,
                String::from_utf8_lossy(e.key()).into_owned(),
                String::from_utf8_lossy(e.value()).into_owned(),
                e.revision(),
            ));
        }
    }
    out
}

async fn lease_calls(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let granted = client.grant(30).await.expect("grant");
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, 30);
    let chosen = client.grant_with_id(4242, 30).await.expect("grant with id");
    assert_eq!(chosen.id, 4242);
    let again = client.grant_with_id(4242, 30).await;
    assert_eq!(
        again.err().and_then(|e| e.etcd_kind()),
        Some(EtcdErrorKind::LeaseExists)
    );

    client
        .put_with("/l/a", "1", PutOptions::new().lease(granted.id))
        .await
        .expect("put with lease");
    let ttl = client.time_to_live(granted.id, true).await.expect("ttl");
    assert_eq!(ttl.granted_ttl, 30);
    assert!(ttl.ttl > 0 && ttl.ttl <= 30, "{ttl:?}");
    assert_eq!(ttl.keys, [bytes::Bytes::from_static(b"/l/a")]);
    let listed: HashSet<i64> = client
        .leases()
        .await
        .expect("leases")
        .leases
        .iter()
        .map(|l| l.id)
        .collect();
    assert!(
        listed.contains(&granted.id) && listed.contains(&4242),
        "{listed:?}"
    );

    let renewed = client
        .keep_alive_once(granted.id)
        .await
        .expect("keep alive");
    assert_eq!((renewed.id, renewed.ttl), (granted.id, 30));

    let revoked = client.revoke(granted.id).await.expect("revoke");
    assert!(revoked.revision() > 0);
    assert!(client.get("/l/a").await.expect("get").kvs.is_empty());
    assert_eq!(
        client
            .time_to_live(granted.id, false)
            .await
            .expect("ttl")
            .ttl,
        -1
    );
    let unknown = client.keep_alive_once(granted.id).await;
    assert_eq!(
        unknown.err().and_then(|e| e.etcd_kind()),
        Some(EtcdErrorKind::LeaseNotFound)
    );
    let unknown = client.revoke(999_999).await;
    assert_eq!(
        unknown.err().and_then(|e| e.etcd_kind()),
        Some(EtcdErrorKind::LeaseNotFound)
    );
    let missing = client.keep_alive(999_999).await;
    assert_eq!(
        missing.as_ref().err().and_then(ClientError::etcd_kind),
        Some(EtcdErrorKind::LeaseNotFound)
    );
}

async fn keeper_renews_then_reports_a_revoke(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let lease = client.grant(3).await.expect("grant").id;
    client
        .put_with("/k/a", "1", PutOptions::new().lease(lease))
        .await
        .expect("put");
    let keeper = client.keep_alive(lease).await.expect("keep alive");
    assert_eq!(keeper.ttl(), 3);
    // Past the TTL: alive only because the keeper renewed it.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(!keeper.is_lost());
    // About one renewal a second (a third of the TTL); at least two, even
    // on a loaded machine, to have outlived the TTL.
    assert!(keeper.state().renewals >= 2, "{:?}", keeper.state());
    assert_eq!(client.get("/k/a").await.expect("get").kvs.len(), 1);

    client.revoke(lease).await.expect("revoke");
    let lost = tokio::time::timeout(Duration::from_secs(3), keeper.lost())
        .await
        .expect("loss reported within the renewal interval");
    assert_eq!(lost, LeaseLost::NotFound);
}

async fn watch_delivers_puts_deletes_and_filters(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let mut all = client
        .watch("/w/", WatchOptions::new().prefix().prev_kv())
        .await
        .expect("watch");
    let mut deletes = client
        .watch("/w/", WatchOptions::new().prefix().no_put())
        .await
        .expect("watch");
    let first = client.put("/w/a", "1").await.expect("put").revision();
    client.put("/w/a", "2").await.expect("put");
    client.put("/other", "x").await.expect("put");
    client.delete("/w/a").await.expect("delete");
    assert!(all.created_revision() < first);

    let mut events = Vec::new();
    while events.len() < 3 {
        events.extend(next_batch(&mut all).await.events);
    }
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Put, EventKind::Put, EventKind::Delete]);
    assert_eq!(events[0].revision(), first);
    assert!(events[0].prev_kv.is_none());
    assert_eq!(
        events[1].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(bytes::Bytes::from_static(b"1"))
    );
    assert_eq!(
        events[2].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(bytes::Bytes::from_static(b"2"))
    );
    let only = next_events(&mut deletes, 1).await;
    assert_eq!(only[0].0, EventKind::Delete);
    assert_eq!(only[0].3, events[2].revision());

    // Replay from history.
    let mut replay = client
        .watch("/w/a", WatchOptions::new().start_revision(first))
        .await
        .expect("watch");
    let replayed = next_events(&mut replay, 3).await;
    assert_eq!(
        replayed.iter().map(|e| e.3).collect::<Vec<_>>(),
        events.iter().map(|e| e.revision()).collect::<Vec<_>>()
    );
}

/// Puts with retries while the server restarts.
async fn put_retrying(client: &Client, key: &str, value: &str) -> i64 {
    for _ in 0..100 {
        match client.put(key, value).await {
            Ok(resp) => return resp.revision(),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("put {key} kept failing");
}

async fn watch_resumes_after_a_server_restart(backend: Backend) {
    let (mut server, client) = start(&backend).await;
    let session = client.watch_session();
    let mut watcher = session
        .watch("/r/", WatchOptions::new().prefix())
        .await
        .expect("watch");
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(put_retrying(&client, &format!("/r/{i}"), "v").await);
    }
    let before = next_events(&mut watcher, 5).await;

    server.kill9().expect("kill");
    server.restart().await.expect("restart");
    // Written at once: the watch stream is likely still in its backoff, so
    // these come from history when it is re-created.
    for i in 5..10 {
        revisions.push(put_retrying(&client, &format!("/r/{i}"), "v").await);
    }
    let after = next_events(&mut watcher, 5).await;

    let seen: Vec<i64> = before.iter().chain(&after).map(|e| e.3).collect();
    assert_eq!(seen, revisions, "every event once, in order");
    let keys: Vec<&str> = before.iter().chain(&after).map(|e| e.1.as_str()).collect();
    assert_eq!(keys, (0..10).map(|i| format!("/r/{i}")).collect::<Vec<_>>());
    assert!(session.reconnects() >= 1);
    // Nothing more (no duplicate) arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watcher.next())
            .await
            .is_err()
    );
}

async fn compacted_start_is_an_error(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let first = client.put("/c/k", "1").await.expect("put").revision();
    client.put("/c/k", "2").await.expect("put");
    let last = client.put("/c/k", "3").await.expect("put").revision();
    client.compact(last, true).await.expect("compact");
    let mut watcher = client
        .watch("/c/k", WatchOptions::new().start_revision(first))
        .await
        .expect("created, then canceled");
    match tokio::time::timeout(WAIT, watcher.next()).await {
        Ok(Some(Err(WatchError::Compacted { compact_revision }))) => {
            assert_eq!(compact_revision, last);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watcher.next().await.is_none());
    let as_client_error = ClientError::from(WatchError::Compacted {
        compact_revision: last,
    });
    assert!(as_client_error.is_compacted());
}

async fn a_fragmented_revision_arrives_whole(backend: Backend) {
    const KEYS: usize = 300;
    let (_server, client) = start(&backend).await;
    let value = "x".repeat(8 * 1024);
    for i in 0..KEYS {
        client
            .put(format!("/f/{i:04}"), value.as_str())
            .await
            .expect("put");
    }
    let mut watcher = client
        .watch("/f/", WatchOptions::new().prefix().prev_kv().fragment())
        .await
        .expect("watch");
    // One revision of 300 deletes with 8 KiB previous values: ~2.4 MiB, more
    // than the 1.5 MiB limit, so the server splits it.
    client
        .delete_with("/f/", rollcall_client::DeleteOptions::new().prefix())
        .await
        .expect("delete");
    let batch = next_batch(&mut watcher).await;
    assert_eq!(batch.events.len(), KEYS);
    assert!(batch.events.iter().all(|e| {
        e.kind == EventKind::Delete
            && e.prev_kv
                .as_ref()
                .is_some_and(|kv| kv.value.len() == value.len())
    }));
}

async fn many_watchers_share_one_stream(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let session = client.watch_session();
    let mut watchers = Vec::new();
    for i in 0..50 {
        watchers.push(
            session
                .watch(format!("/m/{i:02}"), WatchOptions::new())
                .await
                .expect("watch"),
        );
    }
    for i in 0..50 {
        client
            .put(format!("/m/{i:02}"), format!("{i}"))
            .await
            .expect("put");
    }
    for (i, watcher) in watchers.iter_mut().enumerate() {
        let got = next_events(watcher, 1).await;
        assert_eq!(got[0].1, format!("/m/{i:02}"));
        assert_eq!(got[0].2, format!("{i}"));
    }
    // Progress on request reaches every watcher of the stream.
    session.request_progress().expect("progress");
    for watcher in &mut watchers {
        assert!(next_batch(watcher).await.is_progress());
    }
}

async fn bench_scenarios_run_clean(backend: Backend) {
    let (_server, client) = start(&backend).await;
    let endpoints = vec![client.endpoint().to_owned()];
    let second = Some(Duration::from_secs(1));
    let clean = |report: rollcall_client::bench::BenchReport| {
        assert_eq!(report.errors, 0, "{}", report.table());
        assert!(report.ok > 0, "{}", report.table());
        report
    };
    clean(
        run_put(PutBenchOptions {
            endpoints: endpoints.clone(),
            clients: 8,
            conns: 2,
            total: Some(200),
            ..PutBenchOptions::default()
        })
        .await
        .expect("put"),
    );
    clean(
        run_range(RangeBenchOptions {
            endpoints: endpoints.clone(),
            clients: 8,
            conns: 2,
            total: None,
            duration: second,
            key_space: 100,
            serializable: true,
            ..RangeBenchOptions::default()
        })
        .await
        .expect("range"),
    );
    let cas = clean(
        run_txn_cas(TxnCasBenchOptions {
            endpoints: endpoints.clone(),
            clients: 8,
            conns: 2,
            total: None,
            duration: second,
            key_space: 4,
            ..TxnCasBenchOptions::default()
        })
        .await
        .expect("txn-cas"),
    );
    assert!(cas.conflicts.is_some());
    clean(
        run_register_churn(RegisterChurnBenchOptions {
            endpoints: endpoints.clone(),
            clients: 4,
            conns: 2,
            total: None,
            duration: second,
            ..RegisterChurnBenchOptions::default()
        })
        .await
        .expect("register-churn"),
    );
    clean(
        run_lease_keepalive(LeaseKeepAliveBenchOptions {
            endpoints: endpoints.clone(),
            clients: 50,
            conns: 1,
            streams: 2,
            leases: 100,
            duration: second,
            ..LeaseKeepAliveBenchOptions::default()
        })
        .await
        .expect("lease-keepalive"),
    );
    assert!(client.leases().await.expect("leases").leases.is_empty());
    let expiry = clean(
        run_lease_expiry(LeaseExpiryBenchOptions {
            endpoints: endpoints.clone(),
            clients: 10,
            conns: 1,
            leases: 100,
            ttl: 5,
            duration: second,
            ..LeaseExpiryBenchOptions::default()
        })
        .await
        .expect("lease-expiry"),
    );
    // The setup attached one key to each lease; the TTL outlives this short run.
    assert_eq!(
        expiry.extra.get("leased_keys_live_at_start"),
        Some(&100.into()),
        "{}",
        expiry.table()
    );
    let watch = clean(
        run_watch_latency(WatchLatencyBenchOptions {
            endpoints,
            conns: 2,
            streams: 3,
            watchers: 100,
            hot_watchers: 5,
            rate: 50.0,
            duration: second,
            ..WatchLatencyBenchOptions::default()
        })
        .await
        .expect("watch-latency"),
    );
    assert_eq!(
        watch.extra.get("events_missing"),
        Some(&0.into()),
        "{}",
        watch.table()
    );
}
