//! The `lease-keepalive` scenario: `leases` leases granted up front (not
//! timed), then renewed round robin over `streams` LeaseKeepAlive streams
//! for `duration` (or `total` renewals), with `clients` renewals in flight in
//! all (split evenly between the streams). Latency is from sending a renewal
//! to its answer; an answer of TTL 0 (lease gone) is an error. The leases are
//! revoked afterwards (not timed) unless `revoke` is off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rollcall_proto::etcdserverpb::LeaseKeepAliveRequest;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::driver::{self, Completion, Load, Outcome, Workload};
use super::report::{BenchReport, Params};
use super::txn_cas::round1;
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;

/// Parameters of the lease-keepalive scenario.
#[derive(Debug, Clone)]
pub struct LeaseKeepAliveBenchOptions {
    pub endpoints: Vec<String>,
    /// Renewals in flight in all, split between the streams (at least one
    /// per stream); also the concurrency of the grants and revokes.
    pub clients: usize,
    pub conns: usize,
    /// KeepAlive streams, spread over the connections.
    pub streams: usize,
    /// Leases granted up front and renewed round robin.
    pub leases: u64,
    /// Their TTL in seconds: long enough to outlive the setup.
    pub ttl: i64,
    /// Renewals in all.
    pub total: Option<u64>,
    /// Stop renewing after this long (with `total`, whichever first).
    pub duration: Option<Duration>,
    /// Revoke the leases afterwards.
    pub revoke: bool,
    pub connect: ConnectOptions,
    /// Incremented after each answered renewal, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for LeaseKeepAliveBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            clients: 1000,
            conns: 1,
            streams: 1,
            leases: 10_000,
            ttl: 600,
            total: None,
            duration: Some(Duration::from_secs(10)),
            revoke: true,
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

/// Grants one lease per request and keeps its id.
struct Grant {
    ttl: i64,
    ids: Mutex<Vec<i64>>,
}

impl Workload for Grant {
    async fn op(
        &self,
        client: &Client,
        _seq: u64,
        _rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let id = client.grant(self.ttl).await?.id;
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
        Ok(Completion::Done)
    }
}

/// Revokes lease number `seq` of `ids`.
struct Revoke {
    ids: Vec<i64>,
}

impl Workload for Revoke {
    async fn op(
        &self,
        client: &Client,
        seq: u64,
        _rng: &mut SmallRng,
    ) -> Result<Completion, ClientError> {
        let index = usize::try_from(seq).unwrap_or(usize::MAX);
        if let Some(&id) = self.ids.get(index) {
            client.revoke(id).await?;
        }
        Ok(Completion::Done)
    }
}

/// When to stop issuing renewals: a shared budget and a deadline.
struct Budget {
    issued: AtomicU64,
    total: u64,
    stop_at: Option<Instant>,
}

impl Budget {
    fn take(&self) -> bool {
        if self.stop_at.is_some_and(|at| Instant::now() >= at) {
            return false;
        }
        self.issued.fetch_add(1, Ordering::Relaxed) < self.total
    }
}

/// Renews `ids` round robin over one stream with `window` in flight.
async fn renew_over_one_stream(
    client: Client,
    ids: Vec<i64>,
    window: usize,
    budget: Arc<Budget>,
    progress: Option<Arc<AtomicU64>>,
) -> Outcome {
    let mut outcome = Outcome {
        histogram: driver::new_histogram(),
        ok: 0,
        conflicts: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    if ids.is_empty() {
        return outcome;
    }
    let (requests, rx) = mpsc::unbounded_channel();
    let mut in_flight: VecDeque<(i64, Instant)> = VecDeque::with_capacity(window);
    let mut next = 0usize;
    let mut send_next = |in_flight: &mut VecDeque<(i64, Instant)>| {
        let id = ids[next % ids.len()];
        next += 1;
        in_flight.push_back((id, Instant::now()));
        let _ = requests.send(LeaseKeepAliveRequest { id });
    };
    // Queued before opening: etcd answers the call only with a response.
    while in_flight.len() < window && budget.take() {
        send_next(&mut in_flight);
    }
    let mut responses = match client.keep_alive_opener()(UnboundedReceiverStream::new(rx)).await {
        Ok(responses) => responses,
        Err(status) => {
            outcome.errors = in_flight.len() as u64;
            outcome.first_error = Some(ClientError::from(status));
            return outcome;
        }
    };
    while !in_flight.is_empty() {
        let resp = match responses.next().await {
            Some(Ok(resp)) => resp,
            Some(Err(status)) => {
                outcome.errors += in_flight.len() as u64;
                outcome.first_error.get_or_insert(ClientError::from(status));
                break;
            }
            None => {
                outcome.errors += in_flight.len() as u64;
                outcome.first_error.get_or_insert(ClientError::Transport(
                    tonic::Status::unavailable("the server closed the keep-alive stream"),
                ));
                break;
            }
        };
        // Answers come in order; look further only if a server reorders.
        let position = in_flight
            .iter()
            .position(|(id, _)| *id == resp.id)
            .unwrap_or(0);
        if let Some((_, sent)) = in_flight.remove(position) {
            if resp.ttl > 0 {
                outcome.ok += 1;
                outcome
                    .histogram
                    .saturating_record(driver::micros_since(sent));
            } else {
                outcome.errors += 1;
                outcome
                    .first_error
                    .get_or_insert_with(crate::lease::lease_not_found);
            }
        }
        if let Some(p) = &progress {
            p.fetch_add(1, Ordering::Relaxed);
        }
        if budget.take() {
            send_next(&mut in_flight);
        }
    }
    outcome
}

fn merge(into: &mut Outcome, from: Outcome) {
    let _ = into.histogram.add(&from.histogram);
    into.ok += from.ok;
    into.errors += from.errors;
    if into.first_error.is_none() {
        into.first_error = from.first_error;
    }
}

/// Runs the lease-keepalive scenario. A failed grant fails the run.
pub async fn run_lease_keepalive(
    options: LeaseKeepAliveBenchOptions,
) -> Result<BenchReport, ClientError> {
    driver::validate(&options.endpoints, options.clients, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    if options.streams == 0 {
        return Err(ClientError::InvalidOption {
            option: "streams",
            reason: "must be at least 1",
        });
    }
    if options.leases == 0 {
        return Err(ClientError::InvalidOption {
            option: "leases",
            reason: "must be at least 1",
        });
    }
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;

    let setup = Instant::now();
    let grant = Arc::new(Grant {
        ttl: options.ttl,
        ids: Mutex::new(Vec::new()),
    });
    let granted = driver::drive(
        &conns,
        &Load::new(options.clients, Some(options.leases), None, None),
        Arc::clone(&grant),
    )
    .await;
    if let Some(e) = granted.first_error {
        return Err(e);
    }
    let ids = std::mem::take(
        &mut *grant
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let grant_secs = setup.elapsed().as_secs_f64();

    let window = options.clients.div_ceil(options.streams).max(1);
    let start = Instant::now();
    let budget = Arc::new(Budget {
        issued: AtomicU64::new(0),
        total: options.total.unwrap_or(u64::MAX),
        stop_at: options.duration.map(|d| start + d),
    });
    let mut tasks = Vec::with_capacity(options.streams);
    for stream in 0..options.streams {
        let Some(client) = conns.get(stream % conns.len()).cloned() else {
            break;
        };
        let mine: Vec<i64> = ids
            .iter()
            .skip(stream)
            .step_by(options.streams)
            .copied()
            .collect();
        tasks.push(tokio::spawn(renew_over_one_stream(
            client,
            mine,
            window,
            Arc::clone(&budget),
            options.progress.clone(),
        )));
    }
    let mut outcome = Outcome {
        histogram: driver::new_histogram(),
        ok: 0,
        conflicts: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok(part) => merge(&mut outcome, part),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => outcome.errors += 1,
        }
    }
    outcome.elapsed = start.elapsed();

    if options.revoke {
        let count = ids.len() as u64;
        let revoke = Arc::new(Revoke { ids });
        let _ = driver::drive(
            &conns,
            &Load::new(options.clients, Some(count), None, None),
            revoke,
        )
        .await;
    }
    let params = Params {
        scenario: "lease-keepalive",
        endpoints: driver::endpoints_of(&conns),
        clients: options.clients,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: 0,
        val_size: 0,
        key_space: 0,
        consistency: None,
        counts_conflicts: false,
    };
    Ok(BenchReport::new(params, outcome)
        .with_extra("leases", options.leases)
        .with_extra("streams", options.streams)
        .with_extra("in_flight_per_stream", window)
        .with_extra("ttl", options.ttl)
        .with_extra("grant_secs", round1(grant_secs)))
}
