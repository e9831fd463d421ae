//! The load generator behind `rollcall bench` (issue 6): scenarios that
//! speak only the etcd v3 wire API, so the same run can be pointed at
//! rollcall or at etcd.
//!
//! - `driver.rs`: connections, the closed request loop bounded by a total or
//!   a duration, per-request latency into an HDR histogram;
//! - `keys.rs`: fixed-size keys drawn from a key space, random values;
//! - `put.rs`, `range.rs`, `txn_cas.rs`, `register_churn.rs`: closed-loop
//!   scenarios over the driver;
//! - `lease_keepalive.rs`: renewals pipelined over KeepAlive streams;
//! - `lease_expiry.rs`: put latency while many leases expire at once;
//! - `watch_latency.rs`: many watchers over shared streams, an open-loop
//!   writer at a fixed rate, put-to-event latency;
//! - `report.rs`: [`BenchReport`], printed as a table or as one JSON line.

mod driver;
mod keys;
mod lease_expiry;
mod lease_keepalive;
mod put;
mod range;
mod register_churn;
mod report;
mod txn_cas;
mod watch_latency;

pub use lease_expiry::{LeaseExpiryBenchOptions, run_lease_expiry};
pub use lease_keepalive::{LeaseKeepAliveBenchOptions, run_lease_keepalive};
pub use put::{PutBenchOptions, run_put};
pub use range::{RangeBenchOptions, run_range};
pub use register_churn::{RegisterChurnBenchOptions, run_register_churn};
pub use report::{BenchReport, LatencySummary};
pub use txn_cas::{TxnCasBenchOptions, run_txn_cas};
pub use watch_latency::{WatchLatencyBenchOptions, run_watch_latency};
