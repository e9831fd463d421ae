//! [`ServerProcess`]: one real server process — the `rollcall` binary or a
//! real etcd — on free loopback ports with its own temporary data directory,
//! alone or as one member of a [`crate::Cluster`].
//!
//! - Only `127.0.0.1` is ever bound, and no port is fixed ([`crate::layout`]);
//!   or, for partition tests, the member runs in a network namespace of its
//!   own on its host's address ([`crate::netns`]).
//! - The process's stdout and stderr go to `server.log` in the temp dir, never
//!   to the terminal; when a test panics, `Drop` prints the log's tail.
//! - Readiness is ONE probe ([`ServerProcess::wait_ready`]): Maintenance.Status
//!   answers and names a leader, polled under a deadline.
//! - [`ServerProcess::kill9`], [`ServerProcess::pause`] /
//!   [`ServerProcess::resume`] (SIGSTOP / SIGCONT), and
//!   [`ServerProcess::restart`] on the same data dir and ports, as a crash, a
//!   stall and a reboot would.
//! - `Drop` kills the process (SIGKILL, which also ends a stopped one) and
//!   removes the temp dir, also when the test panics.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::StatusRequest;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

use crate::layout::{Layout, PeerArgs};
use crate::{Backend, HarnessError, ServerConfig, signal};

/// Bound on a graceful stop (SIGTERM until exit).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-request timeout of channels made by [`ServerProcess::channel`], so a
/// hung server fails a test instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a start is retried when a chosen port was taken in the
/// window between choosing and binding it.
pub(crate) const START_ATTEMPTS: u32 = 3;

