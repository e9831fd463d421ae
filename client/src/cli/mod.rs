//! The `rollcall` binary's client-side command lines: the client commands in
//! [`commands`] (`get`, `put`, `watch`, `lease`, `register`, `discover`, ...),
//! and here the `rollcall bench` command line: [`BenchCommand`] (clap arguments, one
//! subcommand per scenario) and [`run`], which runs the scenario with a
//! progress display on stderr and prints the report on stdout. The scenario
//! logic lives in [`crate::bench`]; this module only parses and prints.
//!
//! Options common to every scenario are global, so they may come before or
//! after the scenario name; any left out take the scenario's own default
//! (for example `lease-keepalive` runs 10 s over one connection unless told
//! otherwise):
//!
//! ```text
//! rollcall bench --endpoints 127.0.0.1:2379 put --clients 1000 --conns 100 --total 100000
//! rollcall bench range --consistency s --duration 10s
//! rollcall bench watch-latency --watchers 10000 --hot-watchers 100 --streams 10 --rate 200 --duration 20s
//! rollcall bench lease-keepalive --leases 10000 --streams 1 --duration 10s --output json
//! ```

pub mod commands;
mod progress;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::bench::{
    BenchReport, LeaseExpiryBenchOptions, LeaseKeepAliveBenchOptions, PutBenchOptions,
    RangeBenchOptions, RegisterChurnBenchOptions, TxnCasBenchOptions, WatchLatencyBenchOptions,
    run_lease_expiry, run_lease_keepalive, run_put, run_range, run_register_churn, run_txn_cas,
    run_watch_latency,
};
use crate::error::ClientError;

use self::progress::Progress;

/// `rollcall bench`: load-generate against any etcd v3 endpoint.
#[derive(Debug, Clone, Args)]
pub struct BenchCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options every scenario takes. Unset ones take the scenario's default.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Comma-separated endpoints (`http://host:port` or `host:port`).
    #[arg(
        long,
        value_delimiter = ',',
        global = true,
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Concurrent requests (for lease-keepalive: renewals in flight in all).
    #[arg(long, global = true)]
    pub clients: Option<usize>,
    /// gRPC connections.
    #[arg(long, global = true)]
    pub conns: Option<usize>,
    /// Requests in all (with --duration, whichever ends first).
    #[arg(long, global = true)]
    pub total: Option<u64>,
    /// Run for this long: `10s`, `500ms`, `2m`, or plain seconds.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Key size in bytes.
    #[arg(long, global = true)]
    pub key_size: Option<usize>,
    /// Value size in bytes.
    #[arg(long, global = true)]
    pub val_size: Option<usize>,
    /// Distinct keys the requests draw from.
    #[arg(long, global = true)]
    pub key_space: Option<u64>,
    /// How to print the report on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// No progress display on stderr.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A human-readable table.
    Table,
    /// One line of JSON.
    Json,
}

