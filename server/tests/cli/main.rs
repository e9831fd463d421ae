//! Tests of the `rollcall` client subcommands (`get`, `put`, `del`, `watch`,
//! `lease …`, `register`, `services`, `discover`, `status`) and of endpoint
//! failover: the real binary against real `rollcall serve` processes on free
//! loopback ports, asserting stdout in both formats (tables and
//! `--output json`), stderr and exit codes.
//!
//! Every wait is bounded (at most [`support::WAIT`], 20 s).
//!
//! Run only this binary with `cargo test -p rollcall-server --test cli`.
//!
//! Modules:
//! - [`support`]: running the binary once or in the background (lines of
//!   stdout, SIGINT), bounded polling, table rows.
//! - [`kv`]: put/get/del round trips, prefixes, ranges and read options,
//!   values that are not plain text.
//! - [`lease`]: grant/ttl/keepalive/list/revoke with hex ids; unknown
//!   leases refused with etcd's message.
//! - [`registry`]: `register` in the background seen by `services` and
//!   `discover`, gone after SIGINT; a failing check; `discover --watch`,
//!   including a stale set when the registry dies.
//! - [`watch`]: events as they arrive; history from a revision; compaction.
//! - [`status`]: `status`; unreachable endpoints named in the error;
//!   `ROLLCALL_ENDPOINTS`.
//! - [`failover`]: two registries, the first killed: the client library's
//!   unary calls, keep-alive and watch streams, and the CLI (including a
//!   running `register`) continue on the second.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

mod failover;
mod kv;
mod lease;
mod registry;
mod status;
mod support;
mod watch;
