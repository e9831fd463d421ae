//! Raft snapshots of the state machine: a consistent copy of the member's
//! database (every table, taken from one redb read transaction while writes
//! go on) in a file under `raft-snapshots/`, streamed to a lagging or new
//! member in chunks by openraft, and installed there by replacing the
//! member's tables in one transaction.
//!
//! The current snapshot is named by `current.meta` (its openraft metadata);
//! the file it names is `snap-<id>.redb`. A new snapshot's file is complete
//! before `current.meta` is replaced (by rename), so a crash leaves either
//! the old snapshot or the new one, never half of one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{AnyError, Snapshot, SnapshotMeta, StorageIOError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::applied::{self, sm_err, sm_read_err};
use super::codec;
use super::types::{MemberNode, StorageError, TypeConfig};
use crate::error::Error;
use crate::mvcc::Record;
use crate::mvcc::store::{Snapshot as ReadSnapshot, delete_compacted};
use crate::settle::Settle;
use crate::state::State;
use crate::storage::snapshot::write_copy_of;
use crate::storage::{ALARMS, HISTORY, LEASE_CHECKPOINTS, LEASES, META, MetaKey};

type Meta = SnapshotMeta<u64, MemberNode>;

const DIR: &str = "raft-snapshots";
const CURRENT: &str = "current.meta";
const RECEIVING: &str = "receiving.redb";

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

/// The snapshot directory of one member.
#[derive(Clone)]
pub(crate) struct SnapshotFiles {
    dir: Arc<PathBuf>,
}

impl SnapshotFiles {
    pub(crate) fn open(data_dir: &Path) -> Result<Self, Error> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|source| Error::DataDir {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir: Arc::new(dir) })
    }

    fn file_of(&self, id: &str) -> PathBuf {
        // Snapshot ids are ours ("term-index-nanos"); anything else is
        // reduced to a safe file name.
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("snap-{safe}.redb"))
    }

    /// Makes the snapshot whose file is `file` the current one, and deletes
    /// the files of older snapshots.
    fn set_current(&self, meta: &Meta) -> Result<(), StorageError> {
        let bytes = codec::to_bytes(meta).map_err(snap_err)?;
        let tmp = self.dir.join(format!("{CURRENT}.tmp"));
        std::fs::write(&tmp, bytes).map_err(snap_err)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(snap_err)?;
        std::fs::rename(&tmp, self.dir.join(CURRENT)).map_err(snap_err)?;
        let keep = self.file_of(&meta.snapshot_id);
        if let Ok(entries) = std::fs::read_dir(&*self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if path != keep && name.to_string_lossy().starts_with("snap-") {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok(())
    }

    /// The current snapshot, opened for reading.
    pub(crate) async fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let meta_path = self.dir.join(CURRENT);
        let bytes = match tokio::fs::read(&meta_path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sm_read_err(e)),
        };
        let meta: Meta = codec::from_bytes(&bytes).map_err(sm_read_err)?;
        let file = tokio::fs::File::open(self.file_of(&meta.snapshot_id))
            .await
            .map_err(sm_read_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }

    /// A fresh file for a snapshot arriving from the leader.
    pub(crate) async fn begin_receiving(&self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = tokio::fs::File::create(self.dir.join(RECEIVING))
            .await
            .map_err(snap_err)?;
        Ok(Box::new(file))
    }
}

/// Builds a snapshot from a read transaction begun when openraft asked for
/// the builder (after a durable commit: see `state_machine.rs`).
pub(crate) struct Builder {
    txn: Option<Result<redb::ReadTransaction, StorageError>>,
    files: SnapshotFiles,
}

impl Builder {
    pub(crate) fn new(
        store: &crate::mvcc::Store,
        files: SnapshotFiles,
        durable: Result<(), StorageError>,
    ) -> Self {
        let txn = durable.and_then(|()| store.db().begin_read().map_err(sm_read_err));
        Self {
            txn: Some(txn),
            files,
        }
    }