/// Read consistency of the range scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    #[value(name = "l")]
    Linearizable,
    /// Serializable.
    #[value(name = "s")]
    Serializable,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Durable writes of random keys.
    Put,
    /// Single-key reads of random keys over a key space written first.
    Range {
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
    },
    /// Compare-and-swap on a shared key set: read mod_revision, then a txn
    /// that puts if it is unchanged; lost races count as conflicts.
    TxnCas,
    /// Put-to-event latency with many watchers and a fixed-rate writer.
    WatchLatency(WatchLatencyArgs),
    /// Lease renewals over KeepAlive streams.
    LeaseKeepalive(LeaseKeepAliveArgs),
    /// Put latency while many leases (one key each) expire at once.
    LeaseExpiry {
        /// Leases granted up front, one key each.
        #[arg(long, default_value_t = 10_000)]
        leases: u64,
        /// TTL of the leases, in seconds (shorter than the run).
        #[arg(long, default_value_t = 3)]
        ttl: i64,
    },
    /// Grant + put with lease + keep-alive once + revoke cycles.
    RegisterChurn {
        /// TTL of the granted leases, in seconds.
        #[arg(long, default_value_t = 10)]
        ttl: i64,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WatchLatencyArgs {
    /// Watchers on distinct prefixes.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Watchers on the one hot prefix.
    #[arg(long, default_value_t = 100)]
    pub hot_watchers: usize,
    /// Watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Puts per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Share of the puts that go to the hot prefix.
    #[arg(long, default_value_t = 0.5)]
    pub hot_fraction: f64,
    /// Longest wait for missing events after the writer stops.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LeaseKeepAliveArgs {
    /// Leases granted up front and renewed round robin.
    #[arg(long, default_value_t = 10_000)]
    pub leases: u64,
    /// KeepAlive streams.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// TTL of the leases, in seconds.
    #[arg(long, default_value_t = 600)]
    pub ttl: i64,
    /// Leave the leases to expire instead of revoking them afterwards.
    #[arg(long)]
    pub keep_leases: bool,
}

/// Parses `10s`, `250ms`, `2m`, `1.5s` or plain seconds (`10`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl BenchCommand {
    /// The scenario's name as on the command line.
    pub fn scenario_name(&self) -> &'static str {
        match self.scenario {
            Scenario::Put => "put",
            Scenario::Range { .. } => "range",
            Scenario::TxnCas => "txn-cas",
            Scenario::WatchLatency(_) => "watch-latency",
            Scenario::LeaseKeepalive(_) => "lease-keepalive",
            Scenario::LeaseExpiry { .. } => "lease-expiry",
            Scenario::RegisterChurn { .. } => "register-churn",
        }
    }
}

/// Fills the common fields of a scenario's options from the arguments,
/// keeping the scenario's default where an argument was not given. When only
/// `--duration` is given, the scenario's default total is dropped.
macro_rules! common {
    ($args:expr, $options:ident, $($field:ident),*) => {{
        let args = &$args;
        let mut o = $options {
            endpoints: args.endpoints.clone(),
            ..$options::default()
        };
        if args.total.is_some() || args.duration.is_some() {
            o.total = args.total;
            o.duration = args.duration;
        }
        $( if let Some(v) = args.$field { o.$field = v; } )*
        o
    }};
}

/// Runs the scenario, with a progress display on stderr unless disabled,
/// and prints the report on stdout as a table or one JSON line.
pub async fn run(command: BenchCommand) -> Result<(), ClientError> {
    let report = run_report(&command).await?;
    match command.common.output {
        Output::Table => print!("{}", report.table()),
        Output::Json => println!("{}", report.json_line()),
    }
    Ok(())
}

