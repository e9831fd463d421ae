//! The `watch-latency` scenario: put-to-event latency with many watchers.
//!
//! `watchers` watchers each watch a distinct prefix, and `hot_watchers` more
//! all watch one hot prefix; all of them are spread round robin over
//! `streams` Watch streams (each a [`WatchSession`]), themselves spread over
//! `conns` connections. Once every watcher is created, one writer puts at a
//! fixed `rate` per second for `duration` (or `total` puts): each put goes
//! to the hot prefix with probability `hot_fraction`, otherwise to a random
//! distinct prefix. Puts are issued on schedule without waiting for the
//! previous one (open loop), so a slow commit does not lower the rate.
//!
//! The value of each put starts with the time it was sent (microseconds
//! since the run began); each delivered event's latency is from then to its
//! arrival at the watcher, so it includes the commit. The report counts
//! events received against those expected (a hot put is expected at every
//! hot watcher, any other put at one watcher), after a drain of at most
//! `drain` once the writer stops.
//!
//! [`WatchSession`]: crate::WatchSession

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::driver::{self, Outcome};
use super::report::{BenchReport, LatencySummary, Params};
use super::txn_cas::round1;
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::error::ClientError;
use crate::watch::{WatchOptions, WatchSession, Watcher};

/// Parameters of the watch-latency scenario.
#[derive(Debug, Clone)]
pub struct WatchLatencyBenchOptions {
    pub endpoints: Vec<String>,
    /// Connections the streams (and the writer, on the first) use.
    pub conns: usize,
    /// Watch streams, each shared by its share of the watchers.
    pub streams: usize,
    /// Watchers on distinct prefixes, one each.
    pub watchers: usize,
    /// Watchers all on one hot prefix.
    pub hot_watchers: usize,
    /// Puts per second.
    pub rate: f64,
    /// The writer stops after this long...
    pub duration: Option<Duration>,
    /// ...or after this many puts, whichever comes first.
    pub total: Option<u64>,
    /// Probability that a put goes to the hot prefix (when there are hot
    /// watchers; with no distinct watchers every put is hot).
    pub hot_fraction: f64,
    /// Value size (at least the 8 bytes of the timestamp).
    pub val_size: usize,
    /// How long to wait for missing events once the writer stopped.
    pub drain: Duration,
    pub connect: ConnectOptions,
    /// Incremented per delivered event, for a progress display.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for WatchLatencyBenchOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            conns: 10,
            streams: 10,
            watchers: 10_000,
            hot_watchers: 100,
            rate: 200.0,
            duration: Some(Duration::from_secs(20)),
            total: None,
            hot_fraction: 0.5,
            val_size: 256,
            drain: Duration::from_secs(5),
            connect: ConnectOptions::default(),
            progress: None,
        }
    }
}

/// Counters shared by the watcher tasks.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<ClientError>>,
}

impl Tally {
    fn error(&self, e: ClientError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(e);
    }
}

/// Reads the send time a value carries.
fn sent_micros(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A value of `size` bytes (at least 8) starting with `micros`.
fn value_at(micros: u64, size: usize, padding: &Bytes) -> Bytes {
    let mut value = Vec::with_capacity(size.max(8));
    value.extend_from_slice(&micros.to_le_bytes());
    value.extend_from_slice(padding.get(..size.saturating_sub(8)).unwrap_or_default());
    Bytes::from(value)
}

fn micros_between(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

/// Consumes one watcher's batches until it ends or the task is aborted.
async fn consume(
    mut watcher: Watcher,
    epoch: Instant,
    histogram: Arc<Mutex<Histogram<u64>>>,
    tally: Arc<Tally>,
    progress: Option<Arc<AtomicU64>>,
) {
    while let Some(batch) = watcher.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tally.error(ClientError::Watch(e));
                return;
            }
        };
        let now = micros_between(epoch, Instant::now());
        let mut h = histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in &batch.events {
            if let Some(sent) = sent_micros(event.value()) {
                h.saturating_record(now.saturating_sub(sent).max(1));
            }
        }
        drop(h);
        let n = batch.events.len() as u64;
        tally.received.fetch_add(n, Ordering::Relaxed);
        if let Some(p) = &progress {
            p.fetch_add(n, Ordering::Relaxed);
        }
    }
}

fn validate(options: &WatchLatencyBenchOptions) -> Result<(), ClientError> {
    driver::validate(&options.endpoints, 1, options.conns)?;
    driver::validate_bounds(options.total, options.duration)?;
    let invalid = |option, reason| Err(ClientError::InvalidOption { option, reason });
    if options.streams == 0 {
        return invalid("streams", "must be at least 1");
    }
    if options.watchers == 0 && options.hot_watchers == 0 {
        return invalid("watchers", "give watchers or hot watchers");
    }
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return invalid("rate", "must be a positive number of puts per second");
    }
    if !(0.0..=1.0).contains(&options.hot_fraction) {
        return invalid("hot_fraction", "must be between 0 and 1");
    }
    Ok(())
}

