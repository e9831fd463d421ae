//! The client subcommands of the `rollcall` binary: [`ClientCommand`] (clap,
//! one variant per command or command group) and [`run`], which executes one
//! and returns the process exit code.
//!
//! ```text
//! rollcall put /config/a 1
//! rollcall get /config/ --prefix --output json
//! rollcall del /config/a --prev-kv
//! rollcall watch /services/ --prefix
//! rollcall lease grant 10            # lease 694d7d8a2e8e6f0a granted with TTL(10s)
//! rollcall lease ttl 694d7d8a2e8e6f0a --keys
//! rollcall register web 10.0.0.7:8080 --zone eu-1 --check http://10.0.0.7:8080/health
//! rollcall services
//! rollcall discover web --watch
//! rollcall status --endpoints 10.0.0.1:2379,10.0.0.2:2379
//! ```
//!
//! Every command takes the options of [`GlobalArgs`] (`--endpoints`, also
//! from `ROLLCALL_ENDPOINTS`; `--output table|json`; `--timeout`), before or
//! after its own arguments. Tables go to stdout; `--output json` prints one
//! JSON document per command, or one line per event for the commands that
//! follow changes (`watch`, `lease keepalive`, `register`, `discover
//! --watch`), which run until SIGINT or SIGTERM.
//!
//! Errors go to stderr as `rollcall: <message>`, with the exit codes of
//! [`CliError::exit_code`]: 1 when the registry refused the request (etcd's
//! own message is printed), 2 for unusable arguments, 3 when no endpoint
//! answered (the endpoints tried are named).
//!
//! Modules: `kv.rs` (get, put, del), `watch.rs`, `lease.rs`, `registry.rs`
//! (register, services, discover), `status.rs`; `output.rs` renders tables
//! and JSON, `error.rs` is [`CliError`], `signal.rs` waits for SIGINT/SIGTERM.

mod error;
mod kv;
mod lease;
mod output;
mod registry;
mod signal;
mod status;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use self::error::CliError;
pub use self::kv::{DelArgs, GetArgs, PutArgs, SortBy, SortOrderArg};
pub use self::lease::{LeaseArgs, LeaseCommand};
pub use self::registry::{DiscoverArgs, RegisterArgs, ServicesArgs};
pub use self::status::StatusArgs;
pub use self::watch::WatchArgs;
use super::{Output, parse_duration};
use crate::client::Client;
use crate::endpoint::ConnectOptions;
use crate::tls::ClientTls;

/// The environment variable `--endpoints` falls back to.
pub const ENDPOINTS_ENV: &str = "ROLLCALL_ENDPOINTS";

/// The client subcommands. Meant to be flattened into the binary's own
/// subcommand enum (`#[command(flatten)] Client(ClientCommand)`), next to
/// `serve` and `bench`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Read a key, a prefix or a range of keys.
    Get(Box<GetArgs>),
    /// Write a key.
    Put(PutArgs),
    /// Delete a key, a prefix or a range of keys.
    Del(DelArgs),
    /// Print changes to a key or prefix as they happen (until interrupted).
    Watch(WatchArgs),
    /// Grant, revoke, renew and inspect leases (ids in hex, as etcdctl).
    Lease(LeaseArgs),
    /// Register a service instance and keep it registered until interrupted.
    Register(Box<RegisterArgs>),
    /// List the registered services with their instance counts.
    Services(ServicesArgs),
    /// List the instances of a service (`--watch` to follow changes).
    Discover(DiscoverArgs),
    /// Show the status of every endpoint.
    Status(StatusArgs),
}

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Comma-separated endpoints (`host:port` or `http://host:port`); calls
    /// fail over between them.
    #[arg(
        long,
        value_delimiter = ',',
        env = ENDPOINTS_ENV,
        default_value = "127.0.0.1:2379",
        global = true
    )]
    pub endpoints: Vec<String>,
    /// How to print results.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Bound on each request (and on connecting): `5s`, `500ms`, `1m`.
    #[arg(long, value_parser = parse_duration, default_value = "5s", global = true)]
    pub timeout: Duration,
    /// TLS files, boxed: they are rarely given and would triple the size of
    /// every command.
    #[command(flatten)]
    pub tls: Box<TlsArgs>,
}

