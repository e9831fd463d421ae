//! The in-memory half of the replicated state: the key index, the lease and
//! alarm tables and the two revisions, as the applier works on them, and how
//! they are rebuilt from the database at start-up.
//!
//! The applier owns one [`State`] and changes it while it applies a batch;
//! readers never see that copy. After the batch's commit the applier
//! publishes a copy ([`crate::mvcc::store::Store::publish`]), which is cheap
//! because the index is a persistent map (`mvcc/index.rs`). [`State::open`]
//! opens a member's data directory into both: the store readers use and the
//! working state for the applier.

use std::collections::HashMap;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::alarm::AlarmSet;
use crate::error::Error;
use crate::lease::LeaseTable;
use crate::mvcc::index::TreeIndex;
use crate::mvcc::store::{Committed, Snapshot, delete_compacted};
use crate::mvcc::{Record, Revision, Store};
use crate::storage::{self, ALARMS, HISTORY, LEASE_CHECKPOINTS, LEASES, MetaKey};

/// Everything `apply` reads and changes besides the redb tables themselves.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    pub index: TreeIndex,
    /// Granted leases and the keys attached to each.
    pub leases: LeaseTable,
    /// Active alarms.
    pub alarms: AlarmSet,
    /// The newest revision.
    pub rev: i64,
    /// Reads below this fail as compacted; -1 before any compaction.
    pub compact_rev: i64,
}

impl State {
    /// Opens the member's database under `data_dir`, rebuilds the state from
    /// it, finishes a compaction a crash may have interrupted, and returns
    /// the store (with the state published for readers) and the applier's
    /// working copy.
    pub(crate) fn open(
        data_dir: &std::path::Path,
        cache_bytes: usize,
    ) -> Result<(Store, Self), Error> {
        let db = storage::open(data_dir, cache_bytes)?;
        let mut state = Self::load(&db)?;
        if state.compact_rev >= 0 {
            let keep = state.index.compact(state.compact_rev);
            delete_compacted(&db, state.compact_rev, &keep)?;
        }
        let committed = Committed {
            // The index is shared with the working copy until the applier
            // first writes to it.
            snapshot: std::sync::Arc::new(Snapshot {
                index: state.index.clone(),
                rev: state.rev,
                compact_rev: state.compact_rev,
            }),
            leases: state.leases.clone(),
            alarms: state.alarms.clone(),
        };
        let store = Store::new(db, data_dir, committed)?;
        Ok((store, state))
    }

    /// Rebuilds the state from what `db` holds: the index by replaying
    /// history in revision order, the leases with their live keys, the alarms.
    /// A compaction a crash interrupted is finished in the index only; the
    /// caller deletes the history it no longer needs.
    pub(crate) fn load(db: &Database) -> Result<Self, Error> {
        let rev = storage::read_meta(db, MetaKey::CurrentRevision)?.unwrap_or(1);
        let compact_rev = storage::read_meta(db, MetaKey::CompactRevisionPlusOne)?
            .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX) - 1);
        let (index, lease_of_key) = rebuild_index(db)?;
        Ok(Self {
            leases: rebuild_leases(db, lease_of_key)?,
            alarms: load_alarms(db)?,
            index,
            rev: i64::try_from(rev).unwrap_or(i64::MAX),
            compact_rev,
        })
    }
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
    for entry in txn.open_table(LEASE_CHECKPOINTS)?.iter()? {
        let (id, remaining) = entry?;
        leases.checkpoint(id.value(), remaining.value());
    }
    for (key, lease) in lease_of_key {
        leases.attach(&key, lease);
    }
    Ok(leases)
}
