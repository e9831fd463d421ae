//! A registered instance whose key is deleted from outside (an operator's
//! `etcdctl del`, a buggy script) while its lease lives comes back, with the
//! same value under the same lease; a deregistered one stays gone.
//!
//! These tests use only the harness's `ServerProcess` (default flags: the
//! leases here never expire) and the client's public API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rollcall_client::Client;
use rollcall_client::registry::{Instance, Registration, RegistrationOptions};
use rollcall_tests::etcdctl::Etcdctl;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};

/// Bound on the key coming back (the guard's watch delivers the delete at
/// once; this only absorbs a slow machine).
const WAIT: Duration = Duration::from_secs(15);

async fn start() -> (ServerProcess, Client) {
    let server = Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
        .start()
        .await
        .unwrap();
    let client = Client::connect([server.endpoint()]).await.unwrap();
    (server, client)
}

/// The key's value and lease, if present.
async fn read(client: &Client, key: &str) -> Option<(Vec<u8>, i64, i64)> {
    let response = client.get(key).await.unwrap();
    response
        .kvs
        .first()
        .map(|kv| (kv.value.to_vec(), kv.lease, kv.mod_revision))
}

/// Polls until the key is back after a delete at `deleted_at`.
async fn wait_until_back(client: &Client, key: &str, deleted_at: i64) -> (Vec<u8>, i64, i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = read(client, key).await
            && found.2 > deleted_at
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{key} not back within {WAIT:?} after its delete at revision {deleted_at}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn register(client: &Client, id: &str) -> Registration {
    client
        .register(
            Instance::new("web", id, "10.0.0.7:8080"),
            RegistrationOptions::new().ttl(30),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_while_its_lease_lives_is_put_back_under_the_same_lease() {
    let (server, client) = start().await;
    let registration = register(&client, "web-1").await;
    let key = registration.key().to_owned();
    let lease = registration.lease_id().unwrap();
    let (value, stored_lease, _) = read(&client, &key).await.unwrap();
    assert_eq!(stored_lease, lease);

    // Deleted through the API.
    let deleted = client.delete(key.as_str()).await.unwrap();
    assert_eq!(deleted.deleted, 1);
    let deleted_at = deleted.header.unwrap().revision;
    let (again, again_lease, _) = wait_until_back(&client, &key, deleted_at).await;
    assert_eq!(again, value, "the same value");
    assert_eq!(again_lease, lease, "under the same lease");
    let mut state = registration.subscribe();
    let state = tokio::time::timeout(WAIT, state.wait_for(|s| s.restorations == 1))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(state.registered);
    assert_eq!(state.reregistrations, 0, "the lease was kept");
    assert_eq!(state.lease_id, Some(lease));

    // Deleted with etcdctl, as an operator would.
    if require_or_skip(Tool::Etcdctl, "key deleted with etcdctl") {
        let out = Etcdctl::new(server.endpoint())
            .run(&["del", &key])
            .await
            .unwrap();
        assert_eq!(out.ok().trim(), "1", "{}", out.stdout);
        let revision = client.get("x").await.unwrap().header.unwrap().revision;
        let (again, again_lease, _) = wait_until_back(&client, &key, revision - 1).await;
        assert_eq!((again, again_lease), (value, lease));
        // The put lands before the registration publishes its counter.
        let mut state = registration.subscribe();
        tokio::time::timeout(WAIT, state.wait_for(|s| s.restorations >= 2))
            .await
            .expect("the second restoration is counted")
            .unwrap();
    }

    // The lease still holds exactly this key.
    let ttl = client.time_to_live(lease, true).await.unwrap();
    assert_eq!(ttl.keys, [key.as_bytes()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistered_instance_stays_gone() {
    let (_server, client) = start().await;
    let registration = register(&client, "web-2").await;
    let key = registration.key().to_owned();
    let lease = registration.lease_id().unwrap();
    let other = register(&client, "web-3").await;
    registration.deregister().await.unwrap();
    assert!(read(&client, &key).await.is_none());
    assert!(
        client.time_to_live(lease, false).await.unwrap().ttl < 0,
        "the lease is revoked"
    );
    // Later writes pass the revision of the deregistration; the key must
    // not reappear meanwhile. Each write is a fence: anything the old task
    // could still have sent would land before the read that follows it.
    for i in 0..20 {
        client.put(format!("/fence/{i}"), "x").await.unwrap();
        assert!(read(&client, &key).await.is_none(), "{key} came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other instance's guard was not disturbed by this one's revoke.
    assert!(read(&client, other.key()).await.is_some());
    assert_eq!(other.state().restorations, 0);
}
