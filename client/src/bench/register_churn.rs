//! The `register-churn` scenario: the registry pattern as fast as it goes.
//! One cycle is grant (TTL `ttl`) + put of an instance key attached to the
//! lease + one keep-alive + revoke (which deletes the key); `clients` cycles
//! run at once. ops/s is cycles per second, latency that of a whole cycle.

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
use crate::kv::PutOptions;

/// Parameters of the register-churn scenario.
#[derive(Debug, Clone)]
pub struct RegisterChurnBenchOptions {
    pub endpoints: Vec<String>,
    /// Cycles in flight at once (one task each).
    pub clients: usize,
    pub conns: usize,
    /// Cycles in all.
    pub total: Option<u64>,
    /// Stop starting cycles after this long (with `total`, whichever first).
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub val_size: usize,
    /// The granted TTL in seconds (the lease is revoked long before).
    pub ttl: i64,
    pub connect: ConnectOptions,
    /// Incremented after each completed cycle, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for RegisterChurnBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 100,
            conns: 10,
            total: Some(10_000),
            duration: None,
            key_size: 8,
            val_size: 256,
            ttl: 10,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

struct Churn {
    key_size: usize,
    ttl: i64,
    value: Bytes,
}

impl Workload for Churn {
    async fn op(
        &self,
        client: &Client,
        seq: u64,
        _rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let lease = client.grant(self.ttl).await?.id;
        let key = keys::key_for(seq, self.key_size);
        client
            .put_with(key, self.value.clone(), PutOptions::new().lease(lease))
            .await?;
        client.keep_alive_once(lease).await?;
        client.revoke(lease).await?;
        Ok(Completion::Done)
    }
}

/// Runs the register-churn scenario.
pub async fn run_register_churn(
    options: RegisterChurnBenchOptions,
) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    validate_keys(options.key_size, 1)?;
    if options.ttl <= 0 {
        return Err(ClientError::InvalidOption {
            option: "ttl",
            reason: "must be positive",
        });
    }
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    let workload = Arc::new(Churn {
        key_size: options.key_size,
        ttl: options.ttl,
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
        scenario: "register-churn",
        endpoints: driver::endpoints_of(&conns),
        clients: options.clients,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: options.key_size,
        val_size: options.val_size,
        key_space: 0,
        consistency: None,
        counts_conflicts: false,
    };
    Ok(BenchReport::new(params, outcome).with_extra("ttl", options.ttl))
}
