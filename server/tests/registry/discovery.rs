//! Discovery: the initial listing, live adds/removes/health changes, the
//! protection threshold, serving the last known set (stale) while the
//! registry is down or cut off and catching up afterwards, re-listing after
//! compaction, `services()`, and how fast a killed instance drops out and a
//! new one comes in.

use std::time::{Duration, Instant};

use rollcall_client::registry::{
    Discovery, DiscoveryOptions, Health, Instance, RegistrationOptions, ServiceSnapshot,
};
use rollcall_client::{Client, HasHeader};

use crate::register::register_then_crash;
use crate::support::{Registry, WAIT, client, holds_for, wait_for};
use crate::targets::Proxy;

/// Quick staleness detection for the tests.
const HEARTBEAT: Duration = Duration::from_millis(300);

/// Writes an instance without a lease (the discovery tests control every
/// change themselves); returns the revision.
async fn put(client: &Client, service: &str, id: &str, health: Health) -> i64 {
    let mut instance = Instance::new(service, id, format!("10.0.0.1:{}", 8000 + id.len()));
    instance.health = health;
    client
        .put(instance.key().unwrap(), instance.to_json())
        .await
        .unwrap()
        .revision()
}

async fn delete(client: &Client, service: &str, id: &str) {
    let deleted = client
        .delete(format!("/services/{service}/{id}"))
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 1);
}

/// `(id, health)` of every instance, in key order.
fn view(snapshot: &ServiceSnapshot) -> Vec<(String, Health)> {
    snapshot
        .instances
        .iter()
        .map(|i| (i.id.clone(), i.health))
        .collect()
}

fn expect(pairs: &[(&str, Health)]) -> Vec<(String, Health)> {
    pairs.iter().map(|(id, h)| ((*id).to_owned(), *h)).collect()
}

fn ids(instances: &[Instance]) -> Vec<&str> {
    instances.iter().map(|i| i.id.as_str()).collect()
}

/// Waits until the discovery publishes exactly `want` (fresh unless `stale`).
async fn until_view(
    discovery: &Discovery,
    want: &[(&str, Health)],
    stale: bool,
) -> ServiceSnapshot {
    let want = expect(want);
    let mut rx = discovery.subscribe();
    wait_for(
        &format!("the view {want:?} (stale: {stale})"),
        &mut rx,
        |s| view(s) == want && s.stale == stale,
    )
    .await
}

