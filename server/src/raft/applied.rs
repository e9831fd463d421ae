//! Where the state machine records how far it applied: the last applied
//! log id and the membership, in the member's own database (table
//! `raft_state`), written in the same transaction as the entries' effects;
//! read back at start-up and when a snapshot is built; and the storage
//! errors the state machine and its snapshots report.

use openraft::{AnyError, StorageIOError};

use super::codec;
use super::types::{LogId, StorageError, StoredMembership};
use crate::storage::RAFT_STATE;

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";

/// A failed write of the state machine, as openraft reports it.
pub(crate) fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

/// A failed read of the state machine, as openraft reports it.
pub(crate) fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

/// The last applied log id and membership that `txn` sees.
pub(crate) fn read_applied_in(
    txn: &redb::ReadTransaction,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let table = txn.open_table(RAFT_STATE).map_err(sm_read_err)?;
    let last = match table.get(LAST_APPLIED).map_err(sm_read_err)? {
        Some(v) => codec::from_bytes(v.value()).map_err(sm_read_err)?,
        None => None,
    };
    let membership = match table.get(MEMBERSHIP).map_err(sm_read_err)? {
        Some(v) => codec::from_bytes(v.value()).map_err(sm_read_err)?,
        None => StoredMembership::default(),
    };
    Ok((last, membership))
}

/// Records the applied position in `txn`.
pub(crate) fn write_applied(
    txn: &redb::WriteTransaction,
    last: Option<LogId>,
    membership: &StoredMembership,
) -> Result<(), StorageError> {
    let mut table = txn.open_table(RAFT_STATE).map_err(sm_err)?;
    let last = codec::to_bytes(&last).map_err(sm_err)?;
    let membership = codec::to_bytes(membership).map_err(sm_err)?;
    table
        .insert(LAST_APPLIED, last.as_slice())
        .map_err(sm_err)?;
    table
        .insert(MEMBERSHIP, membership.as_slice())
        .map_err(sm_err)?;
    Ok(())
}
