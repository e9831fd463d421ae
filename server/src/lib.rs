//! rollcall: a service registry that speaks the etcd v3 API.
//!
//! How a request flows (see `DESIGN.md` §1):
//!
//! * [`api`] holds the tonic services. Reads run on a consistent snapshot of
//!   the committed state ([`mvcc::Store::read`]); writes become a
//!   [`apply::Command`] handed to the [`proposer::Proposer`].
//! * The proposer's applier thread is the only writer: it applies batches of
//!   commands ([`apply`]) to the multi-version store ([`mvcc`]) in one redb
//!   transaction ([`storage`]) and commits once per batch.
//! * [`server::run`] wires it together for a set of listeners and a shutdown
//!   signal, so tests can bind port 0.

pub mod alarm;
pub mod api;
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
pub mod side_state;
pub mod storage;
pub mod txn;
pub mod watch;

#[cfg(test)]
mod tests;
