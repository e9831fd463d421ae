//! Replication on openraft: a cluster of members that agree on one log of
//! [`types::Batch`]es of client commands and apply it with the same pure
//! step and post-commit step as a single member.
//!
//! * [`types`]: openraft's type configuration (entry payload, member node).
//! * [`codec`]: commands and results as protobuf, openraft's messages as
//!   postcard bytes.
//! * [`log_store`]: the replicated log in its own redb file (the durable
//!   point of a write).
//! * [`state_machine`]: `apply` of committed entries in one redb transaction
//!   of the member's database, with the last applied log id and membership
//!   ([`applied`] reads and writes that record).
//! * [`network`]: openraft's messages to the other members over the peer
//!   service; [`quorum`] records their answers for check-quorum.
//! * [`node`]: one member — propose, read index, leader, membership.
//! * [`purge`]: which log entries may go once a snapshot holds them.
// openraft's storage traits fix the error type (`StorageError`, large); the
// helpers behind them return it too rather than converting twice.
#![allow(clippy::result_large_err)]

pub(crate) mod applied;
pub(crate) mod bootstrap;
pub(crate) mod codec;
pub(crate) mod log_store;
pub(crate) mod members;
pub(crate) mod membership;
pub(crate) mod network;
pub(crate) mod node;
pub(crate) mod purge;
pub(crate) mod quorum;
pub(crate) mod snapshot;
pub(crate) mod state_machine;
pub(crate) mod types;
