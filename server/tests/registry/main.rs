//! Service registry integration tests: `rollcall-client`'s registration,
//! health probes and discovery against real `rollcall` processes (started
//! with `--min-lease-ttl 1`, so the suite can use 1–3 s TTLs), with local
//! HTTP, TCP and gRPC-health servers as probe targets and a TCP proxy to
//! partition a client from the registry without stopping it.
//!
//! Every wait is bounded (at most [`support::WAIT`], 15 s).
//!
//! Run only this binary with `cargo test -p rollcall-server --test registry`.
//!
//! Modules:
//! - [`support`]: the registry process (kill -9, SIGTERM, restart on the same
//!   data dir and port), clients, reading an instance back, bounded polling.
//! - [`targets`]: the proxy and the probe targets.
//! - [`register`]: the key, its lease and JSON value; keep-alive beyond the
//!   TTL; deregister and drop; a crashed process; a lease revoked from
//!   outside (client and `etcdctl`).
//! - [`restart`]: registrations across registry restarts (SIGTERM, kill -9)
//!   and a partition longer than the TTL.
//! - [`probes`]: closure, HTTP, TCP and gRPC probes flip the value to
//!   critical and back under the same lease; thresholds.
//! - [`discovery`]: listing, live changes, protection threshold, stale
//!   serving while the registry is down or cut off, catching up afterwards,
//!   re-listing after compaction, `services()`, and the latency of dropping
//!   a killed instance and adding a new one.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

mod discovery;
mod probes;
mod register;
mod reput;
mod restart;
mod support;
mod targets;
