//! The replicated state machine: openraft decides *when* committed entries
//! are applied, the pure step ([`apply::apply_batch`]) decides *what* they
//! do. One `apply` call applies every newly committed entry in ONE redb
//! write transaction of the member's database, which also records the last
//! applied log id and membership (table `raft_state`); then the post-commit
//! step ([`Settle`]) makes the batch visible and the results go back to
//! openraft, which answers the proposer.
//!
//! Durability: the log append is the durable point of a write
//! (`log_store.rs`). The state machine commits without an fsync, and makes
//! its state durable at most a second apart and before every snapshot; after
//! a crash it reopens at its last durable commit and openraft re-applies the
//! log from there. Snapshots are built only from durable state, so the log
//! is never purged past what a crash could lose.

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta};
use redb::{Durability, ReadableDatabase};

use super::applied::{self, sm_err, sm_read_err};
use super::snapshot::{self, SnapshotFiles};
use super::types::{
    BatchResults, Entry, LogId, MemberNode, StorageError, StoredMembership, TypeConfig,
};
use crate::apply::{self, Command};
use crate::error::Error;
use crate::settle::Settle;
use crate::state::State;

/// Longest time applied state may stay in memory and the OS cache only.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// The state machine of one member.
pub(crate) struct StateMachine {
    /// The applier's working state; `None` only while a blocking apply runs
    /// (or after a storage failure, which stops this member).
    state: Option<State>,
    settle: Settle,
    files: SnapshotFiles,
    last_durable: Instant,
}

impl StateMachine {
    pub(crate) fn new(state: State, settle: Settle) -> Result<Self, Error> {
        let files = SnapshotFiles::open(settle.store.data_dir())?;
        Ok(Self {
            state: Some(state),
            settle,
            files,
            last_durable: Instant::now(),
        })
    }

    /// The last applied log id and membership, as committed.
    pub(crate) fn read_applied(
        db: &redb::Database,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        applied::read_applied_in(&db.begin_read().map_err(sm_read_err)?)
    }

    /// Makes every commit so far durable (an empty commit with an fsync).
    fn make_durable(&mut self) -> Result<(), StorageError> {
        let db = self.settle.store.db();
        let txn = db.begin_write().map_err(sm_err)?;
        txn.commit().map_err(sm_err)?;
        self.last_durable = Instant::now();
        Ok(())
    }
}

/// Applies `entries` in one transaction; runs on a blocking thread.
fn apply_entries(
    state: &mut State,
    settle: &Settle,
    entries: &[Entry],
    durable: bool,
) -> Result<Vec<BatchResults>, StorageError> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok(Vec::new());
    };
    let db = settle.store.db();
    let (_, mut membership) = StateMachine::read_applied(&db)?;
    let mut txn = db.begin_write().map_err(sm_err)?;
    if !durable {
        txn.set_durability(Durability::None).map_err(sm_err)?;
    }
    let mut commands: Vec<&Command> = Vec::new();
    let mut counts = Vec::with_capacity(entries.len());
    for entry in entries {
        match &entry.payload {
            EntryPayload::Normal(batch) => {
                commands.extend(batch.0.iter());
                counts.push(batch.0.len());
            }
            EntryPayload::Membership(m) => {
                membership = StoredMembership::new(Some(entry.log_id), m.clone());
                counts.push(0);
            }
            EntryPayload::Blank => counts.push(0),
        }
    }
    let outcome = apply::apply_batch(state, &txn, commands).map_err(sm_err)?;
    applied::write_applied(&txn, Some(last), &membership)?;
    let started = Instant::now();
    txn.commit().map_err(sm_err)?;
    settle
        .metrics
        .backend_commit_seconds
        .observe(started.elapsed().as_secs_f64());
    drop(db);
    let mut results = settle.settle(state, outcome).map_err(sm_err)?.into_iter();
    Ok(counts
        .into_iter()
        .map(|n| BatchResults(results.by_ref().take(n).collect()))
        .collect())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = snapshot::Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Self::read_applied(&self.settle.store.db())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResults>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut state = self
            .state
            .take()
            .ok_or_else(|| sm_err(Error::Internal("the state machine failed before")))?;
        let settle = self.settle.clone();
        let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
        let (state, results) = tokio::task::spawn_blocking(move || {
            let results = apply_entries(&mut state, &settle, &entries, durable);
            (state, results)
        })
        .await
        .map_err(sm_err)?;
        let results = results?;
        self.state = Some(state);
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The builder copies what is durable now, so the log is purged only
        // up to what a crash keeps. A failure here surfaces when it builds.
        let durable = self.make_durable();
        snapshot::Builder::new(&self.settle.store, self.files.clone(), durable)
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        self.files.begin_receiving().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, MemberNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let state = self
            .state
            .take()
            .ok_or_else(|| sm_err(Error::Internal("the state machine failed before")))?;
        let installed =
            snapshot::install(&self.settle, &self.files, state, meta, *snapshot).await?;
        self.state = Some(installed);
        self.last_durable = Instant::now();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.files.current().await
    }
}

impl RaftSnapshotBuilder<TypeConfig> for snapshot::Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.build().await
    }
}
