//! Helpers of the maintenance suite.
//!
//! - [`Member`]: one rollcall or etcd process started with extra flags the
//!   harness cannot pass (`--quota-backend-bytes`, `--auto-compaction-*`),
//!   optionally on a given data directory (a restored snapshot); two free
//!   loopback ports, readiness by polling Maintenance.Status under a
//!   deadline, restart on the same ports and data, kill in `Drop`.
//! - [`Client`]: KV, Lease and Maintenance stubs over one channel.
//! - bounded polling, a tiny HTTP/1.1 GET, running the `rollcall` binary's
//!   client subcommands under a timeout, and asserts on gRPC errors.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    DefragmentRequest, DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest,
    HashKvResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse, alarm_request::AlarmAction,
};
use rollcall_proto::mvccpb::KeyValue;
use rollcall_tests::{Tool, ports, require_or_skip};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Bound on a member becoming ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a graceful stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the test's gRPC channels.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one run of a `rollcall` client subcommand.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

/// Which server program a [`Member`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rollcall,
    Etcd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rollcall => "rollcall",
            Kind::Etcd => "etcd",
        }
    }
}

/// The `rollcall` binary cargo built for this test run.
pub fn rollcall_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollcall"))
}

/// Whether `tool` is there (prints SKIPPED, or panics under
/// `ROLLCALL_REQUIRE_ETCD=1`, when it is not).
pub fn have(tool: Tool, test: &str) -> bool {
    require_or_skip(tool, test)
}

/// One server process with its own ports, data directory and log.
#[derive(Debug)]
pub struct Member {
    kind: Kind,
    args: Vec<String>,
    client_port: u16,
    /// rollcall: metrics; etcd: peer.
    second_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    // Last: removed after the process is killed.
    dir: TempDir,
}

impl Member {
    /// Starts `kind` with `args` appended to the usual flags, in a fresh data
    /// directory.
    pub async fn start(kind: Kind, args: &[&str]) -> Self {
        Self::start_inner(kind, None, args).await
    }

    /// Starts `kind` on an existing `data_dir` (e.g. a restored snapshot).
    pub async fn start_in(kind: Kind, data_dir: &Path, args: &[&str]) -> Self {
        Self::start_inner(kind, Some(data_dir.to_path_buf()), args).await
    }

    async fn start_inner(kind: Kind, data_dir: Option<PathBuf>, args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rollcall-maint-{}-", kind.name()))
            .tempdir()
            .expect("create a temp dir");
        let given = data_dir.is_some();
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let mut member = Self {
            kind,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            client_port: ports::free_port().expect("free port"),
            second_port: ports::free_port().expect("free port"),
            log_path: dir.path().join("server.log"),
            data_dir,
            child: None,
            dir,
        };
        for attempt in 1..=3 {
            match member.spawn_and_wait().await {
                Ok(()) => return member,
                Err(e) if attempt < 3 && member.port_was_taken() => {
                    member.marker(&format!("port taken ({e}); retrying with new ports"));
                    member.client_port = ports::free_port().expect("free port");
                    member.second_port = ports::free_port().expect("free port");
                    if !given {
                        let _ = std::fs::remove_dir_all(&member.data_dir);
                    }
                }
                Err(e) => panic!("cannot start {}: {e}", kind.name()),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `http://127.0.0.1:PORT` of the client listener.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The database file: rollcall's redb file or etcd's bbolt file.
    pub fn db_file(&self) -> PathBuf {
        match self.kind {
            Kind::Rollcall => self.data_dir.join("rollcall.redb"),
            Kind::Etcd => self.data_dir.join("member").join("snap").join("db"),
        }
    }

    /// The port serving `/health`: rollcall's metrics listener, etcd's client
    /// listener.
    pub fn health_port(&self) -> u16 {
        match self.kind {
            Kind::Rollcall => self.second_port,
            Kind::Etcd => self.client_port,
        }
    }

    /// A scratch directory removed with the member.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A connected client (panics when it cannot connect).
    pub async fn client(&self) -> Client {
        let channel = Endpoint::from_shared(self.endpoint())
            .expect("endpoint URL")
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint()));
        Client::over(channel)
    }

    fn command(&self) -> Command {
        let endpoint = self.endpoint();
        let mut cmd = match self.kind {
            Kind::Rollcall => {
                let mut cmd = Command::new(rollcall_bin());
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&endpoint)
                    .arg("--listen-metrics-urls")
                    .arg(format!("http://127.0.0.1:{}", self.second_port))
                    .arg("--name")
                    .arg("maint");
                if std::env::var_os("RUST_LOG").is_none() {
                    cmd.env("RUST_LOG", "info");
                }
                cmd.env("NO_COLOR", "1");
                cmd
            }
            Kind::Etcd => {
                let peer = format!("http://127.0.0.1:{}", self.second_port);
                let mut cmd = Command::new("etcd");
                cmd.arg("--name")
                    .arg("maint")
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
                    .arg(format!("maint={peer}"))
                    .arg("--logger=zap")
                    .arg("--log-outputs=stderr");
                cmd
            }
        };
        cmd.args(&self.args);
        cmd
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.marker(&format!("start on {}", self.endpoint()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the log");
        let log_err = log.try_clone().expect("clone the log handle");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.kind.name()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no probe yet");
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "exited with {status} before it was ready:\n{}",
                    self.log_tail(30)
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "not ready after {READY_TIMEOUT:?} (last: {last}):\n{}",
                    self.log_tail(30)
                ));
            }
            match self.probe().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let channel = Endpoint::from_shared(self.endpoint())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .map_err(|e| format!("Status: {e}"))?
            .into_inner();
        if status.leader == 0 {
            return Err("no leader yet".into());
        }
        Ok(())
    }

    /// SIGKILL and reap; nothing if not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, waits (bounded) for the exit, then starts again on the same
    /// ports and data directory and waits until it is ready.
    pub async fn restart(&mut self) {
        if let Some(pid) = self.child.as_ref().map(Child::id) {
            self.marker("kill -TERM");
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stdin(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                let child = self.child.as_mut().expect("running");
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    break;
                }
                if Instant::now() >= deadline {
                    self.marker("did not stop; kill -9");
                    self.kill();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Err(e) = self.spawn_and_wait().await {
            panic!("cannot restart {}: {e}", self.kind.name());
        }
    }

    fn port_was_taken(&self) -> bool {
        let tail = self.log_tail(60).to_lowercase();
        tail.contains("address already in use") || tail.contains("addrinuse")
    }

    fn marker(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(log, "===== maint test: {what} =====");
        }
    }

    /// The last `lines` lines of the log (at most 64 KiB are read).
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return "(no log)".into();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}), last lines -----\n{}\n----- end of log -----",
                self.kind.name(),
                self.log_path.display(),
                self.log_tail(40)
            );
        }
    }
}

