//! Membership changes as etcd makes them: a fourth member added as a
//! learner catches up (from the log) while writes go on, is promoted once in
//! sync, serves writes as a voter and is removed again; and etcd's refusals
//! (promoting a voter, removing an unknown member, adding the same peer URL
//! twice). MemberList through every member follows each step.

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest,
};
use rollcall_tests::grpc::assert_status;
use rollcall_tests::{Backend, Cluster, ServerConfig, ServerProcess};
use tonic::Code;

use crate::support::{RECOVER, caught_up, clients, put, put_eventually, three};

backend_tests!(a_learner_is_added_promoted_and_removed);

const NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
const NOT_FOUND: &str = "etcdserver: member not found";
const MEMBER_EXISTS: &str = "etcdserver: member ID already exist";
const PEER_URL_EXISTS: &str = "etcdserver: Peer URLs already exists";

async fn member_count(member: &ServerProcess) -> (usize, usize) {
    let list = clients(member)
        .cluster
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner();
    let learners = list.members.iter().filter(|m| m.is_learner).count();
    (list.members.len(), learners)
}

/// Adds `peer_url` as a learner through a member that may be a follower
/// (the call reaches the leader). etcd refuses reconfiguration until every
/// member has been connected for 5 s (`unhealthy cluster`, Unavailable):
/// retried, bounded.
pub async fn add_learner(cluster: &Cluster, peer_url: &str) -> MemberAddResponse {
    let deadline = Instant::now() + RECOVER;
    loop {
        match clients(cluster.member(1))
            .cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![peer_url.to_string()],
                is_learner: true,
            })
            .await
        {
            Ok(added) => return added.into_inner(),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("member add: {e}"),
        }
    }
}

/// Starts the member added at `peer_url` as `m4`, joining the existing
/// cluster, with `extra` flags.
pub async fn start_fourth(
    backend: Backend,
    cluster: &Cluster,
    peer_url: &str,
    extra: &[&str],
) -> ServerProcess {
    let initial_cluster = format!("{},m4={peer_url}", cluster.layout().initial_cluster());
    let mut args = vec![
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        &initial_cluster,
        "--initial-cluster-state",
        "existing",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(
        backend,
        ServerConfig {
            name: "m4".into(),
            ..ServerConfig::with_args(args)
        },
    )
    .await
    .unwrap()
}

async fn a_learner_is_added_promoted_and_removed(backend: Backend) {
    let cluster = three(backend.clone()).await;
    for i in 0..50 {
        put_eventually(cluster.member(i % 3), &format!("pre/{i}"), "v").await;
    }
    let port = rollcall_tests::ports::free_port().unwrap();
    let peer_url = format!("http://127.0.0.1:{port}");
    let added = add_learner(&cluster, &peer_url).await;
    let id = added.member.as_ref().unwrap().id;
    assert!(added.member.as_ref().unwrap().is_learner);
    assert_eq!(added.members.len(), 4, "{added:?}");
    // The same peer URL again is refused. etcd salts an added member's id
    // with the second it was added: within that second the id repeats
    // ("member ID already exist"), later the URL does ("Peer URLs already
    // exists"). rollcall's ids derive from the URLs alone, so it always
    // gives the first answer.
    let again = clients(cluster.member(0))
        .cluster
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![peer_url.clone()],
            is_learner: true,
        })
        .await;
    let refused = again.expect_err("the same peer URL is added twice");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let expected: &[&str] = if backend.is_etcd() {
        &[MEMBER_EXISTS, PEER_URL_EXISTS]
    } else {
        &[MEMBER_EXISTS]
    };
    assert!(
        expected.contains(&refused.message()),
        "wrong refusal: {refused:?}"
    );

    let fourth = start_fourth(backend, &cluster, &peer_url, &[]).await;
    // Writes go on while it catches up, and it gets them all.
    put(cluster.member(0), "during", "1").await.unwrap();
    caught_up(&fourth, "during", "1").await;
    caught_up(&fourth, "pre/49", "v").await;

    // A voter cannot be promoted; the learner can once in sync.
    let voter = clients(cluster.member(0))
        .status()
        .await
        .header
        .unwrap()
        .member_id;
    let promote_voter = clients(cluster.member(0))
        .cluster
        .member_promote(MemberPromoteRequest { id: voter })
        .await;
    assert_status(promote_voter, Code::FailedPrecondition, NOT_LEARNER);
    let deadline = Instant::now() + RECOVER;
    loop {
        match clients(cluster.member(2))
            .cluster
            .member_promote(MemberPromoteRequest { id })
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "promote failed for {RECOVER:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for member in cluster.members() {
        rollcall_tests::wait::eventually("four voters", RECOVER, || async {
            (member_count(member).await == (4, 0)).then_some(())
        })
        .await;
    }
    // As a voter it serves writes.
    put_eventually(&fourth, "from/m4", "x").await;
    caught_up(cluster.member(0), "from/m4", "x").await;

    // Removal: unknown ids are refused; the member itself goes.
    let unknown = clients(cluster.member(0))
        .cluster
        .member_remove(MemberRemoveRequest { id: 0x1234 })
        .await;
    assert_status(unknown, Code::NotFound, NOT_FOUND);
    clients(cluster.member(0))
        .cluster
        .member_remove(MemberRemoveRequest { id })
        .await
        .unwrap();
    for member in cluster.members() {
        rollcall_tests::wait::eventually("three members again", RECOVER, || async {
            (member_count(member).await == (3, 0)).then_some(())
        })
        .await;
    }
    let mut fourth = fourth;
    fourth.kill9().unwrap();
    put_eventually(cluster.member(1), "after", "y").await;
}
