//! Measurements, not tests: `#[ignore]`d so the default run skips them, and
//! they assert only that the work completed. Run them against a release
//! build (the client side is in this process, so build it optimized too),
//! one at a time, on an otherwise idle machine:
//!
//! ```text
//! cargo test --release -p rollcall-server --test lease -- --ignored --nocapture --test-threads 1 bench::
//! ```
//!
//! - `keepalive_throughput_*`: 10,000 leases renewed over ONE keep-alive
//!   stream, all requests pipelined, 20 rounds (`ROLLCALL_BENCH_KA_ROUNDS`
//!   overrides); prints renewals per second and the server's RSS before and
//!   after.
//! - `put_latency_during_mass_expiry_*`: 10,000 leases of 3 s, one key each,
//!   whose deadlines are all reset within a fraction of a second by one sweep
//!   of keep-alives; then 16 writers put (unleased keys) for 15 s while the
//!   leases expire; prints put latency percentiles before, during and
//!   after the expiry and per half second, and when the first and the last
//!   leased key were seen gone. (etcd revokes at most 1,000 leases a second,
//!   hence the 15 s window.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::{LeaseKeepAliveRequest, RangeRequest};
use rollcall_tests::{Backend, ServerProcess};
use tokio::task::JoinSet;

use crate::support::{Client, b, prefix_end, put_req, rollcall, start};

const LEASES: usize = 10_000;
/// Rounds of renewals of every lease (`ROLLCALL_BENCH_KA_ROUNDS` overrides).
const KEEPALIVE_ROUNDS: usize = 20;
const WRITERS: usize = 16;
/// Concurrent granters during setup (group commit makes this fast).
const SETUP_CONCURRENCY: usize = 64;
const MEASURE: Duration = Duration::from_secs(15);
const EXPIRY_TTL: i64 = 3;

