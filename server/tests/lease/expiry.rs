//! Expiry with short TTLs and bounded waits: an expired lease's keys are
//! deleted (each lease's keys in one revision, seen by watchers as DELETE
//! events), never before the TTL has passed; other leases and unleased keys
//! are untouched; keep-alives postpone expiry for as long as they come.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rollcall_tests::Backend;
use tonic::Code;

use crate::support::{
    Client, LEASE_NOT_FOUND, assert_status, deletes, distinct, eventually, put_req, start,
};

backend_tests!(
    expiry_deletes_attached_keys_in_one_revision,
    ttl_below_minimum_expires_after_the_minimum,
    keepalive_postpones_expiry,
    many_leases_expire_together,
);

/// Bound on waiting for an expiry after the TTL (the brief: at most 10 s).
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

async fn expiry_deletes_attached_keys_in_one_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let long = c.grant(120, 0).await.id;
    let first = c.put("svc/plain", "p", 0).await;
    c.put("svc/long", "l", long).await;
    let mut watcher = c.watch_prefix("svc/", first + 1).await;

    let granted_at = Instant::now();
    let lease = c.grant(2, 0).await.id;
    let keys = ["svc/a", "svc/b", "svc/c", "svc/d", "svc/e"];
    for key in keys {
        c.put(key, "v", lease).await;
    }
    let responses = watcher.until_deletes(keys.len(), EXPIRY_WAIT).await;
    let elapsed = granted_at.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "keys deleted {elapsed:?} after granting a 2 s lease"
    );
    let deleted = deletes(&responses);
    assert_eq!(
        deleted.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        keys,
        "{responses:?}"
    );
    let revisions = distinct(deleted.iter().map(|(_, r)| *r));
    assert_eq!(revisions.len(), 1, "one revision for all keys: {deleted:?}");
    let at = *revisions.first().unwrap();
    assert_eq!(c.keys_at("svc/", at).await, ["svc/long", "svc/plain"]);
    assert_eq!(
        c.keys_at("svc/", at - 1).await.len(),
        keys.len() + 2,
        "all there the revision before"
    );

    let gone = c.time_to_live(lease, true).await;
    assert_eq!((gone.ttl, gone.granted_ttl), (-1, 0), "{gone:?}");
    assert_eq!(c.lease_ids().await, vec![long]);
    let mut ka = c.keep_alive();
    assert_eq!(ka.once(lease).await.ttl, 0);
    assert_status(
        c.try_put(put_req("svc/a", "v", lease)).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(c.time_to_live(long, false).await.granted_ttl, 120);
}

async fn ttl_below_minimum_expires_after_the_minimum(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let granted_at = Instant::now();
    let lease = c.grant(1, 0).await;
    assert_eq!(lease.ttl, 2);
    c.put("k", "v", lease.id).await;
    // Still there after the asked-for second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        c.get_kv("k").await.is_some(),
        "a 1 s request is a 2 s lease: the key is still there after 1.2 s"
    );
    let mut c2 = c.clone();
    eventually(
        "the key of the expired lease is deleted",
        EXPIRY_WAIT,
        || {
            let mut c = c2.clone();
            async move { c.get_kv("k").await.is_none() }
        },
    )
    .await;
    assert!(granted_at.elapsed() >= Duration::from_millis(1900));
    assert_eq!(c2.time_to_live(lease.id, false).await.ttl, -1);
}

async fn keepalive_postpones_expiry(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(2, 0).await.id;
    c.put("alive/k", "v", lease).await;
    let mut ka = c.keep_alive();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let resp = ka.once(lease).await;
        assert_eq!(
            (resp.id, resp.ttl),
            (lease, 2),
            "renewal {:?} after start",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        c.get_kv("alive/k").await.is_some(),
        "kept alive for 5 s, the key of a 2 s lease is still there"
    );
    let ttl = c.time_to_live(lease, true).await;
    assert_eq!(ttl.granted_ttl, 2);
    assert!(ttl.ttl >= 0, "{ttl:?}");
    assert_eq!(ttl.keys.len(), 1);

    // Stop renewing: gone within a bounded time, not before the TTL.
    let last_renewal = Instant::now();
    ka.once(lease).await;
    drop(ka);
    eventually("the key expires once renewals stop", EXPIRY_WAIT, || {
        let mut c = c.clone();
        async move { c.get_kv("alive/k").await.is_none() }
    })
    .await;
    assert!(
        last_renewal.elapsed() >= Duration::from_millis(1900),
        "expired {:?} after the last renewal of a 2 s lease",
        last_renewal.elapsed()
    );
}

async fn many_leases_expire_together(backend: Backend) {
    const N: usize = 50;
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let start_rev = c.revision().await;
    let mut watcher = c.watch_prefix("many/", start_rev + 1).await;
    let mut lease_of = BTreeMap::new();
    for i in 0..N {
        let lease = c.grant(2, 0).await.id;
        for k in ["x", "y"] {
            let key = format!("many/{i:03}/{k}");
            c.put(&key, "v", lease).await;
            lease_of.insert(key, lease);
        }
    }
    let responses = watcher
        .until_deletes(2 * N, EXPIRY_WAIT + Duration::from_secs(5))
        .await;
    let deleted = deletes(&responses);
    assert_eq!(deleted.len(), 2 * N, "{deleted:?}");
    let mut revision_of_lease: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (key, revision) in &deleted {
        revision_of_lease
            .entry(lease_of[key])
            .or_default()
            .push(*revision);
    }
    assert_eq!(revision_of_lease.len(), N);
    for (lease, revisions) in &revision_of_lease {
        assert_eq!(revisions.len(), 2);
        assert_eq!(
            revisions[0], revisions[1],
            "lease {lease}: its keys go in one revision"
        );
    }
    assert_eq!(
        distinct(revision_of_lease.values().map(|r| r[0])).len(),
        N,
        "one revision per lease"
    );
    assert!(c.keys_at("many/", 0).await.is_empty());
    assert!(c.lease_ids().await.is_empty());
}
