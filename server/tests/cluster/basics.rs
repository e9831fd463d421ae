//! One cluster seen through every member: a write through any member is
//! read through each (linearizable and serializable), MemberList shows
//! every member's peer and client URLs, Status names one leader and term,
//! and a watch on a follower delivers the leader's revisions.

use std::time::Duration;

use rollcall_proto::etcdserverpb::{MemberListRequest, StatusRequest, WatchCreateRequest};
use rollcall_tests::Backend;
use rollcall_tests::grpc::b;
use rollcall_tests::watch_stream::WatchStream;

use crate::support::{self, caught_up, clients, get, leader, put, three};

backend_tests!(
    writes_through_any_member_are_read_through_every_member,
    member_list_and_status_describe_one_cluster,
    a_watch_on_a_follower_sees_the_leaders_revisions,
);

async fn writes_through_any_member_are_read_through_every_member(backend: Backend) {
    let cluster = three(backend).await;
    let mut revisions = Vec::new();
    for (i, member) in cluster.members().iter().enumerate() {
        revisions.push(
            put(member, &format!("k{i}"), &format!("v{i}"))
                .await
                .unwrap(),
        );
    }
    // One revision sequence, whoever took the write.
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "{revisions:?}"
    );
    for member in cluster.members() {
        for i in 0..3 {
            // Linearizable: the write is visible at once, on every member.
            assert_eq!(
                get(member, &format!("k{i}"), false)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(format!("v{i}").as_str()),
                "linearizable read through {}",
                member.name()
            );
        }
        caught_up(member, "k2", "v2").await;
    }
}

async fn member_list_and_status_describe_one_cluster(backend: Backend) {
    let cluster = three(backend).await;
    let lead = leader(&cluster).await;
    let layout = cluster.layout().clone();
    let mut ids = Vec::new();
    for member in cluster.members() {
        let mut c = clients(member);
        let list = c
            .cluster
            .member_list(MemberListRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.members.len(), 3, "{list:?}");
        for slot in layout.members() {
            let listed = list
                .members
                .iter()
                .find(|m| m.name == slot.name)
                .unwrap_or_else(|| panic!("{} missing from {list:?}", slot.name));
            assert_eq!(listed.peer_ur_ls, vec![slot.peer_url()]);
            assert!(!listed.is_learner);
        }
        let status = c
            .maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        ids.push(status.header.as_ref().unwrap().member_id);
        assert!(status.raft_term >= 1);
        assert!(status.raft_index >= status.raft_applied_index || status.raft_index > 0);
    }
    let leader_id = ids[lead];
    for member in cluster.members() {
        let status = clients(member)
            .maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.leader,
            leader_id,
            "{} disagrees on the leader",
            member.name()
        );
    }
    // Client URLs are published once the members started.
    rollcall_tests::wait::eventually("client URLs in MemberList", support::RECOVER, || async {
        let list = clients(cluster.member(0))
            .cluster
            .member_list(MemberListRequest::default())
            .await
            .ok()?
            .into_inner();
        layout
            .members()
            .iter()
            .all(|slot| {
                list.members
                    .iter()
                    .any(|m| m.name == slot.name && m.client_ur_ls == vec![slot.client_url()])
            })
            .then_some(())
    })
    .await;

    // `rollcall status --cluster`, given one member (the one seen above
    // listing every client URL), asks all three.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
    cmd.args(["status", "--cluster", "-o", "json", "--endpoints"])
        .arg(cluster.member(0).endpoint())
        .env_remove("ROLLCALL_ENDPOINTS");
    let doc = rollcall_tests::process::run(cmd, support::RPC_TIMEOUT)
        .await
        .json();
    let rows = doc["endpoints"].as_array().expect("an endpoints list");
    assert_eq!(rows.len(), 3, "{doc}");
    let leader_hex = format!("{leader_id:x}");
    for slot in layout.members() {
        let row = rows
            .iter()
            .find(|r| r["endpoint"] == slot.client_url().as_str())
            .unwrap_or_else(|| panic!("{} missing from {doc}", slot.client_url()));
        assert_eq!(row["leader"], leader_hex.as_str(), "{doc}");
    }
    let leaders = rows.iter().filter(|r| r["is_leader"] == true).count();
    assert_eq!(leaders, 1, "{doc}");
}

async fn a_watch_on_a_follower_sees_the_leaders_revisions(backend: Backend) {
    let cluster = three(backend).await;
    let lead = leader(&cluster).await;
    let follower = (lead + 1) % 3;
    let mut watch = WatchStream::open(&support::channel(cluster.member(follower))).await;
    let created = watch
        .create(WatchCreateRequest {
            key: b("w/"),
            range_end: b("w0"),
            prev_kv: true,
            ..WatchCreateRequest::default()
        })
        .await;
    assert!(created.created);
    let mut written = Vec::new();
    for i in 0..20 {
        let through = cluster.member(if i % 2 == 0 { lead } else { (lead + 2) % 3 });
        written.push(
            put(through, &format!("w/{}", i % 5), &i.to_string())
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut last_of_key = std::collections::HashMap::new();
    while seen.len() < written.len() {
        let resp = watch
            .next_within(Duration::from_secs(20))
            .await
            .expect("events within 20 s");
        for event in resp.events {
            let kv = event.kv.unwrap();
            // prev_kv is the key's previous value, from this member's state.
            match last_of_key.insert(kv.key.clone(), kv.mod_revision) {
                Some(previous) => {
                    assert_eq!(event.prev_kv.map(|p| p.mod_revision), Some(previous));
                }
                None => assert!(event.prev_kv.is_none()),
            }
            seen.push(kv.mod_revision);
        }
    }
    assert_eq!(
        seen, written,
        "the follower's events carry the leader's revisions, in order"
    );
}
