//! In-process tests of the core, each file one area: the write path, the
//! multi-version store, the watch hub and one whole server on a loopback
//! port, built through [`fixture`]; and the properties replication rests on,
//! built on a bare replica of the state machine (`replica.rs`) and command
//! generators (`commands.rs`): replay determinism and a model check of the
//! MVCC store.

mod commands;
mod fixture;
mod replica;

mod apply;
mod bootstrap;
mod determinism;
mod mvcc_index;
mod mvcc_model;
mod mvcc_store;
mod mvcc_view;
mod mvcc_write;
mod raft_storage;
mod server_inprocess;
mod txn;
mod watch_hub;
