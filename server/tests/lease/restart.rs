//! Leases across restarts (graceful SIGTERM and kill -9, same data dir and
//! port): every lease still exists with its granted TTL and a fresh full
//! remaining TTL (etcd without checkpointing refreshes all leases when it
//! becomes leader), its keys are still attached, it can be renewed and
//! revoked; and a short lease still expires normally after the restart, also
//! one whose deadline passed while the server was down.

use std::time::{Duration, Instant};

use rollcall_tests::{Backend, ServerProcess};

use rollcall_proto::etcdserverpb::CompactionRequest;

use crate::support::{Client, deletes, distinct, eventually, rev, sorted_keys, start};

backend_tests!(
    restart_sigterm_keeps_leases_with_fresh_ttl,
    restart_kill9_keeps_leases_with_fresh_ttl,
    short_lease_expires_after_restart,
    lease_expired_while_down_gets_a_fresh_ttl,
    attachments_survive_compaction_and_restart,
);

#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

async fn restart(server: &mut ServerProcess, how: Stop) {
    match how {
        Stop::Term => {
            let status = server.terminate().await.expect("SIGTERM");
            // etcd exits on SIGTERM with a non-zero status; only rollcall's
            // clean exit is asserted.
            if matches!(server.backend(), Backend::Rollcall(_)) {
                assert!(
                    status.success(),
                    "rollcall exits cleanly on SIGTERM: {status}"
                );
            }
        }
        Stop::Kill => server.kill9().expect("kill -9"),
    }
    server.restart().await.expect("restart");
}

async fn restart_sigterm_keeps_leases_with_fresh_ttl(backend: Backend) {
    restart_keeps_leases(backend, Stop::Term).await;
}

async fn restart_kill9_keeps_leases_with_fresh_ttl(backend: Backend) {
    restart_keeps_leases(backend, Stop::Kill).await;
}

async fn restart_keeps_leases(backend: Backend, how: Stop) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let chosen = c.grant(30, 1001).await.id;
    let picked = c.grant(30, 0).await.id;
    c.put("svc/a", "a", chosen).await;
    c.put("svc/b", "b", chosen).await;
    c.put("svc/c", "c", picked).await;
    c.put("svc/plain", "p", 0).await;
    // Let some of the TTL run out, so that a fresh one shows.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = c.time_to_live(chosen, false).await;
    assert!(before.ttl <= 25, "5 s after the grant: {before:?}");
    let revision = c.revision().await;
    drop(c);

    restart(&mut server, how).await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.revision().await, revision, "{how:?}: the store survived");
    let mut ids = vec![chosen, picked];
    ids.sort_unstable();
    assert_eq!(c.lease_ids().await, ids, "{how:?}: both leases survived");
    for (id, keys) in [(chosen, vec!["svc/a", "svc/b"]), (picked, vec!["svc/c"])] {
        let ttl = c.time_to_live(id, true).await;
        assert_eq!(ttl.granted_ttl, 30, "{how:?}: {ttl:?}");
        assert!(
            (26..=30).contains(&ttl.ttl),
            "{how:?}: a fresh full TTL after the restart (it had {} s left before): {ttl:?}",
            before.ttl
        );
        assert_eq!(sorted_keys(&ttl.keys), keys, "{how:?}: keys still attached");
    }
    assert_eq!(c.get_kv("svc/a").await.map(|kv| kv.lease), Some(chosen));

    // Renewable and revocable as before; the revoke deletes the keys in one
    // revision.
    let mut ka = c.keep_alive();
    assert_eq!(ka.once(chosen).await.ttl, 30);
    let mut watcher = c.watch_prefix("svc/", revision + 1).await;
    let revoked = c.revoke(chosen).await;
    let at = rev(revoked.header.as_ref());
    assert_eq!(at, revision + 1);
    let deleted = deletes(&watcher.until_deletes(2, Duration::from_secs(10)).await);
    assert_eq!(distinct(deleted.iter().map(|(_, r)| *r)), distinct([at]));
    assert_eq!(c.keys_at("svc/", 0).await, ["svc/c", "svc/plain"]);

    // New grants after the restart do not collide with surviving leases.
    let fresh = c.grant(30, 0).await.id;
    assert!(fresh > 0 && fresh != picked);
    assert_eq!(c.lease_ids().await.len(), 2);
}

