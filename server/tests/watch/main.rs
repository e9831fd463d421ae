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
//! - [`support`]: a launcher taking the watch flags, clients, a bounded watch
//!   stream wrapper, and a model of committed events.
//! - [`basic`]: ids, ranges, history replay, prev_kv, filters, cancel,
//!   progress (requested and periodic), compaction, lease expiry.
//! - [`scale`]: many watchers and streams, one response per txn revision,
//!   fragments, a slow reader.
//! - [`model`]: seeded random writes with concurrent watchers, validated
//!   against a model derived from the acknowledged writes.
//! - [`etcdctl`]: `etcdctl watch` against the server, outputs asserted.

#![allow(clippy::unwrap_used)]

/// Declares, for each `async fn name(backend: Backend)` in the calling module,
/// a module `name` with two tests: `rollcall` and `etcd`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn rollcall() {
                super::$name($crate::support::rollcall()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn etcd() {
                let test = concat!(module_path!(), "::etcd");
                if let Some(backend) = $crate::support::etcd(test) {
                    super::$name(backend).await;
                }
            }
        }
    )*};
}

mod basic;
mod etcdctl;
mod model;
mod scale;
mod support;