/// One running (or killed, and restartable) server process.
pub struct ServerProcess {
    backend: Backend,
    config: ServerConfig,
    layout: Layout,
    index: usize,
    peer_args: Option<PeerArgs>,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
    starts: u32,
    // Last field: dropped after the process is killed in `Drop::drop`.
    dir: TempDir,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("backend", &self.backend)
            .field("member", self.layout.member(self.index))
            .field("data_dir", &self.data_dir)
            .field("pid", &self.pid())
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Starts `backend` with `config` on fresh free ports in a fresh temp dir
    /// and waits until it is ready.
    ///
    /// If a port was taken in the short window between choosing it and the
    /// server binding it, retries with new ports (a bounded number of times).
    pub async fn start(backend: Backend, config: ServerConfig) -> Result<Self, HarnessError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let layout = Layout::allocate(std::slice::from_ref(&config.name))?;
            let mut server = Self::prepare(backend.clone(), config.clone(), layout, 0, None)?;
            let started = match server.spawn() {
                Ok(()) => server.wait_ready().await,
                Err(e) => Err(e),
            };
            match started {
                Ok(()) => return Ok(server),
                Err(e) if attempt < START_ATTEMPTS && server.port_was_taken() => {
                    server.write_log_marker(&format!("port taken ({e}); retrying with new ports"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A process that is not started yet: member `index` of `layout`.
    pub(crate) fn prepare(
        backend: Backend,
        config: ServerConfig,
        layout: Layout,
        index: usize,
        peer_args: Option<PeerArgs>,
    ) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rollcall-test-{}-", backend.name()))
            .tempdir()
            .map_err(|e| HarnessError::io("create temp dir", e))?;
        let data_dir = config
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        Ok(Self {
            backend,
            config,
            layout,
            index,
            peer_args,
            data_dir,
            log_path: dir.path().join("server.log"),
            child: None,
            paused: false,
            starts: 0,
            dir,
        })
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

    /// The member name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.layout.member(self.index).name
    }

    /// The ports of every member of its group (itself alone when started on
    /// its own).
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The client URL, `http://127.0.0.1:PORT` (or its host's address).
    #[must_use]
    pub fn endpoint(&self) -> String {
        self.layout.member(self.index).client_url()
    }

    /// `127.0.0.1:PORT` (or its host's address) of the client listener.
    #[must_use]
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// The address it listens on.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.layout.member(self.index).host
    }

    /// The client port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.layout.member(self.index).client_port
    }

    /// The port reserved for peer traffic.
    #[must_use]
    pub fn peer_port(&self) -> u16 {
        self.layout.member(self.index).peer_port
    }

    /// The port serving `/metrics` and `/health`: rollcall's
    /// `--listen-metrics-urls`, etcd's client port.
    #[must_use]
    pub fn metrics_port(&self) -> u16 {
        match self.backend {
            Backend::Rollcall(_) => self.layout.member(self.index).metrics_port,
            Backend::Etcd => self.port(),
        }
    }

    /// The server's data directory (kept across restarts).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory of this process, removed with it.
    #[must_use]
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
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

    /// Whether the process is still running (a paused one is).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Whether it was paused with [`ServerProcess::pause`] and not resumed.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.paused
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
        self.paused = false;
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

    /// Stops the process with SIGSTOP: it keeps its sockets and state but
    /// answers nothing, as a stalled machine would.
    pub fn pause(&mut self) -> Result<(), HarnessError> {
        let pid = self.pid().ok_or(HarnessError::NotRunning)?;
        self.write_log_marker("kill -STOP");
        signal::send(pid, "STOP")?;
        self.paused = true;
        Ok(())
    }

    /// Continues a paused process with SIGCONT.
    pub fn resume(&mut self) -> Result<(), HarnessError> {
        let pid = self.pid().ok_or(HarnessError::NotRunning)?;
        self.write_log_marker("kill -CONT");
        signal::send(pid, "CONT")?;
        self.paused = false;
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

    async fn signal_and_wait(&mut self, sig: &'static str) -> Result<ExitStatus, HarnessError> {
        let pid = self.pid().ok_or(HarnessError::NotRunning)?;
        if self.paused {
            // A stopped process would not act on the signal.
            self.resume()?;
        }
        self.write_log_marker(&format!("kill -{sig}"));
        signal::send(pid, sig)?;
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
                    signal: sig,
                    waited: STOP_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data dir and ports and waits
    /// until it is ready. A still-running process is first stopped
    /// gracefully (SIGTERM); call [`ServerProcess::kill9`] before for a crash.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            self.terminate().await?;
        }
        self.child = None;
        self.spawn()?;
        self.wait_ready().await
    }

    /// The flags: identity (derived by the harness), peer flags (from the
    /// layout), limits, then the config's own.
    fn command(&self) -> Command {
        let me = self.layout.member(self.index);
        let endpoint = me.client_url();
        // `ip netns exec` execs the server, so the child is the server itself
        // (kill -9 and SIGSTOP reach it).
        let mut cmd = match &me.namespace {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(self.backend.program());
                cmd
            }
            None => Command::new(self.backend.program()),
        };
        match &self.backend {
            Backend::Rollcall(_) => {
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    // Its default metrics port (2381) is fixed; use a free one.
                    .arg("--listen-metrics-urls")
                    .arg(me.metrics_url())
                    .arg("--name")
                    .arg(&me.name);
                let log_set = std::env::var_os("RUST_LOG").is_some()
                    || self.config.env.iter().any(|(k, _)| k == "RUST_LOG");
                if !log_set {
                    cmd.env("RUST_LOG", "info");
                }
                // Plain text in the log file.
                cmd.env("NO_COLOR", "1");
            }
            Backend::Etcd => {
                cmd.arg("--name")
                    .arg(&me.name)
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    .arg("--advertise-client-urls")
                    .arg(&endpoint)
                    .arg("--logger=zap")
                    .arg("--log-outputs=stderr");
            }
        }
        let peer = match (&self.peer_args, &self.backend) {
            (Some(f), _) => f(&self.layout, self.index),
            (None, Backend::Etcd) => self.layout.etcd_peer_args(self.index),
            (None, Backend::Rollcall(_)) => Vec::new(),
        };
        cmd.args(peer);
        if let Some(n) = self.config.max_request_bytes {
            cmd.arg("--max-request-bytes").arg(n.to_string());
        }
        if let Some(n) = self.config.max_txn_ops {
            cmd.arg("--max-txn-ops").arg(n.to_string());
        }
        cmd.args(&self.config.args);
        cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Spawns the process without waiting for it to be ready.
    pub(crate) fn spawn(&mut self) -> Result<(), HarnessError> {
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
        self.paused = false;
        Ok(())
    }

    /// Waits, at most the config's `ready_timeout`, until the one readiness
    /// probe passes: Maintenance.Status answers and names a leader. Fails
    /// early when the process exits, and kills it when the time is up.
    pub async fn wait_ready(&mut self) -> Result<(), HarnessError> {
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
            match probe(&self.endpoint()).await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    /// The whole server log.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn port_was_taken(&self) -> bool {
        let tail = self.log_tail(60).to_lowercase();
        tail.contains("address already in use") || tail.contains("addrinuse")
    }
}

/// The readiness probe: Status on `endpoint` answers and names a leader.
async fn probe(endpoint: &str) -> Result<(), String> {
    let endpoint = Endpoint::from_shared(endpoint.to_owned())
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- {} {} log ({}), last lines -----\n{}\n----- end of log -----",
                self.backend.name(),
                self.name(),
                self.dir.path().display(),
                self.log_tail(40)
            );
        }
    }
}
