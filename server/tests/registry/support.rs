//! Helpers of the registry suite: a `rollcall` process started with short
//! lease flags (which the harness's `ServerProcess` cannot pass), clients with
//! short timeouts, reading an instance back, and bounded polling.
//!
//! [`Registry`] keeps its data dir and client port across
//! [`Registry::kill9`], [`Registry::terminate`] and [`Registry::restart`], as
//! a crash and a reboot would.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_client::registry::Instance;
use rollcall_client::{Client, ConnectOptions};
use tempfile::TempDir;

/// Bound on any single wait in this suite.
pub const WAIT: Duration = Duration::from_secs(15);

/// Flags for short leases: 1 s TTLs allowed, expiry checked every 50 ms.
const FLAGS: &[&str] = &["--min-lease-ttl", "1", "--lease-check-interval-ms", "50"];

/// One `rollcall serve` process with the short-lease flags.
pub struct Registry {
    dir: TempDir,
    port: u16,
    metrics_port: u16,
    child: Option<Child>,
}

impl Registry {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rollcall-registry-test-")
            .tempdir()
            .expect("temp dir");
        let mut registry = Self {
            dir,
            port: rollcall_tests::ports::free_port().expect("free port"),
            metrics_port: rollcall_tests::ports::free_port().expect("free port"),
            child: None,
        };
        registry.spawn().await;
        registry
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for a proxy in front of it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let log_err = log.try_clone().expect("log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(self.endpoint())
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", self.metrics_port))
            .args(FLAGS)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn rollcall");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("rollcall exited early ({status}):\n{}", self.log());
            }
            let options = ConnectOptions {
                connect_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_secs(2),
            };
            if let Ok(client) = Client::connect_with([self.endpoint()], options).await
                && client.status().await.is_ok_and(|s| s.leader != 0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rollcall not ready within 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("rollcall is running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                assert!(exit.success(), "rollcall exited with {exit} after SIGTERM");
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rollcall did not exit within {WAIT:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts it again on the same data dir and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn().await;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- rollcall log -----\n{}\n----- end of log -----",
                self.log()
            );
        }
    }
}

/// A client with short timeouts, so calls to a stopped server fail fast.
pub async fn client(endpoint: &str) -> Client {
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
    };
    Client::connect_with([endpoint], options)
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"))
}

/// An instance as stored: the decoded value, its lease and mod revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub instance: Instance,
    pub json: serde_json::Value,
    pub lease: i64,
    pub mod_revision: i64,
}

/// Reads the key back, if present (`None` also while the server is down).
pub async fn stored(client: &Client, key: &str) -> Option<Stored> {
    let response = client.get(key).await.ok()?;
    let kv = response.kvs.first()?;
    Some(Stored {
        instance: Instance::from_json(&kv.value).expect("the value is registry JSON"),
        json: serde_json::from_slice(&kv.value).expect("the value is JSON"),
        lease: kv.lease,
        mod_revision: kv.mod_revision,
    })
}

/// Whether the key is absent (and the server answered).
pub async fn absent(client: &Client, key: &str) -> bool {
    client.get(key).await.is_ok_and(|r| r.kvs.is_empty())
}

/// Polls `probe` every 50 ms until it yields a value; panics with `what`
/// after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that `probe` holds at every poll for `period`.
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(probe().await, "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until a watch receiver's value satisfies `ok`.
pub async fn wait_for<T, F>(what: &str, rx: &mut tokio::sync::watch::Receiver<T>, ok: F) -> T
where
    T: Clone,
    F: FnMut(&T) -> bool,
{
    match tokio::time::timeout(WAIT, rx.wait_for(ok)).await {
        Ok(Ok(value)) => value.clone(),
        Ok(Err(_)) => panic!("{what}: the sender is gone"),
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}
