//! One member of a replicated cluster: the openraft instance with its log
//! store, state machine and network, and everything the API layer asks of
//! it — propose a batch (on the leader, or forwarded to it), fence a
//! linearizable read (read index), find the leader, describe the members
//! and the raft position.
//!
//! Every wait is bounded by the request timeout (etcd's: 5 s + 2 × the
//! election timeout); past it the caller gets etcd's timeout error, so a
//! partitioned minority refuses writes and linearizable reads in bounded
//! time while serializable reads still answer locally.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use rollcall_proto::rollcallraftpb::ReadIndexRequest;
use rollcall_proto::rollcallraftpb::peer_client::PeerClient;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;

use super::codec;
use super::log_store::LogStore;
use super::network::{Network, never_sent, peer_client};
use super::quorum::PeerContact;
use super::state_machine::StateMachine;
use super::types::{Batch, MemberNode, Raft};
use crate::apply::{Applied, Command};
use crate::error::{ClusterError, Error, Refusal};
use crate::settle::Settle;
use crate::state::State;

/// Linearizable reads queued for the next read-index round.
const READS_WAITING: usize = 4096;

/// Batches read-index requests as etcd's linearizable read loop does: every
/// read queued when a round starts shares its answer, so a quorum heartbeat
/// (and, on a follower, one peer call) serves many reads. A read queued
/// during a round waits for the next one, whose index is at least as new as
/// anything committed before the read was queued. Ends with the node.
async fn batch_read_index(
    node: std::sync::Weak<RaftNode>,
    mut waiting: mpsc::Receiver<oneshot::Sender<Result<u64, Error>>>,
) {
    let mut round = Vec::new();
    while let Some(first) = waiting.recv().await {
        round.push(first);
        while let Ok(next) = waiting.try_recv() {
            round.push(next);
        }
        let Some(node) = node.upgrade() else {
            return;
        };
        let result = node.fetch_read_index().await;
        drop(node);
        for reply in round.drain(..) {
            let _ = reply.send(match &result {
                Ok(index) => Ok(*index),
                Err(e) => Err(e.shareable()),
            });
        }
    }
}

/// How a member starts, from etcd's flags.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub id: u64,
    pub name: String,
    /// `--initial-cluster-token`: member ids of added members derive from it.
    pub token: String,
    /// The members to form a new cluster with; `None` when joining an
    /// existing cluster or restarting (the log says who is in it).
    pub bootstrap: Option<BTreeMap<u64, MemberNode>>,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    /// `--snapshot-count`: log entries between snapshots.
    pub snapshot_count: u64,
    /// `--experimental-snapshot-catchup-entries`: entries kept after a
    /// snapshot for members slightly behind ([`super::purge`]).
    pub catchup_entries: u64,
}

impl NodeConfig {
    /// etcd's request timeout: 5 s + 2 × the election timeout.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }
}

/// Raft position for Status and response headers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RaftPosition {
    pub leader: u64,
    pub term: u64,
    pub index: u64,
    pub applied: u64,
    pub is_learner: bool,
}

/// A member of the cluster as MemberList shows it.
#[derive(Debug, Clone)]
pub(crate) struct MemberInfo {
    pub id: u64,
    pub node: MemberNode,
    pub is_learner: bool,
}

pub(crate) struct RaftNode {
    pub raft: Raft,
    pub config: NodeConfig,
    /// Linearizable reads waiting for a read index ([`batch_read_index`]).
    read_rounds: mpsc::Sender<oneshot::Sender<Result<u64, Error>>>,
    /// Peer clients by URL, reused across requests.
    clients: Mutex<HashMap<String, PeerClient<Channel>>>,
    /// TLS for https:// peer URLs.
    peer_tls: Option<TlsConnector>,
    /// When each member last answered (check-quorum, see [`Self::is_leader`]).
    contact: Arc<PeerContact>,
}

