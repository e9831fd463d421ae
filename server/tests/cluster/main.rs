//! Cluster integration tests: three real `rollcall` processes replicating
//! through openraft on loopback, and the same test bodies against a real
//! 3-member etcd 3.4 (the reference: an expectation that fails on etcd is
//! not etcd's behaviour). Faults are real: kill -9, SIGSTOP/SIGCONT,
//! restarts on the same data dir, and cut links between members that run
//! in network namespaces of their own (root and iproute2; skipped, or
//! failed under CI, without).
//!
//! Run only this binary with `cargo test -p rollcall-server --test cluster`.
//!
//! Modules:
//! - [`support`]: starting a cluster, finding the leader, bounded retries.
//! - [`basics`]: one cluster seen through every member (writes, reads,
//!   MemberList, Status, watches on followers).
//! - [`catch_up`]: a new member catches up on 100,000 keys from a
//!   snapshot while writes go on.
//! - [`client_failover`]: `rollcall-client` given every member fails over
//!   when its member is killed, and its watch resumes without a gap.
//! - [`failover_watch`]: watchers that move to another member when their
//!   stream breaks, recorded for `rollcall_tests::watch_check`.
//! - [`faults`]: leader kill, a minority without quorum, restarts.
//! - [`leases`]: keep-alives and TimeToLive through a follower, expiry by
//!   the leader only; a new leader resumes leases from their checkpoints.
//! - [`linearizable`]: concurrent reads, writes and compare-and-sets under
//!   kill -9 and SIGSTOP of members (the leader too), and under partitions
//!   of members on hosts of their own, checked for
//!   linearizability, with watchers on every member checked for etcd's
//!   watch guarantees.
//! - [`metrics`]: peer round trips, leader and pending writes in the
//!   leader's `/metrics`, as etcd names them.
//! - [`move_leader`]: MoveLeader's refusals as etcd's (rollcall cannot
//!   transfer leadership: openraft 0.9).
//! - [`partitions`]: the leader cut off by a partition (network namespaces)
//!   stops leading; the majority goes on and expires its leases.
//! - [`peer_tls`]: members on https:// peer URLs with etcd's peer TLS
//!   flags and mutual TLS.
//! - [`membership`]: a learner added, caught up, promoted and removed;
//!   etcd's refusals.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

/// Each test against a rollcall cluster and an etcd cluster.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        rollcall_tests::backend_tests!(rollcall = env!("CARGO_BIN_EXE_rollcall"); $($name),+);
    };
}

mod basics;
mod catch_up;
mod client_failover;
mod failover_watch;
mod faults;
mod leases;
mod linearizable;
mod membership;
mod metrics;
mod move_leader;
mod partitions;
mod peer_tls;
mod support;
