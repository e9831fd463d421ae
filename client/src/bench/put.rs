//! The `put` scenario: durable writes of random keys from the key space.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;

use super::driver::{self, Completion, Load, Workload};
use super::keys;
use super::report::{BenchReport, Params};
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;

/// Parameters of the put scenario.
#[derive(Debug, Clone)]
pub struct PutBenchOptions {
    pub endpoints: Vec<String>,
    /// Requests in flight at once (one task each).
    pub clients: usize,
    /// gRPC connections; clients are spread over them round robin.
    pub conns: usize,
    /// Requests to issue in all, after which the run stops.
    pub total: Option<u64>,
    /// Stop issuing requests after this long (with `total`, whichever
    /// comes first).
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub val_size: usize,
    /// Keys are drawn uniformly from this many distinct keys.
    pub key_space: u64,
    pub connect: ConnectOptions,
    /// Incremented after each completed request, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for PutBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 100,
            conns: 10,
            total: Some(10_000),
            duration: None,
            key_size: 8,
            val_size: 256,
            key_space: 100_000,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

pub(crate) fn validate_keys(key_size: usize, key_space: u64) -> Result<(), ClientError> {
    if key_size == 0 {
        return Err(ClientError::InvalidOption {
            option: "key_size",
            reason: "keys must not be empty",
        });
    }
    if key_space == 0 {
        return Err(ClientError::InvalidOption {
            option: "key_space",
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Puts `value` at a random key of the key space.
pub(crate) struct RandomPut {
    pub key_size: usize,
    pub key_space: u64,
    pub value: Bytes,
}

impl Workload for RandomPut {
    async fn op(
        &self,
        client: &Client,
        _seq: u64,
        rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let key = keys::random_key(rng, self.key_space, self.key_size);
        client.put(key, self.value.clone()).await?;
        Ok(Completion::Done)
    }
}

/// Runs the put scenario: puts of random keys by `clients` concurrent
/// requests over `conns` connections, `total` of them or for `duration`.
pub async fn run_put(options: PutBenchOptions) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    validate_keys(options.key_size, options.key_space)?;
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    let workload = Arc::new(RandomPut {
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
    let params = Params {
        scenario: "put",
        endpoints: driver::endpoints_of(&conns),
        clients: options.clients,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: options.key_size,
        val_size: options.val_size,
        key_space: options.key_space,
        consistency: None,
        counts_conflicts: false,
    };
    Ok(BenchReport::new(params, outcome))
}
