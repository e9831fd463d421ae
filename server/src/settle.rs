//! The post-commit step of the write path, shared by both sequencers of
//! batches (the single member's applier thread, `applier.rs`, and the
//! replicated state machine, `raft/state_machine.rs`): once a batch's
//! transaction has committed, the lessor learns of granted and revoked
//! leases, readers get the new snapshot, compacted history is deleted,
//! watchers get the events and metrics count the batch. The caller then
//! answers the writers with the results it is handed back.

use std::sync::Arc;

use crate::apply::{Applied, BatchOutcome};
use crate::error::{Error, Refusal};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::mvcc::store::{Snapshot, delete_compacted};
use crate::state::State;
use crate::watch::WatchHub;

/// Everything a committed batch is made visible to.
#[derive(Clone)]
pub(crate) struct Settle {
    pub store: Store,
    /// Told about granted and revoked leases once they are durable.
    pub lessor: Arc<Lessor>,
    /// Told about every committed event before the writers are answered.
    pub hub: Arc<WatchHub>,
    pub metrics: Arc<Metrics>,
}

impl Settle {
    /// Makes the committed `outcome` visible; `state` is the working state
    /// the batch left behind. Returns each command's result, in order.
    pub(crate) fn settle(
        &self,
        state: &State,
        outcome: BatchOutcome,
    ) -> Result<Vec<Result<Applied, Refusal>>, Error> {
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
                index: state.index.clone(),
                rev: state.rev,
                compact_rev: state.compact_rev,
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
            self.hub.publish(&events, state.rev);
        }
        Ok(results)
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