    pub(crate) async fn build(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let txn = self
            .txn
            .take()
            .ok_or_else(|| snap_err(Error::Internal("a snapshot builder is used once")))??;
        let files = self.files.clone();
        let meta = tokio::task::spawn_blocking(move || -> Result<Meta, StorageError> {
            let (last_log_id, last_membership) = applied::read_applied_in(&txn)?;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let snapshot_id = match last_log_id {
                Some(l) => format!("{}-{}-{nanos}", l.leader_id.term, l.index),
                None => format!("0-0-{nanos}"),
            };
            let meta = Meta {
                last_log_id,
                last_membership,
                snapshot_id,
            };
            let path = files.file_of(&meta.snapshot_id);
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            write_copy_of(&txn, &tmp).map_err(snap_err)?;
            std::fs::rename(&tmp, &path).map_err(snap_err)?;
            files.set_current(&meta)?;
            tracing::info!(
                snapshot = %meta.snapshot_id,
                bytes = std::fs::metadata(&path).map_or(0, |m| m.len()),
                "built a raft snapshot"
            );
            Ok(meta)
        })
        .await
        .map_err(snap_err)??;
        let file = tokio::fs::File::open(self.files.file_of(&meta.snapshot_id))
            .await
            .map_err(sm_read_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

fn clear<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StorageError> {
    txn.open_table(table)
        .map_err(sm_err)?
        .retain(|_, _| false)
        .map_err(sm_err)
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StorageError> {
    let source = from.open_table(table).map_err(sm_read_err)?;
    let mut target = to.open_table(table).map_err(sm_err)?;
    for row in source.iter().map_err(sm_read_err)? {
        let (k, v) = row.map_err(sm_read_err)?;
        target.insert(k.value(), v.value()).map_err(sm_err)?;
    }
    Ok(())
}

/// Replaces the member's state with the received snapshot, in one durable
/// transaction, then makes it visible: readers, leases, and the events
/// between the old and the new revision for this member's watchers.
pub(crate) async fn install(
    settle: &Settle,
    files: &SnapshotFiles,
    old: State,
    meta: &Meta,
    mut file: tokio::fs::File,
) -> Result<State, StorageError> {
    file.flush().await.map_err(snap_err)?;
    let path = files.file_of(&meta.snapshot_id);
    let receiving = files.dir.join(RECEIVING);
    if same_file(&file, &receiving).await {
        file.sync_all().await.map_err(snap_err)?;
        drop(file);
        tokio::fs::rename(&receiving, &path)
            .await
            .map_err(snap_err)?;
    } else {
        // Handed some other open snapshot (a local one): copy it whole.
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(snap_err)?;
        let mut target = tokio::fs::File::create(&path).await.map_err(snap_err)?;
        tokio::io::copy(&mut file, &mut target)
            .await
            .map_err(snap_err)?;
        target.sync_all().await.map_err(snap_err)?;
    }
    let settle = settle.clone();
    let meta_copy = meta.clone();
    let state =
        tokio::task::spawn_blocking(move || replace_tables(&settle, old, &meta_copy, &path))
            .await
            .map_err(snap_err)??;
    files.set_current(meta)?;
    tracing::info!(
        snapshot = %meta.snapshot_id,
        revision = state.rev,
        "installed a raft snapshot from the leader"
    );
    Ok(state)
}

fn replace_tables(
    settle: &Settle,
    old: State,
    meta: &Meta,
    path: &Path,
) -> Result<State, StorageError> {
    let received = Database::open(path).map_err(sm_read_err)?;
    let from = received.begin_read().map_err(sm_read_err)?;
    let db = settle.store.db();
    let txn = db.begin_write().map_err(sm_err)?;
    clear(&txn, HISTORY)?;
    clear(&txn, LEASES)?;
    clear(&txn, LEASE_CHECKPOINTS)?;
    clear(&txn, ALARMS)?;
    copy(&from, &txn, HISTORY)?;
    copy(&from, &txn, LEASES)?;
    copy(&from, &txn, LEASE_CHECKPOINTS)?;
    copy(&from, &txn, ALARMS)?;
    {
        // The member keeps its own identity; the counters are the leader's.
        let source = from.open_table(META).map_err(sm_read_err)?;
        let mut target = txn.open_table(META).map_err(sm_err)?;
        for key in [
            MetaKey::CurrentRevision,
            MetaKey::CompactRevisionPlusOne,
            MetaKey::AppliedIndex,
        ] {
            match source.get(key.as_str()).map_err(sm_read_err)? {
                Some(v) => target.insert(key.as_str(), v.value()).map_err(sm_err)?,
                None => target.remove(key.as_str()).map_err(sm_err)?,
            };
        }
    }
    applied::write_applied(&txn, meta.last_log_id, &meta.last_membership)?;
    txn.commit().map_err(sm_err)?;
    drop(from);
    drop(received);
    let mut state = State::load(&db).map_err(sm_err)?;
    if state.compact_rev >= 0 {
        let keep = state.index.compact(state.compact_rev);
        delete_compacted(&db, state.compact_rev, &keep).map_err(sm_err)?;
    }
    let events = events_between(&db, old.rev.max(state.compact_rev), state.rev)?;
    drop(db);
    let now = tokio::time::Instant::now();
    for (id, _) in old.leases.ids() {
        settle.lessor.forget(id);
    }
    for (id, ttl) in state.leases.ids() {
        settle.lessor.start(id, ttl, now);
    }
    settle.store.publish(
        ReadSnapshot {
            index: state.index.clone(),
            rev: state.rev,
            compact_rev: state.compact_rev,
        },
        |leases, alarms| {
            *leases = state.leases.clone();
            *alarms = state.alarms.clone();
        },
    );
    settle.store.refresh_size();
    if !events.is_empty() {
        settle.hub.publish(&events, state.rev);
    }
    Ok(state)
}

/// True when the open `file` is the file at `path`.
async fn same_file(file: &tokio::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata().await, tokio::fs::metadata(path).await) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The events of revisions `(after, upto]`, grouped by revision.
fn events_between(
    db: &Database,
    after: i64,
    upto: i64,
) -> Result<Vec<(i64, Vec<rollcall_proto::mvccpb::Event>)>, StorageError> {
    let mut out: Vec<(i64, Vec<rollcall_proto::mvccpb::Event>)> = Vec::new();
    if upto <= after {
        return Ok(out);
    }
    let txn = db.begin_read().map_err(sm_read_err)?;
    let history = txn.open_table(HISTORY).map_err(sm_read_err)?;
    for row in history
        .range((after + 1, 0)..=(upto, i64::MAX))
        .map_err(sm_read_err)?
    {
        let (k, v) = row.map_err(sm_read_err)?;
        let key = k.value();
        let event = Record::decode(key, v.value())
            .map_err(sm_read_err)?
            .into_event();
        match out.last_mut() {
            Some((rev, events)) if *rev == key.0 => events.push(event),
            _ => out.push((key.0, vec![event])),
        }
    }
    Ok(out)
}
