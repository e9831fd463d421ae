//! `rollcall bench` as a standalone binary, for running the load generator
//! before (or without) the `rollcall` CLI:
//!
//! ```text
//! cargo run --release -p rollcall-client --features cli --example bench -- \
//!     --endpoints 127.0.0.1:2379 put --clients 100 --conns 10 --total 20000
//! cargo run --release -p rollcall-client --features cli --example bench -- \
//!     watch-latency --watchers 10000 --hot-watchers 100 --streams 10 --rate 200 --duration 20s
//! ```

use std::process::ExitCode;

use clap::Parser;
use rollcall_client::cli::{self, BenchCommand};

#[derive(Parser)]
#[command(name = "bench", about = "Load-generate against any etcd v3 endpoint")]
struct Args {
    #[command(flatten)]
    bench: BenchCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match cli::run(args.bench).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
