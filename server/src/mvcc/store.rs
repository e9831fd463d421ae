//! The committed state shared by readers and the applier: the redb database,
//! the key index, the committed and compact revisions.
//!
//! Invariants, enforced here and in `proposer.rs`:
//! * `Committed::rev` is published only after the redb commit that made it
//!   durable, so a reader never asks redb for a revision it cannot see;
//! * the index may hold revisions above `Committed::rev` (the applier's batch
//!   in flight); reads are bounded by `Committed::rev` and never see them;
//! * a compaction prunes the index and publishes `compact_rev` under the write
//!   lock *before* deleting history, and readers begin their redb snapshot
//!   while holding the read lock, so no reader can see pruned history through
//!   an unpruned index.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

use super::index::TreeIndex;
use super::record::Record;
use super::revision::Revision;
use super::view::View;
use crate::alarm::AlarmSet;
use crate::error::Error;
use crate::lease::LeaseTable;
use crate::storage::{self, ALARMS, HISTORY, LEASES, META, MetaKey};

/// What readers may see, guarded by one lock.
#[derive(Debug, Default)]
pub struct Committed {
    pub index: TreeIndex,
    /// Granted leases and their keys (may run ahead of `rev` like the index).
    pub leases: LeaseTable,
    /// Active alarms.
    pub alarms: AlarmSet,
    /// The newest durable revision.
    pub rev: i64,
    /// Reads below this fail as compacted; -1 before any compaction.
    pub compact_rev: i64,
}

/// The identities and counters read at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

#[derive(Clone)]
pub struct Store {
    /// Shared by readers and the applier; taken exclusively only to
    /// defragment (redb's `compact` needs the database to itself).
    db: Arc<RwLock<Database>>,
    committed: Arc<RwLock<Committed>>,
    pub identity: Identity,
    path: std::path::PathBuf,
    /// The file's size, refreshed by the applier after each commit (the only
    /// time it changes), so the quota check on every write needs no syscall.
    size: Arc<AtomicI64>,
}

impl Store {
    /// Opens the store under `data_dir`, rebuilding the key index from history
    /// and finishing a compaction a crash may have interrupted.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, Error> {
        let db = storage::open(data_dir, cache_bytes)?;
        let identity = ensure_identity(&db)?;
        let rev = storage::read_meta(&db, MetaKey::CurrentRevision)?.unwrap_or(1);
        let compact_rev = storage::read_meta(&db, MetaKey::CompactRevisionPlusOne)?
            .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX) - 1);
        let (index, lease_of_key) = rebuild_index(&db)?;
        let mut committed = Committed {
            leases: rebuild_leases(&db, lease_of_key)?,
            alarms: load_alarms(&db)?,
            index,
            rev: i64::try_from(rev).unwrap_or(i64::MAX),
            compact_rev,
        };
        if compact_rev >= 0 {
            let keep = committed.index.compact(compact_rev);
            delete_compacted(&db, compact_rev, &keep)?;
        }
        let store = Self {
            db: Arc::new(RwLock::new(db)),
            committed: Arc::new(RwLock::new(committed)),
            identity,
            path: data_dir.join(storage::DB_FILE),
            size: Arc::new(AtomicI64::new(0)),
        };
        store.refresh_size();
        Ok(store)
    }

    /// Runs `f` on a consistent view of the newest committed revision.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&View<'_, ReadOnlyTable<(i64, i64), &'static [u8]>>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let committed = self.read_committed();
        // Begun under the lock: see the module invariants. The database guard
        // lives as long as the transaction, so defragmentation waits for it.
        let db = self.db();
        let txn = db.begin_read()?;
        let history = txn.open_table(HISTORY)?;
        let view = View {
            index: &committed.index,
            history: &history,
            rev: committed.rev,
            compact_rev: committed.compact_rev,
        };
        f(&view)
    }

    /// The database, shared (the applier writes through a shared handle too:
    /// redb serializes writers itself and we have only one).
    pub fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compacts the database file (etcd's defragmentation), with every reader
    /// and writer held off meanwhile. Only the applier calls this, between
    /// batches, so no write transaction is open.
    pub fn defragment(&self) -> Result<(), Error> {
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

    pub fn current_rev(&self) -> i64 {
        self.read_committed().rev
    }

    pub fn read_committed(&self) -> RwLockReadGuard<'_, Committed> {
        // A panic while holding the lock cannot leave the index half-written
        // in a way readers could observe past `rev`; keep serving.
        self.committed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write_committed(&self) -> RwLockWriteGuard<'_, Committed> {
        self.committed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The member's data directory.
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// Size of the database file in bytes, as of the last commit.
    pub fn db_size(&self) -> i64 {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// Re-reads the file's size; the applier calls it after every change.
    pub fn refresh_size(&self) {
        let size =
            std::fs::metadata(&self.path).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX));
        self.size.store(size, AtomicOrdering::Relaxed);
    }

    pub fn meta(&self, key: MetaKey) -> Result<Option<u64>, Error> {
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

/// Replays history in revision order into a fresh key index; also returns
/// the lease of every live leased key.
fn rebuild_index(db: &Database) -> Result<(TreeIndex, HashMap<Bytes, i64>), Error> {
    let txn = db.begin_read()?;
    let history = txn.open_table(HISTORY)?;
    let mut index = TreeIndex::default();
    let mut lease_of_key = HashMap::new();
    for entry in history.iter()? {
        let (k, v) = entry?;
        let key = k.value();
        let rev = Revision::new(key.0, key.1);
        match Record::decode(key, v.value())? {
            Record::Put(kv) => {
                let created = Revision::new(kv.create_revision, 0);
                index.restore(&kv.key, created, rev, kv.version);
                if kv.lease == 0 {
                    lease_of_key.remove(&kv.key);
                } else {
                    lease_of_key.insert(kv.key, kv.lease);
                }
            }
            Record::Tombstone(kv) => {
                index.tombstone(&kv.key, rev);
                lease_of_key.remove(&kv.key);
            }
        }
    }
    Ok((index, lease_of_key))
}

/// Loads the active alarms.
fn load_alarms(db: &Database) -> Result<AlarmSet, Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(ALARMS)?;
    let mut rows = Vec::new();
    for entry in table.iter()? {
        rows.push(entry?.0.value());
    }
    Ok(AlarmSet::from_rows(rows))
}

/// Loads the granted leases and re-attaches their live keys.
fn rebuild_leases(db: &Database, lease_of_key: HashMap<Bytes, i64>) -> Result<LeaseTable, Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LEASES)?;
    let mut leases = LeaseTable::default();
    for entry in table.iter()? {
        let (id, ttl) = entry?;
        leases.grant(id.value(), ttl.value());
    }
    for (key, lease) in lease_of_key {
        leases.attach(&key, lease);
    }
    Ok(leases)
}

/// Physically removes history below `compact_rev` except `keep`. Every
/// record *at* the compact revision stays, tombstones included, so a watcher
/// starting there still sees that revision's deletes (etcd 3.4 loses them:
/// etcd-io/etcd#18089, fixed upstream the same way).
pub fn delete_compacted(
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
