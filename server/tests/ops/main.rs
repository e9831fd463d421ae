//! Operations tests: what an operator's tools see of a real `rollcall`
//! process, and the files in `deploy/` that read it.
//!
//! - [`metrics`]: `/metrics` parsed by a strict OpenMetrics parser: every
//!   documented family with its type and labels, and counters and gauges
//!   moving by exactly what the client did (puts, deletes, txns, leases,
//!   expiry, watchers, registry instances).
//! - [`health`]: `/health` (etcd's JSON shape; false with the reason while
//!   a NOSPACE alarm is raised), `/livez`, `/readyz`, 404s.
//! - [`rules`]: `deploy/prometheus/rollcall-alerts.yml` is well formed,
//!   passes `promtool check rules` and its unit tests `promtool test rules`,
//!   and reads only metrics rollcall exports (with an explicit allowlist of
//!   the ones documented as not exported yet).
//! - [`dashboard`]: `deploy/grafana/rollcall-dashboard.json` is a Grafana
//!   dashboard whose queries parse and read only exported metrics.
//! - [`promql`]: the small PromQL tokenizer that finds metric names.
//! - [`support`]: the server, its metrics port and clients, promtool.
//!
//! Every server runs on free loopback ports; every wait is bounded. Tests
//! that need `promtool` (Debian: `apt-get install prometheus`) print SKIPPED
//! without it, or fail under `ROLLCALL_REQUIRE_PROMTOOL=1`.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not the async
// test bodies and helpers they call.
#![allow(clippy::unwrap_used)]

mod dashboard;
mod health;
mod logs;
mod metrics;
mod promql;
mod rules;
mod support;