/// KV, Lease and Maintenance stubs over one channel.
#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
}

impl Client {
    pub fn over(channel: Channel) -> Self {
        Self {
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            lease: LeaseClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel).max_decoding_message_size(64 << 20),
        }
    }

    pub async fn try_put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.kv.put(req).await.map(tonic::Response::into_inner)
    }

    /// Puts and returns the revision it got.
    pub async fn put(&mut self, key: &str, value: &str) -> i64 {
        let resp = self
            .try_put(put_req(key, value))
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        rev(resp.header.as_ref())
    }

    pub async fn try_range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv.range(req).await.map(tonic::Response::into_inner)
    }

    pub async fn range(&mut self, req: RangeRequest) -> RangeResponse {
        let shown = format!("{:?}..{:?}@{}", req.key, req.range_end, req.revision);
        self.try_range(req)
            .await
            .unwrap_or_else(|e| panic!("range {shown}: {e:?}"))
    }

    /// The single record of `key`, or None.
    pub async fn get(&mut self, key: &str) -> Option<KeyValue> {
        let mut resp = self.range(get_req(key)).await;
        assert!(resp.kvs.len() <= 1, "{resp:?}");
        resp.kvs.pop()
    }

    /// Every key at `revision` (0: newest), with the header revision.
    pub async fn all_at(&mut self, revision: i64) -> (i64, Vec<KeyValue>) {
        let resp = self
            .range(RangeRequest {
                key: b("\0"),
                range_end: b("\0"),
                revision,
                ..RangeRequest::default()
            })
            .await;
        (rev(resp.header.as_ref()), resp.kvs)
    }

    /// The current revision.
    pub async fn revision(&mut self) -> i64 {
        rev(self.range(get_req("\0none")).await.header.as_ref())
    }

    pub async fn try_delete(
        &mut self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        self.kv
            .delete_range(req)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv.txn(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_compact(&mut self, revision: i64) -> Result<CompactionResponse, Status> {
        self.kv
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn compact(&mut self, revision: i64) {
        self.try_compact(revision)
            .await
            .unwrap_or_else(|e| panic!("compact {revision}: {e:?}"));
    }

    pub async fn try_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseGrantResponse, Status> {
        self.lease
            .lease_grant(LeaseGrantRequest { ttl, id })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        self.lease
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn status(&mut self) -> StatusResponse {
        self.maintenance
            .status(StatusRequest {})
            .await
            .expect("Status")
            .into_inner()
    }

    /// This member's id, from the Status header.
    pub async fn member_id(&mut self) -> u64 {
        self.status()
            .await
            .header
            .expect("Status has a header")
            .member_id
    }

    pub async fn try_alarm(
        &mut self,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, Status> {
        self.maintenance
            .alarm(AlarmRequest {
                action: action as i32,
                member_id,
                alarm: alarm as i32,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The active alarms (GET of every type).
    pub async fn alarms(&mut self) -> Vec<AlarmMember> {
        self.try_alarm(AlarmAction::Get, 0, AlarmType::None)
            .await
            .expect("Alarm GET")
            .alarms
    }

    pub async fn try_defragment(&mut self) -> Result<DefragmentResponse, Status> {
        self.maintenance
            .defragment(DefragmentRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_hash_kv(&mut self, revision: i64) -> Result<HashKvResponse, Status> {
        self.maintenance
            .hash_kv(HashKvRequest { revision })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn hash_kv(&mut self, revision: i64) -> HashKvResponse {
        self.try_hash_kv(revision)
            .await
            .unwrap_or_else(|e| panic!("HashKV at {revision}: {e:?}"))
    }
}

/// The revision of a response header.
#[track_caller]
pub fn rev(header: Option<&ResponseHeader>) -> i64 {
    header.expect("response has a header").revision
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    }
}

pub fn get_req(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        ..RangeRequest::default()
    }
}

pub fn get_at(key: &str, revision: i64) -> RangeRequest {
    RangeRequest {
        key: b(key),
        revision,
        ..RangeRequest::default()
    }
}

pub fn del_req(key: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        ..DeleteRangeRequest::default()
    }
}

/// The range end selecting every key with prefix `p` (no 0xff bytes here).
pub fn prefix_end(p: &str) -> Bytes {
    let mut end = p.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    Bytes::from(end)
}

/// The keys of `kvs`, as strings.
pub fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// Asserts that `result` is an error with exactly this code and message.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} {message:?}, got Ok({v:?})"),
        Err(s) => assert_eq!(
            (s.code(), s.message()),
            (code, message),
            "wrong error (full status: {s:?})"
        ),
    }
}

/// Asserts the NOSPACE refusal, exactly as etcd words it.
#[track_caller]
pub fn assert_no_space<T: std::fmt::Debug>(result: Result<T, Status>) {
    assert_status(result, Code::ResourceExhausted, NO_SPACE);
}

/// Polls `check` every `every` until it yields `Some`, at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// An HTTP/1.1 GET of `path` on 127.0.0.1:`port`: status code and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} on port {port} timed out"))
        .unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    (code, body.to_owned())
}

/// What one run of a command produced.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `rollcall <args>` under [`TOOL_TIMEOUT`].
pub async fn run_rollcall(args: &[&str]) -> Run {
    let command = format!("rollcall {}", args.join(" "));
    let child = tokio::process::Command::new(rollcall_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
    let out = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{command}` did not finish within {TOOL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("wait for `{command}`: {e}"));
    Run {
        command,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `rollcall snapshot restore FILE --data-dir DIR`.
pub async fn restore(file: &Path, data_dir: &Path) -> Run {
    let file = file.to_str().expect("UTF-8 path");
    let dir = data_dir.to_str().expect("UTF-8 path");
    run_rollcall(&["snapshot", "restore", file, "--data-dir", dir]).await
}

/// The names of the entries of `dir`, sorted (empty if it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A value of `n` bytes.
pub fn blob(n: usize) -> String {
    "x".repeat(n)
}

/// Bound on streaming a whole snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Streams Maintenance.Snapshot to its end: the bytes received and each
/// message's `remaining_bytes`.
pub async fn snapshot_stream(c: &mut Client) -> (Vec<u8>, Vec<u64>) {
    let collect = async {
        let mut stream = c
            .maintenance
            .snapshot(rollcall_proto::etcdserverpb::SnapshotRequest {})
            .await
            .expect("Snapshot")
            .into_inner();
        let mut bytes = Vec::new();
        let mut remaining = Vec::new();
        while let Some(msg) = stream.message().await.expect("snapshot stream") {
            bytes.extend_from_slice(&msg.blob);
            remaining.push(msg.remaining_bytes);
        }
        (bytes, remaining)
    };
    tokio::time::timeout(SNAPSHOT_TIMEOUT, collect)
        .await
        .unwrap_or_else(|_| panic!("the snapshot did not finish within {SNAPSHOT_TIMEOUT:?}"))
}

/// Whether the last 32 bytes of `bytes` are the SHA-256 of the rest.
pub fn has_sha256_trailer(bytes: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let Some(split) = bytes.len().checked_sub(32) else {
        return false;
    };
    let (body, trailer) = bytes.split_at(split);
    Sha256::digest(body).as_slice() == trailer
}
