//! Snapshots of a member's database: a consistent copy taken from one read
//! transaction while writes continue, shipped as the redb file followed by
//! its SHA-256 (as etcd appends one), and restored into a fresh data
//! directory as a new member.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use super::{ALARMS, DB_FILE, HISTORY, LEASE_CHECKPOINTS, LEASES, META, MetaKey, RAFT_STATE};
use crate::error::Error;

/// Bytes of the checksum trailer.
pub const TRAILER: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is too short to be a snapshot")]
    TooShort(PathBuf),
    #[error("{0}: checksum mismatch (the snapshot is corrupt or truncated)")]
    Checksum(PathBuf),
    #[error("{0} is not empty; restore into a new or empty data directory")]
    NotEmpty(PathBuf),
    #[error(transparent)]
    Store(#[from] Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn copy_table<K, V>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Writes a consistent copy of `db` to `path` (a new redb file).
pub fn write_copy(db: &Database, path: &Path) -> Result<(), Error> {
    write_copy_of(&db.begin_read()?, path)
}

/// Writes what `snapshot` sees to `path` (a new redb file).
pub(crate) fn write_copy_of(snapshot: &redb::ReadTransaction, path: &Path) -> Result<(), Error> {
    let copy = Database::create(path)?;
    let txn = copy.begin_write()?;
    copy_table(snapshot, &txn, HISTORY)?;
    copy_table(snapshot, &txn, LEASES)?;
    copy_table(snapshot, &txn, LEASE_CHECKPOINTS)?;
    copy_table(snapshot, &txn, ALARMS)?;
    copy_table(snapshot, &txn, META)?;
    copy_table(snapshot, &txn, RAFT_STATE)?;
    txn.commit()?;
    Ok(())
}

/// The SHA-256 of a file's contents.
pub fn file_digest(path: &Path) -> Result<[u8; TRAILER], SnapshotError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Restores `snapshot` (database + SHA-256 trailer) into `data_dir` as a new
/// member: the data, leases and alarms are kept, the cluster and member ids
/// are chosen anew. `progress` is told the bytes done and the total.
pub fn restore(
    snapshot: &Path,
    data_dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), SnapshotError> {
    let target = data_dir.join(DB_FILE);
    // As etcd: never restore over anything, not even unrelated files.
    if let Ok(mut entries) = std::fs::read_dir(data_dir)
        && entries.next().is_some()
    {
        return Err(SnapshotError::NotEmpty(data_dir.to_path_buf()));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let total = std::fs::metadata(snapshot).map_err(io(snapshot))?.len();
    let body_len = total
        .checked_sub(TRAILER as u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| SnapshotError::TooShort(snapshot.to_path_buf()))?;
    let partial = data_dir.join(format!("{DB_FILE}.restoring"));
    let mut input = std::fs::File::open(snapshot).map_err(io(snapshot))?;
    let mut output = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < body_len {
        let want = usize::try_from((body_len - done).min(buf.len() as u64)).unwrap_or(buf.len());
        input.read_exact(&mut buf[..want]).map_err(io(snapshot))?;
        hasher.update(&buf[..want]);
        output.write_all(&buf[..want]).map_err(io(&partial))?;
        done += want as u64;
        progress(done, body_len);
    }
    let mut trailer = [0u8; TRAILER];
    input.read_exact(&mut trailer).map_err(io(snapshot))?;
    if hasher.finalize().as_slice() != trailer {
        drop(output);
        let _ = std::fs::remove_file(&partial);
        return Err(SnapshotError::Checksum(snapshot.to_path_buf()));
    }
    output.sync_all().map_err(io(&partial))?;
    drop(output);

    // A restored member is a new member of a new cluster, as with etcd. The
    // file is opened (and so checked to be a redb database) before it takes
    // the database's name.
    let reset = reset_identity(&partial);
    if let Err(e) = reset {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    Ok(())
}

fn reset_identity(path: &Path) -> Result<(), Error> {
    let db = Database::open(path)?;
    let txn = db.begin_write().map_err(Error::from)?;
    {
        let mut meta = txn.open_table(META).map_err(Error::from)?;
        for key in [MetaKey::ClusterId, MetaKey::MemberId] {
            meta.insert(key.as_str(), rand::random::<u64>().max(1))
                .map_err(Error::from)?;
        }
        // The old cluster's log position means nothing to the new member.
        let mut raft = txn.open_table(RAFT_STATE).map_err(Error::from)?;
        raft.retain(|_, _| false).map_err(Error::from)?;
    }
    txn.commit().map_err(Error::from)?;
    Ok(())
}
