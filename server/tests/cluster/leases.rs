//! Leases in a cluster: a lease granted and kept alive through a follower
//! outlives several TTLs (the follower forwards keep-alives to the leader,
//! where the deadlines live), TimeToLive through a follower sees the
//! leader's deadline, and once keep-alives stop the leader expires the
//! lease and every member loses its key. And (rollcall only: etcd 3.4's
//! checkpoint interval is a fixed 5 minutes) a new leader resumes a lease
//! from its checkpointed remaining TTL rather than its full TTL, while a
//! lease renewed since its checkpoint starts full again.

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::PutRequest;
use rollcall_tests::Backend;
use rollcall_tests::grpc::b;

use rollcall_tests::Cluster;

use crate::support::{clients, get, keep_alive, leader, put_eventually, three};

backend_tests!(a_lease_kept_alive_through_a_follower_lives_and_then_expires);

const TTL: i64 = 3;

async fn a_lease_kept_alive_through_a_follower_lives_and_then_expires(backend: Backend) {
    let cluster = three(backend).await;
    let lead = leader(&cluster).await;
    let follower = cluster.member((lead + 1) % 3);
    let mut c = clients(follower);
    let id = c.try_grant(TTL, 0).await.unwrap().id;
    c.try_put(PutRequest {
        key: b("svc/a"),
        value: b("addr"),
        lease: id,
        ..PutRequest::default()
    })
    .await
    .unwrap();
    // Keep it alive through the follower for three TTLs (every answer within
    // the stream's bound, the stream open throughout).
    let mut keeper = keep_alive(follower);
    let until = Instant::now() + Duration::from_secs(3 * TTL as u64);
    while Instant::now() < until {
        let resp = keeper.once(id).await;
        assert_eq!(resp.id, id);
        assert!(resp.ttl > 0, "renewed through the follower: {resp:?}");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let ttl = clients(follower).time_to_live(id, true).await;
    assert!(ttl.ttl > 0 && ttl.ttl <= TTL, "{ttl:?}");
    assert_eq!(ttl.keys, vec![b("svc/a")]);
    for member in cluster.members() {
        assert_eq!(
            get(member, "svc/a", false).await.unwrap().as_deref(),
            Some("addr")
        );
    }
    // Keep-alives stop: the leader expires the lease within its TTL (plus
    // its check interval and the revoke's commit).
    drop(keeper);
    let stopped = Instant::now();
    for member in cluster.members() {
        rollcall_tests::wait::eventually(
            "the expired lease's key is gone",
            Duration::from_secs(15),
            || async { (get(member, "svc/a", false).await.ok()?.is_none()).then_some(()) },
        )
        .await;
    }
    assert!(
        stopped.elapsed() >= Duration::from_secs(1),
        "expired too early"
    );
    assert_eq!(clients(follower).time_to_live(id, false).await.ttl, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_leases_from_their_checkpoints() {
    let test = "leases::a_new_leader_resumes_leases_from_their_checkpoints";
    let Some(backend) =
        rollcall_tests::backend::rollcall_backend(env!("CARGO_BIN_EXE_rollcall"), test)
    else {
        return;
    };
    rollcall_tests::backend::run_bounded(test, resumes_from_checkpoints(backend)).await;
}

async fn resumes_from_checkpoints(backend: Backend) {
    const LONG_TTL: i64 = 60;
    // Checkpoints every second for leases longer than a second.
    let mut cluster = Cluster::builder(backend, 3)
        .peer_args(|layout, i| {
            let mut args = layout.etcd_peer_args(i);
            args.extend(["--lease-checkpoint-interval-ms".into(), "1000".into()]);
            args
        })
        .start()
        .await
        .unwrap();
    let lead = leader(&cluster).await;
    let mut c = clients(cluster.member(lead));
    let idle = c.try_grant(LONG_TTL, 0).await.unwrap().id;
    let renewed = c.try_grant(LONG_TTL, 0).await.unwrap().id;
    // Time passes on the leader's clock, and its checkpoints record it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut keeper = keep_alive(cluster.member(lead));
    assert!(keeper.once(renewed).await.ttl > 0);
    // Past the next checkpoint tick, which records the renewal's reset.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(keeper);
    cluster.member_mut(lead).kill9().unwrap();
    let survivor = (lead + 1) % 3;
    put_eventually(cluster.member(survivor), "after", "1").await;
    let ttl = |id| {
        let member = cluster.member(survivor);
        async move { clients(member).time_to_live(id, false).await }
    };
    let idle_ttl = ttl(idle).await;
    let renewed_ttl = ttl(renewed).await;
    // Without checkpoints both would start a full 60 s again. The idle
    // lease had about 46 s left at the last checkpoint before the kill (plus
    // the 1 s election extension); the renewed one starts full.
    assert!(
        idle_ttl.ttl > 0 && idle_ttl.ttl <= LONG_TTL - 8,
        "the idle lease restarted near its full TTL: {idle_ttl:?}"
    );
    assert!(
        renewed_ttl.ttl >= LONG_TTL - 5,
        "the renewed lease lost its renewal: {renewed_ttl:?}"
    );
    assert_eq!(idle_ttl.granted_ttl, LONG_TTL);
}
