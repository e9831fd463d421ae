//! Maintenance.Status, Cluster.MemberList and the response header: ids that
//! are non-zero, the same in every response and stable across restarts (clean
//! or after kill -9), data that survives a restart, and a clean exit on
//! SIGTERM and SIGINT.

use rollcall_proto::etcdserverpb::{MemberListRequest, ResponseHeader};
use rollcall_tests::{Backend, ServerConfig};

use crate::support::{Client, kv, start};

backend_tests!(
    status_fields,
    member_list,
    header_ids_stable_across_restarts,
    clean_shutdown_on_sigterm,
    clean_shutdown_on_sigint,
);

async fn status_fields(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r = c.put_rev("a", "1").await;
    let status = c.status().await;
    let header = status.header.expect("Status has a header");
    assert!(
        status.version.starts_with("3.4"),
        "Status.version is the etcd API version: {:?}",
        status.version
    );
    assert_ne!(header.member_id, 0);
    assert_ne!(header.cluster_id, 0);
    assert_eq!(
        status.leader, header.member_id,
        "a single member leads itself"
    );
    assert!(status.raft_term >= 1, "raft_term {}", status.raft_term);
    assert!(status.db_size > 0, "db_size {}", status.db_size);
    assert!(status.raft_index >= 1, "raft_index {}", status.raft_index);
    assert_eq!(header.revision, r);
    assert!(!status.is_learner);
    assert!(status.errors.is_empty(), "{:?}", status.errors);
}

async fn member_list(backend: Backend) {
    let config = ServerConfig {
        name: "alpha".to_owned(),
        ..ServerConfig::default()
    };
    let server = backend.start_with(config).await.expect("start");
    let mut c = Client::connect(&server).await;
    let list = c
        .cluster
        .member_list(MemberListRequest::default())
        .await
        .expect("MemberList")
        .into_inner();
    let header = list.header.expect("MemberList has a header");
    assert_eq!(list.members.len(), 1, "{list:?}");
    let me = &list.members[0];
    assert_eq!(me.id, header.member_id);
    assert_eq!(me.name, "alpha");
    assert_eq!(me.client_ur_ls, vec![server.endpoint()]);
    assert!(!me.is_learner);
    let status = c.status().await;
    assert_eq!(status.leader, me.id);
}

/// Every header id seen through KV, Status and MemberList.
async fn ids(c: &mut Client) -> (u64, u64) {
    let put = c.put("ids", "x").await.header.expect("header");
    let get = c.get("ids").await.header.expect("header");
    let status = c.status().await.header.expect("header");
    let list = c
        .cluster
        .member_list(MemberListRequest::default())
        .await
        .expect("MemberList")
        .into_inner()
        .header
        .expect("header");
    let all: [ResponseHeader; 4] = [put, get, status, list];
    for h in &all {
        assert_eq!(
            (h.cluster_id, h.member_id),
            (put.cluster_id, put.member_id),
            "{all:?}"
        );
        assert!(h.raft_term >= 1, "{all:?}");
    }
    assert_ne!(put.cluster_id, 0);
    assert_ne!(put.member_id, 0);
    (put.cluster_id, put.member_id)
}

async fn header_ids_stable_across_restarts(backend: Backend) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let first = ids(&mut c).await;
    let r = c.put_rev("kept", "v").await;

    server.restart().await.expect("clean restart");
    let mut c = Client::connect(&server).await;
    assert_eq!(ids(&mut c).await, first, "after a clean restart");
    assert_eq!(c.get_kv("kept").await, Some(kv("kept", "v", r, r, 1)));

    server.kill9().expect("kill -9");
    server.restart().await.expect("restart after kill -9");
    let mut c = Client::connect(&server).await;
    assert_eq!(ids(&mut c).await, first, "after kill -9");
    assert_eq!(c.get_kv("kept").await, Some(kv("kept", "v", r, r, 1)));
}

async fn check_clean_shutdown(backend: Backend, sigint: bool) {
    let mut server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r = c.put_rev("before-shutdown", "v").await;
    let exit = if sigint {
        server.interrupt().await
    } else {
        server.terminate().await
    }
    .expect("the server exits within the deadline");
    if matches!(backend, Backend::Rollcall(_)) {
        // etcd re-raises the signal after its cleanup, so only rollcall's
        // exit status is checked.
        assert!(exit.success(), "rollcall exits cleanly, got {exit}");
    }
    server.restart().await.expect("restart");
    let mut c = Client::connect(&server).await;
    assert_eq!(
        c.get_kv("before-shutdown").await,
        Some(kv("before-shutdown", "v", r, r, 1))
    );
}

async fn clean_shutdown_on_sigterm(backend: Backend) {
    check_clean_shutdown(backend, false).await;
}

async fn clean_shutdown_on_sigint(backend: Backend) {
    check_clean_shutdown(backend, true).await;
}
