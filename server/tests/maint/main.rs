//! Integration tests of rollcall's maintenance features (issue 7, items 4–6):
//! the backend quota and the NOSPACE alarm, defragmentation, auto-compaction,
//! HashKV, Maintenance.Snapshot and `rollcall snapshot restore`.
//!
//! Every test runs real processes on free loopback ports in temp dirs
//! ([`support::Member`] starts them, through the harness, with the flags
//! the tests vary). Where the behaviour is etcd's (alarm responses, error codes and
//! messages, etcdctl output, periodic auto-compaction), the test is written
//! once as an `async fn(Kind)` and run by [`backend_tests!`] as
//! `<test>::rollcall` and `<test>::etcd` against a real etcd 3.4, which shows
//! the expectation is etcd's own; a missing etcd or etcdctl skips (or fails
//! under `ROLLCALL_REQUIRE_ETCD=1`).
//!
//! Modules:
//! - [`quota`]: quota exceeded → exact error and alarm; what works during
//!   the alarm; recovery by compact + defrag + disarm; the Alarm API; the
//!   alarm across a restart.
//! - [`defrag`]: defragmentation shrinking the file without changing data,
//!   revision or hash; defragmenting while clients read and write.
//! - [`compaction`]: periodic and revision auto-compaction.
//! - [`hashkv`]: determinism across members, change on write, errors.
//! - [`snapshot`]: the snapshot stream, `etcdctl snapshot save`, restore
//!   under concurrent writes, and restore refusals.
//! - [`etcdctl`]: `etcdctl alarm list|disarm`, `compact`, `defrag`,
//!   `endpoint health|hashkv` during and after a NOSPACE alarm.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

/// Each test against rollcall and etcd, from one definition in the harness
/// (a `Kind` is made from its `Backend`).
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        rollcall_tests::backend_tests!(rollcall = env!("CARGO_BIN_EXE_rollcall"); $($name),+);
    };
}

mod compaction;
mod defrag;
mod etcdctl;
mod hashkv;
mod quota;
mod snapshot;
mod support;
