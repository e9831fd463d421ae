//! Helpers of the registry suite: a `rollcall` process started with short
//! lease flags, clients with short timeouts, and reading an instance back.
//! Processes and waits are the harness's.
//!
//! [`Registry`] keeps its data dir and client port across
//! [`Registry::kill9`], [`Registry::terminate`] and [`Registry::restart`], as
//! a crash and a reboot would.

use std::ops::Deref;
use std::time::Duration;

use rollcall_client::registry::Instance;
use rollcall_client::{Client, ConnectOptions};
pub use rollcall_tests::wait::{eventually, holds_for};
use rollcall_tests::{Backend, ServerConfig, ServerProcess};

/// Bound on any single wait in this suite.
pub const WAIT: Duration = Duration::from_secs(15);

/// Flags for short leases: 1 s TTLs allowed, expiry checked every 50 ms.
const FLAGS: &[&str] = &["--min-lease-ttl", "1", "--lease-check-interval-ms", "50"];

/// One `rollcall serve` process with the short-lease flags.
pub struct Registry(ServerProcess);

impl Deref for Registry {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl Registry {
    pub async fn start() -> Self {
        let backend = Backend::Rollcall(env!("CARGO_BIN_EXE_rollcall").into());
        let config = ServerConfig::with_args(FLAGS.iter().copied());
        match backend.start_with(config).await {
            Ok(server) => Self(server),
            Err(e) => panic!("cannot start rollcall: {e}"),
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.0.kill9().expect("kill -9");
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub async fn terminate(&mut self) {
        let exit = self.0.terminate().await.expect("SIGTERM stops rollcall");
        assert!(exit.success(), "rollcall exited with {exit} after SIGTERM");
    }

    /// Starts it again on the same data dir and port.
    pub async fn restart(&mut self) {
        assert!(!self.0.is_running(), "stop it first");
        self.0.restart().await.expect("rollcall restarts");
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

/// Waits (bounded) until a watch receiver's value satisfies `ok`.
pub async fn wait_for<T, F>(what: &str, rx: &mut tokio::sync::watch::Receiver<T>, ok: F) -> T
where
    T: Clone,
    F: FnMut(&T) -> bool,
{
    rollcall_tests::wait::watch_value(what, WAIT, rx, ok).await
}
