//! The `rollcall` binary: `rollcall serve` runs a member, the client commands
//! (`get`, `put`, `register`, `discover`, ...) talk to one, `rollcall bench`
//! measures any etcd-v3 endpoint, `rollcall snapshot restore` rebuilds a
//! member from a snapshot.

mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rollcall_server::config::{LogFormat, LogLevel, ServeConfig, parse_listen_url};
use rollcall_server::server::Listeners;
use rollcall_server::storage::snapshot;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "A service registry that speaks the etcd v3 API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a registry member.
    Serve(Box<ServeConfig>),
    /// Load-generate against any etcd-v3-compatible endpoint.
    Bench(rollcall_client::cli::BenchCommand),
    /// Work with snapshots taken by `etcdctl snapshot save` (Maintenance.Snapshot).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Client commands: get, put, del, watch, lease, register, services, discover, status.
    #[command(flatten)]
    Client(rollcall_client::cli::commands::ClientCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Rebuild a member's data directory from a snapshot file.
    Restore {
        /// The snapshot file.
        file: std::path::PathBuf,
        /// Data directory to create (must not hold a database yet).
        #[arg(long, default_value = "./rollcall.data")]
        data_dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(config) => logging::init(config.log_format, config.log_level),
        _ => logging::init(LogFormat::default(), LogLevel::default()),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rollcall: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        // Client commands report their own errors and choose the exit code.
        Command::Client(command) => {
            return runtime.block_on(rollcall_client::cli::commands::run(command));
        }
        Command::Serve(config) => runtime.block_on(serve(*config)),
        Command::Bench(bench) => runtime
            .block_on(rollcall_client::cli::run(bench))
            .map_err(|e| e.to_string()),
        Command::Snapshot(SnapshotCommand::Restore { file, data_dir }) => restore(&file, &data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("rollcall: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting rollcall");
    let listeners = Listeners {
        client: bind_all(&config.listen_client_urls).await?,
        metrics: bind_all(&config.listen_metrics_urls)
            .await?
            .into_iter()
            .map(|(listener, tls)| {
                if tls {
                    Err("--listen-metrics-urls: https is not supported; use http".to_string())
                } else {
                    Ok(listener)
                }
            })
            .collect::<Result<_, _>>()?,
        peer: bind_all(&config.listen_peer_urls).await?,
    };
    rollcall_server::server::run(config, listeners, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> Result<(), String> {
    let mut last_percent = None;
    let result = snapshot::restore(file, data_dir, |done, total| {
        let percent = done * 100 / total.max(1);
        if last_percent != Some(percent) {
            last_percent = Some(percent);
            let filled = usize::try_from(percent / 5).unwrap_or(20);
            eprint!("\rrestoring [{:<20}] {percent:>3}%", "#".repeat(filled));
        }
    });
    eprintln!();
    result.map_err(|e| e.to_string())?;
    println!("restored {} into {}", file.display(), data_dir.display());
    Ok(())
}

/// Binds every URL; each listener comes with whether it speaks TLS.
async fn bind_all(urls: &[String]) -> Result<Vec<(TcpListener, bool)>, String> {
    let mut listeners = Vec::new();
    // An empty URL list (`--listen-metrics-urls ''`) disables that listener.
    for url in urls.iter().filter(|u| !u.is_empty()) {
        let parsed = parse_listen_url(url).map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(parsed.addr)
            .await
            .map_err(|e| format!("cannot listen on {url}: {e}"))?;
        listeners.push((listener, parsed.tls));
    }
    Ok(listeners)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
