//! The load generator behind `rollcall bench` (issue 6): closed-loop
//! scenarios that speak only the etcd v3 wire API, so the same run can be
//! pointed at rollcall or at etcd.
//!
//! - `driver.rs`: connections, the concurrent request loop bounded by a total,
//!   per-request latency into an HDR histogram;
//! - `keys.rs`: fixed-size keys drawn from a key space, random values;
//! - `put.rs`, `range.rs`: one scenario each;
//! - `report.rs`: [`BenchReport`], printed as a table or as one JSON line.

mod driver;
mod keys;
mod put;
mod range;
mod report;

pub use put::{PutBenchOptions, run_put};
pub use range::{RangeBenchOptions, run_range};
pub use report::{BenchReport, LatencySummary};
