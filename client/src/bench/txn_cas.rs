//! The `txn-cas` scenario: compare-and-swap on a shared key set. Each
//! request reads a random key's `mod_revision` (linearizable), then runs a
//! transaction that puts a new value only if the key is still at that
//! revision. A failed compare (another client swapped first) is a
//! *conflict*: counted apart from successes and errors. Latency is that of
//! the whole read + transaction.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;

use super::driver::{self, Completion, Load, Workload};
use super::keys;
use super::put::validate_keys;
use super::report::{BenchReport, Params};
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;
use crate::kv::{Compare, CompareOp, Op, Txn};

/// Parameters of the txn-cas scenario.
#[derive(Debug, Clone)]
pub struct TxnCasBenchOptions {
    pub endpoints: Vec<String>,
    /// Swaps in flight at once (one task each).
    pub clients: usize,
    pub conns: usize,
    /// Swap attempts in all.
    pub total: Option<u64>,
    /// Stop attempting after this long (with `total`, whichever first).
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub val_size: usize,
    /// The shared key set: the smaller, the more conflicts.
    pub key_space: u64,
    pub connect: ConnectOptions,
    /// Incremented after each completed attempt, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for TxnCasBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 100,
            conns: 10,
            total: Some(10_000),
            duration: None,
            key_size: 8,
            val_size: 256,
            key_space: 1000,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

struct CompareAndSwap {
    key_size: usize,
    key_space: u64,
    value: Bytes,
}

impl Workload for CompareAndSwap {
    async fn op(
        &self,
        client: &Client,
        _seq: u64,
        rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let key = keys::random_key(rng, self.key_space, self.key_size);
        let read = client.get(key.clone()).await?;
        // A missing key has mod_revision 0, which the compare also matches.
        let seen = read.kvs.first().map_or(0, |kv| kv.mod_revision);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, seen)])
            .and_then([Op::put(key, self.value.clone())]);
        if client.txn(txn).await?.succeeded {
            Ok(Completion::Done)
        } else {
            Ok(Completion::Conflict)
        }
    }
}

/// Runs the txn-cas scenario. `ok` counts successful swaps, `conflicts` the
/// attempts that lost a race; ops/s is successful swaps per second.
pub async fn run_txn_cas(options: TxnCasBenchOptions) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    validate_keys(options.key_size, options.key_space)?;
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    let workload = Arc::new(CompareAndSwap {
        key_size: options.key_size,
        key_space: options.key_space,
        value: keys::random_value(options.val_size),
    });
    let load = Load::new(
        options.clients,
        options.total,
        options.duration,
        options.progress.clone(),
    );
    let outcome = driver::drive(&conns, &load, workload).await;
    #[allow(clippy::cast_precision_loss)]
    let attempts_per_sec = (outcome.ok + outcome.conflicts) as f64
        / outcome.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let params = Params {
        scenario: "txn-cas",
        endpoints: driver::endpoints_of(&conns),
        clients: options.clients,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: options.key_size,
        val_size: options.val_size,
        key_space: options.key_space,
        consistency: None,
        counts_conflicts: true,
    };
    Ok(BenchReport::new(params, outcome).with_extra("attempts_per_sec", round1(attempts_per_sec)))
}

/// One decimal place, for the report's extra numbers.
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