/// The server's resident memory, from /proc (None where unavailable).
fn rss_kib(server: &ServerProcess) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn bench_etcd() -> Option<Backend> {
    crate::support::etcd("bench (etcd side)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see the module docs for how to run it"]
async fn keepalive_throughput_rollcall() {
    keepalive_throughput(rollcall()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see the module docs for how to run it"]
async fn keepalive_throughput_etcd() {
    if let Some(backend) = bench_etcd() {
        keepalive_throughput(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see the module docs for how to run it"]
async fn put_latency_during_mass_expiry_rollcall() {
    put_latency_during_mass_expiry(rollcall()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see the module docs for how to run it"]
async fn put_latency_during_mass_expiry_etcd() {
    if let Some(backend) = bench_etcd() {
        put_latency_during_mass_expiry(backend).await;
    }
}

/// Grants `LEASES` leases of `ttl` (and, with `key_prefix`, puts one key per
/// lease), `SETUP_CONCURRENCY` at a time; returns the ids in grant order.
async fn grant_many(server: &ServerProcess, ttl: i64, key_prefix: Option<&str>) -> Vec<i64> {
    let channel = server.channel().await.expect("connect");
    let mut tasks = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY {
        let mut c = Client::over(channel.clone());
        let prefix = key_prefix.map(str::to_owned);
        tasks.spawn(async move {
            let mut ids = Vec::new();
            let mut n = worker;
            while n < LEASES {
                let id = c.grant(ttl, 0).await.id;
                if let Some(p) = &prefix {
                    c.put(&format!("{p}{n:05}"), "instance", id).await;
                }
                ids.push(id);
                n += SETUP_CONCURRENCY;
            }
            ids
        });
    }
    let mut all = Vec::with_capacity(LEASES);
    while let Some(ids) = tasks.join_next().await {
        all.extend(ids.expect("granter"));
    }
    all
}

async fn keepalive_throughput(backend: Backend) {
    let server = start(&backend).await;
    let setup = Instant::now();
    let ids = grant_many(&server, 600, None).await;
    println!(
        "[{}] granted {} leases in {:?}",
        backend.name(),
        ids.len(),
        setup.elapsed()
    );
    let rss_before = rss_kib(&server);
    let mut c = Client::connect(&server).await;
    let mut ka = c.keep_alive();
    let rounds = std::env::var("ROLLCALL_BENCH_KA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KEEPALIVE_ROUNDS);
    let total = ids.len() * rounds;
    let tx = ka.tx.clone();
    let sent_ids = ids.clone();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..rounds {
            for id in &sent_ids {
                tx.send(LeaseKeepAliveRequest { id: *id })
                    .await
                    .expect("stream open");
            }
        }
    });
    let mut renewed = 0usize;
    for _ in 0..total {
        let resp = ka.recv().await;
        if resp.ttl == 600 {
            renewed += 1;
        }
    }
    let elapsed = started.elapsed();
    sender.await.expect("sender");
    assert_eq!(renewed, total, "every renewal answered with the TTL");
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "[{}] {total} keep-alives ({} leases x {rounds} rounds) on one stream in {elapsed:?}: {rate:.0}/s",
        backend.name(),
        ids.len(),
    );
    println!(
        "[{}] server RSS before the keep-alives {rss_before:?} KiB, after {:?} KiB",
        backend.name(),
        rss_kib(&server)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn summary(label: &str, latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "{label}: n={} p50={:?} p99={:?} p99.9={:?} max={:?}",
        latencies.len(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies.last().copied().unwrap_or_default()
    )
}

async fn put_latency_during_mass_expiry(backend: Backend) {
    let server = start(&backend).await;
    let name = backend.name();
    let mut c = Client::connect(&server).await;

    // Setup takes longer than the TTL: a background sweep renews every
    // lease granted so far, once a second, until the measurement starts.
    let setup = Instant::now();
    let granted: Arc<std::sync::Mutex<Vec<i64>>> = Arc::default();
    let keeping = Arc::new(AtomicBool::new(true));
    let mut keeper_ka = c.keep_alive();
    let keeper = {
        let granted = granted.clone();
        let keeping = keeping.clone();
        let tx = keeper_ka.tx.clone();
        tokio::spawn(async move {
            while keeping.load(Ordering::Relaxed) {
                let ids = granted.lock().unwrap().clone();
                for id in ids {
                    if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let drain = tokio::spawn(async move { while keeper_ka.responses.recv().await.is_some() {} });
    let channel = server.channel().await.expect("connect");
    let mut tasks = JoinSet::new();
    for worker in 0..SETUP_CONCURRENCY {
        let mut c = Client::over(channel.clone());
        let granted = granted.clone();
        tasks.spawn(async move {
            let mut n = worker;
            while n < LEASES {
                let id = c.grant(EXPIRY_TTL, 0).await.id;
                granted.lock().unwrap().push(id);
                c.put(&format!("exp/{n:05}"), "instance", id).await;
                n += SETUP_CONCURRENCY;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("granter");
    }
    keeping.store(false, Ordering::Relaxed);
    keeper.await.expect("keeper");
    drain.abort();
    let ids = granted.lock().unwrap().clone();
    let keys = c
        .range(RangeRequest {
            key: b("exp/"),
            range_end: prefix_end("exp/"),
            count_only: true,
            ..RangeRequest::default()
        })
        .await
        .count;
    println!(
        "[{name}] setup: {} leases of {EXPIRY_TTL} s with one key each in {:?}; {keys} keys live",
        ids.len(),
        setup.elapsed()
    );

    // One sweep resets every deadline; they all fall EXPIRY_TTL later.
    let mut ka = c.keep_alive();
    let sweep = Instant::now();
    let tx = ka.tx.clone();
    let sweep_ids = ids.clone();
    tokio::spawn(async move {
        for id in sweep_ids {
            let _ = tx.send(LeaseKeepAliveRequest { id }).await;
        }
    });
    let mut alive = 0;
    for _ in 0..ids.len() {
        if ka.recv().await.ttl > 0 {
            alive += 1;
        }
    }
    let swept = sweep.elapsed();
    println!(
        "[{name}] renewal sweep of {} leases took {swept:?} ({alive} alive)",
        ids.len()
    );
    drop(ka);

    // Writers from the end of the sweep for MEASURE.
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for w in 0..WRITERS {
        let mut c = Client::over(channel.clone());
        let stop = stop.clone();
        writers.spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                c.try_put(put_req(&format!("w/{w:02}"), &n.to_string(), 0))
                    .await
                    .expect("put during expiry");
                samples.push((began.duration_since(t0), began.elapsed()));
                n += 1;
            }
            samples
        });
    }
    // Watch the leased keys disappear.
    let mut watcher_client = c.clone();
    let mut gone_at = None;
    let mut first_gone_at = None;
    while t0.elapsed() < MEASURE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = watcher_client
            .range(RangeRequest {
                key: b("exp/"),
                range_end: prefix_end("exp/"),
                count_only: true,
                serializable: true,
                ..RangeRequest::default()
            })
            .await
            .count;
        if first_gone_at.is_none() && left < keys {
            first_gone_at = Some(t0.elapsed());
        }
        if gone_at.is_none() && left == 0 {
            gone_at = Some(t0.elapsed());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    while let Some(done) = writers.join_next().await {
        samples.extend(done.expect("writer"));
    }
    let expiry_start = first_gone_at.unwrap_or(MEASURE);
    let expiry_end = gone_at.unwrap_or(MEASURE);
    let mut all: Vec<Duration> = samples.iter().map(|(_, l)| *l).collect();
    let mut before: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at + Duration::from_millis(100) < expiry_start)
        .map(|(_, l)| *l)
        .collect();
    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|(at, l)| {
            *at + *l >= expiry_start && *at <= expiry_end + Duration::from_millis(100)
        })
        .map(|(_, l)| *l)
        .collect();
    println!(
        "[{name}] leased keys: first deletions seen at +{first_gone_at:?}, all gone at +{gone_at:?} (after the sweep)"
    );
    println!("[{name}] {}", summary("puts, whole window", &mut all));
    println!(
        "[{name}] {}",
        summary("puts before the expiry", &mut before)
    );
    println!(
        "[{name}] {}",
        summary("puts during the expiry", &mut during)
    );
    let mut after: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at > expiry_end + Duration::from_millis(100))
        .map(|(_, l)| *l)
        .collect();
    println!("[{name}] {}", summary("puts after the expiry", &mut after));
    // A timeline in half-second slices of when the put started.
    for slice in 0..30u32 {
        let from = Duration::from_millis(500) * slice;
        let to = from + Duration::from_millis(500);
        let mut in_slice: Vec<Duration> = samples
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, l)| *l)
            .collect();
        println!(
            "[{name}]   {}",
            summary(&format!("+{from:?}..+{to:?}"), &mut in_slice)
        );
    }
    assert!(
        gone_at.is_some(),
        "[{name}] all leased keys expired within {MEASURE:?}"
    );
    let _ = server;
}