/// Runs the watch-latency scenario. Failing to create a watcher fails the
/// run; put and watcher errors are counted.
pub async fn run_watch_latency(
    options: WatchLatencyBenchOptions,
) -> Result<BenchReport, ClientError> {
    validate(&options)?;
    let conns = driver::connect_all(&options.endpoints, options.conns, options.connect).await?;
    let sessions: Vec<WatchSession> = (0..options.streams)
        .filter_map(|i| conns.get(i % conns.len()).map(Client::watch_session))
        .collect();
    let run: u32 = rand::random();
    let base = format!("/rollcall-bench/watch/{run:08x}/");
    let distinct = |i: usize| format!("{base}w/{i:07}/");
    let hot = format!("{base}hot/");

    // Create every watcher (pipelined per stream), then start consuming.
    let setup = Instant::now();
    let mut creating = JoinSet::new();
    let prefixes = (0..options.watchers)
        .map(distinct)
        .chain(std::iter::repeat_n(hot.clone(), options.hot_watchers));
    for (i, prefix) in prefixes.enumerate() {
        let stream = i % sessions.len();
        let Some(session) = sessions.get(stream).cloned() else {
            break;
        };
        creating.spawn(async move {
            let watcher = session.watch(prefix, WatchOptions::new().prefix()).await;
            (stream, watcher)
        });
    }
    let epoch = Instant::now();
    let histograms: Vec<Arc<Mutex<Histogram<u64>>>> = (0..options.streams)
        .map(|_| Arc::new(Mutex::new(driver::new_histogram())))
        .collect();
    let tally = Arc::new(Tally::default());
    let mut consumers = JoinSet::new();
    while let Some(joined) = creating.join_next().await {
        let (stream, watcher) = match joined {
            Ok((stream, Ok(watcher))) => (stream, watcher),
            Ok((_, Err(e))) => return Err(ClientError::Watch(e)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        };
        let Some(histogram) = histograms.get(stream).cloned() else {
            continue;
        };
        consumers.spawn(consume(
            watcher,
            epoch,
            histogram,
            Arc::clone(&tally),
            options.progress.clone(),
        ));
    }
    let setup_secs = setup.elapsed().as_secs_f64();

    // The writer: one put per tick, each in its own task.
    let writer = conns.first().cloned().ok_or(ClientError::NoEndpoints)?;
    let padding = Bytes::from(vec![b'x'; options.val_size.saturating_sub(8)]);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let stop_at = options.duration.map(|d| start + d);
    let max_puts = options.total.unwrap_or(u64::MAX);
    let hot_fraction = if options.watchers == 0 {
        1.0
    } else if options.hot_watchers == 0 {
        0.0
    } else {
        options.hot_fraction
    };
    let expected_per_hot = options.hot_watchers as u64;
    let mut puts = JoinSet::new();
    let mut issued = 0u64;
    while issued < max_puts {
        ticker.tick().await;
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            break;
        }
        let (key, expect) = if rng.random_bool(hot_fraction) {
            (format!("{hot}k"), expected_per_hot)
        } else {
            (
                format!("{}k", distinct(rng.random_range(0..options.watchers))),
                1,
            )
        };
        let client = writer.clone();
        let sent = Instant::now();
        let value = value_at(micros_between(epoch, sent), options.val_size, &padding);
        puts.spawn(async move {
            let result = client.put(key, value).await;
            (result.map(|_| expect), driver::micros_since(sent))
        });
        issued += 1;
    }
    let write_secs = start.elapsed();
    let mut expected = 0u64;
    let mut put_errors = 0u64;
    let mut put_histogram = driver::new_histogram();
    let mut first_put_error = None;
    while let Some(joined) = puts.join_next().await {
        match joined {
            Ok((Ok(expect), micros)) => {
                expected += expect;
                put_histogram.saturating_record(micros);
            }
            Ok((Err(e), _)) => {
                put_errors += 1;
                first_put_error.get_or_insert(e);
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => put_errors += 1,
        }
    }

    // Drain: wait for the missing events, up to `drain` without progress.
    let mut last = tally.received.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while last < expected && quiet_since.elapsed() < options.drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = tally.received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    consumers.abort_all();
    let reconnects: u64 = sessions.iter().map(WatchSession::reconnects).sum();
    drop(sessions);

    let mut histogram = driver::new_histogram();
    for h in &histograms {
        let h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = histogram.add(&*h);
    }
    let received = tally.received.load(Ordering::Relaxed);
    let watch_errors = tally.errors.load(Ordering::Relaxed);
    let first_error = first_put_error.or_else(|| {
        tally
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    });
    let outcome = Outcome {
        histogram,
        ok: received,
        conflicts: 0,
        errors: put_errors + watch_errors,
        first_error,
        elapsed: write_secs,
    };
    let put_latency = LatencySummary::from_micros(&put_histogram);
    #[allow(clippy::cast_precision_loss)]
    let puts_per_sec = issued as f64 / write_secs.as_secs_f64().max(f64::MIN_POSITIVE);
    let params = Params {
        scenario: "watch-latency",
        endpoints: driver::endpoints_of(&conns),
        clients: 1,
        conns: options.conns,
        total: options.total,
        duration: options.duration,
        key_size: 0,
        val_size: options.val_size.max(8),
        key_space: options.watchers as u64,
        consistency: None,
        counts_conflicts: false,
    };
    Ok(BenchReport::new(params, outcome)
        .with_extra("watchers", options.watchers)
        .with_extra("hot_watchers", options.hot_watchers)
        .with_extra("streams", options.streams)
        .with_extra("rate", options.rate)
        .with_extra("puts", issued)
        .with_extra("puts_per_sec", round1(puts_per_sec))
        .with_extra("put_p50_ms", put_latency.p50)
        .with_extra("put_p99_ms", put_latency.p99)
        .with_extra("events_expected", expected)
        .with_extra("events_received", received)
        .with_extra("events_missing", expected.saturating_sub(received))
        .with_extra("watch_errors", watch_errors)
        .with_extra("reconnects", reconnects)
        .with_extra("setup_secs", round1(setup_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_send_time() {
        let padding = Bytes::from(vec![b'x'; 100]);
        let v = value_at(123_456, 64, &padding);
        assert_eq!(v.len(), 64);
        assert_eq!(sent_micros(&v), Some(123_456));
        let v = value_at(7, 3, &padding);
        assert_eq!(v.len(), 8);
        assert_eq!(sent_micros(&v), Some(7));
        assert_eq!(sent_micros(b"short"), None);
    }
}
