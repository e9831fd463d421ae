//! The `lease-expiry` scenario: put latency while many leases expire at
//! about the same moment. `leases` leases of `ttl` seconds are granted up
//! front, each with one key under `lease-expiry/` (not timed); then
//! `clients` writers put random unleased keys of the key space, as the
//! `put` scenario does, for `duration` (or `total` puts) while the leases
//! run out and the server deletes their keys. The run should outlast the
//! TTL. The report adds how many leased keys were live when the puts
//! started and when they ended, and how long the setup took (leases granted
//! early may already be gone when it is longer than the TTL).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;

use super::driver::{self, Completion, Load, Workload};
use super::keys;
use super::put::{RandomPut, validate_keys};
use super::report::{BenchReport, Params};
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;
use crate::kv::{GetOptions, PutOptions};

/// Where the leased keys live; the measured puts use the binary keys of the
/// key space, which never start with it.
const PREFIX: &str = "lease-expiry/";

/// Parameters of the lease-expiry scenario.
#[derive(Debug, Clone)]
pub struct LeaseExpiryBenchOptions {
    pub endpoints: Vec<String>,
    /// Puts in flight at once; also the concurrency of the setup.
    pub clients: usize,
    pub conns: usize,
    /// Puts in all.
    pub total: Option<u64>,
    /// Stop putting after this long (with `total`, whichever first).
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    /// Leases granted up front, one key each.
    pub leases: u64,
    /// Their TTL in seconds.
    pub ttl: i64,
    pub connect: ConnectOptions,
    /// Incremented after each completed put, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for LeaseExpiryBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 16,
            conns: 4,
            total: None,
            duration: Some(Duration::from_secs(15)),
            key_size: 8,
            val_size: 256,
            key_space: 100_000,
            leases: 10_000,
            ttl: 3,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

/// Setup step `seq`: a lease and one key attached to it.
struct Attach {
    ttl: i64,
    value: Bytes,
}

impl Workload for Attach {
    async fn op(
        &self,
        client: &Client,
        seq: u64,
        _rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let lease = client.grant(self.ttl).await?.id;
        let key = format!("{PREFIX}{seq:010}");
        client
            .put_with(key, self.value.clone(), PutOptions::new().lease(lease))
            .await?;
        Ok(Completion::Done)
    }
}

async fn live_leased_keys(client: &Client) -> Result<i64, ClientError> {
    let options = GetOptions::default().prefix().count_only();
    Ok(client.get_with(PREFIX, options).await?.count)
}

/// Runs the lease-expiry scenario. A failed setup fails the run.
pub async fn run_lease_expiry(
    options: LeaseExpiryBenchOptions,
) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    validate_keys(options.key_size, options.key_space)?;
    if options.leases == 0 || options.ttl <= 0 {
        return Err(ClientError::InvalidOption {
            option: "leases/ttl",
            reason: "both must be positive",
        });
    }
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    let first = conns.first().cloned().ok_or(ClientError::InvalidOption {
        option: "conns",
        reason: "must be at least 1",
    })?;

    let setup = Instant::now();
    let attach = Arc::new(Attach {
        ttl: options.ttl,
        value: keys::random_value(options.val_size),
    });
    let setup_load = Load::new(options.clients, Some(options.leases), None, None);
    let attached = driver::drive(&conns, &setup_load, attach).await;
    if let Some(e) = attached.first_error {
        return Err(e);
    }
    let setup_secs = setup.elapsed().as_secs_f64();
    let live_at_start = live_leased_keys(&first).await?;

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
    let live_at_end = live_leased_keys(&first).await?;

    let params = Params {
        scenario: "lease-expiry",
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
    Ok(BenchReport::new(params, outcome)
        .with_extra("leases", options.leases)
        .with_extra("ttl", options.ttl)
        .with_extra("setup_secs", setup_secs)
        .with_extra("leased_keys_live_at_start", live_at_start)
        .with_extra("leased_keys_live_at_end", live_at_end))
}