impl RaftNode {
    /// Opens the log under the store's data directory, starts openraft and,
    /// on a pristine member of a new cluster, initializes the membership
    /// (every initial member does so with the same members, which openraft
    /// allows).
    pub(crate) async fn start(
        config: NodeConfig,
        state: State,
        settle: Settle,
        peer_tls: Option<TlsConnector>,
    ) -> Result<Arc<Self>, Error> {
        let data_dir = settle.store.data_dir().to_path_buf();
        let log = LogStore::open(&data_dir)?;
        let pristine = log.is_pristine().map_err(|e| Error::Raft(e.to_string()))?;
        if log
            .step_down(config.id)
            .map_err(|e| Error::Raft(e.to_string()))?
        {
            tracing::info!("led before stopping: starting as a follower");
        }
        let metrics = settle.metrics.clone();
        let state_machine = StateMachine::new(state, settle)?;
        let election_ms = u64::try_from(config.election_timeout.as_millis()).unwrap_or(1000);
        let raft_config = Config {
            cluster_name: "rollcall".into(),
            heartbeat_interval: u64::try_from(config.heartbeat.as_millis()).unwrap_or(100),
            // openraft 0.9 makes a follower of a live leader wait its leader
            // lease (= election_timeout_max) plus its own random timeout in
            // [min, max) after the last heartbeat. With max = E and min = E/4
            // that is [1.25 E, 2 E), close to etcd's [E, 2 E) with its
            // check-quorum lease of E; max = 2 E would make it [3 E, 4 E).
            // etcd's 5× rule keeps E/4 above the heartbeat interval.
            election_timeout_min: election_ms / 4,
            election_timeout_max: election_ms,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count),
            snapshot_max_chunk_size: 1024 * 1024,
            // Never purged by openraft itself: `purge::run` decides, so
            // that a member catching up keeps the entries it still needs.
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Config::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let contact = Arc::new(PeerContact::default());
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network {
                metrics,
                tls: peer_tls.clone(),
                contact: contact.clone(),
            },
            log,
            state_machine,
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        if pristine && let Some(members) = &config.bootstrap {
            match raft.initialize(members.clone()).await {
                Ok(()) => tracing::info!(members = members.len(), "initialized a new cluster"),
                Err(RaftError::APIError(e)) => {
                    tracing::info!(reason = %e, "cluster already initialized")
                }
                Err(e) => return Err(Error::Raft(e.to_string())),
            }
        }
        let (read_rounds, waiting) = mpsc::channel(READS_WAITING);
        let node = Arc::new(Self {
            raft,
            config,
            read_rounds,
            clients: Mutex::new(HashMap::new()),
            peer_tls,
            contact,
        });
        tokio::spawn(batch_read_index(Arc::downgrade(&node), waiting));
        tokio::spawn(super::purge::run(
            node.raft.clone(),
            node.config.catchup_entries,
            node.contact.clone(),
        ));
        Ok(node)
    }

    pub(crate) fn id(&self) -> u64 {
        self.config.id
    }