use Health::{Critical, Passing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_then_follows_adds_removes_and_health_changes() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let options = RegistrationOptions::new().ttl(5);
    let a = client
        .register(Instance::new("web", "a", "10.0.0.1:80"), options.clone())
        .await
        .unwrap();
    let b = client
        .register(Instance::new("web", "b", "10.0.0.2:80"), options.clone())
        .await
        .unwrap();
    // Not instances of "web": skipped, not fatal.
    client
        .put("/services/web/garbage", "{not json")
        .await
        .unwrap();
    client
        .put(
            "/services/web/x/nested",
            Instance::new("web", "x", "h:1").to_json(),
        )
        .await
        .unwrap();
    client
        .put(
            "/services/web/wrong",
            Instance::new("web", "other", "h:1").to_json(),
        )
        .await
        .unwrap();
    let other = put(&client, "web2", "z", Passing).await;

    let mut discovery = client
        .discover("web", DiscoveryOptions::new())
        .await
        .unwrap();
    let snapshot = discovery.snapshot();
    assert_eq!(view(&snapshot), expect(&[("a", Passing), ("b", Passing)]));
    assert!(
        !snapshot.stale && snapshot.revision >= other,
        "{snapshot:?}"
    );
    assert_eq!(snapshot.instances[0].addr, "10.0.0.1:80");

    let c = client
        .register(Instance::new("web", "c", "10.0.0.3:80"), options.clone())
        .await
        .unwrap();
    let changed = tokio::time::timeout(WAIT, discovery.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view(&changed),
        expect(&[("a", Passing), ("b", Passing), ("c", Passing)])
    );
    assert!(changed.revision >= c.state().revision);

    b.set_health(Critical).unwrap();
    until_view(
        &discovery,
        &[("a", Passing), ("b", Critical), ("c", Passing)],
        false,
    )
    .await;
    assert_eq!(
        ids(&discovery.instances()),
        ["a", "c"],
        "critical instances get no traffic"
    );

    a.deregister().await.unwrap();
    until_view(&discovery, &[("b", Critical), ("c", Passing)], false).await;
    // One of two passes: exactly the threshold, so only the passing one.
    assert_eq!(ids(&discovery.instances()), ["c"]);
    drop(c);
    until_view(&discovery, &[("b", Critical)], false).await;
    // Nobody passes: everyone gets traffic rather than no one.
    assert_eq!(ids(&discovery.instances()), ["b"]);
    assert_eq!(discovery.relists(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protection_threshold_returns_everyone_when_too_few_pass() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    for id in ["a", "b", "c", "d"] {
        put(&client, "api", id, Passing).await;
    }
    let half = client
        .discover("api", DiscoveryOptions::new())
        .await
        .unwrap();
    let strict = client
        .discover("api", DiscoveryOptions::new().protection_threshold(0.0))
        .await
        .unwrap();
    let most = client
        .discover("api", DiscoveryOptions::new().protection_threshold(0.8))
        .await
        .unwrap();
    assert_eq!(half.protection_threshold(), 0.5);
    assert_eq!(ids(&half.instances()), ["a", "b", "c", "d"]);

    put(&client, "api", "a", Critical).await;
    put(&client, "api", "b", Critical).await;
    let want = [
        ("a", Critical),
        ("b", Critical),
        ("c", Passing),
        ("d", Passing),
    ];
    for d in [&half, &strict, &most] {
        until_view(d, &want, false).await;
    }
    assert_eq!(
        ids(&half.instances()),
        ["c", "d"],
        "2 of 4 pass: enough at 0.5"
    );
    assert_eq!(ids(&strict.instances()), ["c", "d"]);
    assert_eq!(
        ids(&most.instances()),
        ["a", "b", "c", "d"],
        "2 of 4 is below 0.8"
    );

    put(&client, "api", "c", Critical).await;
    let want = [
        ("a", Critical),
        ("b", Critical),
        ("c", Critical),
        ("d", Passing),
    ];
    for d in [&half, &strict] {
        until_view(d, &want, false).await;
    }
    assert_eq!(
        ids(&half.instances()),
        ["a", "b", "c", "d"],
        "1 of 4 is below 0.5"
    );
    assert_eq!(ids(&strict.instances()), ["d"]);

    let invalid = client
        .discover("api", DiscoveryOptions::new().protection_threshold(1.5))
        .await;
    assert!(invalid.is_err());
}

/// The registry stops (SIGTERM or kill -9): discovery keeps serving the
/// last set marked stale; after the restart on the same data dir it is
/// fresh again and sees changes made after the restart.
async fn serves_stale_across_a_restart(kill: bool) {
    let mut registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    put(&client, "web", "a", Passing).await;
    put(&client, "web", "b", Critical).await;
    let discovery = client
        .discover("web", DiscoveryOptions::new().heartbeat(Some(HEARTBEAT)))
        .await
        .unwrap();
    let listed = expect(&[("a", Passing), ("b", Critical)]);
    assert_eq!(view(&discovery.snapshot()), listed);

    if kill {
        registry.kill9();
    } else {
        registry.terminate().await;
    }
    let stale = until_view(&discovery, &[("a", Passing), ("b", Critical)], true).await;
    assert!(stale.stale);
    holds_for(
        "serving the last known set",
        Duration::from_secs(1),
        || async { discovery.is_stale() && ids(&discovery.instances()) == ["a"] },
    )
    .await;

    registry.restart().await;
    // Changes right after the restart, before or after discovery is back.
    put(&client_when_up(&registry).await, "web", "c", Passing).await;
    until_view(
        &discovery,
        &[("a", Passing), ("b", Critical), ("c", Passing)],
        false,
    )
    .await;
    assert!(discovery.relists() >= 1);
    // And it follows live changes again.
    delete(&client, "web", "a").await;
    until_view(&discovery, &[("b", Critical), ("c", Passing)], false).await;
}

/// A client for a registry that was just restarted.
async fn client_when_up(registry: &Registry) -> Client {
    client(&registry.endpoint()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_serves_stale_while_the_registry_is_stopped() {
    serves_stale_across_a_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_serves_stale_while_the_registry_is_killed() {
    serves_stale_across_a_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_cut_off_catches_up_with_changes_made_meanwhile() {
    let registry = Registry::start().await;
    let direct = client(&registry.endpoint()).await;
    let proxy = Proxy::start(registry.addr()).await;
    let through_proxy = client(&proxy.endpoint()).await;
    put(&direct, "web", "a", Passing).await;
    put(&direct, "web", "b", Passing).await;
    let discovery = through_proxy
        .discover("web", DiscoveryOptions::new().heartbeat(Some(HEARTBEAT)))
        .await
        .unwrap();
    assert_eq!(
        view(&discovery.snapshot()),
        expect(&[("a", Passing), ("b", Passing)])
    );

    proxy.cut();
    until_view(&discovery, &[("a", Passing), ("b", Passing)], true).await;
    // Meanwhile, on the registry: an add, a removal, a health change.
    put(&direct, "web", "c", Passing).await;
    delete(&direct, "web", "a").await;
    put(&direct, "web", "b", Critical).await;
    holds_for(
        "the last known set, stale",
        Duration::from_secs(1),
        || async {
            let s = discovery.snapshot();
            s.stale && view(&s) == expect(&[("a", Passing), ("b", Passing)])
        },
    )
    .await;

    proxy.heal();
    until_view(&discovery, &[("b", Critical), ("c", Passing)], false).await;
    assert!(discovery.relists() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_revision_makes_discovery_list_again() {
    let registry = Registry::start().await;
    let direct = client(&registry.endpoint()).await;
    let proxy = Proxy::start(registry.addr()).await;
    let through_proxy = client(&proxy.endpoint()).await;
    put(&direct, "web", "a", Passing).await;
    // No heartbeat: the watch session resumes by itself after the cut, from
    // a revision that is compacted by then.
    let discovery = through_proxy
        .discover("web", DiscoveryOptions::new().heartbeat(None))
        .await
        .unwrap();
    proxy.cut();
    put(&direct, "web", "b", Passing).await;
    delete(&direct, "web", "a").await;
    let head = put(&direct, "other", "x", Passing).await;
    direct.compact(head, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.heal();
    let snapshot = until_view(&discovery, &[("b", Passing)], false).await;
    assert!(snapshot.revision >= head);
    assert_eq!(
        discovery.relists(),
        1,
        "listed again once, after the compaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_counts_instances_and_passing_ones() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    assert!(client.services().await.unwrap().is_empty());
    put(&client, "web", "a", Passing).await;
    put(&client, "web", "b", Critical).await;
    put(&client, "web", "c", Passing).await;
    put(&client, "api", "a", Critical).await;
    let registration = client
        .register(
            Instance::new("db", "primary", "10.0.0.9:5432"),
            RegistrationOptions::new().ttl(5),
        )
        .await
        .unwrap();
    client.put("/services/web/garbage", "nope").await.unwrap();
    client.put("/services/loose", "{}").await.unwrap();
    let services = client.services().await.unwrap();
    assert_eq!(
        services,
        [
            ("api".to_owned(), 1, 0),
            ("db".to_owned(), 1, 1),
            ("web".to_owned(), 3, 2),
        ]
    );
    registration.deregister().await.unwrap();
    let services = client.services().await.unwrap();
    assert!(services.iter().all(|(s, ..)| s != "db"), "{services:?}");
}

/// How long discovery takes to drop a killed instance (TTL 3 s) and to add
/// a new one; printed for the record, with generous bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_drops_a_killed_instance_after_its_ttl_and_adds_a_new_one_at_once() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let discovery = client
        .discover("lat", DiscoveryOptions::new())
        .await
        .unwrap();
    let mut rx = discovery.subscribe();

    let added_at = Instant::now();
    let registration = client
        .register(
            Instance::new("lat", "new", "h:2"),
            RegistrationOptions::new().ttl(3),
        )
        .await
        .unwrap();
    wait_for("the new instance", &mut rx, |s| {
        s.instances.iter().any(|i| i.id == "new")
    })
    .await;
    let add = added_at.elapsed();

    let (_, _) = register_then_crash(
        registry.endpoint(),
        Instance::new("lat", "killed", "h:1"),
        3,
    );
    wait_for("the doomed instance", &mut rx, |s| {
        s.instances.iter().any(|i| i.id == "killed")
    })
    .await;
    let killed_at = Instant::now();
    wait_for("the killed instance to drop", &mut rx, |s| {
        s.instances.iter().all(|i| i.id != "killed")
    })
    .await;
    let drop_after = killed_at.elapsed();
    eprintln!(
        "discovery latency (TTL 3 s): add {add:?} (registration included), drop {drop_after:?} after the kill"
    );
    assert!(add < Duration::from_secs(1), "add took {add:?}");
    assert!(
        drop_after <= Duration::from_millis(4500),
        "drop took {drop_after:?}"
    );
    assert_eq!(view(&discovery.snapshot()), expect(&[("new", Passing)]));
    drop(registration);
}
