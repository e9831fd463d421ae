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
//! - [`support`]: backends, a client bundle, request builders, error asserts.
//! - [`kv`]: Range/Put/DeleteRange options and revision semantics.
//! - [`txn`]: compares, branches, nesting.
//! - [`compact`]: compaction and historical reads around it.
//! - [`errors`]: exact gRPC codes and messages, and that errors change nothing.
//! - [`maintenance`]: Status, MemberList, ids across restarts, clean shutdown.
//! - [`differential`]: seeded random sequences against etcd and rollcall.
//! - [`etcdctl`]: the real etcdctl against the server, outputs asserted.
//! - [`crash`]: concurrent writers, `kill -9`, restart, durability checks.

#![allow(clippy::unwrap_used)]

/// Declares, for each `async fn name(backend: Backend)` in the calling module,
/// a module `name` with two tests: `rollcall` and `etcd`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rollcall() {
                super::$name($crate::support::rollcall()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                let test = concat!(module_path!(), "::etcd");
                if let Some(backend) = $crate::support::etcd(test) {
                    super::$name(backend).await;
                }
            }
        }
    )*};
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