/// Runs the scenario and returns its report without printing it.
pub async fn run_report(command: &BenchCommand) -> Result<BenchReport, ClientError> {
    let args = &command.common;
    let counter = Arc::new(AtomicU64::new(0));
    let progress = |total, duration| {
        Progress::start(
            command.scenario_name(),
            Arc::clone(&counter),
            total,
            duration,
            !args.no_progress,
        )
    };
    match &command.scenario {
        Scenario::Put => {
            let mut o = common!(
                args,
                PutBenchOptions,
                clients,
                conns,
                key_size,
                val_size,
                key_space
            );
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration).around(run_put(o)).await
        }
        Scenario::Range { consistency } => {
            let mut o = common!(
                args,
                RangeBenchOptions,
                clients,
                conns,
                key_size,
                val_size,
                key_space
            );
            o.serializable = *consistency == Consistency::Serializable;
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration).around(run_range(o)).await
        }
        Scenario::TxnCas => {
            let mut o = common!(
                args,
                TxnCasBenchOptions,
                clients,
                conns,
                key_size,
                val_size,
                key_space
            );
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration).around(run_txn_cas(o)).await
        }
        Scenario::WatchLatency(w) => {
            let mut o = common!(args, WatchLatencyBenchOptions, conns, val_size);
            o.watchers = w.watchers;
            o.hot_watchers = w.hot_watchers;
            o.streams = w.streams;
            o.rate = w.rate;
            o.hot_fraction = w.hot_fraction;
            o.drain = w.drain;
            o.progress = Some(Arc::clone(&counter));
            // Counts events, not puts: no bar towards a total.
            progress(None, o.duration)
                .around(run_watch_latency(o))
                .await
        }
        Scenario::LeaseKeepalive(l) => {
            let mut o = common!(args, LeaseKeepAliveBenchOptions, clients, conns);
            o.leases = l.leases;
            o.streams = l.streams;
            o.ttl = l.ttl;
            o.revoke = !l.keep_leases;
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration)
                .around(run_lease_keepalive(o))
                .await
        }
        Scenario::LeaseExpiry { leases, ttl } => {
            let mut o = common!(
                args,
                LeaseExpiryBenchOptions,
                clients,
                conns,
                key_size,
                val_size,
                key_space
            );
            o.leases = *leases;
            o.ttl = *ttl;
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration)
                .around(run_lease_expiry(o))
                .await
        }
        Scenario::RegisterChurn { ttl } => {
            let mut o = common!(
                args,
                RegisterChurnBenchOptions,
                clients,
                conns,
                key_size,
                val_size
            );
            o.ttl = *ttl;
            o.progress = Some(Arc::clone(&counter));
            progress(o.total, o.duration)
                .around(run_register_churn(o))
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchCommand,
    }

    fn parse(args: &[&str]) -> Result<BenchCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn common_options_go_before_or_after_the_scenario() -> Result<(), clap::Error> {
        let cmd = parse(&[
            "--endpoints",
            "a:1,b:2",
            "range",
            "--consistency",
            "s",
            "--clients",
            "7",
            "--duration",
            "3s",
            "--output",
            "json",
        ])?;
        assert_eq!(cmd.common.endpoints, ["a:1", "b:2"]);
        assert_eq!(cmd.common.clients, Some(7));
        assert_eq!(cmd.common.duration, Some(Duration::from_secs(3)));
        assert_eq!(cmd.common.output, Output::Json);
        assert!(matches!(
            cmd.scenario,
            Scenario::Range {
                consistency: Consistency::Serializable
            }
        ));
        assert_eq!(cmd.scenario_name(), "range");
        Ok(())
    }

    #[test]
    fn every_scenario_parses() -> Result<(), clap::Error> {
        let cmd = parse(&[
            "watch-latency",
            "--watchers",
            "10",
            "--hot-watchers",
            "2",
            "--streams",
            "3",
            "--rate",
            "50",
        ])?;
        match cmd.scenario {
            Scenario::WatchLatency(w) => {
                assert_eq!((w.watchers, w.hot_watchers, w.streams), (10, 2, 3));
                assert!((w.rate - 50.0).abs() < f64::EPSILON);
            }
            other => panic!("{other:?}"),
        }
        let cmd = parse(&["lease-keepalive", "--leases", "5", "--keep-leases"])?;
        assert!(matches!(
            cmd.scenario,
            Scenario::LeaseKeepalive(LeaseKeepAliveArgs {
                leases: 5,
                keep_leases: true,
                ..
            })
        ));
        for name in ["put", "txn-cas", "register-churn"] {
            assert_eq!(parse(&[name])?.scenario_name(), name);
        }
        assert!(parse(&["nope"]).is_err());
        assert!(parse(&["range", "--consistency", "x"]).is_err());
        Ok(())
    }

    #[test]
    fn unset_options_keep_the_scenario_defaults() {
        let args = CommonArgs {
            endpoints: vec!["x:1".into()],
            clients: None,
            conns: Some(3),
            total: None,
            duration: Some(Duration::from_secs(2)),
            key_size: None,
            val_size: None,
            key_space: None,
            output: Output::Table,
            no_progress: true,
        };
        let o = common!(
            args,
            PutBenchOptions,
            clients,
            conns,
            key_size,
            val_size,
            key_space
        );
        assert_eq!(o.clients, PutBenchOptions::default().clients);
        assert_eq!(o.conns, 3);
        assert_eq!(o.total, None);
        assert_eq!(o.duration, Some(Duration::from_secs(2)));
        let o = common!(args, LeaseKeepAliveBenchOptions, clients, conns);
        assert_eq!(o.clients, 1000);
    }
}
