//! rollcall: a service registry that speaks the etcd v3 API.
//!
//! How a request flows (ARCHITECTURE.md has the whole picture):
//!
//! * [`api`] holds the tonic services. Reads run on a published snapshot of
//!   the committed state ([`mvcc::Store::read`]) and hold no lock while they
//!   read; writes become an [`apply::Command`] handed to the
//!   [`proposer::Proposer`].
//! * The [`applier`] thread is the only writer: it applies each batch of
//!   queued commands with the pure step [`apply::apply_batch`] (the
//!   multi-version store [`mvcc`], leases and alarms, in [`state`]) inside
//!   one redb transaction ([`storage`]), commits once, and only then answers
//!   the callers, publishes the new snapshot and feeds the [`watch`] hub.
//! * [`server::run`] wires it together for a set of listeners and a shutdown
//!   signal, so tests can bind port 0.

// Only `config`, `error`, `server` and `storage::snapshot` are API (the
// binary and in-process tests use them); everything else is the crate's own,
// so rustc reports what nothing uses.
#![warn(unreachable_pub)]

pub(crate) mod alarm;
pub(crate) mod api;
pub(crate) mod applier;
pub(crate) mod apply;
pub(crate) mod compactor;
pub mod config;
pub mod error;
pub(crate) mod lease;
pub(crate) mod metrics;
pub(crate) mod mvcc;
pub(crate) mod net;
pub(crate) mod proposer;
pub(crate) mod quota;
pub(crate) mod raft;
pub mod server;
pub(crate) mod settle;
pub(crate) mod state;
pub mod storage;
pub(crate) mod txn;
pub(crate) mod watch;

#[cfg(test)]
mod tests;
