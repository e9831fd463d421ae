//! Registration: the key, its lease and its JSON value; renewal past the TTL;
//! deregister and drop revoke; a crashed process's key expires; a lease
//! revoked from outside is replaced by a new one.

use std::time::{Duration, Instant};

use rollcall_client::registry::{Instance, RegistrationOptions, RegistryError};
use rollcall_client::{LeaseLost, RetryPolicy};
use rollcall_tests::etcdctl::Etcdctl;
use rollcall_tests::{Tool, require_or_skip};

use crate::support::{Registry, WAIT, absent, client, eventually, holds_for, stored, wait_for};

/// Re-registration retries for tests: quick and bounded.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_millis(500),
    max_attempts: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_puts_the_key_with_its_lease_and_the_json_value() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let mut instance = Instance::new("web", "web-1", "10.0.0.7:8080");
    instance.zone = "eu-1".into();
    instance.weight = 3;
    instance.tags = vec!["canary".into()];
    instance.meta.insert("version".into(), "2".into());
    let registration = client
        .register(instance.clone(), RegistrationOptions::new().ttl(5))
        .await
        .unwrap();
    assert_eq!(registration.key(), "/services/web/web-1");
    let lease = registration.lease_id().unwrap();
    let kv = stored(&client, registration.key()).await.unwrap();
    assert_eq!(
        kv.lease, lease,
        "the key is attached to the registration's lease"
    );
    assert_eq!(kv.instance, instance);
    assert_eq!(
        kv.json,
        serde_json::json!({
            "schema": 1, "id": "web-1", "service": "web", "addr": "10.0.0.7:8080",
            "zone": "eu-1", "weight": 3, "tags": ["canary"], "meta": {"version": "2"},
            "health": "passing",
        })
    );
    let ttl = client.time_to_live(lease, true).await.unwrap();
    assert_eq!(ttl.granted_ttl, 5);
    assert_eq!(ttl.keys, [registration.key().as_bytes()]);
    let state = registration.state();
    assert!(state.registered);
    assert_eq!(
        (state.revision, state.reregistrations),
        (kv.mod_revision, 0)
    );
    assert!(state.last_error.is_none());

    // The default TTL is 10 s.
    let other = client
        .register(
            Instance::new("web", "web-2", "10.0.0.8:8080"),
            RegistrationOptions::new(),
        )
        .await
        .unwrap();
    let ttl = client
        .time_to_live(other.lease_id().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_ttls_are_refused() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let bad_id = client
        .register(
            Instance::new("web", "a/b", "h:1"),
            RegistrationOptions::new(),
        )
        .await;
    assert!(
        matches!(bad_id, Err(RegistryError::Instance(_))),
        "{bad_id:?}"
    );
    let bad_ttl = client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(0),
        )
        .await;
    assert!(
        matches!(
            bad_ttl,
            Err(RegistryError::InvalidOption { option: "ttl", .. })
        ),
        "{bad_ttl:?}"
    );
    assert!(
        client.leases().await.unwrap().leases.is_empty(),
        "nothing was granted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_keeps_the_key_beyond_the_ttl() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let registration = client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(1),
        )
        .await
        .unwrap();
    let lease = registration.lease_id().unwrap();
    holds_for(
        "the key under its first lease",
        Duration::from_millis(3500),
        || async {
            stored(&client, registration.key())
                .await
                .is_some_and(|kv| kv.lease == lease)
        },
    )
    .await;
    let state = registration.state();
    assert!(state.registered && state.reregistrations == 0, "{state:?}");
    assert_eq!(state.lease_id, Some(lease));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_revokes_the_lease_and_removes_the_key() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let registration = client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(30),
        )
        .await
        .unwrap();
    let key = registration.key().to_owned();
    let lease = registration.lease_id().unwrap();
    let mut states = registration.subscribe();
    registration.deregister().await.unwrap();
    assert!(
        absent(&client, &key).await,
        "gone as soon as deregister returns"
    );
    assert_eq!(client.time_to_live(lease, false).await.unwrap().ttl, -1);
    assert!(!states.borrow_and_update().registered);
    let ended = tokio::time::timeout(WAIT, states.changed()).await;
    assert!(
        matches!(ended, Ok(Err(_))),
        "the state channel closes when the task ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_registration_revokes_in_the_background() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let registration = client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(30),
        )
        .await
        .unwrap();
    let key = registration.key().to_owned();
    let lease = registration.lease_id().unwrap();
    let dropped = Instant::now();
    drop(registration);
    // Far sooner than the 30 s TTL: it was revoked, not left to expire.
    eventually(
        "the key removed after drop",
        Duration::from_secs(5),
        || async { absent(&client, &key).await.then_some(()) },
    )
    .await;
    assert!(dropped.elapsed() < Duration::from_secs(5));
    assert_eq!(client.time_to_live(lease, false).await.unwrap().ttl, -1);
}

