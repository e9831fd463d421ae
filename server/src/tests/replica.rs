//! A bare replica of the state machine for tests: a redb file in a temp dir
//! and the in-memory [`State`], driven by [`apply_batch`] and committed batch
//! by batch exactly as the applier does, without threads, clocks or callers.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tempfile::TempDir;

use crate::apply::{BatchOutcome, Command, apply_batch};
use crate::error::Error;
use crate::mvcc::View;
use crate::mvcc::store::{ReadHistory, delete_compacted};
use crate::state::State;
use crate::storage::{self, ALARMS, HISTORY, LEASE_CHECKPOINTS, LEASES, META};

pub(crate) struct Replica {
    pub(crate) db: Database,
    pub(crate) state: State,
    _dir: TempDir,
}

/// Every row of a table, as bytes, for comparing two databases.
pub(crate) type Rows = BTreeMap<Vec<u8>, Vec<u8>>;

impl Replica {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = storage::open(dir.path(), 4 << 20).unwrap();
        let state = State::load(&db).unwrap();
        Self {
            db,
            state,
            _dir: dir,
        }
    }

    /// Applies one batch in one write transaction and commits it, then
    /// deletes compacted history as the applier's post-commit step does.
    pub(crate) fn apply(&mut self, commands: &[Command]) -> BatchOutcome {
        let txn = self.db.begin_write().unwrap();
        let outcome = apply_batch(&mut self.state, &txn, commands).unwrap();
        txn.commit().unwrap();
        if let Some((at, keep)) = &outcome.compaction {
            delete_compacted(&self.db, *at, keep).unwrap();
        }
        outcome
    }

    /// Reads the committed state at the newest revision.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&View<'_, ReadHistory>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let txn = self.db.begin_read().unwrap();
        let history = txn.open_table(HISTORY).unwrap();
        f(&View {
            index: &self.state.index,
            history: &history,
            rev: self.state.rev,
            compact_rev: self.state.compact_rev,
        })
    }

    /// etcd's HashKV at the newest revision.
    pub(crate) fn hash_kv(&self) -> u32 {
        self.read(|v| v.hash_kv(0)).unwrap().0
    }

    /// The rows of every table the state machine writes.
    pub(crate) fn tables(&self) -> Vec<Rows> {
        let txn = self.db.begin_read().unwrap();
        vec![
            dump(&txn, HISTORY),
            dump(&txn, META),
            dump(&txn, LEASES),
            dump(&txn, LEASE_CHECKPOINTS),
            dump(&txn, ALARMS),
        ]
    }
}

fn dump<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Rows {
    let table = txn.open_table(table).unwrap();
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (
                K::as_bytes(&k.value()).as_ref().to_vec(),
                V::as_bytes(&v.value()).as_ref().to_vec(),
            )
        })
        .collect()
}
