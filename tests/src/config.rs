//! [`Backend`] (which server program runs) and [`ServerConfig`] (what one
//! process is started with beyond the flags the harness derives itself).

use std::path::PathBuf;
use std::time::Duration;

use crate::{HarnessError, ServerProcess};

/// Default bound on waiting for a server to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Which server program to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The `rollcall` binary at this path (tests in `server/tests` pass
    /// `env!("CARGO_BIN_EXE_rollcall")`).
    Rollcall(PathBuf),
    /// A real etcd 3.4 found in `PATH`: the reference implementation.
    Etcd,
}

impl Backend {
    /// A short name for messages and test output: `rollcall` or `etcd`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Rollcall(_) => "rollcall",
            Backend::Etcd => "etcd",
        }
    }

    /// Whether this is the reference etcd.
    #[must_use]
    pub fn is_etcd(&self) -> bool {
        matches!(self, Backend::Etcd)
    }

    /// The program that is started.
    #[must_use]
    pub fn program(&self) -> PathBuf {
        match self {
            Backend::Rollcall(bin) => bin.clone(),
            Backend::Etcd => PathBuf::from("etcd"),
        }
    }

    /// Starts this backend with the default configuration.
    pub async fn start(&self) -> Result<ServerProcess, HarnessError> {
        ServerProcess::start(self.clone(), ServerConfig::default()).await
    }

    /// Starts this backend with `config`.
    pub async fn start_with(&self, config: ServerConfig) -> Result<ServerProcess, HarnessError> {
        ServerProcess::start(self.clone(), config).await
    }
}

/// Server settings the tests vary. `None` leaves the server's own default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The member name (`--name`); in a cluster, the members are named
    /// `<name>0`, `<name>1`, ...
    pub name: String,
    /// `--max-request-bytes`.
    pub max_request_bytes: Option<u64>,
    /// `--max-txn-ops`.
    pub max_txn_ops: Option<u32>,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
    /// Flags appended after the ones the harness derives.
    pub args: Vec<String>,
    /// Environment variables of the process. rollcall gets `RUST_LOG=info`
    /// unless this or the test's own environment sets `RUST_LOG`.
    pub env: Vec<(String, String)>,
    /// Start on this existing data directory (a restored snapshot, say)
    /// instead of a fresh one; it is left in place when the process goes.
    pub data_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "test".to_owned(),
            max_request_bytes: None,
            max_txn_ops: None,
            ready_timeout: READY_TIMEOUT,
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
        }
    }
}

impl ServerConfig {
    /// The default configuration with these extra flags.
    #[must_use]
    pub fn with_args<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::default().args(args)
    }

    /// Appends flags.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the process.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts on an existing data directory.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets the readiness bound.
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }
}
