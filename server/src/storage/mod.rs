//! redb access: opening the member's database file and the typed tables that
//! live in it. Only the applier writes (see `apply`); everyone else reads
//! through snapshot read transactions.

pub mod schema;
pub mod snapshot;

use std::path::Path;

use redb::{Database, ReadableDatabase};

use crate::error::Error;
pub use schema::{ALARMS, HISTORY, LEASE_CHECKPOINTS, LEASES, META, MetaKey, RAFT_STATE};

/// File name of the database inside `--data-dir`.
pub const DB_FILE: &str = "rollcall.redb";

/// redb's page cache for a member: redb's own default (1 GiB) would let a
/// write-heavy registry hold that much in memory; the OS page cache still
/// keeps the rest of a hot database close.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Opens (or creates) the database under `data_dir` with a page cache of
/// `cache_bytes`, and makes sure every table exists, so read transactions
/// never see a missing table.
pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Database, Error> {
    std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(data_dir.join(DB_FILE))?;
    let txn = db.begin_write()?;
    txn.open_table(HISTORY)?;
    txn.open_table(META)?;
    txn.open_table(LEASES)?;
    txn.open_table(LEASE_CHECKPOINTS)?;
    txn.open_table(ALARMS)?;
    txn.open_table(RAFT_STATE)?;
    txn.commit()?;
    Ok(db)
}

/// Reads one meta value from a read transaction's view.
pub fn read_meta(db: &Database, key: MetaKey) -> Result<Option<u64>, Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(META)?;
    Ok(table.get(key.as_str())?.map(|v| v.value()))
}
