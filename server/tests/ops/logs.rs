//! What an operator's log shipper receives from `rollcall serve` with stderr
//! going to a file: no ANSI escape codes, `--log-format json` lines that
//! each parse as one JSON object, `--log-level` (and RUST_LOG over it), and
//! failed requests logged with their gRPC method.
//!
//! These tests start the binary themselves rather than through
//! `rollcall_tests::ServerProcess`: that harness sets NO_COLOR and RUST_LOG
//! for its children, which would hide exactly what is checked here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

/// Bound on the server becoming ready and on a log line appearing.
const WAIT: Duration = Duration::from_secs(20);

/// A `rollcall serve` whose stdout and stderr go to `serve.log`.
struct Serve {
    child: Child,
    endpoint: String,
    log: PathBuf,
    // Last: removed after the process is killed.
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts rollcall with `args` and `env` added (RUST_LOG and NO_COLOR
    /// removed unless `env` sets them) and waits until Status answers.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let port = rollcall_tests::ports::free_port().unwrap();
        let metrics_port = rollcall_tests::ports::free_port().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&endpoint)
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{metrics_port}"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("ROLLCALL_LOG_FORMAT")
            .env_remove("ROLLCALL_LOG_LEVEL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = command.spawn().unwrap();
        let mut serve = Self {
            child,
            endpoint,
            log,
            _dir: dir,
        };
        serve.wait_ready().await;
        serve
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rollcall exited early ({status}):\n{}", self.text());
            }
            if let Ok(channel) = self.connect().await
                && MaintenanceClient::new(channel)
                    .status(StatusRequest {})
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rollcall not ready after {WAIT:?}:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(self.endpoint.clone())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
    }

    async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.connect().await.unwrap())
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Polls the log until a line satisfies `found`; returns that line.
    async fn wait_for_line(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| found(l)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what} after {WAIT:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Put under a lease that was never granted: etcd's "requested lease not found".
async fn put_with_unknown_lease(kv: &mut KvClient<Channel>) {
    let err = kv
        .put(PutRequest {
            key: b"k".to_vec().into(),
            value: b"v".to_vec().into(),
            lease: 0x1234_5678,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("requested lease not found"),
        "{err:?}"
    );
}

/// A Range at a revision the store has not reached.
async fn range_in_the_future(kv: &mut KvClient<Channel>) {
    let err = kv
        .range(RangeRequest {
            key: b"k".to_vec().into(),
            revision: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_in_a_file_have_no_ansi_and_name_the_failing_method() {
    let serve = Serve::start(&["--log-level", "debug"], &[]).await;
    let mut kv = serve.kv().await;
    put_with_unknown_lease(&mut kv).await;
    range_in_the_future(&mut kv).await;

    let put = serve
        .wait_for_line("for the failed Put", |l| {
            l.contains("method=/etcdserverpb.KV/Put") && l.contains("requested lease not found")
        })
        .await;
    assert!(put.contains("DEBUG"), "{put}");
    serve
        .wait_for_line("for the failed Range", |l| {
            l.contains("method=/etcdserverpb.KV/Range") && l.contains("OutOfRange")
        })
        .await;
    let bytes = serve.bytes();
    assert!(
        !bytes.contains(&0x1b),
        "ANSI escape in {}:\n{}",
        serve.path().display(),
        serve.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_level_message_and_method() {
    let serve = Serve::start(&["--log-format", "json", "--log-level", "debug"], &[]).await;
    let mut kv = serve.kv().await;
    put_with_unknown_lease(&mut kv).await;

    let line = serve
        .wait_for_line("for the failed Put", |l| {
            l.contains("/etcdserverpb.KV/Put") && l.contains("requested lease not found")
        })
        .await;
    let failed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(failed["method"], "/etcdserverpb.KV/Put", "{line}");
    assert_eq!(failed["code"], "NotFound", "{line}");
    assert_eq!(failed["level"], "DEBUG", "{line}");

    let text = serve.text();
    assert!(!text.as_bytes().contains(&0x1b), "ANSI escape:\n{text}");
    let mut lines = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{text}"));
        assert!(value["level"].is_string(), "no level: {line}");
        assert!(value["message"].is_string(), "no message: {line}");
        lines += 1;
    }
    // At least the startup lines and the failed Put.
    assert!(lines >= 3, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_and_format_come_from_the_environment_and_rust_log_overrides() {
    // ROLLCALL_LOG_LEVEL=warn hides the info lines written before it serves.
    let quiet = Serve::start(
        &[],
        &[
            ("ROLLCALL_LOG_LEVEL", "warn"),
            ("ROLLCALL_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let text = quiet.text();
    assert!(!text.contains("ready to serve"), "{text}");
    drop(quiet);

    // The same member with RUST_LOG=info logs them, as JSON.
    let loud = Serve::start(
        &["--log-level", "error"],
        &[("RUST_LOG", "info"), ("ROLLCALL_LOG_FORMAT", "json")],
    )
    .await;
    let line = loud
        .wait_for_line("saying it serves", |l| l.contains("ready to serve"))
        .await;
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["level"], "INFO", "{line}");
}
