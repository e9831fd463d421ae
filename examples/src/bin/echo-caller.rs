//! `echo-caller`: discovers the echo service in rollcall and sends requests
//! balanced over its live instances, printing which instance answered each.
//!
//! `--balancer channel` (the default) sends through one tonic `Channel`
//! balanced by tower's power of two choices over the discovered set
//! (`rollcall_client::balance::balanced_channel`, fed by the `Discover`
//! stream). `round-robin`, `weighted-random` and `p2c` pick an instance per
//! request with rollcall's own balancers and call it on its own connection;
//! a retry then avoids the instances that already failed the request.
//!
//! A request that fails with UNAVAILABLE (the instance could not be reached:
//! nothing was processed) is retried up to `--retries` times.
//!
//! Output, one line each:
//! - per request: `#<n> ok <instance-id> <addr> <latency>[ (retried: ...)]`
//!   or `#<n> failed: <error>`;
//! - per change of the discovered set: `instances (rev <r>): <id>@<addr> ...`;
//! - at the end (`--count` reached or Ctrl-C): a summary.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rollcall_client::Client;
use rollcall_client::balance::{self, Balancer, Eligible, Strategy};
use rollcall_client::registry::{DiscoveryOptions, Instance, ServiceSnapshot};
use rollcall_examples::echo::echo_client::EchoClient;
use rollcall_examples::echo::{EchoReply, EchoRequest};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
#[command(
    name = "echo-caller",
    about = "Calls the echo service, balanced over the instances rollcall knows"
)]
struct Args {
    /// rollcall endpoints (comma-separated).
    #[arg(
        long,
        env = "ROLLCALL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    #[arg(long, default_value = "echo")]
    service: String,
    /// Requests to send; 0 sends until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Pause between requests, in milliseconds.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Bound on each attempt, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retries of a request that failed with UNAVAILABLE.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// `channel` (tonic + tower p2c over the Discover stream), or a
    /// per-request balancer: `round-robin`, `weighted-random`, `p2c`.
    #[arg(long, default_value = "channel")]
    balancer: String,
    /// Prefer instances in this zone (per-request balancers only).
    #[arg(long)]
    zone: Option<String>,
    /// Protection threshold: below this share of passing instances, all are used.
    #[arg(long, default_value_t = rollcall_client::registry::DEFAULT_PROTECTION_THRESHOLD)]
    threshold: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("echo-caller: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-caller: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(args.endpoints.clone()).await?;
    let options = DiscoveryOptions::new().protection_threshold(args.threshold);
    let discovery = client.discover(&args.service, options).await?;
    let snapshots = discovery.subscribe();
    tokio::spawn(print_changes(snapshots.clone()));

    let timeout = Duration::from_millis(args.timeout_ms);
    let mut route = if args.balancer == "channel" {
        let (channel, _feeder) =
            balance::balanced_channel(snapshots.clone(), args.threshold, move |instance| {
                balance::endpoint(instance)
                    .ok()
                    .map(|e| configure(e, timeout))
            });
        Route::Channel(EchoClient::new(channel))
    } else {
        let strategy: Strategy = args.balancer.parse()?;
        let eligible = Eligible::new(snapshots.clone()).protection_threshold(args.threshold);
        Route::PerRequest {
            balancer: strategy.build(eligible, args.zone.as_deref()),
            connections: HashMap::new(),
        }
    };

    let started = Instant::now();
    let mut answered: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ok, mut failed, mut retried) = (0u64, 0u64, 0u64);
    let mut interval = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while args.count == 0 || n < args.count {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = interval.tick() => {}
        }
        n += 1;
        let sent = Instant::now();
        let mut tried = Vec::new();
        let mut failures = Vec::new();
        let result = loop {
            match route.send(n, timeout, &mut tried).await {
                Err(failure) if failure.retryable && failures.len() < args.retries as usize => {
                    failures.push(failure.text);
                }
                other => break other,
            }
        };
        retried += failures.len() as u64;
        let retries = if failures.is_empty() {
            String::new()
        } else {
            format!(" (retried: {})", failures.join("; "))
        };
        match result {
            Ok(reply) => {
                ok += 1;
                *answered.entry(reply.instance_id.clone()).or_default() += 1;
                let ms = sent.elapsed().as_secs_f64() * 1e3;
                println!(
                    "#{n} ok {} {} {ms:.1}ms{retries}",
                    reply.instance_id, reply.addr
                );
            }
            Err(failure) => {
                failed += 1;
                println!("#{n} failed: {}{retries}", failure.text);
            }
        }
    }
    let spread: Vec<String> = answered
        .iter()
        .map(|(id, count)| format!("{id}={count}"))
        .collect();
    println!(
        "summary: {n} requests in {:.1}s, {ok} ok, {failed} failed, {retried} retries; answered by {}",
        started.elapsed().as_secs_f64(),
        spread.join(" ")
    );
    Ok(())
}

