//! Integration tests of the Watch service of the `rollcall` binary: real
//! processes on free loopback ports, driven through the generated etcd v3
//! gRPC stubs and through `etcdctl watch`.
//!
//! Every behavioural test is written once, as an `async fn(Backend)`, and run
//! twice by [`backend_tests!`]: `<test>::rollcall` against the binary under
//! test and `<test>::etcd` against a real etcd 3.4, which proves that the
//! test's expectations are etcd's own. `cargo test --test watch -- ::etcd`
//! runs only the reference side; a missing etcd skips it (or fails it under
//! `ROLLCALL_REQUIRE_ETCD=1`).
//!
//! Modules:
//! - [`support`]: the watch flags for either server, the suite's writes, and
//!   a model of committed events.
//! - [`basic`]: ids, ranges, history replay, prev_kv, filters, cancel,
//!   progress (requested and periodic), compaction, lease expiry.
//! - [`scale`]: many watchers and streams, one response per txn revision,
//!   fragments, a slow reader.
//! - [`model`]: seeded random writes with concurrent watchers, validated
//!   against a model derived from the acknowledged writes.
//! - [`etcdctl`]: `etcdctl watch` against the server, outputs asserted.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

/// Each test against rollcall and etcd, from one definition in the harness.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        rollcall_tests::backend_tests!(
            rollcall = env!("CARGO_BIN_EXE_rollcall"), threads = 4; $($name),+
        );
    };
}

mod basic;
mod etcdctl;
mod model;
mod scale;
mod support;
