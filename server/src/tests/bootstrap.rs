//! Cluster flags at start (`raft/bootstrap.rs`): etcd's timing rule between
//! `--heartbeat-interval` and `--election-timeout`, with etcd's message.

use crate::raft::bootstrap::{BootstrapError, plan};

use super::fixture::serve_config;

fn member_config(
    dir: &std::path::Path,
    heartbeat: u64,
    election: u64,
) -> crate::config::ServeConfig {
    let mut config = serve_config(dir);
    config.name = "m1".into();
    config.initial_cluster = Some("m1=http://127.0.0.1:2380".into());
    config.listen_peer_urls = vec!["http://127.0.0.1:2380".into()];
    config.heartbeat_interval = heartbeat;
    config.election_timeout = election;
    config
}

#[test]
fn election_timeout_must_cover_five_heartbeats_as_in_etcd() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let refused = plan(
        &member_config(dir.path(), 300, 1000),
        Vec::new(),
        dir.path(),
        0,
    )
    .expect_err("4 heartbeats per election timeout is refused");
    assert!(matches!(refused, BootstrapError::Timing { .. }));
    assert_eq!(
        refused.to_string(),
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    );
    let planned = plan(
        &member_config(dir.path(), 200, 1000),
        Vec::new(),
        dir.path(),
        0,
    )
    .expect("exactly 5 heartbeats is accepted")
    .expect("a cluster member");
    assert_eq!(planned.node.election_timeout.as_millis(), 1000);
    assert_eq!(planned.node.heartbeat.as_millis(), 200);
}
