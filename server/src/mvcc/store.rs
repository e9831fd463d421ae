//! The committed state shared by readers and the applier: the redb database
//! and the published [`Snapshot`] of the key index with its revisions, plus
//! the published lease and alarm tables.
//!
//! Readers never hold a lock while they read. [`Store::read`] takes the lock
//! only long enough to clone the snapshot's `Arc` and begin a redb read
//! transaction, then runs its closure on that pair; the applier meanwhile
//! applies the next batch to its own copy of the state and publishes a new
//! snapshot after the commit. A 100,000-key range, a HashKV, a `/metrics`
//! scrape or a watch catch-up therefore never holds up a commit.
//!
//! Invariants, enforced here and in the applier (`applier.rs`):
//! * a snapshot is published only after the redb commit that made its
//!   revision durable, so a reader never asks redb for a revision it cannot
//!   see, and a lease granted or revoked in a batch is invisible until then;
//! * a snapshot and the redb read transaction paired with it are taken under
//!   the same lock, and a compaction publishes its pruned index before it
//!   deletes history: a reader holding an older, unpruned snapshot began its
//!   redb transaction before the deletion and still sees the history it
//!   indexes.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

use super::index::TreeIndex;
use super::revision::Revision;
use super::view::View;
use crate::alarm::AlarmSet;
use crate::error::Error;
use crate::lease::LeaseTable;
use crate::storage::{self, HISTORY, META, MetaKey};

/// The key space at one committed revision, as readers see it. Immutable
/// once published; readers keep it alive as long as they need.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub index: TreeIndex,
    /// The newest durable revision.
    pub rev: i64,
    /// Reads below this fail as compacted; -1 before any compaction.
    pub compact_rev: i64,
}

/// What readers may see, behind one lock that is only ever held briefly.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub snapshot: Arc<Snapshot>,
    /// Granted leases and their keys, as of `snapshot.rev`.
    pub leases: LeaseTable,
    /// Active alarms.
    pub alarms: AlarmSet,
}

/// The identities and counters read at start-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

#[derive(Clone)]
pub(crate) struct Store {
    /// Shared by readers and the applier; taken exclusively only to
    /// defragment (redb's `compact` needs the database to itself).
    db: Arc<RwLock<Database>>,
    committed: Arc<RwLock<Committed>>,
    pub identity: Identity,
    path: std::path::PathBuf,
    /// The file's size, refreshed by the applier after each commit (the only
    /// time it changes), so the quota check on every write needs no syscall.
    size: Arc<AtomicI64>,
    /// The raft term response headers carry: 1 on a single member, the
    /// current term in a cluster (kept current by the raft node).
    raft_term: Arc<AtomicU64>,
}

/// The history table of a read transaction.
pub(crate) type ReadHistory = ReadOnlyTable<(i64, i64), &'static [u8]>;

impl Store {
    /// A store over an open database whose state was loaded into
    /// `committed` (see `State::open`, which is the one caller).
    pub(crate) fn new(db: Database, data_dir: &Path, committed: Committed) -> Result<Self, Error> {
        let identity = ensure_identity(&db)?;
        let store = Self {
            db: Arc::new(RwLock::new(db)),
            committed: Arc::new(RwLock::new(committed)),
            identity,
            path: data_dir.join(storage::DB_FILE),
            size: Arc::new(AtomicI64::new(0)),
            raft_term: Arc::new(AtomicU64::new(1)),
        };
        store.refresh_size();
        Ok(store)
    }

