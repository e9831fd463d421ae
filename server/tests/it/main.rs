//! Integration tests of the `rollcall` binary: real processes on free loopback
//! ports, driven through the generated etcd v3 gRPC stubs and through
//! `etcdctl`.
//!
//! Every behavioural test is written once, as an `async fn(Backend)`, and run
//! twice by [`backend_tests!`]: `<test>::rollcall` against the binary under
//! test and `<test>::etcd` against a real etcd 3.4, which proves that the
//! test's expectations are etcd's own. `cargo test -- ::etcd` runs only the
//! reference side; a missing etcd skips it (or fails it under
//! `ROLLCALL_REQUIRE_ETCD=1`).
//!
//! Modules:
//! - [`support`]: the suite's client conveniences (builders and asserts are
//!   the harness's).
//! - [`kv`]: Range/Put/DeleteRange options and revision semantics.
//! - [`txn`]: compares, branches, nesting.
//! - [`compact`]: compaction and historical reads around it.
//! - [`errors`]: exact gRPC codes and messages, and that errors change nothing.
//! - [`maintenance`]: Status, MemberList, ids across restarts, clean shutdown.
//! - [`differential`]: seeded random sequences against etcd and rollcall.
//! - [`etcdctl`]: the real etcdctl against the server, outputs asserted.
//! - [`crash`]: concurrent writers, `kill -9`, restart, durability checks.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

/// Each test against rollcall and etcd, from one definition in the harness.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        rollcall_tests::backend_tests!(rollcall = env!("CARGO_BIN_EXE_rollcall"); $($name),+);
    };
}

mod compact;
mod crash;
mod differential;
mod errors;
mod etcdctl;
mod kv;
mod maintenance;
mod support;
mod txn;
