//! The closed loop shared by every scenario: `clients` tasks spread over
//! `conns` connections, each issuing its next request as soon as the previous
//! one answers, until `total` requests have been issued. Each task records
//! latencies in its own histogram; they are merged at the end, so the hot
//! path takes no lock.

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

/// One request of a scenario.
pub(crate) trait Workload: Send + Sync + 'static {
    /// Issues request number `seq` (0-based, unique across tasks).
    fn op(
        &self,
        client: &Client,
        seq: u64,
        rng: &mut SmallRng,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// The shape of a run.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub clients: usize,
    pub total: u64,
    /// Counts completed requests for a progress display, if given.
    pub progress: Option<Arc<AtomicU64>>,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub histogram: Histogram<u64>,
    pub ok: u64,
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

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1,
    // high ≥ 2 × low, sigfig ≤ 5), so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant histogram bounds are valid")
}

/// Runs `load` with `workload` over `conns` (at least one).
pub(crate) async fn drive<W: Workload>(conns: &[Client], load: &Load, workload: Arc<W>) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
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
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let seq = issued.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let started = Instant::now();
                let result = workload.op(&client, seq, &mut rng).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                match result {
                    Ok(()) => {
                        ok += 1;
                        histogram.saturating_record(micros.max(1));
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
            (histogram, ok, errors, first_error)
        }));
    }
    let mut outcome = Outcome {
        histogram: new_histogram(),
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok((histogram, ok, errors, first_error)) => {
                // Same bounds on both sides: adding cannot go out of range.
                let _ = outcome.histogram.add(&histogram);
                outcome.ok += ok;
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
