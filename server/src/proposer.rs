//! The single writer. Every mutation is a [`Command`] handed to the
//! [`Proposer`]; one applier thread drains whatever is queued, applies it in
//! order inside ONE redb write transaction, commits once (one fsync for the
//! whole batch: group commit), publishes the new committed revision, and only
//! then answers each caller. An acknowledged write is therefore durable.
//!
//! On a single member the proposer hands commands straight to the applier; in
//! a cluster it will append them to the replicated log first, with the same
//! applier behind it.

use std::sync::Arc;
use std::thread::JoinHandle;

use std::time::{Duration, Instant};

use redb::ReadableTable;
use tokio::sync::{mpsc, oneshot};

use crate::alarm::AlarmSet;
use crate::apply::{self, Applied, Command, SideState};
use crate::error::Error;
use crate::lease::{LeaseTable, Lessor};
use crate::metrics::Metrics;
use crate::mvcc::store::delete_compacted;
use crate::mvcc::{Record, Store, WriteTxn};
use crate::storage::{ALARMS, HISTORY, LEASES, META, MetaKey};
use crate::watch::WatchHub;

/// Most commands applied in one transaction; bounds the latency a caller can
/// wait behind others and the memory a batch holds.
const MAX_BATCH: usize = 1024;

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<Applied, Error>>,
}

/// What the applier thread is asked to do.
enum Work {
    Apply(Proposal),
    /// Local maintenance, not replicated: compact the database file between
    /// batches, answering how long writes were held off.
    Defragment(oneshot::Sender<Result<Duration, Error>>),
}

/// Hands commands to the applier and waits for their durable result.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Work>,
}

impl Proposer {
    /// Starts the applier thread over `store`. The thread ends when every
    /// `Proposer` clone is dropped, or on a storage error it cannot recover
    /// from; its handle then yields that error.
    pub fn start(
        store: Store,
        lessor: Arc<Lessor>,
        hub: Arc<WatchHub>,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<Result<(), Error>>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let handle = std::thread::Builder::new()
            .name("rollcall-applier".into())
            .spawn(move || {
                let (leases, alarms) = {
                    let committed = store.read_committed();
                    (committed.leases.clone(), committed.alarms.clone())
                };
                Applier {
                    leases,
                    alarms,
                    store,
                    lessor,
                    hub,
                    metrics,
                    rx,
                }
                .run()
            })
            .unwrap_or_else(|e| panic!("cannot spawn the applier thread: {e}"));
        (Self { tx }, handle)
    }

    /// True once the applier has stopped: no write can commit any more.
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    pub async fn propose(&self, command: Command) -> Result<Applied, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Work::Apply(Proposal { command, reply }))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Defragments the database; returns how long writes (and reads) waited.
    pub async fn defragment(&self) -> Result<Duration, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Work::Defragment(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

impl Applier {
    /// Counts what a committed batch did.
    fn record(
        &self,
        results: &[Result<Applied, Error>],
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

struct Applier {
    store: Store,
    /// Told about granted and revoked leases once they are durable.
    lessor: Arc<Lessor>,
    /// Told about every committed event before the writers are answered.
    hub: Arc<WatchHub>,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<Work>,
    /// The applier's working copies of the side state; readers see the
    /// published ones in `Committed`, updated after each commit.
    leases: LeaseTable,
    alarms: AlarmSet,
}

impl Applier {
    fn run(mut self) -> Result<(), Error> {
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
                && let Err(e) = self.apply_batch(&mut batch)
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

    /// Applies, commits and answers one batch. An `Err` is a storage failure:
    /// the in-memory index may then be ahead of the disk, so the caller stops.
    fn apply_batch(&mut self, batch: &mut Vec<Proposal>) -> Result<(), Error> {
        let db = self.store.db();
        let txn = db.begin_write()?;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut side_log = Vec::new();
        let (rev, compact_rev, compaction) = {
            let mut history = txn.open_table(HISTORY)?;
            let mut meta = txn.open_table(META)?;
            let mut lease_rows = txn.open_table(LEASES)?;
            let mut alarm_rows = txn.open_table(ALARMS)?;
            let mut committed = self.store.write_committed();
            let committed = &mut *committed;
            let mut rev = committed.rev;
            let mut compact_rev = committed.compact_rev;
            let mut compaction = None;
            for proposal in batch.iter() {
                let mut write = WriteTxn {
                    index: &mut committed.index,
                    history: &mut history,
                    begin_rev: rev,
                    compact_rev,
                    changes: Vec::new(),
                };
                let mut side = SideState::new(
                    &mut self.leases,
                    &mut lease_rows,
                    &mut self.alarms,
                    &mut alarm_rows,
                    &mut side_log,
                );
                let result = apply::apply(&mut write, &mut side, &proposal.command);
                rev = write.rev();
                compact_rev = write.compact_rev;
                if !write.changes.is_empty() {
                    events.push((
                        rev,
                        write
                            .changes
                            .drain(..)
                            .map(Record::into_event)
                            .collect::<Vec<_>>(),
                    ));
                }
                match &result {
                    Err(Error::Storage(_) | Error::CorruptRecord { .. }) => {
                        return Err(result.err().unwrap_or(Error::Stopped));
                    }
                    Ok(Applied::Compact(_, at)) => compaction = Some(*at),
                    _ => {}
                }
                results.push(result);
            }
            let applied = meta
                .get(MetaKey::AppliedIndex.as_str())?
                .map_or(0, |v| v.value());
            meta.insert(MetaKey::AppliedIndex.as_str(), applied + batch.len() as u64)?;
            meta.insert(
                MetaKey::CurrentRevision.as_str(),
                u64::try_from(rev).unwrap_or(0),
            )?;
            meta.insert(
                MetaKey::CompactRevisionPlusOne.as_str(),
                u64::try_from(compact_rev + 1).unwrap_or(0),
            )?;
            (rev, compact_rev, compaction)
        };
        let commit_started = std::time::Instant::now();
        txn.commit()?;
        self.metrics
            .backend_commit_seconds
            .observe(commit_started.elapsed().as_secs_f64());
        self.record(&results, &events);

        // Deadlines exist before the leases become visible, so a TimeToLive
        // right after a grant sees the full TTL.
        let now = tokio::time::Instant::now();
        for result in &results {
            if let Ok(Applied::LeaseGrant(granted)) = result {
                self.lessor.start(granted.id, granted.ttl, now);
            }
        }
        let keep = {
            let mut committed = self.store.write_committed();
            let committed = &mut *committed;
            committed.rev = rev;
            committed.compact_rev = compact_rev;
            for change in &side_log {
                change.replay(&mut committed.leases, &mut committed.alarms);
            }
            compaction.map(|at| committed.index.compact(at))
        };
        for result in &results {
            if let Ok(Applied::LeaseRevoke(_, id)) = result {
                self.lessor.forget(*id);
            }
        }
        if let (Some(at), Some(keep)) = (compaction, keep) {
            // Logically compacted already (durable above); this only frees space.
            delete_compacted(&db, at, &keep)?;
        }
        self.store.refresh_size();
        if !events.is_empty() {
            self.hub.publish(&events, rev);
        }
        for (proposal, result) in batch.drain(..).zip(results) {
            let _ = proposal.reply.send(result);
        }
        Ok(())
    }
}
