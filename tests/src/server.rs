//! [`ServerProcess`]: one real server process — the `rollcall` binary or a
//! real etcd — on free loopback ports with its own temporary data directory.
//!
//! - Only `127.0.0.1` is ever bound, and no port is fixed ([`crate::ports`]).
//! - The process's stdout and stderr go to `server.log` in the temp dir, never
//!   to the terminal; when a test panics, `Drop` prints the log's tail.
//! - Start waits, with a bounded deadline, until Maintenance.Status answers
//!   and names a leader (etcd elects itself shortly after it listens).
//! - [`ServerProcess::kill9`] and [`ServerProcess::restart`] reuse the same data
//!   dir and the same port, as a crash and a reboot would.
//! - `Drop` kills the process (SIGKILL) and removes the temp dir, also when
//!   the test panics.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::StatusRequest;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

use crate::{HarnessError, ports};

/// Default bound on waiting for a server to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound on a graceful stop (SIGTERM until exit).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-request timeout of channels made by [`ServerProcess::channel`], so a
/// hung server fails a test instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The member name (`--name`).
    pub name: String,
    /// `--max-request-bytes`.
    pub max_request_bytes: Option<u64>,
    /// `--max-txn-ops`.
    pub max_txn_ops: Option<u32>,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "test".to_owned(),
            max_request_bytes: None,
            max_txn_ops: None,
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// One running (or killed, and restartable) server process.
#[derive(Debug)]
pub struct ServerProcess {
    backend: Backend,
    config: ServerConfig,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
    // Last field: dropped after the process is killed in `Drop::drop`.
    dir: TempDir,
}

