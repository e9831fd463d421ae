//! Every table and meta key rollcall keeps in redb, declared in one place.
//!
//! * `history`: `(main, sub)` revision → one encoded [`crate::mvcc::Record`]
//!   (a put's full key-value or a delete's tombstone). It is the ground truth:
//!   the in-memory key index is rebuilt from it on start, historical reads and
//!   (later) watch replay read it. Compaction removes what no read at or above
//!   the compact revision can see.
//! * `leases`: the granted leases; written with the keys they affect.
//! * `lease_checkpoints`: the remaining TTL last checkpointed for a lease
//!   (absent: none, the full TTL counts).
//! * `alarms`: active alarms (NOSPACE), replicated like the data.
//! * `meta`: counters written in the same transaction as the data they
//!   describe, so a crash never separates them.

use redb::TableDefinition;

/// Revision `(main, sub)` → encoded record.
pub const HISTORY: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("history");

/// Lease id → granted TTL in seconds. Attached keys are not stored twice:
/// they are the live keys whose record names the lease.
pub const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");

/// Lease id → remaining TTL in seconds at its last checkpoint (etcd's
/// `remainingTTL`): a new leader starts the lease from it, not its full TTL.
pub const LEASE_CHECKPOINTS: TableDefinition<i64, i64> = TableDefinition::new("lease_checkpoints");

/// Active alarms: `(member id, alarm type)`.
pub const ALARMS: TableDefinition<(u64, i32), ()> = TableDefinition::new("alarms");

/// The replicated state machine's own progress, written in the same
/// transaction as the data it describes: `last_applied` (openraft's log id)
/// and `membership` (the last applied membership), postcard-encoded. Empty
/// on a single member without a replicated log.
pub const RAFT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_state");

/// Named counters and identities.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The keys of the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The store's current revision (also when its last write was compacted away).
    CurrentRevision,
    /// The revision of the last compaction, plus one (0 = never compacted), so
    /// that etcd's initial compact revision of -1 fits an unsigned cell.
    CompactRevisionPlusOne,
    /// Number of commands applied: the raft index a single member reports.
    AppliedIndex,
    /// Random identities chosen when the member first starts.
    ClusterId,
    MemberId,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CurrentRevision => "current_revision",
            Self::CompactRevisionPlusOne => "compact_revision_plus_one",
            Self::AppliedIndex => "applied_index",
            Self::ClusterId => "cluster_id",
            Self::MemberId => "member_id",
        }
    }
}
