//! The pure step of the write path: a batch of commands applied to the
//! in-memory state and one redb write transaction, with the outcome handed
//! back for the post-commit step.
//!
//! Invariants:
//! * each command that changes the key space gets the next revision, in
//!   batch order; a refused command and a delete that deletes nothing get
//!   none;
//! * a refused command leaves no trace: no revision, no event, no lease or
//!   alarm change (checked here: a command that refused after writing is a
//!   bug and fails the batch instead of publishing half of it);
//! * the applied index advances by the number of commands, refused ones
//!   included, in the same transaction as their effects.

use std::collections::HashSet;

use redb::{ReadableTable, WriteTransaction};
use rollcall_proto::mvccpb::Event;

use super::command::{self, Applied, Command};
use super::side_state::{SideChange, SideState};
use crate::error::{Error, Refusal};
use crate::mvcc::{Record, Revision, WriteTxn};
use crate::state::State;
use crate::storage::{ALARMS, HISTORY, LEASE_CHECKPOINTS, LEASES, META, MetaKey};

/// What a batch did, for the post-commit step to make visible.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    /// One result per command, in order.
    pub results: Vec<Result<Applied, Refusal>>,
    /// The events of each revision the batch created, in revision order.
    pub events: Vec<(i64, Vec<Event>)>,
    /// Lease and alarm changes, to replay on the tables readers see.
    pub side_log: Vec<SideChange>,
    /// A compaction the batch performed on the index: its revision and the
    /// history records at or below it that the index still points at; the
    /// rest may be deleted once the batch is durable.
    pub compaction: Option<(i64, HashSet<Revision>)>,
}

/// Applies `commands` in order to `state` and to the tables of `txn`, and
/// records the new revisions and applied index in `txn`. Does not commit.
///
/// An `Err` is a failure of this member's storage or a broken invariant,
/// never a refusal: `state` may then be ahead of `txn`, and the caller must
/// abandon both.
pub(crate) fn apply_batch<'c>(
    state: &mut State,
    txn: &WriteTransaction,
    commands: impl IntoIterator<Item = &'c Command>,
) -> Result<BatchOutcome, Error> {
    let mut history = txn.open_table(HISTORY)?;
    let mut meta = txn.open_table(META)?;
    let mut lease_rows = txn.open_table(LEASES)?;
    let mut checkpoint_rows = txn.open_table(LEASE_CHECKPOINTS)?;
    let mut alarm_rows = txn.open_table(ALARMS)?;
    let mut outcome = BatchOutcome::default();
    for command in commands {
        let mut write = WriteTxn {
            index: &mut state.index,
            history: &mut history,
            begin_rev: state.rev,
            compact_rev: state.compact_rev,
            changes: Vec::new(),
        };
        let side_log_len = outcome.side_log.len();
        let mut side = SideState::new(
            &mut state.leases,
            &mut lease_rows,
            &mut checkpoint_rows,
            &mut state.alarms,
            &mut alarm_rows,
            &mut outcome.side_log,
        );
        let result = match command::apply(&mut write, &mut side, command) {
            Ok(applied) => Ok(applied),
            Err(Error::Refused(refusal)) => Err(refusal),
            Err(failure) => return Err(failure),
        };
        if result.is_err() && (!write.changes.is_empty() || outcome.side_log.len() != side_log_len)
        {
            return Err(Error::Internal("a refused command changed the state"));
        }
        state.rev = write.rev();
        state.compact_rev = write.compact_rev;
        if !write.changes.is_empty() {
            let events = write.changes.drain(..).map(Record::into_event).collect();
            outcome.events.push((state.rev, events));
        }
        if let Ok(Applied::Compact(_, at)) = &result {
            // Pruned here, in the working copy readers cannot see; they get
            // the pruned index with the snapshot that carries the new
            // compact revision.
            let keep = state.index.compact(*at);
            outcome.compaction = Some((*at, keep));
        }
        outcome.results.push(result);
    }
    let applied = meta
        .get(MetaKey::AppliedIndex.as_str())?
        .map_or(0, |v| v.value());
    meta.insert(
        MetaKey::AppliedIndex.as_str(),
        applied + outcome.results.len() as u64,
    )?;
    meta.insert(
        MetaKey::CurrentRevision.as_str(),
        u64::try_from(state.rev).unwrap_or(0),
    )?;
    meta.insert(
        MetaKey::CompactRevisionPlusOne.as_str(),
        u64::try_from(state.compact_rev + 1).unwrap_or(0),
    )?;
    Ok(outcome)
}