impl ServerProcess {
    /// Starts `backend` with `config` on fresh free ports in a fresh temp dir
    /// and waits until it is ready.
    ///
    /// If the port was taken in the short window between choosing it and the
    /// server binding it, retries with new ports (a bounded number of times).
    pub async fn start(backend: Backend, config: ServerConfig) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rollcall-test-{}-", backend.name()))
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let mut server = Self {
            backend,
            config,
            client_port: ports::free_port()?,
            peer_port: ports::free_port()?,
            data_dir,
            log_path,
            child: None,
            starts: 0,
            dir,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) if attempts < 3 && server.port_was_taken() => {
                    server.write_log_marker(&format!("port taken ({e}); retrying with new ports"));
                    server.client_port = ports::free_port()?;
                    server.peer_port = ports::free_port()?;
                    // A fresh data dir: the failed start may have begun one.
                    let _ = std::fs::remove_dir_all(&server.data_dir);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Which program this is.
    #[must_use]
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The configuration it was started with.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The server's data directory (kept across restarts).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file receiving the process's stdout and stderr.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A connected gRPC channel to the server, with a per-request timeout.
    /// It reconnects by itself after a restart.
    pub async fn channel(&self) -> Result<Channel, HarnessError> {
        self.endpoint_builder()?
            .connect()
            .await
            .map_err(|source| HarnessError::Connect {
                endpoint: self.endpoint(),
                source,
            })
    }

    /// A channel that connects on first use (no await, never fails now).
    pub fn lazy_channel(&self) -> Result<Channel, HarnessError> {
        Ok(self.endpoint_builder()?.connect_lazy())
    }

    fn endpoint_builder(&self) -> Result<Endpoint, HarnessError> {
        Endpoint::from_shared(self.endpoint())
            .map(|e| {
                e.connect_timeout(Duration::from_secs(5))
                    .timeout(REQUEST_TIMEOUT)
            })
            .map_err(|source| HarnessError::Connect {
                endpoint: self.endpoint(),
                source,
            })
    }

    /// Kills the process with SIGKILL (no chance to flush or clean up) and
    /// reaps it. Does nothing if it is not running.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            self.write_log_marker("kill -9");
            // An error here means it already exited; wait() reaps it either way.
            let _ = child.kill();
            child
                .wait()
                .map_err(|e| HarnessError::io("wait for killed server", e))?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its
    /// exit status. If it does not exit in time it is killed and an error is
    /// returned.
    pub async fn terminate(&mut self) -> Result<ExitStatus, HarnessError> {
        self.signal_and_wait("TERM").await
    }

    /// Like [`ServerProcess::terminate`] with SIGINT (Ctrl-C).
    pub async fn interrupt(&mut self) -> Result<ExitStatus, HarnessError> {
        self.signal_and_wait("INT").await
    }

    async fn signal_and_wait(&mut self, signal: &'static str) -> Result<ExitStatus, HarnessError> {
        let pid = self.pid().ok_or(HarnessError::NotRunning)?;
        self.write_log_marker(&format!("kill -{signal}"));
        // The `kill` program keeps this crate free of unsafe FFI.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .status()
            .map_err(|e| HarnessError::io("run kill", e))?;
        if !status.success() {
            return Err(HarnessError::io(
                format!("kill -{signal} {pid}"),
                std::io::Error::other(format!("kill exited with {status}")),
            ));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let Some(child) = &mut self.child else {
                return Err(HarnessError::NotRunning);
            };
            if let Some(exit) = child
                .try_wait()
                .map_err(|e| HarnessError::io("wait for server", e))?
            {
                self.child = None;
                return Ok(exit);
            }
            if Instant::now() >= deadline {
                self.kill9()?;
                return Err(HarnessError::DidNotExit {
                    program: self.backend.program(),
                    signal,
                    waited: STOP_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data dir and port and waits until
    /// it is ready. A still-running process is first stopped gracefully
    /// (SIGTERM); call [`ServerProcess::kill9`] before for a crash.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            self.terminate().await?;
        }
        self.child = None;
        self.spawn_and_wait().await
    }

    fn command(&self) -> Command {
        let endpoint = self.endpoint();
        let name = &self.config.name;
        let mut cmd = Command::new(self.backend.program());
        match &self.backend {
            Backend::Rollcall(_) => {
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    // rollcall has no peers yet: its second free port serves metrics.
                    .arg("--listen-metrics-urls")
                    .arg(format!("http://127.0.0.1:{}", self.peer_port))
                    .arg("--name")
                    .arg(name);
                if std::env::var_os("RUST_LOG").is_none() {
                    cmd.env("RUST_LOG", "info");
                }
                // Plain text in the log file.
                cmd.env("NO_COLOR", "1");
            }
            Backend::Etcd => {
                let peer = format!("http://127.0.0.1:{}", self.peer_port);
                cmd.arg("--name")
                    .arg(name)
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    .arg("--advertise-client-urls")
                    .arg(&endpoint)
                    .arg("--listen-peer-urls")
                    .arg(&peer)
                    .arg("--initial-advertise-peer-urls")
                    .arg(&peer)
                    .arg("--initial-cluster")
                    .arg(format!("{name}={peer}"))
                    .arg("--logger=zap")
                    .arg("--log-outputs=stderr");
            }
        }
        if let Some(n) = self.config.max_request_bytes {
            cmd.arg("--max-request-bytes").arg(n.to_string());
        }
        if let Some(n) = self.config.max_txn_ops {
            cmd.arg("--max-txn-ops").arg(n.to_string());
        }
        cmd
    }

    async fn spawn_and_wait(&mut self) -> Result<(), HarnessError> {
        self.starts += 1;
        self.write_log_marker(&format!(
            "start #{} on {} (data dir {})",
            self.starts,
            self.endpoint(),
            self.data_dir.display()
        ));
        let log = self.open_log()?;
        let log_err = log
            .try_clone()
            .map_err(|e| HarnessError::io("clone log file handle", e))?;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = cmd.spawn().map_err(|e| {
            HarnessError::io(format!("spawn {}", self.backend.program().display()), e)
        })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let timeout = self.config.ready_timeout;
        let mut last_error = String::from("no probe finished");
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child
                    .try_wait()
                    .map_err(|e| HarnessError::io("poll server process", e))?
            {
                self.child = None;
                return Err(HarnessError::ExitedEarly {
                    program: self.backend.program(),
                    status,
                    log: self.log_path.clone(),
                    log_tail: self.log_tail(40),
                });
            }
            if started.elapsed() >= timeout {
                let _ = self.kill9();
                return Err(HarnessError::NotReady {
                    program: self.backend.program(),
                    waited: timeout,
                    last_error,
                    log: self.log_path.clone(),
                    log_tail: self.log_tail(40),
                });
            }
            match self.probe().await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One readiness probe: Status answers and names a leader.
    async fn probe(&self) -> Result<(), String> {
        let endpoint = Endpoint::from_shared(self.endpoint())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .map_err(|e| format!("Status: {e}"))?
            .into_inner();
        if status.leader == 0 {
            return Err("Status answered with no leader yet".to_owned());
        }
        Ok(())
    }

    fn open_log(&self) -> Result<File, HarnessError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| HarnessError::io(format!("open {}", self.log_path.display()), e))
    }

    fn write_log_marker(&self, what: &str) {
        if let Ok(mut log) = self.open_log() {
            let _ = writeln!(log, "===== harness: {what} =====");
        }
    }

    /// The last `lines` lines of the server log (at most 64 KiB are read).
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn port_was_taken(&self) -> bool {
        let tail = self.log_tail(60).to_lowercase();
        tail.contains("address already in use") || tail.contains("addrinuse")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}), last lines -----\n{}\n----- end of log -----",
                self.backend.name(),
                self.dir.path().display(),
                self.log_tail(40)
            );
        }
    }
}
