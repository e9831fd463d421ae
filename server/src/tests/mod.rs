//! In-process tests of the write path that need the crate's internals: a
//! bare replica of the state machine (`replica.rs`), command generators
//! (`commands.rs`), replay determinism, and a model check of the MVCC store.

mod commands;
mod determinism;
mod mvcc_model;
mod replica;
