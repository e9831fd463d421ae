//! The replicated log, in its own redb file (`raft.redb` beside the
//! member's database): entries by index, the vote, the last purged log id
//! and the committed log id.
//!
//! An append is the durable point of a write: it commits with an fsync
//! before openraft is told the entries are on disk, and a member answers a
//! vote only after the vote is durable. The state machine's own commits need
//! no fsync of their own (`state_machine.rs`): after a crash, openraft
//! re-applies from the log whatever the state machine lost.
//!
//! Invariant: the log has no holes; its entries are `(last_purged, last]`.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::codec;
use super::types::{Entry, LogId, StorageError, TypeConfig};

/// Log index → postcard-encoded entry.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// `vote`, `last_purged`, `committed` → postcard-encoded value.
const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

/// File name of the log inside `--data-dir`.
pub(crate) const LOG_FILE: &str = "raft.redb";

/// The log store; clones share the database (a clone is the log reader
/// openraft's replication tasks use).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogStore {
    /// Opens (or creates) the log under `data_dir`.
    pub(crate) fn open(data_dir: &Path) -> Result<Self, crate::error::Error> {
        std::fs::create_dir_all(data_dir).map_err(|source| crate::error::Error::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let db = Database::create(data_dir.join(LOG_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(LOG_META)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// True when the log has never held an entry or a vote: a member that
    /// has never been part of a cluster.
    pub(crate) fn is_pristine(&self) -> Result<bool, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let meta = txn.open_table(LOG_META).map_err(read_err)?;
        Ok(log.first().map_err(read_err)?.is_none()
            && meta.get(VOTE).map_err(read_err)?.is_none()
            && meta.get(LAST_PURGED).map_err(read_err)?.is_none())
    }

    /// Makes a member that led before it stopped start as a follower.
    ///
    /// openraft 0.9 restores such a member as leader of its old term at
    /// once, with the commit index it last saved — which may be behind
    /// writes it acknowledged — and without committing a fresh entry, so a
    /// read index it hands out could miss acknowledged writes (the cluster
    /// linearizability test caught exactly that). Dropping the vote's
    /// "committed by a quorum" mark keeps its term and whom it voted for
    /// (it never votes twice in a term) but makes it a follower that must
    /// win an election to lead again, as a restarted etcd member does.
    pub(crate) fn step_down(&self, id: u64) -> Result<bool, StorageError> {
        let Some(vote) = self.get_meta::<Vote<u64>>(VOTE)? else {
            return Ok(false);
        };
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(id) {
            return Ok(false);
        }
        let demoted = Vote::new(vote.leader_id().get_term(), id);
        let txn = self.db.begin_write().map_err(write_err)?;
        Self::put_meta(&txn, VOTE, &demoted)?;
        txn.commit().map_err(write_err)?;
        Ok(true)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let meta = txn.open_table(LOG_META).map_err(read_err)?;
        let Some(value) = meta.get(key).map_err(read_err)? else {
            return Ok(None);
        };
        codec::from_bytes(value.value()).map(Some).map_err(read_err)
    }

    /// Writes meta values and deletes log ranges in one transaction,
    /// durably or not, off the async worker threads.
    async fn write(
        &self,
        durable: bool,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<(), StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write().map_err(write_err)?;
            if !durable {
                txn.set_durability(Durability::None).map_err(write_err)?;
            }
            change(&txn)?;
            txn.commit().map_err(write_err)
        })
        .await
        .map_err(write_err)?
    }

    fn put_meta(
        txn: &redb::WriteTransaction,
        key: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), StorageError> {
        let bytes = codec::to_bytes(value).map_err(write_err)?;
        let mut meta = txn.open_table(LOG_META).map_err(write_err)?;
        meta.insert(key, bytes.as_slice()).map_err(write_err)?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(*i),
            Bound::Excluded(i) => Bound::Excluded(*i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let mut entries = Vec::new();
        for row in log
            .range::<u64>((Bound::Included(start), end))
            .map_err(read_err)?
        {
            let (_, bytes) = row.map_err(read_err)?;
            entries.push(codec::from_bytes(bytes.value()).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = {
            let txn = self.db.begin_read().map_err(read_err)?;
            let log = txn.open_table(LOG).map_err(read_err)?;
            match log.last().map_err(read_err)? {
                Some((_, bytes)) => {
                    let entry: Entry = codec::from_bytes(bytes.value()).map_err(read_err)?;
                    Some(entry.log_id)
                }
                None => None,
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let vote = *vote;
        self.write(true, move |txn| Self::put_meta(txn, VOTE, &vote))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: it becomes durable with the next append. Losing it
        // only means re-applying later, once a leader commits again.
        self.write(false, move |txn| Self::put_meta(txn, COMMITTED, &committed))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        for entry in entries {
            rows.push((
                entry.log_id.index,
                codec::to_bytes(&entry).map_err(write_err)?,
            ));
        }
        let result = self
            .write(true, move |txn| {
                let mut log = txn.open_table(LOG).map_err(write_err)?;
                for (index, bytes) in &rows {
                    log.insert(*index, bytes.as_slice()).map_err(write_err)?;
                }
                Ok(())
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(true, move |txn| {
            let mut log = txn.open_table(LOG).map_err(write_err)?;
            log.retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge point is written in the same transaction as the
        // deletion, so the log never looks shorter than it is. Not fsynced:
        // purged entries that come back after a crash are merely kept longer.
        self.write(false, move |txn| {
            Self::put_meta(txn, LAST_PURGED, &log_id)?;
            let mut log = txn.open_table(LOG).map_err(write_err)?;
            log.retain_in(..=log_id.index, |_, _| false)
                .map_err(write_err)?;
            Ok(())
        })
        .await
    }
}
