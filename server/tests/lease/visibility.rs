//! Lease reads agree with KV reads under concurrency: a reader that sees a
//! lease as revoked (TimeToLive -1) must no longer read its keys, and a key
//! that TimeToLive lists as attached must be readable by a Range sent after
//! that answer. In etcd the revoke deletes the keys before it forgets the
//! lease, and a key is attached inside the write that creates it, so both
//! hold there. And a lease, once visible, has its full TTL to run (etcd
//! starts the deadline when it applies the grant), never 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rollcall_tests::Backend;

use crate::support::{Client, start};

backend_tests!(
    revoked_lease_has_no_readable_keys,
    listed_keys_are_readable,
    new_lease_is_seen_with_its_full_ttl,
);

const ROUNDS: usize = 60;

async fn revoked_lease_has_no_readable_keys(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let mut anomalies = Vec::new();
    for round in 0..ROUNDS {
        let lease = c.grant(60, 0).await.id;
        let key = format!("vis/{round}");
        c.put(&key, "v", lease).await;
        let mut revoker = c.clone();
        let revoke = tokio::spawn(async move { revoker.revoke(lease).await });
        // Poll until the lease is gone, then read the key at once.
        loop {
            if c.time_to_live(lease, false).await.ttl == -1 {
                if let Some(kv) = c.get_kv(&key).await {
                    anomalies.push((round, kv.mod_revision));
                }
                break;
            }
        }
        tokio::time::timeout(Duration::from_secs(10), revoke)
            .await
            .expect("revoke in time")
            .expect("revoke task");
    }
    assert!(
        anomalies.is_empty(),
        "{} of {ROUNDS} rounds: TimeToLive said the lease was revoked, yet a later Range \
         still read its key (round, key mod_revision): {anomalies:?}",
        anomalies.len()
    );
}

async fn listed_keys_are_readable(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    let done = Arc::new(AtomicBool::new(false));
    let mut writer = c.clone();
    let writer_done = done.clone();
    let writes = tokio::spawn(async move {
        for i in 0..300 {
            writer.put(&format!("att/{i:04}"), "v", lease).await;
        }
        writer_done.store(true, Ordering::Relaxed);
    });
    let mut anomalies = Vec::new();
    let mut checks = 0;
    let mut known = 0;
    while !done.load(Ordering::Relaxed) {
        let listed = c.time_to_live(lease, true).await.keys;
        if listed.len() > known {
            known = listed.len();
            // Only the newest key can still be in flight.
            let newest = listed.iter().max().cloned().expect("non-empty");
            let key = String::from_utf8_lossy(&newest).into_owned();
            checks += 1;
            if c.get_kv(&key).await.is_none() {
                anomalies.push(key);
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(30), writes)
        .await
        .expect("writes in time")
        .expect("writer task");
    assert!(
        anomalies.is_empty(),
        "{} of {checks} checks: TimeToLive listed a key that a later Range did not find: \
         {anomalies:?}",
        anomalies.len()
    );
}

async fn new_lease_is_seen_with_its_full_ttl(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let mut anomalies = Vec::new();
    for round in 0..ROUNDS {
        let id = 10_000 + i64::try_from(round).unwrap();
        let mut granter = c.clone();
        let grant = tokio::spawn(async move { granter.grant(60, id).await });
        // The first answer that knows the lease must show ~60 s left.
        loop {
            let ttl = c.time_to_live(id, false).await;
            if ttl.ttl != -1 {
                if ttl.ttl < 55 {
                    anomalies.push((id, ttl.ttl, ttl.granted_ttl));
                }
                break;
            }
        }
        tokio::time::timeout(Duration::from_secs(10), grant)
            .await
            .expect("grant in time")
            .expect("grant task");
    }
    assert!(
        anomalies.is_empty(),
        "{} of {ROUNDS} rounds: a just-granted 60 s lease was reported with less than 55 s \
         left (id, ttl, granted_ttl): {anomalies:?}",
        anomalies.len()
    );
}