/// Where requests go: one balanced channel, or a balancer and a connection
/// per instance address.
enum Route {
    Channel(EchoClient<Channel>),
    PerRequest {
        balancer: Box<dyn Balancer>,
        connections: HashMap<String, EchoClient<Channel>>,
    },
}

/// Why an attempt failed, and whether another attempt may help.
struct Failure {
    text: String,
    retryable: bool,
}

impl Failure {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            retryable: false,
        }
    }

    fn status(status: &tonic::Status, instance: Option<&str>) -> Self {
        let mut text = format!("{:?}: {}", status.code(), status.message());
        // The transport error's chain, without the repetitions tonic adds.
        let mut source = std::error::Error::source(status);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(&format!(": {cause_text}"));
            }
            source = cause.source();
        }
        if let Some(id) = instance {
            text = format!("{id}: {text}");
        }
        Self {
            text,
            retryable: status.code() == Code::Unavailable,
        }
    }
}

impl Route {
    /// One attempt at request `n`. Per-request balancers avoid the
    /// instances in `tried` while others are eligible, and add theirs.
    async fn send(
        &mut self,
        n: u64,
        timeout: Duration,
        tried: &mut Vec<String>,
    ) -> Result<EchoReply, Failure> {
        let request = EchoRequest {
            message: format!("hello #{n}"),
        };
        match self {
            Route::Channel(client) => {
                match tokio::time::timeout(timeout, client.echo(request)).await {
                    Err(_) => Err(Failure::new("timed out")),
                    Ok(Err(status)) => Err(Failure::status(&status, None)),
                    Ok(Ok(reply)) => Ok(reply.into_inner()),
                }
            }
            Route::PerRequest {
                balancer,
                connections,
            } => {
                let candidates = balancer.candidates();
                let untried: Vec<_> = candidates
                    .iter()
                    .filter(|i| !tried.contains(&i.id))
                    .cloned()
                    .collect();
                let picked = if untried.is_empty() {
                    balancer.pick_among(&candidates)
                } else {
                    balancer.pick_among(&untried)
                };
                let picked = picked.ok_or_else(|| Failure::new("no eligible instance"))?;
                tried.push(picked.id.clone());
                let mut client = connection(connections, &picked, timeout)
                    .map_err(|e| Failure::new(e.to_string()))?;
                // `picked` lives until the call ends: p2c counts it in flight.
                let result = tokio::time::timeout(timeout, client.echo(request)).await;
                match result {
                    Err(_) => Err(Failure::new(format!("{}: timed out", picked.id))),
                    Ok(Err(status)) => Err(Failure::status(&status, Some(&picked.id))),
                    Ok(Ok(reply)) => Ok(reply.into_inner()),
                }
            }
        }
    }
}

fn configure(endpoint: Endpoint, timeout: Duration) -> Endpoint {
    endpoint.connect_timeout(timeout).timeout(timeout)
}

/// The connection to `instance`, made (lazily) on first use.
fn connection(
    connections: &mut HashMap<String, EchoClient<Channel>>,
    instance: &Instance,
    timeout: Duration,
) -> Result<EchoClient<Channel>, balance::BalanceError> {
    if let Some(client) = connections.get(&instance.addr) {
        return Ok(client.clone());
    }
    let client = EchoClient::new(configure(balance::endpoint(instance)?, timeout).connect_lazy());
    connections.insert(instance.addr.clone(), client.clone());
    Ok(client)
}

/// Prints the discovered set whenever it changes.
async fn print_changes(mut rx: watch::Receiver<ServiceSnapshot>) {
    loop {
        {
            let snapshot = rx.borrow_and_update();
            let members: Vec<String> = snapshot
                .instances
                .iter()
                .map(|i| {
                    let health = if i.is_passing() { "" } else { " (critical)" };
                    format!("{}@{}{health}", i.id, i.addr)
                })
                .collect();
            let stale = if snapshot.stale {
                " [stale: registry unreachable]"
            } else {
                ""
            };
            println!(
                "instances (rev {}): {}{stale}",
                snapshot.revision,
                members.join(" ")
            );
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