async fn short_lease_expires_after_restart(backend: Backend) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let short = c.grant(2, 0).await.id;
    let longer = c.grant(8, 0).await.id;
    c.put("s/short", "v", short).await;
    c.put("s/longer", "v", longer).await;
    c.put("s/plain", "v", 0).await;
    drop(c);

    restart(&mut server, Stop::Term).await;
    let restarted = Instant::now();
    let mut c = Client::connect(&server).await;
    let ttl = c.time_to_live(longer, true).await;
    assert_eq!(
        ttl.granted_ttl, 8,
        "the 8 s lease survived the restart: {ttl:?}"
    );
    assert!(ttl.ttl > 0, "{ttl:?}");
    assert_eq!(sorted_keys(&ttl.keys), ["s/longer"]);
    eventually(
        "both leases expire after the restart",
        Duration::from_secs(20),
        || {
            let mut c = c.clone();
            async move { c.keys_at("s/", 0).await == ["s/plain"] }
        },
    )
    .await;
    assert!(
        restarted.elapsed() >= Duration::from_secs(5),
        "the 8 s lease got a fresh TTL at the restart, yet expired {:?} after it",
        restarted.elapsed()
    );
    assert!(c.lease_ids().await.is_empty());
}

/// A lease whose deadline passed while the server was down is not expired on
/// start: it gets a fresh TTL like every other lease, then expires.
async fn lease_expired_while_down_gets_a_fresh_ttl(backend: Backend) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(5, 0).await.id;
    c.put("down/k", "v", lease).await;
    drop(c);
    server.kill9().expect("kill -9");
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.restart().await.expect("restart");
    let restarted = Instant::now();
    let mut c = Client::connect(&server).await;
    let ttl = c.time_to_live(lease, true).await;
    assert_eq!(
        (ttl.granted_ttl, sorted_keys(&ttl.keys)),
        (5, vec!["down/k".to_owned()]),
        "the lease lives on after the restart: {ttl:?}"
    );
    assert!(ttl.ttl >= 1, "{ttl:?}");
    assert!(c.get_kv("down/k").await.is_some());
    eventually(
        "the lease expires after its fresh TTL",
        Duration::from_secs(15),
        || {
            let mut c = c.clone();
            async move { c.get_kv("down/k").await.is_none() }
        },
    )
    .await;
    assert!(
        restarted.elapsed() >= Duration::from_secs(3),
        "expired {:?} after the restart",
        restarted.elapsed()
    );
}

/// Attachments are rebuilt from the keys' latest records on start, also when
/// compaction removed the history before them: keys moved away from a lease
/// or deleted before the compaction stay detached.
async fn attachments_survive_compaction_and_restart(backend: Backend) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(120, 0).await.id;
    let other = c.grant(120, 0).await.id;
    c.put("c/kept", "v1", lease).await;
    c.put("c/moved", "v1", lease).await;
    c.put("c/moved", "v2", other).await;
    c.put("c/detached", "v1", lease).await;
    c.put("c/detached", "v2", 0).await;
    c.put("c/deleted", "v1", lease).await;
    c.delete("c/deleted").await;
    c.put("c/recreated", "v1", lease).await;
    c.delete("c/recreated").await;
    c.put("c/recreated", "v2", 0).await;
    let at = c.put("c/late", "v1", lease).await;
    c.kv.compact(CompactionRequest {
        revision: at,
        physical: true,
    })
    .await
    .expect("compact");
    c.put("c/after", "v1", lease).await;
    drop(c);
    restart(&mut server, Stop::Term).await;
    let mut c = Client::connect(&server).await;
    assert_eq!(
        sorted_keys(&c.time_to_live(lease, true).await.keys),
        ["c/after", "c/kept", "c/late"]
    );
    assert_eq!(
        sorted_keys(&c.time_to_live(other, true).await.keys),
        ["c/moved"]
    );
    c.revoke(lease).await;
    assert_eq!(
        c.keys_at("c/", 0).await,
        ["c/detached", "c/moved", "c/recreated"]
    );
}
