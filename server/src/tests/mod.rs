//! In-process tests of the core: the write path, the multi-version store,
//! the watch hub and one whole server on a loopback port, each file one area,
//! all built through [`fixture`].

mod fixture;

mod apply;
mod mvcc_index;
mod mvcc_store;
mod mvcc_view;
mod mvcc_write;
mod server_inprocess;
mod txn;
mod watch_hub;
