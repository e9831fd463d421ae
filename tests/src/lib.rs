//! `rollcall-tests`: the harness the integration tests stand on.
//!
//! It starts real server processes, never in-process servers, so that every
//! test sees what a client on the network would see: the `rollcall` binary
//! or a real etcd 3.4 (the reference the tests are checked against), each on
//! free loopback ports with its own temporary data directory, alone or as a
//! cluster of N members, and kills and cleans them up in `Drop`, also when a
//! test panics.
//!
//! Layout:
//! - [`ports`]: free loopback ports, never fixed ones.
//! - [`layout`]: every member's name and ports, allocated before any starts;
//!   the peer flags derived from them.
//! - [`config`]: [`Backend`] and [`ServerConfig`] (extra flags, environment,
//!   an existing data dir).
//! - [`server`]: [`ServerProcess`], one process (start, the one readiness
//!   probe, kill -9, SIGSTOP/SIGCONT, restart on the same data dir and ports).
//! - [`cluster`]: [`Cluster`], N members started together, on loopback or
//!   each on its own host ([`netns`]) for partitions.
//! - [`pki`]: a throwaway CA and certificates for TLS tests.
//! - [`netns`]: [`netns::Hosts`], network namespaces on a bridge whose
//!   links a test cuts and heals.
//! - [`backend`]: [`backend_tests!`], each test against rollcall and etcd.
//! - [`tools`]: is `etcd` / `etcdctl` / `promtool` installed, the
//!   skip-or-fail rule, and the record of tool-dependent checks that ran.
//! - [`etcdctl`]: runs `etcdctl` (API v3) against an endpoint with a timeout.
//! - [`normalize`]: erases the header fields that legitimately differ between
//!   two servers (cluster id, member id, raft term) before comparing responses.
//! - [`rng`]: a tiny deterministic PRNG for seeded random test sequences.
//! - [`signal`]: Unix signals by process id.
//! - [`grpc`]: every gRPC stub of one server ([`grpc::Clients`]), request
//!   builders, error asserts.
//! - [`events`]: watched key ranges and watch events for assertions.
//! - [`watch_stream`] and [`keepalive`]: Watch and LeaseKeepAlive streams
//!   whose every wait is bounded.
//! - [`watch_check`]: validators for etcd's watch guarantees (ordered,
//!   unique, atomic, reliable, resumable, bookmarkable, ...) against the
//!   ground truth of committed events.
//! - [`txn`]: transaction ops, compares and KV request builders.
//! - [`wait`]: polling for a condition under a deadline.
//! - [`metrics`]: a parsed `/metrics` scrape.
//! - [`http`]: a minimal HTTP/1.1 GET for `/metrics` and `/health`.
//! - [`process`]: client processes run to completion or in the background.
//! - [`linearizability`]: records concurrent KV operations and checks that
//!   the history is linearizable (per-key register model, Lowe's search).
//! - [`error`]: the [`HarnessError`] type.
//!
//! The integration tests themselves live in `server/tests/` (the package that
//! owns the `rollcall` binary, so `CARGO_BIN_EXE_rollcall` is defined there
//! and `cargo test --workspace` builds the binary it runs).

pub mod backend;
pub mod cluster;
pub mod config;
pub mod error;
pub mod etcdctl;
pub mod events;
pub mod grpc;
pub mod http;
pub mod keepalive;
pub mod layout;
pub mod linearizability;
pub mod metrics;
pub mod netns;
pub mod normalize;
pub mod pki;
pub mod ports;
pub mod process;
pub mod rng;
pub mod server;
pub mod signal;
pub mod tools;
pub mod txn;
pub mod wait;
pub mod watch_check;
pub mod watch_stream;

pub use cluster::{Cluster, ClusterBuilder};
pub use config::{Backend, ServerConfig};
pub use error::HarnessError;
pub use layout::{Layout, MemberSlot};
pub use server::ServerProcess;
pub use tools::{Tool, etcd_available, etcdctl_available, require_or_skip, skipped};

/// Re-exported so tests can parse `etcdctl -w json` output without their own
/// dependency on it.
pub use serde_json;
