//! Range (single-key get) throughput against any etcd v3 endpoint, over a key
//! space written first:
//!
//! ```text
//! cargo run --release -p rollcall-client --example bench_range -- \
//!     --endpoints 127.0.0.1:2379 --consistency s --total 50000
//! ```

use clap::Parser;
use rollcall_client::bench::{RangeBenchOptions, run_range};

#[derive(Parser)]
struct Args {
    /// Comma-separated endpoints (`http://host:port` or `host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    conns: usize,
    /// Gets in all.
    #[arg(long, default_value_t = 50_000)]
    total: u64,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Keys written before the reads, then read at random.
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// `l` (linearizable) or `s` (serializable).
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    consistency: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let report = run_range(RangeBenchOptions {
        endpoints: args.endpoints,
        clients: args.clients,
        conns: args.conns,
        total: args.total,
        key_size: args.key_size,
        val_size: args.val_size,
        key_space: args.key_space,
        serializable: args.consistency == "s",
        ..RangeBenchOptions::default()
    })
    .await?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}
