//! The applier thread, the only writer: it drains whatever the
//! [`Proposer`](crate::proposer::Proposer) has queued, applies it with the
//! pure step ([`apply::apply_batch`]) inside ONE redb write transaction,
//! commits once (one fsync for the whole batch: group commit), and then runs
//! the post-commit step, [`Applier::settle`]: the lessor learns of granted
//! and revoked leases, readers get the new snapshot, compacted history is
//! deleted, watchers get the events, metrics count the batch, and only then
//! is each caller answered.
//!
//! The applier keeps its own working copy of the state ([`State`]); readers
//! see only what `settle` publishes after a commit, so nothing of a batch is
//! visible before it is durable, and nothing is published for a command that
//! was refused (it has no events and no lease or alarm changes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::apply::{self, Applied, BatchOutcome, Command};
use crate::error::{Error, Refusal};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::mvcc::store::{Snapshot, delete_compacted};
use crate::state::State;
use crate::watch::WatchHub;

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
    store: Store,
    /// The working copy `apply_batch` changes; ahead of what readers see
    /// while a batch is in flight.
    state: State,
    /// Told about granted and revoked leases once they are durable.
    lessor: Arc<Lessor>,
    /// Told about every committed event before the writers are answered.
    hub: Arc<WatchHub>,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<Work>,
}

impl Applier {
    pub(crate) fn new(
        store: Store,
        state: State,
        lessor: Arc<Lessor>,
        hub: Arc<WatchHub>,
        metrics: Arc<Metrics>,
        rx: mpsc::Receiver<Work>,
    ) -> Self {
        Self {
            state,
            store,
            lessor,
            hub,
            metrics,
            rx,
        }
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
                self.metrics.proposals_failed.inc_by(batch.len() as u64);
                for proposal in batch.drain(..) {
                    let _ = proposal.reply.send(Err(Error::Stopped));
                }
                return Err(e);
            }
            if let Some(reply) = defragment {
                let started = Instant::now();
                let result = self.store.defragment().map(|()| started.elapsed());
                if let Ok(took) = &result {
                    tracing::info!(took = ?took, size = self.store.db_size(), "defragmented the database");
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
            let db = self.store.db();
            let txn = db.begin_write()?;
            let outcome =
                apply::apply_batch(&mut self.state, &txn, batch.iter().map(|p| &p.command))?;
            let commit_started = Instant::now();
            txn.commit()?;
            self.metrics
                .backend_commit_seconds
                .observe(commit_started.elapsed().as_secs_f64());
            outcome
        };
        self.settle(batch, outcome)
    }

    /// The post-commit step: everything that makes a durable batch visible.
    fn settle(&mut self, batch: &mut Vec<Proposal>, outcome: BatchOutcome) -> Result<(), Error> {
        let BatchOutcome {
            results,
            events,
            side_log,
            compaction,
        } = outcome;
        self.record(&results, &events);
        // Deadlines exist before the leases become visible, so a TimeToLive
        // right after a grant sees the full TTL. In command order: a batch
        // may revoke a lease and grant the same id again (ids are the
        // client's choice), and the grant must win.
        let now = tokio::time::Instant::now();
        for result in &results {
            match result {
                Ok(Applied::LeaseGrant(granted)) => self.lessor.start(granted.id, granted.ttl, now),
                Ok(Applied::LeaseRevoke(_, id)) => self.lessor.forget(*id),
                _ => {}
            }
        }
        self.store.publish(
            Snapshot {
                index: self.state.index.clone(),
                rev: self.state.rev,
                compact_rev: self.state.compact_rev,
            },
            |leases, alarms| {
                for change in &side_log {
                    change.replay(leases, alarms);
                }
            },
        );
        if let Some((at, keep)) = compaction {
            // Logically compacted already (durable above, and readers were
            // just given the pruned index); this only frees space.
            delete_compacted(&self.store.db(), at, &keep)?;
        }
        self.store.refresh_size();
        if !events.is_empty() {
            self.hub.publish(&events, self.state.rev);
        }
        for (proposal, result) in batch.drain(..).zip(results) {
            let _ = proposal.reply.send(result.map_err(Error::Refused));
        }
        Ok(())
    }

    /// Counts what a committed batch did.
    fn record(
        &self,
        results: &[Result<Applied, Refusal>],
        events: &[(i64, Vec<rollcall_proto::mvccpb::Event>)],
    ) {
        let m = &self.metrics;
        m.batch_size.observe(results.len() as f64);
        // As in etcd, a command refused by apply (unknown lease, compacted
        // revision...) was still committed; "failed" means it never committed.
        m.proposals_committed.inc_by(results.len() as u64);
        for result in results {
            match result {
                Ok(Applied::LeaseGrant(_)) => {
                    m.lease_granted.inc();
                }
                Ok(Applied::LeaseRevoke(..)) => {
                    m.lease_revoked.inc();
                }
                _ => {}
            }
        }
        for event in events.iter().flat_map(|(_, evs)| evs) {
            let created = event.kv.as_ref().is_some_and(|kv| kv.version == 1);
            if event.r#type == rollcall_proto::mvccpb::event::EventType::Put as i32 {
                m.put_total.inc();
                if created {
                    m.keys_total.inc();
                }
            } else {
                m.delete_total.inc();
                m.keys_total.dec();
            }
        }
    }
}
