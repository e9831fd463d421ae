//! The closed loop shared by the request/response scenarios: `clients` tasks
//! spread over `conns` connections, each issuing its next request as soon as
//! the previous one answers, until `total` requests have been issued or
//! `duration` has passed. Each task records latencies in its own histogram;
//! they are merged at the end, so the hot path takes no lock.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3
/// significant digits; slower requests saturate at the top.
const HIGHEST_MICROS: u64 = 600_000_000;

/// How a request that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    Done,
    /// The request was answered but did not take effect (a compare-and-swap
    /// whose compare failed): counted apart from successes and errors.
    Conflict,
}

/// One request of a scenario.
pub(crate) trait Workload: Send + Sync + 'static {
    /// Issues request number `seq` (0-based, unique across tasks).
    fn op(
        &self,
        client: &Client,
        seq: u64,
        rng: &mut SmallRng,
    ) -> impl Future<Output = Result<Completion, ClientError>> + Send;
}

/// The shape of a run.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub clients: usize,
    /// At most this many requests (`u64::MAX`: no limit).
    pub total: u64,
    /// Stop issuing requests after this long, if given.
    pub duration: Option<Duration>,
    /// Counts completed requests for a progress display, if given.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Load {
    /// `total` requests, or as many as fit in `duration` when it is given
    /// (then `total` still caps them if set).
    pub fn new(
        clients: usize,
        total: Option<u64>,
        duration: Option<Duration>,
        progress: Option<Arc<AtomicU64>>,
    ) -> Self {
        Self {
            clients,
            total: total.unwrap_or(u64::MAX),
            duration,
            progress,
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub histogram: Histogram<u64>,
    pub ok: u64,
    /// Requests that completed without effect (see [`Completion::Conflict`]).
    pub conflicts: u64,
    pub errors: u64,
    /// The first error seen, kept whole so a caller can act on its kind.
    pub first_error: Option<ClientError>,
    pub elapsed: Duration,
}

pub(crate) fn validate(
    endpoints: &[String],
    clients: usize,
    conns: usize,
) -> Result<(), ClientError> {
    if endpoints.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    if clients == 0 {
        return Err(ClientError::InvalidOption {
            option: "clients",
            reason: "must be at least 1",
        });
    }
    if conns == 0 {
        return Err(ClientError::InvalidOption {
            option: "conns",
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Opens `conns` separate connections (each `Client::connect` is its own
/// HTTP/2 connection).
pub(crate) async fn connect_all(
    endpoints: &[String],
    conns: usize,
    options: ConnectOptions,
) -> Result<Vec<Client>, ClientError> {
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(Client::connect_with(endpoints.iter().cloned(), options).await?);
    }
    Ok(clients)
}

/// The endpoints the connections were given, normalised, for the report.
pub(crate) fn endpoints_of(conns: &[Client]) -> Vec<String> {
    conns
        .first()
        .map(|c| c.endpoints().to_vec())
        .unwrap_or_default()
}

/// Checks that a run is bounded by a total or a duration.
pub(crate) fn validate_bounds(
    total: Option<u64>,
    duration: Option<Duration>,
) -> Result<(), ClientError> {
    match (total, duration) {
        (None, None) => Err(ClientError::InvalidOption {
            option: "total",
            reason: "give a total or a duration",
        }),
        (Some(0), _) => Err(ClientError::InvalidOption {
            option: "total",
            reason: "must be at least 1",
        }),
        (_, Some(d)) if d.is_zero() => Err(ClientError::InvalidOption {
            option: "duration",
            reason: "must be positive",
        }),
        _ => Ok(()),
    }
}

/// Microseconds since `started`, at least 1 (the histogram's lowest value).
pub(crate) fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1,
    // high ≥ 2 × low, sigfig ≤ 5), so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant histogram bounds are valid")
}

/// Runs `load` with `workload` over `conns` (at least one).
pub(crate) async fn drive<W: Workload>(conns: &[Client], load: &Load, workload: Arc<W>) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop_at = load.duration.map(|d| start + d);
    let mut tasks = Vec::with_capacity(load.clients);
    for i in 0..load.clients {
        let Some(client) = conns.get(i % conns.len().max(1)).cloned() else {
            break;
        };
        let workload = Arc::clone(&workload);
        let issued = Arc::clone(&issued);
        let progress = load.progress.clone();
        let total = load.total;
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let mut histogram = new_histogram();
            let (mut ok, mut conflicts, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
            loop {
                if stop_at.is_some_and(|at| Instant::now() >= at) {
                    break;
                }
                let seq = issued.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let started = Instant::now();
                let result = workload.op(&client, seq, &mut rng).await;
                let micros = micros_since(started);
                match result {
                    Ok(Completion::Done) => {
                        ok += 1;
                        histogram.saturating_record(micros);
                    }
                    Ok(Completion::Conflict) => {
                        conflicts += 1;
                        histogram.saturating_record(micros);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                if let Some(p) = &progress {
                    p.fetch_add(1, Ordering::Relaxed);
                }
            }
            (histogram, ok, conflicts, errors, first_error)
        }));
    }
    let mut outcome = Outcome {
        histogram: new_histogram(),
        ok: 0,
        conflicts: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok((histogram, ok, conflicts, errors, first_error)) => {
                // Same bounds on both sides: adding cannot go out of range.
                let _ = outcome.histogram.add(&histogram);
                outcome.ok += ok;
                outcome.conflicts += conflicts;
                outcome.errors += errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = first_error;
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Never aborted, so a join error is a panic, re-raised above.
            Err(_) => outcome.errors += 1,
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}