    /// Replaces the identity chosen at first start with a cluster's ids
    /// (derived from its flags), durably. Call before cloning the store.
    pub(crate) fn set_identity(&mut self, identity: Identity) -> Result<(), Error> {
        let db = self.db();
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(MetaKey::ClusterId.as_str(), identity.cluster_id)?;
            meta.insert(MetaKey::MemberId.as_str(), identity.member_id)?;
        }
        txn.commit()?;
        drop(db);
        self.identity = identity;
        Ok(())
    }

    /// The raft term for response headers.
    pub(crate) fn raft_term(&self) -> u64 {
        self.raft_term.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn set_raft_term(&self, term: u64) {
        self.raft_term.store(term.max(1), AtomicOrdering::Relaxed);
    }

    /// Publishes the state of a committed batch: a new snapshot of the key
    /// index and its revisions, and the lease and alarm changes (`update`).
    /// Only the applier calls this, after the commit.
    pub(crate) fn publish(
        &self,
        snapshot: Snapshot,
        update: impl FnOnce(&mut LeaseTable, &mut AlarmSet),
    ) {
        let snapshot = Arc::new(snapshot);
        let mut guard = self
            .committed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let committed = &mut *guard;
        committed.snapshot = snapshot;
        update(&mut committed.leases, &mut committed.alarms);
        // The previous snapshot is freed by whichever reader drops it last,
        // outside this lock.
    }

    /// Runs `f` on a consistent view of the newest committed revision,
    /// holding no lock while `f` runs.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&View<'_, ReadHistory>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // The database guard lives as long as the transaction, so
        // defragmentation waits for it (and only defragmentation).
        let db = self.db();
        let (snapshot, txn) = {
            // Begun under the lock: see the module invariants.
            let committed = self.read_committed();
            (committed.snapshot.clone(), db.begin_read()?)
        };
        let history = txn.open_table(HISTORY)?;
        let view = View {
            index: &snapshot.index,
            history: &history,
            rev: snapshot.rev,
            compact_rev: snapshot.compact_rev,
        };
        f(&view)
    }

    /// The newest published snapshot of the key index.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.read_committed().snapshot.clone()
    }

    /// The database, shared (the applier writes through a shared handle too:
    /// redb serializes writers itself and we have only one).
    pub(crate) fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compacts the database file (etcd's defragmentation), with every reader
    /// and writer held off meanwhile. Only the applier calls this, between
    /// batches, so no write transaction is open.
    pub(crate) fn defragment(&self) -> Result<(), Error> {
        let mut db = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Each pass moves pages towards the start; a few passes reach the end.
        for _ in 0..8 {
            if !db.compact().map_err(|e| Error::Storage(e.into()))? {
                break;
            }
        }
        drop(db);
        self.refresh_size();
        Ok(())
    }

    pub(crate) fn current_rev(&self) -> i64 {
        self.read_committed().snapshot.rev
    }

    /// The published lease and alarm tables and snapshot. Hold the guard
    /// briefly: the applier's publication waits for it.
    pub(crate) fn read_committed(&self) -> RwLockReadGuard<'_, Committed> {
        // A panic while holding the lock cannot leave a half-published
        // state: publication swaps a finished snapshot in. Keep serving.
        self.committed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The member's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// Size of the database file in bytes, as of the last commit.
    pub(crate) fn db_size(&self) -> i64 {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// Re-reads the file's size; the applier calls it after every change.
    pub(crate) fn refresh_size(&self) {
        let size =
            std::fs::metadata(&self.path).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX));
        self.size.store(size, AtomicOrdering::Relaxed);
    }

    pub(crate) fn meta(&self, key: MetaKey) -> Result<Option<u64>, Error> {
        storage::read_meta(&self.db(), key)
    }
}

/// Picks the cluster and member identities on first start; they never change.
fn ensure_identity(db: &Database) -> Result<Identity, Error> {
    let txn = db.begin_write()?;
    let identity = {
        let mut meta = txn.open_table(META)?;
        let mut get_or_init = |key: MetaKey| -> Result<u64, Error> {
            if let Some(v) = meta.get(key.as_str())? {
                return Ok(v.value());
            }
            // Zero means "unset" in etcd headers: never choose it.
            let id = rand::random::<u64>().max(1);
            meta.insert(key.as_str(), id)?;
            Ok(id)
        };
        Identity {
            cluster_id: get_or_init(MetaKey::ClusterId)?,
            member_id: get_or_init(MetaKey::MemberId)?,
        }
    };
    txn.commit()?;
    Ok(identity)
}

/// Physically removes history below `compact_rev` except `keep`. Every
/// record *at* the compact revision stays, tombstones included, so a watcher
/// starting there still sees that revision's deletes (etcd 3.4 loses them:
/// etcd-io/etcd#18089, fixed upstream the same way).
pub(crate) fn delete_compacted(
    db: &Database,
    compact_rev: i64,
    keep: &std::collections::HashSet<Revision>,
) -> Result<(), Error> {
    let txn = db.begin_write()?;
    {
        let mut history = txn.open_table(HISTORY)?;
        history.retain_in(..(compact_rev, 0), |k, _| {
            keep.contains(&Revision::new(k.0, k.1))
        })?;
    }
    txn.commit()?;
    Ok(())
}