/// Registers from a runtime of its own, then drops that runtime: every task
/// of the "process" vanishes at once, with no renewal and no revoke, as
/// when a process is killed. Returns the key and the lease.
pub fn register_then_crash(endpoint: String, instance: Instance, ttl: i64) -> (String, i64) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let registration = runtime.block_on(async {
            let client = client(&endpoint).await;
            client
                .register(instance, RegistrationOptions::new().ttl(ttl))
                .await
                .unwrap()
        });
        let out = (
            registration.key().to_owned(),
            registration.lease_id().unwrap(),
        );
        drop(runtime);
        drop(registration);
        out
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_disappears_after_its_ttl() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let (key, lease) =
        register_then_crash(registry.endpoint(), Instance::new("web", "a", "h:1"), 3);
    let crashed = Instant::now();
    // Renewed at most TTL/3 before the crash, so at least 2 s remain.
    holds_for(
        "the crashed instance's key",
        Duration::from_millis(1500),
        || async {
            stored(&client, &key)
                .await
                .is_some_and(|kv| kv.lease == lease)
        },
    )
    .await;
    eventually("the crashed instance's key to expire", WAIT, || async {
        absent(&client, &key).await.then_some(())
    })
    .await;
    let gone = crashed.elapsed();
    assert!(
        gone <= Duration::from_millis(4500),
        "expired {gone:?} after the crash (TTL 3 s)"
    );
}

/// A lease revoked by someone else: the keeper hears TTL 0 at its next
/// renewal and the instance registers again under a new lease.
async fn reregisters_after_revoke(revoke: impl AsyncFnOnce(&str, i64)) {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let options = RegistrationOptions::new().ttl(3).retry(FAST_RETRY);
    let registration = client
        .register(Instance::new("web", "a", "h:1"), options)
        .await
        .unwrap();
    let old = registration.lease_id().unwrap();
    let mut states = registration.subscribe();
    revoke(&registry.endpoint(), old).await;
    let state = wait_for("registration under a new lease", &mut states, |s| {
        s.registered && s.lease_id.is_some_and(|l| l != old)
    })
    .await;
    assert_eq!(state.reregistrations, 1);
    assert!(
        matches!(
            state.last_error.as_deref(),
            Some(RegistryError::LeaseLost { id, reason: LeaseLost::NotFound }) if *id == old
        ),
        "{:?}",
        state.last_error
    );
    let new = state.lease_id.unwrap();
    let kv = eventually("the key under the new lease", WAIT, || async {
        stored(&client, registration.key())
            .await
            .filter(|kv| kv.lease == new)
    })
    .await;
    assert_eq!(kv.instance.id, "a");
    assert!(client.time_to_live(new, false).await.unwrap().ttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_revoked_by_a_client_is_replaced() {
    reregisters_after_revoke(async |endpoint, lease| {
        client(endpoint).await.revoke(lease).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_revoked_with_etcdctl_is_replaced() {
    if !require_or_skip(Tool::Etcdctl, "a_lease_revoked_with_etcdctl_is_replaced") {
        return;
    }
    reregisters_after_revoke(async |endpoint, lease| {
        let out = Etcdctl::new(endpoint)
            .run(&["lease", "revoke", &format!("{lease:x}")])
            .await
            .unwrap();
        assert!(out.ok().contains("revoked"), "{}", out.stdout);
    })
    .await;
}
