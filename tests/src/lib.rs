//! `rollcall-tests`: the harness the integration tests stand on.
//!
//! It starts real server processes, never in-process servers, so that every
//! test sees what a client on the network would see: the `rollcall` binary
//! or a real etcd 3.4 (the reference the tests are checked against), each on
//! a free loopback port with its own temporary data directory, and kills and
//! cleans them up in `Drop`, also when a test panics.
//!
//! Layout:
//! - [`ports`]: free loopback ports, never fixed ones.
//! - [`tools`]: is `etcd` / `etcdctl` installed, and the skip-or-fail rule.
//! - [`server`]: [`ServerProcess`], one rollcall or etcd process (start,
//!   readiness, kill -9, restart on the same data dir and port).
//! - [`etcdctl`]: runs `etcdctl` (API v3) against an endpoint with a timeout.
//! - [`normalize`]: erases the header fields that legitimately differ between
//!   two servers (cluster id, member id, raft term) before comparing responses.
//! - [`rng`]: a tiny deterministic PRNG for seeded random test sequences.
//! - [`error`]: the [`HarnessError`] type.
//!
//! The integration tests themselves live in `server/tests/` (the package that
//! owns the `rollcall` binary, so `CARGO_BIN_EXE_rollcall` is defined there
//! and `cargo test --workspace` builds the binary it runs).

pub mod error;
pub mod etcdctl;
pub mod normalize;
pub mod ports;
pub mod rng;
pub mod server;
pub mod tools;

pub use error::HarnessError;
pub use server::{Backend, ServerConfig, ServerProcess};
pub use tools::{Tool, etcd_available, etcdctl_available, require_or_skip};

/// Re-exported so tests can parse `etcdctl -w json` output without their own
/// dependency on it.
pub use serde_json;
