//! The suite's cluster conveniences: a 3-member cluster of either backend
//! with etcd's peer flags, the current leader as every member reports it,
//! and bounded retries across elections.

use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest};
use rollcall_tests::grpc::{Clients, b};
use rollcall_tests::keepalive::KeepAlive;
use rollcall_tests::{Backend, Cluster, ServerProcess};
use tonic::transport::{Channel, Endpoint};

/// Bound on one RPC, so a request to a stalled cluster fails quickly.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the cluster recovering (an election, a member catching up).
pub const RECOVER: Duration = Duration::from_secs(30);

/// Three members started together with etcd's peer flags (rollcall takes
/// the same ones).
pub async fn three(backend: Backend) -> Cluster {
    Cluster::builder(backend, 3)
        .peer_args(|layout, i| layout.etcd_peer_args(i))
        .start()
        .await
        .unwrap()
}

/// Three members as [`three`], each on a host of its own whose links the
/// test can cut (`Cluster::hosts`).
pub async fn on_own_hosts(backend: Backend) -> Cluster {
    Cluster::builder(backend, 3)
        .peer_args(|layout, i| layout.etcd_peer_args(i))
        .on_own_hosts()
        .start()
        .await
        .unwrap()
}

/// Stubs of `member` whose every call gives up after [`RPC_TIMEOUT`].
pub fn clients(member: &ServerProcess) -> Clients {
    Clients::over(channel(member))
}

/// A keep-alive stream to `member`, on a channel without a call timeout
/// (the stream lives as long as the test needs it).
pub fn keep_alive(member: &ServerProcess) -> KeepAlive {
    let channel = Endpoint::from_shared(member.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    KeepAlive::open(&LeaseClient::new(channel))
}

pub fn channel(member: &ServerProcess) -> Channel {
    Endpoint::from_shared(member.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(RPC_TIMEOUT)
        .connect_lazy()
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    }
}

pub async fn put(member: &ServerProcess, key: &str, value: &str) -> Result<i64, tonic::Status> {
    let resp = clients(member).try_put(put_req(key, value)).await?;
    Ok(resp.header.map_or(0, |h| h.revision))
}

/// Retries `put` on `member` until it succeeds, within [`RECOVER`].
pub async fn put_eventually(member: &ServerProcess, key: &str, value: &str) -> i64 {
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `key` read through `member`; `serializable` answers from
/// the member's own state without asking the leader.
pub async fn get(
    member: &ServerProcess,
    key: &str,
    serializable: bool,
) -> Result<Option<String>, tonic::Status> {
    let resp = clients(member)
        .try_range(RangeRequest {
            key: b(key),
            serializable,
            ..RangeRequest::default()
        })
        .await?;
    Ok(resp
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Waits until `member`'s own state (a serializable read) has `key` = `value`.
pub async fn caught_up(member: &ServerProcess, key: &str, value: &str) {
    let deadline = Instant::now() + RECOVER;
    while get(member, key, true).await.ok().flatten().as_deref() != Some(value) {
        assert!(
            Instant::now() < deadline,
            "{} did not catch up with {key}={value}",
            member.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the member every running, unpaused member names as leader,
/// once they agree (within [`RECOVER`]).
pub async fn leader(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + RECOVER;
    loop {
        let mut named = Vec::new();
        let mut ids = Vec::new();
        for member in cluster.members() {
            if member.is_paused() || member.pid().is_none() {
                continue;
            }
            let mut c = clients(member);
            if let Ok(status) = c
                .maintenance
                .status(rollcall_proto::etcdserverpb::StatusRequest {})
                .await
            {
                let status = status.into_inner();
                named.push(status.leader);
                ids.push(status.header.map_or(0, |h| h.member_id));
            } else {
                named.push(0);
                ids.push(0);
            }
        }
        if let Some(first) = named.first().copied()
            && first != 0
            && named.iter().all(|l| *l == first)
        {
            let running: Vec<&ServerProcess> = cluster
                .members()
                .iter()
                .filter(|m| !m.is_paused() && m.pid().is_some())
                .collect();
            if let Some(pos) = ids.iter().position(|id| *id == first) {
                let name = running[pos].name().to_string();
                return cluster
                    .members()
                    .iter()
                    .position(|m| m.name() == name)
                    .unwrap();
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {named:x?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
