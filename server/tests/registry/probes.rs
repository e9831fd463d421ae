//! Health probes: each kind of probe flips the stored value to critical and
//! back to passing, rewriting it under the same lease; thresholds delay the
//! flips.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rollcall_client::Client;
use rollcall_client::registry::{Health, HealthProbe, Instance, Registration, RegistrationOptions};

use crate::support::{Registry, WAIT, client, eventually, stored, wait_for};
use crate::targets::{GrpcTarget, HttpTarget, TcpTarget};

const INTERVAL: Duration = Duration::from_millis(200);

async fn register_with(client: &Client, probe: HealthProbe) -> Registration {
    let probe = probe.interval(INTERVAL).timeout(Duration::from_secs(1));
    client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(5).probe(probe),
        )
        .await
        .unwrap()
}

/// Waits until the stored value shows `health` under the registration's
/// (unchanged) lease, and returns its mod revision.
async fn stored_health(client: &Client, registration: &Registration, health: Health) -> i64 {
    let lease = registration.lease_id().unwrap();
    let kv = eventually(
        &format!("the stored value to show {health:?}"),
        WAIT,
        || async {
            stored(client, registration.key())
                .await
                .filter(|kv| kv.instance.health == health)
        },
    )
    .await;
    assert_eq!(kv.lease, lease, "rewritten under the same lease");
    let json_health = kv.json["health"].as_str().unwrap().to_owned();
    assert_eq!(
        json_health,
        if health == Health::Passing {
            "passing"
        } else {
            "critical"
        }
    );
    kv.mod_revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_probe_flips_the_value_to_critical_and_back() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&healthy);
    let probe = HealthProbe::closure(move || {
        let ok = flag.load(Ordering::SeqCst);
        async move { ok }
    });
    let registration = register_with(&client, probe).await;
    let first = stored_health(&client, &registration, Health::Passing).await;
    healthy.store(false, Ordering::SeqCst);
    let critical = stored_health(&client, &registration, Health::Critical).await;
    assert!(critical > first);
    let mut states = registration.subscribe();
    let state = wait_for("the state to show the failure", &mut states, |s| {
        s.health == Health::Critical
    })
    .await;
    assert_eq!(
        state.probe_failure.as_deref(),
        Some("the probe closure reported unhealthy")
    );
    assert_eq!(registration.instance().health, Health::Critical);
    healthy.store(true, Ordering::SeqCst);
    let passing = stored_health(&client, &registration, Health::Passing).await;
    assert!(passing > critical);
    assert_eq!(registration.state().reregistrations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_probe_follows_the_status_code() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let target = HttpTarget::start(200).await;
    let registration = register_with(&client, HealthProbe::http(&target.url()).unwrap()).await;
    stored_health(&client, &registration, Health::Passing).await;
    target.set_status(503);
    stored_health(&client, &registration, Health::Critical).await;
    assert_eq!(
        registration.state().probe_failure.as_deref(),
        Some("HTTP status 503")
    );
    target.set_status(204);
    stored_health(&client, &registration, Health::Passing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_probe_follows_the_listener() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let mut target = TcpTarget::start().await;
    let registration = register_with(&client, HealthProbe::tcp(target.addr())).await;
    stored_health(&client, &registration, Health::Passing).await;
    target.close();
    stored_health(&client, &registration, Health::Critical).await;
    target.reopen().await;
    stored_health(&client, &registration, Health::Passing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_probe_follows_the_serving_status() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let target = GrpcTarget::start().await;
    let probe =
        HealthProbe::parse(&format!("grpc://{}/{}", target.addr(), GrpcTarget::SERVICE)).unwrap();
    let registration = register_with(&client, probe).await;
    stored_health(&client, &registration, Health::Passing).await;
    target.set_serving(false).await;
    stored_health(&client, &registration, Health::Critical).await;
    assert_eq!(
        registration.state().probe_failure.as_deref(),
        Some("gRPC health status NOT_SERVING")
    );
    target.set_serving(true).await;
    stored_health(&client, &registration, Health::Passing).await;
    // A service the server does not know fails (NOT_FOUND).
    let unknown = HealthProbe::grpc(&target.addr(), "no.Such").unwrap();
    assert!(unknown.check().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_need_results_in_a_row() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let healthy = Arc::new(AtomicBool::new(true));
    let failed = Arc::new(AtomicU32::new(0));
    let passed = Arc::new(AtomicU32::new(0));
    let (flag, fails, passes) = (
        Arc::clone(&healthy),
        Arc::clone(&failed),
        Arc::clone(&passed),
    );
    let probe = HealthProbe::closure(move || {
        let ok = flag.load(Ordering::SeqCst);
        (if ok { &passes } else { &fails }).fetch_add(1, Ordering::SeqCst);
        async move { ok }
    })
    .failures_before_critical(3)
    .successes_before_passing(2);
    let registration = register_with(&client, probe).await;
    healthy.store(false, Ordering::SeqCst);
    stored_health(&client, &registration, Health::Critical).await;
    assert!(
        failed.load(Ordering::SeqCst) >= 3,
        "flipped after {failed:?} failures"
    );
    passed.store(0, Ordering::SeqCst);
    healthy.store(true, Ordering::SeqCst);
    stored_health(&client, &registration, Health::Passing).await;
    assert!(
        passed.load(Ordering::SeqCst) >= 2,
        "flipped after {passed:?} successes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_health_rewrites_the_value_by_hand() {
    let registry = Registry::start().await;
    let client = client(&registry.endpoint()).await;
    let registration = client
        .register(
            Instance::new("web", "a", "h:1"),
            RegistrationOptions::new().ttl(5),
        )
        .await
        .unwrap();
    registration.set_health(Health::Critical).unwrap();
    stored_health(&client, &registration, Health::Critical).await;
    registration.set_health(Health::Passing).unwrap();
    stored_health(&client, &registration, Health::Passing).await;
}
