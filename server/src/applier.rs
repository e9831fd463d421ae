//! The applier thread of a single member (no `--initial-cluster`), the only
//! writer: it drains whatever the [`Proposer`](crate::proposer::Proposer) has
//! queued, applies it with the pure step ([`apply::apply_batch`]) inside ONE
//! redb write transaction, commits once (one fsync for the whole batch: group
//! commit), and then runs the post-commit step ([`Settle`]), and only then
//! is each caller answered. In a cluster, the replicated state machine
//! (`raft/state_machine.rs`) takes its place with the same two steps.
//!
//! The applier keeps its own working copy of the state ([`State`]); readers
//! see only what `settle` publishes after a commit, so nothing of a batch is
//! visible before it is durable, and nothing is published for a command that
//! was refused (it has no events and no lease or alarm changes).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::apply::{self, Applied, Command};
use crate::error::Error;
use crate::settle::Settle;
use crate::state::State;

/// Most commands applied in one transaction; bounds the latency a caller can
/// wait behind others and the memory a batch holds.
pub(crate) const MAX_BATCH: usize = 1024;

/// A command waiting for the applier, with the caller to answer.
pub(crate) struct Proposal {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<Applied, Error>>,
}

/// What the applier thread is asked to do.
pub(crate) enum Work {
    Apply(Proposal),
    /// Local maintenance, not replicated: compact the database file between
    /// batches, answering how long writes were held off.
    Defragment(oneshot::Sender<Result<Duration, Error>>),
}

pub(crate) struct Applier {
    /// The working copy `apply_batch` changes; ahead of what readers see
    /// while a batch is in flight.
    state: State,
    settle: Settle,
    rx: mpsc::Receiver<Work>,
}

impl Applier {
    pub(crate) fn new(state: State, settle: Settle, rx: mpsc::Receiver<Work>) -> Self {
        Self { state, settle, rx }
    }

    pub(crate) fn run(mut self) -> Result<(), Error> {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.blocking_recv() {
            let mut next = Some(first);
            // Drain what is queued, up to a defragmentation request.
            let mut defragment = None;
            while let Some(work) = next.take() {
                match work {
                    Work::Apply(proposal) => batch.push(proposal),
                    Work::Defragment(reply) => {
                        defragment = Some(reply);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            if !batch.is_empty()
                && let Err(e) = self.apply_and_commit(&mut batch)
            {
                tracing::error!(error = %e, "storage failure in the applier; stopping writes");
                self.settle
                    .metrics
                    .proposals_failed
                    .inc_by(batch.len() as u64);
                for proposal in batch.drain(..) {
                    let _ = proposal.reply.send(Err(Error::Stopped));
                }
                return Err(e);
            }
            if let Some(reply) = defragment {
                let started = Instant::now();
                let store = &self.settle.store;
                let result = store.defragment().map(|()| started.elapsed());
                if let Ok(took) = &result {
                    tracing::info!(took = ?took, size = store.db_size(), "defragmented the database");
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    /// Applies and commits one batch, then settles it. An `Err` is a storage
    /// failure: the working state may then be ahead of the disk, so the
    /// caller stops.
    fn apply_and_commit(&mut self, batch: &mut Vec<Proposal>) -> Result<(), Error> {
        let outcome = {
            let db = self.settle.store.db();
            let txn = db.begin_write()?;
            let outcome =
                apply::apply_batch(&mut self.state, &txn, batch.iter().map(|p| &p.command))?;
            let commit_started = Instant::now();
            txn.commit()?;
            self.settle
                .metrics
                .backend_commit_seconds
                .observe(commit_started.elapsed().as_secs_f64());
            outcome
        };
        let results = self.settle.settle(&self.state, outcome)?;
        for (proposal, result) in batch.drain(..).zip(results) {
            let _ = proposal.reply.send(result.map_err(Error::Refused));
        }
        Ok(())
    }
}
