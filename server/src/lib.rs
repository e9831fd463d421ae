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

pub mod alarm;
pub mod api;
pub mod applier;
pub mod apply;
pub mod compactor;
pub mod config;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod net;
pub mod proposer;
pub mod quota;
pub mod server;
pub mod state;
pub mod storage;
pub mod txn;
pub mod watch;

#[cfg(test)]
mod tests;
