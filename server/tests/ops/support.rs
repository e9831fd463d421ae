//! Helpers of the ops suite: a rollcall process with its metrics port and
//! gRPC clients, and promtool. The process, the HTTP GET, the parsed scrape
//! and running tools are the harness's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest};
use rollcall_tests::http::{HttpResponse, http_get};
pub use rollcall_tests::metrics::Scrape;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};
use tonic::transport::Channel;

/// Bound on waiting for a metric to reach a value.
pub const WAIT: Duration = Duration::from_secs(20);

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
}

/// The repository root (the workspace), where `deploy/` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// One running rollcall with its gRPC clients and its metrics port.
pub struct Ops {
    /// Owned so the process lives as long as the clients (`Drop` kills it).
    _server: ServerProcess,
    pub metrics_port: u16,
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
}

impl Ops {
    /// Starts rollcall on free ports (the harness passes
    /// `--listen-metrics-urls http://127.0.0.1:<free port>`).
    pub async fn start() -> Self {
        let backend = rollcall();
        let server = match backend.start().await {
            Ok(s) => s,
            Err(e) => panic!("cannot start rollcall: {e}"),
        };
        let metrics_port = server.metrics_port();
        let channel = server
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", server.endpoint()));
        Self {
            _server: server,
            metrics_port,
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel),
        }
    }

    /// `GET path` on the metrics listener.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.metrics_port, path).await
    }

    /// Scrapes and parses `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        Scrape::parse(&response.body)
    }

    /// Scrapes until `ready` holds (bounded by [`WAIT`]); panics with `what`
    /// and the last scrape otherwise.
    pub async fn scrape_until(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + WAIT;
        loop {
            let scrape = self.scrape().await;
            if ready(&scrape) {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; last /metrics:\n{}",
                scrape.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn put(&mut self, key: &str, value: &str) {
        self.put_with_lease(key, value, 0).await;
    }

    pub async fn put_with_lease(&mut self, key: &str, value: &str, lease: i64) {
        self.kv
            .put(PutRequest {
                key: key.to_owned().into(),
                value: value.to_owned().into(),
                lease,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("put {key}={value}: {e:?}"));
    }

    /// How many keys the whole keyspace holds (a count-only Range RPC).
    pub async fn live_keys(&mut self) -> i64 {
        self.kv
            .range(RangeRequest {
                key: vec![0u8].into(),
                range_end: vec![0u8].into(),
                count_only: true,
                ..Default::default()
            })
            .await
            .expect("count the keyspace")
            .into_inner()
            .count
    }

    /// Puts the keys that make every labelled family appear (a registered
    /// instance for `rollcall_registry_instances`; any RPC already made the
    /// `grpc_server_*` series) and returns a scrape.
    pub async fn populated_scrape(&mut self) -> Scrape {
        self.put("/services/web/1", r#"{"id":"1","health":"passing"}"#)
            .await;
        self.scrape().await
    }
}

/// Whether `promtool` is there; if not, prints SKIPPED for `test` and returns
/// false, or panics under `ROLLCALL_REQUIRE_PROMTOOL=1`.
pub fn promtool_or_skip(test: &str) -> bool {
    require_or_skip(Tool::Promtool, test)
}

/// Runs `promtool args…` in `dir` (bounded); panics with its output unless it
/// succeeds. Returns stdout.
pub fn promtool(dir: &Path, args: &[&str]) -> String {
    rollcall_tests::tools::run_in(dir, Tool::Promtool, args)
}
