//! Registrations across registry outages: a graceful restart (SIGTERM) and a
//! crash (kill -9), each with the registry down longer than the TTL, and a
//! partition (the registration's connection cut by a proxy) longer than the
//! TTL, during which the registry expires the lease.

use std::time::Duration;

use rollcall_client::registry::{Instance, RegistrationOptions};

use crate::register::FAST_RETRY;
use crate::support::{Registry, WAIT, absent, client, eventually, holds_for, stored, wait_for};
use crate::targets::Proxy;

#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// The registry is down for longer than the TTL; once it is back the
/// instance is registered again within a bounded time, under its old lease
/// (rollcall gives leases a fresh TTL after a restart) or a new one, and
/// stays registered.
async fn survives_an_outage(stop: Stop) {
    const TTL: i64 = 2;
    let mut registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let options = RegistrationOptions::new().ttl(TTL).retry(FAST_RETRY);
    let registration = client
        .register(Instance::new("web", "a", "h:1"), options)
        .await
        .unwrap();
    let key = registration.key().to_owned();
    let old = registration.lease_id().unwrap();
    let mut states = registration.subscribe();
    match stop {
        Stop::Term => registry.terminate().await,
        Stop::Kill => registry.kill9(),
    }
    // The keeper cannot renew: it reports the lease lost at its deadline.
    wait_for("the registration to notice", &mut states, |s| !s.registered).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    registry.restart().await;
    let state = wait_for("registered again", &mut states, |s| s.registered).await;
    let lease = state.lease_id.unwrap();
    eventually("the key under the live lease", WAIT, || async {
        stored(&client, &key).await.filter(|kv| kv.lease == lease)
    })
    .await;
    eprintln!(
        "{stop:?}: registered again under {} lease",
        if lease == old { "the same" } else { "a new" }
    );
    // And kept alive beyond the TTL from there on.
    holds_for(
        "the key after the restart",
        Duration::from_secs(3),
        || async { stored(&client, &key).await.is_some() },
    )
    .await;
    assert!(client.time_to_live(lease, false).await.unwrap().ttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_survives_a_graceful_registry_restart() {
    survives_an_outage(Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_survives_a_registry_crash() {
    survives_an_outage(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_restart_keeps_the_same_lease() {
    let mut registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let options = RegistrationOptions::new().ttl(10).retry(FAST_RETRY);
    let registration = client
        .register(Instance::new("web", "a", "h:1"), options)
        .await
        .unwrap();
    let lease = registration.lease_id().unwrap();
    registry.terminate().await;
    registry.restart().await;
    // Well within the TTL: the keeper reconnects and nothing is lost.
    holds_for(
        "the key under the same lease",
        Duration::from_secs(2),
        || async {
            stored(&client, registration.key())
                .await
                .is_some_and(|kv| kv.lease == lease)
        },
    )
    .await;
    let state = registration.state();
    assert!(state.registered && state.reregistrations == 0, "{state:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_ttl_registers_again_with_a_new_lease() {
    let registry = Registry::start().await;
    let direct = client(&registry.endpoint()).await;
    let proxy = Proxy::start(registry.addr()).await;
    let through_proxy = client(&proxy.endpoint()).await;
    let options = RegistrationOptions::new().ttl(1).retry(FAST_RETRY);
    let registration = through_proxy
        .register(Instance::new("web", "a", "h:1"), options)
        .await
        .unwrap();
    let key = registration.key().to_owned();
    let old = registration.lease_id().unwrap();
    let mut states = registration.subscribe();
    proxy.cut();
    // The registry hears no renewal: it expires the lease and the key.
    eventually("the key to expire during the partition", WAIT, || async {
        absent(&direct, &key).await.then_some(())
    })
    .await;
    wait_for("the registration to notice", &mut states, |s| !s.registered).await;
    proxy.heal();
    let state = wait_for("registered again", &mut states, |s| s.registered).await;
    let new = state.lease_id.unwrap();
    assert_ne!(new, old, "the old lease expired on the registry");
    assert!(state.reregistrations >= 1);
    eventually("the key back under the new lease", WAIT, || async {
        stored(&direct, &key).await.filter(|kv| kv.lease == new)
    })
    .await;
    assert_eq!(direct.time_to_live(old, false).await.unwrap().ttl, -1);
}
