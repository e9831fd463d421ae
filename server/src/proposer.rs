//! The single way into the write path: every mutation is a [`Command`] handed
//! to the [`Proposer`], which waits for its durable result. An acknowledged
//! write is therefore durable.
//!
//! Two backends sit behind it:
//! * a single member (no `--initial-cluster`) hands commands straight to the
//!   one applier thread (`applier.rs`), which group-commits them;
//! * a cluster member queues them for a batcher task that drains the queue
//!   into one log entry per batch (`raft::node::RaftNode::propose`), so one
//!   append, one replication message and one apply transaction serve many
//!   requests; a few batches are in flight at once.
//!
//! It also fences linearizable reads (trivial on a single member, a read
//! index in a cluster).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::applier::{Applier, MAX_BATCH, Proposal, Work};
use crate::apply::{Applied, Command};
use crate::error::Error;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::raft::node::RaftNode;
use crate::settle::Settle;
use crate::state::State;
use crate::watch::WatchHub;

/// Batches proposed to the cluster at once: while they replicate, the next
/// batch fills.
const BATCHES_IN_FLIGHT: usize = 4;

/// Hands commands to the applier and waits for their durable result.
#[derive(Clone)]
pub(crate) struct Proposer {
    backend: Backend,
    /// Writes handed in and not yet answered (`etcd_server_proposals_pending`).
    pending: Gauge,
}

/// Counts one write as pending for as long as it lives, so a caller that
/// gives up (a canceled request) still stops counting.
struct Pending(Gauge);

impl Pending {
    fn start(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Clone)]
enum Backend {
    Local(mpsc::Sender<Work>),
    Replicated {
        queue: mpsc::Sender<Proposal>,
        node: Arc<RaftNode>,
        store: Store,
    },
}

impl Proposer {
    /// Starts the applier thread of a single member over `store`, with
    /// `state` its working copy (both from `State::open`). The thread ends
    /// when every `Proposer` clone is dropped, or on a storage error it
    /// cannot recover from; its handle then yields that error.
    pub(crate) fn start(
        store: Store,
        state: State,
        lessor: Arc<Lessor>,
        hub: Arc<WatchHub>,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<Result<(), Error>>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let pending = metrics.proposals_pending.clone();
        let settle = Settle {
            store,
            lessor,
            hub,
            metrics,
        };
        let applier = Applier::new(state, settle, rx);
        // The applier stamps lease deadlines with tokio's clock; inside the
        // caller's runtime context that is the runtime's clock, which tests
        // can pause and advance, rather than the wall clock.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let handle = std::thread::Builder::new()
            .name("rollcall-applier".into())
            .spawn(move || {
                let _context = runtime.as_ref().map(tokio::runtime::Handle::enter);
                applier.run()
            })
            .unwrap_or_else(|e| panic!("cannot spawn the applier thread: {e}"));
        (
            Self {
                backend: Backend::Local(tx),
                pending,
            },
            handle,
        )
    }

    /// A proposer of a cluster member: batches go through `node`'s log.
    /// The batcher task ends when every `Proposer` clone is dropped.
    pub(crate) fn replicated(node: Arc<RaftNode>, store: Store, metrics: &Metrics) -> Self {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(batch_loop(
            node.clone(),
            rx,
            metrics.proposals_failed.clone(),
        ));
        Self {
            backend: Backend::Replicated { queue, node, store },
            pending: metrics.proposals_pending.clone(),
        }
    }

    /// The cluster member behind this proposer, if it is one.
    pub(crate) fn node(&self) -> Option<&Arc<RaftNode>> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Replicated { node, .. } => Some(node),
        }
    }

    /// True once no write can commit any more through this member.
    pub(crate) fn is_stopped(&self) -> bool {
        match &self.backend {
            Backend::Local(tx) => tx.is_closed(),
            Backend::Replicated { queue, node, .. } => {
                queue.is_closed() || node.raft.metrics().borrow().running_state.is_err()
            }
        }
    }

    /// True when this member runs the leader-only duties (the lease clock
    /// and expiry, auto-compaction): a single member always, a cluster
    /// member only while it leads (followers never expire anything).
    pub(crate) fn leads(&self) -> bool {
        self.node().is_none_or(|node| node.is_leader())
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, Error> {
        let _pending = Pending::start(&self.pending);
        let (reply, rx) = oneshot::channel();
        let proposal = Proposal { command, reply };
        match &self.backend {
            Backend::Local(tx) => tx
                .send(Work::Apply(proposal))
                .await
                .map_err(|_| Error::Stopped)?,
            Backend::Replicated { queue, .. } => {
                queue.send(proposal).await.map_err(|_| Error::Stopped)?;
            }
        }
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Returns once a read of local state is linearizable: at once on a
    /// single member, after a read index in a cluster.
    pub(crate) async fn read_barrier(&self) -> Result<(), Error> {
        match self.node() {
            None => Ok(()),
            Some(node) => node.read_barrier().await,
        }
    }

    /// Defragments the database; returns how long writes (and reads) waited.
    pub(crate) async fn defragment(&self) -> Result<Duration, Error> {
        match &self.backend {
            Backend::Local(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Work::Defragment(reply))
                    .await
                    .map_err(|_| Error::Stopped)?;
                rx.await.map_err(|_| Error::Stopped)?
            }
            // The store's exclusive lock keeps the state machine out meanwhile.
            Backend::Replicated { store, .. } => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    store.defragment().map(|()| started.elapsed())
                })
                .await
                .map_err(|_| Error::Stopped)?
            }
        }
    }
}

/// Drains queued proposals into batches and proposes each as one log entry;
/// a batch that could not be committed (no leader, timeout, leader change)
/// counts in `failed` (`etcd_server_proposals_failed_total`).
async fn batch_loop(
    node: Arc<RaftNode>,
    mut rx: mpsc::Receiver<Proposal>,
    failed: prometheus_client::metrics::counter::Counter,
) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Drained after the permit: while earlier batches replicate, this
        // one grows.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(proposal) => batch.push(proposal),
                Err(_) => break,
            }
        }
        let node = node.clone();
        let failed = failed.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.command, p.reply)).unzip();
            match node.propose(commands).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result.map_err(Error::Refused));
                    }
                }
                Err(e) => {
                    failed.inc_by(replies.len() as u64);
                    for reply in replies {
                        let _ = reply.send(Err(e.shareable()));
                    }
                }
            }
            drop(permit);
        });
    }
}
