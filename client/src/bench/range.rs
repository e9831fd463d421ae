//! The `range` scenario: single-key gets of random keys, linearizable or
//! serializable, over a key space written beforehand (the fill is not timed).

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
use crate::kv::GetOptions;

/// Parameters of the range scenario.
#[derive(Debug, Clone)]
pub struct RangeBenchOptions {
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    /// Gets to issue in all (the fill comes on top).
    pub total: Option<u64>,
    /// Stop issuing gets after this long (with `total`, whichever first).
    pub duration: Option<Duration>,
    pub key_size: usize,
    /// Size of the values written by the fill.
    pub val_size: usize,
    /// Keys 0..key_space are each written once, then read at random.
    pub key_space: u64,
    /// Serializable (`s`) rather than linearizable (`l`) reads.
    pub serializable: bool,
    /// Write every key of the key space before measuring.
    pub fill: bool,
    pub connect: ConnectOptions,
    /// Incremented after each completed get (not the fill), for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for RangeBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 100,
            conns: 10,
            total: Some(10_000),
            duration: None,
            key_size: 8,
            val_size: 256,
            key_space: 10_000,
            serializable: false,
            fill: true,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

/// Writes key number `seq`: the fill visits every key exactly once.
struct SequentialPut {
    key_size: usize,
    value: Bytes,
}

impl Workload for SequentialPut {
    async fn op(
        &self,
        client: &Client,
        seq: u64,
        _rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        client
            .put(keys::key_for(seq, self.key_size), self.value.clone())
            .await?;
        Ok(Completion::Done)
    }
}

/// Gets a random key of the key space.
struct RandomGet {
    key_size: usize,
    key_space: u64,
    serializable: bool,
}

impl Workload for RandomGet {
    async fn op(
        &self,
        client: &Client,
        _seq: u64,
        rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let key = keys::random_key(rng, self.key_space, self.key_size);
        let options = GetOptions {
            serializable: self.serializable,
            ..GetOptions::default()
        };
        client.get_with(key, options).await?;
        Ok(Completion::Done)
    }
}

/// Runs the range scenario. A failed put during the fill fails the run with
/// that error, since the reads would then measure missing keys.
pub async fn run_range(options: RangeBenchOptions) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    validate_keys(options.key_size, options.key_space)?;
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    if options.fill {
        let fill = Load::new(options.clients, Some(options.key_space), None, None);
        let workload = Arc::new(SequentialPut {
            key_size: options.key_size,
            value: keys::random_value(options.val_size),
        });
        let outcome = driver::drive(&conns, &fill, workload).await;
        if let Some(e) = outcome.first_error {
            return Err(e);
        }
    }
    let load = Load::new(
        options.clients,
        options.total,
        options.duration,
        options.progress.clone(),
    );
    let workload = Arc::new(RandomGet {
        key_size: options.key_size,
        key_space: options.key_space,
        serializable: options.serializable,
    });
    let outcome = driver::drive(&conns, &load, workload).await;
    let params = Params {
        scenario: "range",
        endpoints: driver::endpoints_of(&conns),
        clients: options.clients,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: options.key_size,
        val_size: options.val_size,
        key_space: options.key_space,
        consistency: Some(if options.serializable { "s" } else { "l" }),
        counts_conflicts: false,
    };
    Ok(BenchReport::new(params, outcome))
}