/// TLS options, as etcdctl names them.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signs the registry's certificate; needed for
    /// `https://` endpoints.
    #[arg(long, env = "ROLLCALL_CACERT", global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// This client's certificate (PEM), for registries that require one.
    #[arg(
        long = "cert",
        id = "client_cert",
        env = "ROLLCALL_CERT",
        global = true,
        requires = "client_key"
    )]
    pub cert: Option<std::path::PathBuf>,
    /// The key (PEM) of `--cert`.
    #[arg(
        long = "key",
        id = "client_key",
        env = "ROLLCALL_KEY",
        global = true,
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
}

impl GlobalArgs {
    /// The connect and request timeouts these arguments ask for: connecting
    /// to one endpoint is bounded by 2 s (etcdctl's dial timeout) or the
    /// request timeout if shorter.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            connect_timeout: self.timeout.min(Duration::from_secs(2)),
            request_timeout: self.timeout,
        }
    }

    /// Connects to the endpoints (the first that answers; later calls fail
    /// over to the others).
    pub(crate) async fn connect(&self) -> Result<Client, CliError> {
        let endpoints = self.endpoints.iter().cloned();
        let connected = match &self.tls.cacert {
            Some(ca) => {
                let tls = ClientTls {
                    ca: ca.clone(),
                    identity: self.tls.cert.clone().zip(self.tls.client_key.clone()),
                };
                Client::connect_with_tls(endpoints, self.connect_options(), &tls).await
            }
            None => Client::connect_with(endpoints, self.connect_options()).await,
        };
        connected.map_err(|e| CliError::client(e, &self.endpoints))
    }

    pub(crate) fn json(&self) -> bool {
        self.output == Output::Json
    }
}

impl ClientCommand {
    /// The command's name as typed (`lease grant` for a lease subcommand).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Get(_) => "get",
            Self::Put(_) => "put",
            Self::Del(_) => "del",
            Self::Watch(_) => "watch",
            Self::Lease(l) => l.command.name(),
            Self::Register(_) => "register",
            Self::Services(_) => "services",
            Self::Discover(_) => "discover",
            Self::Status(_) => "status",
        }
    }

    /// The global options given with the command.
    pub fn global(&self) -> &GlobalArgs {
        match self {
            Self::Get(a) => &a.global,
            Self::Put(a) => &a.global,
            Self::Del(a) => &a.global,
            Self::Watch(a) => &a.global,
            Self::Lease(a) => &a.global,
            Self::Register(a) => &a.global,
            Self::Services(a) => &a.global,
            Self::Discover(a) => &a.global,
            Self::Status(a) => &a.global,
        }
    }
}

/// Runs the command, printing its results on stdout and any error on
/// stderr (`rollcall: <message>`), and returns the exit code: 0 on success,
/// otherwise [`CliError::exit_code`].
pub async fn run(command: ClientCommand) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into a program that stopped reading (`| head`).
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rollcall: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs the command and returns its error instead of printing it.
pub async fn execute(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Get(args) => kv::get(*args).await,
        ClientCommand::Put(args) => kv::put(args).await,
        ClientCommand::Del(args) => kv::del(args).await,
        ClientCommand::Watch(args) => watch::run(args).await,
        ClientCommand::Lease(args) => lease::run(args).await,
        ClientCommand::Register(args) => registry::register(*args).await,
        ClientCommand::Services(args) => registry::services(args).await,
        ClientCommand::Discover(args) => registry::discover(args).await,
        ClientCommand::Status(args) => status::run(args).await,
    }
}

#[cfg(test)]
mod tests;
