//! The N-member API against a real 3-member etcd 3.4 cluster: writes and
//! reads through every member, kill -9 of one, SIGSTOP/SIGCONT of another
//! (which costs the cluster its quorum while it lasts), and the killed
//! member restarted on its data dir catching up. Every wait is bounded.

// clippy.toml allows unwrap inside #[test] fns; the helpers below are not.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use rollcall_tests::backend::run_bounded;
use rollcall_tests::{Backend, Cluster, ServerProcess, Tool, require_or_skip};
use tonic::transport::{Channel, Endpoint};

/// Bound on one RPC, so a request to a stalled cluster fails quickly.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on the cluster recovering (an election, a member catching up).
const RECOVER: Duration = Duration::from_secs(30);

fn channel(member: &ServerProcess) -> Channel {
    Endpoint::from_shared(member.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(RPC_TIMEOUT)
        .connect_lazy()
}

async fn put(member: &ServerProcess, key: &str, value: &str) -> Result<i64, tonic::Status> {
    let resp = KvClient::new(channel(member))
        .put(PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
            ..PutRequest::default()
        })
        .await?
        .into_inner();
    Ok(resp.header.unwrap().revision)
}

/// The value of `key` read from `member`; `serializable` answers from the
/// member's own store without asking the leader.
async fn get(member: &ServerProcess, key: &str, serializable: bool) -> Option<String> {
    let resp = KvClient::new(channel(member))
        .range(RangeRequest {
            key: key.as_bytes().to_vec().into(),
            serializable,
            ..RangeRequest::default()
        })
        .await
        .ok()?
        .into_inner();
    resp.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// Retries `put` on `member` until it succeeds, within [`RECOVER`].
async fn put_eventually(member: &ServerProcess, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + RECOVER;
    loop {
        match put(member, key, value).await {
            Ok(rev) => return rev,
            Err(e) => assert!(
                Instant::now() < deadline,
                "put {key} through {} failed for {RECOVER:?}: {e}",
                member.name()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_survives_kill9_and_sigstop_and_a_restarted_member_catches_up() {
    let test = "cluster::etcd_cluster_survives_kill9_and_sigstop_and_a_restarted_member_catches_up";
    if !require_or_skip(Tool::Etcd, test) {
        return;
    }
    run_bounded(test, async {
        // The peer flags spelled out from every member's ports: the shape
        // rollcall's own replication flags will take.
        let mut cluster = Cluster::builder(Backend::Etcd, 3)
            .peer_args(|layout, i| {
                let me = layout.member(i);
                vec![
                    "--listen-peer-urls".into(),
                    me.peer_url(),
                    "--initial-advertise-peer-urls".into(),
                    me.peer_url(),
                    "--initial-cluster".into(),
                    layout.initial_cluster(),
                    "--initial-cluster-state".into(),
                    "new".into(),
                ]
            })
            .start()
            .await
            .unwrap();
        assert_eq!(cluster.endpoints().len(), 3);

        // One cluster: a write through one member is read through each.
        put(cluster.member(0), "k1", "v1").await.unwrap();
        for member in cluster.members() {
            assert_eq!(get(member, "k1", false).await.as_deref(), Some("v1"));
        }

        // kill -9 one member: two of three still make a quorum.
        cluster.member_mut(2).kill9().unwrap();
        assert!(!cluster.member_mut(2).is_running());
        put_eventually(cluster.member(1), "k2", "v2").await;
        assert_eq!(
            get(cluster.member(0), "k2", false).await.as_deref(),
            Some("v2")
        );

        // SIGSTOP a second one: it answers nothing, and the last running
        // member alone has no quorum, so a write cannot commit.
        cluster.member_mut(1).pause().unwrap();
        assert!(cluster.member(1).is_paused());
        let stalled = MaintenanceClient::new(channel(cluster.member(1)))
            .status(StatusRequest {})
            .await;
        assert!(stalled.is_err(), "a stopped member answered: {stalled:?}");
        let without_quorum = put(cluster.member(0), "lost", "x").await;
        assert!(without_quorum.is_err(), "committed without a quorum");

        // SIGCONT: the quorum is back.
        cluster.member_mut(1).resume().unwrap();
        let last = put_eventually(cluster.member(0), "k3", "v3").await;
        assert_eq!(
            get(cluster.member(1), "k3", false).await.as_deref(),
            Some("v3")
        );

        // The killed member restarts on its data dir and catches up: its own
        // store (a serializable read) gets the writes it missed.
        cluster.member_mut(2).restart().await.unwrap();
        let deadline = Instant::now() + RECOVER;
        while get(cluster.member(2), "k3", true).await.as_deref() != Some("v3") {
            assert!(Instant::now() < deadline, "member 2 did not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            get(cluster.member(2), "k1", true).await.as_deref(),
            Some("v1")
        );
        assert_eq!(
            get(cluster.member(2), "k2", true).await.as_deref(),
            Some("v2")
        );
        let status = MaintenanceClient::new(channel(cluster.member(2)))
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(status.header.unwrap().revision >= last);
    })
    .await;
}
