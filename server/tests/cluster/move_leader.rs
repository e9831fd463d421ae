//! Maintenance.MoveLeader with etcd's rules: a follower answers `not
//! leader`, an unknown target `bad leader transferee`, a move to the leader
//! itself succeeds. A move to a follower hands leadership over on etcd;
//! openraft 0.9 cannot, so rollcall answers the error etcd gives when a
//! transfer does not complete, and keeps its leader.

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::MoveLeaderRequest;
use rollcall_tests::Backend;
use rollcall_tests::grpc::assert_status;
use tonic::Code;

use crate::support::{RECOVER, clients, leader, three};

backend_tests!(move_leader_follows_etcds_rules);

async fn move_leader_follows_etcds_rules(backend: Backend) {
    let cluster = three(backend.clone()).await;
    let lead = leader(&cluster).await;
    let follower = (lead + 1) % 3;
    let lead_id = clients(cluster.member(lead)).member_id().await;
    let follower_id = clients(cluster.member(follower)).member_id().await;
    let move_to = |member: usize, target_id: u64| {
        let mut c = clients(cluster.member(member));
        async move {
            c.maintenance
                .move_leader(MoveLeaderRequest { target_id })
                .await
        }
    };

    assert_status(
        move_to(follower, lead_id).await,
        Code::FailedPrecondition,
        "etcdserver: not leader",
    );
    assert_status(
        move_to(lead, 0x1234_5678).await,
        Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
    );
    move_to(lead, lead_id)
        .await
        .expect("a move to the leader itself");
    assert_eq!(leader(&cluster).await, lead);

    let moved = move_to(lead, follower_id).await;
    if backend.is_etcd() {
        moved.expect("etcd transfers leadership");
        let deadline = Instant::now() + RECOVER;
        while leader(&cluster).await != follower {
            assert!(Instant::now() < deadline, "leadership did not move");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        assert_status(
            moved,
            Code::Unavailable,
            "etcdserver: request timed out, leader transfer took too long",
        );
        assert_eq!(leader(&cluster).await, lead);
    }
}
