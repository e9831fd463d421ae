//! Lease integration tests of the `rollcall` binary: real processes on free
//! loopback ports, driven through the generated etcd v3 gRPC stubs and
//! through `etcdctl`.
//!
//! Every behavioural test is written once, as an `async fn(Backend)`, and run
//! twice by [`backend_tests!`]: `<test>::rollcall` against the binary under
//! test and `<test>::etcd` against a real etcd 3.4, which proves that the
//! expectations are etcd's own. A missing etcd skips the reference side (or
//! fails it under `ROLLCALL_REQUIRE_ETCD=1`).
//!
//! Run only this binary with `cargo test -p rollcall-server --test lease`.
//!
//! Modules:
//! - [`support`]: the suite's client conveniences, a watcher of DELETEs,
//!   etcd's lease error messages.
//! - [`grant`]: ids (server- and client-chosen), duplicates, TTL bounds,
//!   LeaseLeases.
//! - [`attach`]: put/delete attach and detach keys; revoke deletes the
//!   attached keys in one revision; unknown leases.
//! - [`keepalive`]: KeepAlive streams and TimeToLive.
//! - [`expiry`]: expiry deletes attached keys (short TTLs, bounded waits);
//!   keep-alive postpones it.
//! - [`restart`]: leases and their keys survive SIGTERM and kill -9 with a
//!   fresh TTL, and still expire afterwards.
//! - [`flags`]: rollcall's own lease flags (`--min-lease-ttl`,
//!   `--lease-check-interval-ms`, `--lease-revoke-batch`); rollcall only.
//! - [`differential`]: seeded random lease sequences against etcd and
//!   rollcall, compared field by field.
//! - [`visibility`]: lease reads (TimeToLive) agree with KV reads while
//!   revokes and attaching puts are in flight.
//! - [`etcdctl`]: `etcdctl lease ...` and `put --lease` against the server.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

/// Each test against rollcall and etcd, from one definition in the harness
/// (which also bounds each test's time).
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        rollcall_tests::backend_tests!(rollcall = env!("CARGO_BIN_EXE_rollcall"); $($name),+);
    };
}

mod attach;
mod differential;
mod etcdctl;
mod expiry;
mod flags;
mod grant;
mod keepalive;
mod restart;
mod support;
mod visibility;
