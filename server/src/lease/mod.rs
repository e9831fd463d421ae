//! Leases: the replicated lease table (which leases exist, their granted TTL,
//! which keys hang on them) and the lessor, which keeps their deadlines in
//! memory and turns expiries into revoke commands.
//!
//! The split keeps apply deterministic: [`table`] changes only when a command is
//! applied and reads no clock; [`lessor`] and [`expiry`] own time, and what
//! they decide enters the store only as a `LeaseRevoke` command.

pub(crate) mod expiry;
pub(crate) mod lessor;
pub(crate) mod table;

pub(crate) use lessor::Lessor;
pub(crate) use table::LeaseTable;

/// etcd's largest lease TTL, in seconds.
pub(crate) const MAX_LEASE_TTL: i64 = 9_000_000_000;