    /// Whether this member leads and may act as leader: openraft made it
    /// leader and a quorum of voters answered it within the election
    /// timeout (etcd's check-quorum). A leader cut off from the majority
    /// stops here after one election timeout, so it neither renews leases
    /// nor expires them while the majority elects another.
    pub(crate) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.config.id)
            && m.state == ServerState::Leader
            && self.hears_quorum(&m)
    }

    /// The leader this member knows of; `None` while there is none, or
    /// while this member leads without a quorum's answers.
    pub(crate) fn leader(&self) -> Option<u64> {
        self.acting_leader(&self.raft.metrics().borrow())
    }

    /// openraft's leader in `m`, unless that is this member without a
    /// quorum's answers.
    fn acting_leader(&self, m: &openraft::RaftMetrics<u64, MemberNode>) -> Option<u64> {
        match m.current_leader {
            Some(id) if id == self.config.id && !self.hears_quorum(m) => None,
            leader => leader,
        }
    }

    fn hears_quorum(&self, m: &openraft::RaftMetrics<u64, MemberNode>) -> bool {
        let voters = m.membership_config.membership().voter_ids();
        self.contact.has_quorum(
            self.config.id,
            voters,
            self.config.election_timeout,
            std::time::Instant::now(),
        )
    }

    pub(crate) fn position(&self) -> RaftPosition {
        let m = self.raft.metrics();
        let m = m.borrow();
        RaftPosition {
            leader: self.acting_leader(&m).unwrap_or(0),
            term: m.current_term,
            index: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map_or(0, |l| l.index),
            is_learner: m.state == ServerState::Learner,
        }
    }

    pub(crate) fn members(&self) -> Vec<MemberInfo> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                node: node.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// The current leader and a peer client of it, when there is one and
    /// it is not this member.
    fn leader_client(&self) -> Option<(u64, PeerClient<Channel>)> {
        let leader = self.leader()?;
        if leader == self.config.id {
            return None;
        }
        let url = self
            .members()
            .into_iter()
            .find(|m| m.id == leader)?
            .node
            .peer_urls
            .first()?
            .clone();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&url) {
            return Some((leader, client.clone()));
        }
        let client = peer_client(&url, self.peer_tls.as_ref()).ok()?;
        clients.insert(url, client.clone());
        Some((leader, client))
    }

    /// `call`'s answer, or `None` once this member no longer follows
    /// `leader` (an election started or another member won one): a call in
    /// flight to a paused or cut-off leader is abandoned then rather than at
    /// the request timeout, as etcd's follower abandons a read index on a
    /// leader change.
    async fn while_following<T>(
        &self,
        leader: u64,
        call: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let mut metrics = self.raft.metrics();
        tokio::select! {
            answer = call => Some(answer),
            _ = metrics.wait_for(|m| m.current_leader != Some(leader)) => None,
        }
    }

    /// Waits (bounded by `deadline`) until some member is leader. Polled as
    /// well as woken by openraft: a leader regaining its quorum's answers
    /// changes no raft metric.
    async fn wait_for_leader(&self, deadline: Instant) -> Result<(), Error> {
        let mut metrics = self.raft.metrics();
        loop {
            if self.leader().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::TimeoutDueToLeaderFail.into());
            }
            let poll =
                tokio::time::sleep_until(deadline.min(Instant::now() + self.config.heartbeat));
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return Err(Error::Stopped) },
                () = poll => {}
            }
        }
    }

    /// Between two tries of a call that found no usable leader: a timeout
    /// at `deadline`, otherwise a heartbeat for the leader change under way
    /// to settle.
    async fn before_retry(&self, deadline: Instant) -> Result<(), Error> {
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout.into());
        }
        tokio::time::sleep(self.config.heartbeat).await;
        Ok(())
    }

    /// Waits until this member applied `index`.
    pub(crate) async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), Error> {
        let mut metrics = self.raft.metrics();
        let wait = metrics.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index));
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(ClusterError::Timeout.into()),
        }
    }

    /// Proposes `commands` as one log entry and answers each, from the
    /// leader; a follower forwards them to the leader and answers once it
    /// applied the entry itself (so its client reads its own write).
    pub(crate) async fn propose(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Result<Applied, Refusal>>, Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            if self.is_leader() {
                let write = self.raft.client_write(Batch(commands.clone()));
                match tokio::time::timeout_at(deadline, write).await {
                    Ok(Ok(reply)) => return Ok(reply.data.0),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {}
                    Ok(Err(RaftError::APIError(e))) => return Err(Error::Raft(e.to_string())),
                    Ok(Err(RaftError::Fatal(_))) => return Err(Error::Stopped),
                    Err(_) => return Err(ClusterError::Timeout.into()),
                }
            } else if let Some((leader, mut client)) = self.leader_client() {
                let mut request = tonic::Request::new(codec::batch_to_pb(&commands));
                request.set_timeout(deadline.saturating_duration_since(Instant::now()));
                let Some(forwarded) = self.while_following(leader, client.forward(request)).await
                else {
                    // The batch may or may not commit: the client is told
                    // so, as etcd tells it of a proposal cut by a new leader.
                    return Err(ClusterError::LeaderChanged.into());
                };
                match forwarded {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        let results = codec::results_from_pb(reply.results.unwrap_or_default())
                            .map_err(|e| Error::Raft(e.to_string()))?;
                        self.wait_applied(reply.log_index, deadline).await?;
                        return Ok(results);
                    }
                    Err(status) => match ClusterError::from_message(status.message()) {
                        // The leader moved on; ask again.
                        Some(ClusterError::NotLeader | ClusterError::LeaderChanged) => {}
                        Some(other) => return Err(other.into()),
                        // The leader is down and never saw the batch.
                        None if never_sent(&status) => {}
                        // The leader may have committed the batch before the
                        // call broke: sending it again could apply it twice,
                        // so the client learns its outcome is unknown.
                        None => return Err(ClusterError::TimeoutDueToConnectionLost.into()),
                    },
                }
            } else {
                self.wait_for_leader(deadline).await?;
                continue;
            }
            self.before_retry(deadline).await?;
        }
    }

    /// The leader's side of a forwarded batch: propose it here, answering
    /// the results and the log index that carried them.
    pub(crate) async fn propose_as_leader(
        &self,
        commands: Vec<Command>,
    ) -> Result<(Vec<Result<Applied, Refusal>>, u64), Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        let write = self.raft.client_write(Batch(commands));
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(reply)) => Ok((reply.data.0, reply.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ClusterError::NotLeader.into())
            }
            Ok(Err(RaftError::APIError(e))) => Err(Error::Raft(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
            Err(_) => Err(ClusterError::Timeout.into()),
        }
    }

    /// The leader's read index: confirmed with a quorum, then the log index
    /// a linearizable read must see applied.
    pub(crate) async fn read_index_as_leader(&self) -> Result<u64, Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        match tokio::time::timeout_at(deadline, self.raft.get_read_log_id()).await {
            Ok(Ok((read, _))) => Ok(read.map_or(0, |l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                Err(ClusterError::NotLeader.into())
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(ClusterError::Timeout.into())
            }
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
            Err(_) => Err(ClusterError::Timeout.into()),
        }
    }

    /// Fences a linearizable read: returns once this member applied
    /// everything committed before the call. Concurrent reads share one
    /// read-index round (see [`batch_read_index`]).
    pub(crate) async fn read_barrier(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        let index = self.shared_read_index().await?;
        self.wait_applied(index, deadline).await
    }

    /// A read index obtained by a round that started after this call: the
    /// leader's commit index confirmed by a quorum.
    pub(crate) async fn shared_read_index(&self) -> Result<u64, Error> {
        let (reply, answer) = oneshot::channel();
        self.read_rounds
            .send(reply)
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// One read-index round: from the leader itself, or asked of it by a
    /// follower, retried across leader changes until the request timeout.
    async fn fetch_read_index(&self) -> Result<u64, Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let index = if self.is_leader() {
                match self.read_index_as_leader().await {
                    Ok(index) => Some(index),
                    Err(Error::Cluster(ClusterError::NotLeader)) => None,
                    Err(e) => return Err(e),
                }
            } else if let Some((leader, mut client)) = self.leader_client() {
                let mut request = tonic::Request::new(ReadIndexRequest {});
                request.set_timeout(deadline.saturating_duration_since(Instant::now()));
                match self
                    .while_following(leader, client.read_index(request))
                    .await
                {
                    Some(Ok(reply)) => Some(reply.into_inner().index),
                    Some(Err(status)) => match ClusterError::from_message(status.message()) {
                        Some(ClusterError::NotLeader | ClusterError::LeaderChanged) | None => None,
                        Some(other) => return Err(other.into()),
                    },
                    // A read index is safe to ask again, of the new leader.
                    None => None,
                }
            } else {
                self.wait_for_leader(deadline).await?;
                continue;
            };
            if let Some(index) = index {
                return Ok(index);
            }
            self.before_retry(deadline).await?;
        }
    }

    /// Runs `call` against the leader's peer service (a follower's lease
    /// keep-alives and TimeToLive), retrying across leader changes until
    /// the request timeout. `None` means this member is the leader.
    pub(crate) async fn on_leader<T, F, Fut>(&self, call: F) -> Result<Option<T>, Error>
    where
        F: Fn(PeerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            if self.is_leader() {
                return Ok(None);
            }
            if let Some((leader, client)) = self.leader_client() {
                let called = tokio::time::timeout_at(deadline, call(client));
                match self.while_following(leader, called).await {
                    Some(Ok(Ok(answer))) => return Ok(Some(answer)),
                    Some(Ok(Err(status))) => match ClusterError::from_message(status.message()) {
                        Some(ClusterError::NotLeader | ClusterError::LeaderChanged) | None => {}
                        Some(other) => return Err(other.into()),
                    },
                    Some(Err(_)) => return Err(ClusterError::Timeout.into()),
                    // Keep-alives and TimeToLive are safe to ask again.
                    None => {}
                }
            } else {
                self.wait_for_leader(deadline).await?;
                continue;
            }
            self.before_retry(deadline).await?;
        }
    }

    /// The leader's side of a member publishing its attributes: record
    /// `node` for member `id` in the membership (through the log).
    pub(crate) async fn record_attributes(&self, id: u64, node: MemberNode) -> Result<(), Error> {
        let known = self.members().into_iter().any(|m| m.id == id);
        if !known {
            return Err(Error::Raft(format!("member {id:x} is not in the cluster")));
        }
        let change = openraft::ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
        let deadline = Instant::now() + self.config.request_timeout();
        match tokio::time::timeout_at(deadline, self.raft.change_membership(change, true)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ClusterError::NotLeader.into())
            }
            Ok(Err(e)) => Err(Error::Raft(e.to_string())),
            Err(_) => Err(ClusterError::Timeout.into()),
        }
    }

    /// Publishes this member's attributes (`me`: name, peer and client
    /// URLs) until the membership shows them, as etcd publishes a started
    /// member's attributes; then returns. Gives up when `stop` turns true.
    pub(crate) async fn publish_self(
        self: Arc<Self>,
        me: MemberNode,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let current = self.members().into_iter().find(|m| m.id == self.config.id);
            match current {
                Some(m) if m.node == me => return,
                // Not (yet) a member: a joining member waits for the log.
                None => {}
                Some(_) => {
                    let result = if self.is_leader() {
                        self.record_attributes(self.config.id, me.clone()).await
                    } else if let Some((_, mut client)) = self.leader_client() {
                        let request = rollcall_proto::rollcallraftpb::PublishRequest {
                            id: self.config.id,
                            name: me.name.clone(),
                            peer_urls: me.peer_urls.clone(),
                            client_urls: me.client_urls.clone(),
                        };
                        client
                            .publish(request)
                            .await
                            .map(|_| ())
                            .map_err(|s| Error::Raft(s.message().to_string()))
                    } else {
                        Ok(())
                    };
                    match result {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "publishing member attributes; will retry")
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.election_timeout) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }
}
