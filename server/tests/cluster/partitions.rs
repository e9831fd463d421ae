//! Partitions: each member on a host of its own (`rollcall_tests::netns`),
//! the leader's links cut. The cut-off leader stops acting as leader
//! within about an election timeout, as etcd's check-quorum makes it: its
//! Status and `etcd_server_has_leader` name no leader, it refuses writes
//! (counted in `etcd_server_proposals_failed_total`)
//! and linearizable reads, and keep-alives sent to it renew nothing, while
//! the majority elects a leader, commits, and expires the lease the cut-off
//! side can no longer keep. Serializable reads still answer on both sides.
//! Healed, the old leader follows the new one and has its writes.

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::PutRequest;
use rollcall_tests::grpc::b;
use rollcall_tests::http::http_get_from;
use rollcall_tests::wait::eventually;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};

use crate::support::{
    caught_up, clients, get, keep_alive, leader, on_own_hosts, put, put_eventually,
};

backend_tests!(an_isolated_leader_stops_leading_while_the_majority_goes_on);

/// The lease of the service registered through the leader.
const TTL: i64 = 4;

/// The leader `member` reports in Status (0: none), if it answers.
async fn named_leader(member: &ServerProcess) -> Option<u64> {
    let status = clients(member)
        .maintenance
        .status(rollcall_proto::etcdserverpb::StatusRequest {})
        .await;
    status.ok().map(|s| s.into_inner().leader)
}

/// The unlabelled sample `name` on `member`'s metrics port.
async fn sample(member: &ServerProcess, name: &str) -> Option<f64> {
    let scrape = http_get_from(member.host(), member.metrics_port(), "/metrics").await;
    let prefix = format!("{name} ");
    scrape
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn an_isolated_leader_stops_leading_while_the_majority_goes_on(backend: Backend) {
    if !require_or_skip(Tool::Netns, "an_isolated_leader_stops_leading") {
        return;
    }
    let cluster = on_own_hosts(backend.clone()).await;
    put_eventually(cluster.member(0), "k", "v").await;
    for member in cluster.members() {
        caught_up(member, "k", "v").await;
    }
    let lead = leader(&cluster).await;
    let old = cluster.member(lead);
    let old_id = clients(old).member_id().await;
    let majority = [(lead + 1) % 3, (lead + 2) % 3].map(|i| cluster.member(i));

    // A service registered through the leader: a lease, a key under it, and
    // a keep-alive stream.
    let lease = clients(old).try_grant(TTL, 0).await.unwrap().id;
    clients(old)
        .try_put(PutRequest {
            key: b("svc/a"),
            value: b("addr"),
            lease,
            ..PutRequest::default()
        })
        .await
        .unwrap();
    let mut keeper = keep_alive(old);
    let first = keeper.once(lease).await;
    assert!(first.ttl > 0, "{first:?}");

    let hosts = cluster.hosts().expect("members on hosts of their own");
    hosts.isolate(lead).unwrap();
    let cut = Instant::now();

    // The majority elects one of its own and commits.
    put_eventually(majority[0], "after", "1").await;
    eprintln!(
        "{}: first write through the majority {:?} after the leader was cut off",
        backend.name(),
        cut.elapsed()
    );
    let new_id = named_leader(majority[0]).await.unwrap_or(0);
    assert!(
        new_id != 0 && new_id != old_id,
        "majority leader {new_id:x}"
    );

    // The cut-off leader stops acting as one (etcd: check-quorum, after an
    // election timeout without a quorum's answers).
    eventually(
        "the cut-off leader names no leader",
        Duration::from_secs(10),
        || async { (named_leader(old).await? != old_id).then_some(()) },
    )
    .await;
    eprintln!(
        "{}: the cut-off leader stopped leading {:?} after the cut",
        backend.name(),
        cut.elapsed()
    );
    assert_eq!(sample(old, "etcd_server_has_leader").await, Some(0.0));
    assert_eq!(
        sample(majority[0], "etcd_server_has_leader").await,
        Some(1.0)
    );

    // A keep-alive sent to it now renews nothing: no answer with a TTL.
    keeper.send(lease).await;
    // (No answer, or the stream's error, is what etcd gives.)
    let answer = tokio::time::timeout(Duration::from_secs(3), keeper.responses.recv()).await;
    if let Ok(Some(Ok(answer))) = answer {
        assert!(answer.ttl <= 0, "renewed while cut off: {answer:?}");
    }

    // It refuses writes and linearizable reads; serializable reads answer.
    let write = put(old, "lost", "x").await;
    assert!(write.is_err(), "committed while cut off: {write:?}");
    let failed = sample(old, "etcd_server_proposals_failed_total").await;
    assert!(
        failed.is_some_and(|n| n >= 1.0),
        "proposals failed: {failed:?}"
    );
    let read = get(old, "k", false).await;
    assert!(read.is_err(), "linearizable read while cut off: {read:?}");
    assert_eq!(get(old, "k", true).await.unwrap().as_deref(), Some("v"));

    // The majority expires the lease nobody can renew: its key goes.
    for member in majority {
        eventually(
            "the majority expired the cut-off service's lease",
            Duration::from_secs(30),
            || async {
                get(member, "svc/a", false)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }

    // Healed, the old leader follows the new one and gets what it missed.
    drop(keeper);
    hosts.heal().unwrap();
    caught_up(old, "after", "1").await;
    eventually(
        "the healed member lost the expired key",
        Duration::from_secs(30),
        || async { get(old, "svc/a", true).await.ok()?.is_none().then_some(()) },
    )
    .await;
    put_eventually(old, "healed", "1").await;
    for member in majority {
        caught_up(member, "healed", "1").await;
    }
}
