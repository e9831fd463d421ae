//! Durable put throughput against any etcd v3 endpoint:
//!
//! ```text
//! cargo run --release -p rollcall-client --example bench_put -- \
//!     --endpoints 127.0.0.1:2379 --clients 100 --conns 10 --total 20000
//! ```
//!
//! Prints the report table on stdout, then the same report as one JSON line.

use clap::Parser;
use rollcall_client::bench::{PutBenchOptions, run_put};

#[derive(Parser)]
struct Args {
    /// Comma-separated endpoints (`http://host:port` or `host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Concurrent requests.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// gRPC connections.
    #[arg(long, default_value_t = 10)]
    conns: usize,
    /// Puts in all.
    #[arg(long, default_value_t = 20_000)]
    total: u64,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let report = run_put(PutBenchOptions {
        endpoints: args.endpoints,
        clients: args.clients,
        conns: args.conns,
        total: args.total,
        key_size: args.key_size,
        val_size: args.val_size,
        key_space: args.key_space,
        ..PutBenchOptions::default()
    })
    .await?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}
