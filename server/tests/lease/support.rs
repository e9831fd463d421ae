//! Helpers of the lease suite: backends, a bundle of KV/Lease/Watch clients
//! for one server, a keep-alive stream and a watch stream with bounded waits,
//! polling with a deadline, and asserts on gRPC errors.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use rollcall_proto::mvccpb::{Event, KeyValue, event::EventType};
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// Bound on one wait for a stream message.
pub const STREAM_WAIT: Duration = Duration::from_secs(10);

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
}

/// The etcd backend, or `None` (after printing SKIPPED) when etcd is missing.
pub fn etcd(test: &str) -> Option<Backend> {
    require_or_skip(Tool::Etcd, test).then_some(Backend::Etcd)
}

/// Starts `backend` with its defaults, panicking with the log on failure.
pub async fn start(backend: &Backend) -> ServerProcess {
    match backend.start().await {
        Ok(s) => s,
        Err(e) => panic!("cannot start {}: {e}", backend.name()),
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The revision of a response header (panics when the header is missing).
#[track_caller]
pub fn rev(header: Option<&ResponseHeader>) -> i64 {
    header.expect("response has a header").revision
}

/// Byte keys as strings, sorted (etcd lists a lease's keys in map order).
pub fn sorted_keys(keys: &[Bytes]) -> Vec<String> {
    let mut out: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    out.sort();
    out
}

/// The range end selecting every key with prefix `p`.
pub fn prefix_end(p: &str) -> Bytes {
    let mut end = p.as_bytes().to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return Bytes::from(end);
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

pub fn put_req(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        lease,
        ..PutRequest::default()
    }
}

pub fn prefix_req(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: b(prefix),
        range_end: prefix_end(prefix),
        ..RangeRequest::default()
    }
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

pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
pub const TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// etcd's `MaxLeaseTTL`, in seconds.
pub const MAX_TTL: i64 = 9_000_000_000;

/// The KV, Lease and Watch clients of one server, over one channel.
#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub watch: WatchClient<Channel>,
}

impl Client {
    pub async fn connect(server: &ServerProcess) -> Self {
        let channel = server
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", server.endpoint()));
        Self::over(channel)
    }

    pub fn over(channel: Channel) -> Self {
        Self {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            watch: WatchClient::new(channel),
        }
    }

    pub async fn try_grant(&mut self, ttl: i64, id: i64) -> Result<LeaseGrantResponse, Status> {
        self.lease
            .lease_grant(LeaseGrantRequest { ttl, id })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Grants a lease (`id` 0: the server chooses).
    pub async fn grant(&mut self, ttl: i64, id: i64) -> LeaseGrantResponse {
        self.try_grant(ttl, id)
            .await
            .unwrap_or_else(|e| panic!("grant ttl={ttl} id={id}: {e:?}"))
    }

    pub async fn try_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        self.lease
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn revoke(&mut self, id: i64) -> LeaseRevokeResponse {
        self.try_revoke(id)
            .await
            .unwrap_or_else(|e| panic!("revoke {id}: {e:?}"))
    }

    pub async fn try_time_to_live(
        &mut self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        self.lease
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn time_to_live(&mut self, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
        self.try_time_to_live(id, keys)
            .await
            .unwrap_or_else(|e| panic!("time-to-live {id}: {e:?}"))
    }

    pub async fn try_leases(&mut self) -> Result<LeaseLeasesResponse, Status> {
        self.lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    /// The ids of all leases, sorted (etcd lists them in map order).
    pub async fn lease_ids(&mut self) -> Vec<i64> {
        let resp = self.try_leases().await.expect("LeaseLeases");
        let mut ids: Vec<i64> = resp.leases.iter().map(|l| l.id).collect();
        ids.sort_unstable();
        ids
    }

    pub async fn try_put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.kv.put(req).await.map(tonic::Response::into_inner)
    }

    /// Puts `key` = `value` with `lease` (0: none); returns the revision.
    pub async fn put(&mut self, key: &str, value: &str, lease: i64) -> i64 {
        let resp = self
            .try_put(put_req(key, value, lease))
            .await
            .unwrap_or_else(|e| panic!("put {key}={value} lease={lease}: {e:?}"));
        rev(resp.header.as_ref())
    }

    pub async fn try_range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv.range(req).await.map(tonic::Response::into_inner)
    }

    pub async fn range(&mut self, req: RangeRequest) -> RangeResponse {
        let shown = format!("{req:?}");
        self.try_range(req)
            .await
            .unwrap_or_else(|e| panic!("range {shown}: {e:?}"))
    }

    /// The record of `key`, or None.
    pub async fn get_kv(&mut self, key: &str) -> Option<KeyValue> {
        let mut resp = self
            .range(RangeRequest {
                key: b(key),
                ..RangeRequest::default()
            })
            .await;
        assert!(resp.kvs.len() <= 1, "one key gave {resp:?}");
        resp.kvs.pop()
    }

    /// The keys under `prefix` at `revision` (0: current), in key order.
    pub async fn keys_at(&mut self, prefix: &str, revision: i64) -> Vec<String> {
        let resp = self
            .range(RangeRequest {
                revision,
                ..prefix_req(prefix)
            })
            .await;
        resp.kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    /// The store's current revision.
    pub async fn revision(&mut self) -> i64 {
        let resp = self
            .range(RangeRequest {
                key: b("\0no-such-key"),
                ..RangeRequest::default()
            })
            .await;
        rev(resp.header.as_ref())
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

    pub async fn delete(&mut self, key: &str) -> DeleteRangeResponse {
        self.try_delete(DeleteRangeRequest {
            key: b(key),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap_or_else(|e| panic!("delete {key}: {e:?}"))
    }

    pub async fn try_txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv.txn(req).await.map(tonic::Response::into_inner)
    }

    /// Opens a keep-alive stream. It returns at once: a gRPC-Go server (etcd)
    /// sends the response headers of a bidirectional stream only with its
    /// first message, so the call is awaited in a task that forwards the
    /// answers.
    pub fn keep_alive(&mut self) -> KeepAlive {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let (out_tx, out_rx) = mpsc::channel(16 * 1024);
        let mut lease = self.lease.clone();
        tokio::spawn(async move {
            let mut responses = match lease.lease_keep_alive(ReceiverStream::new(rx)).await {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    let _ = out_tx.send(Err(status)).await;
                    return;
                }
            };
            loop {
                let next = match responses.message().await {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => return,
                    Err(status) => Err(status),
                };
                let failed = next.is_err();
                if out_tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        KeepAlive {
            tx,
            responses: out_rx,
        }
    }

    /// Opens a watch on `prefix` from `start_revision`.
    pub async fn watch_prefix(&mut self, prefix: &str, start_revision: i64) -> Watcher {
        let (tx, rx) = mpsc::channel(16);
        tx.send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: b(prefix),
                    range_end: prefix_end(prefix),
                    start_revision,
                    ..WatchCreateRequest::default()
                },
            )),
        })
        .await
        .expect("queue the watch create request");
        let mut responses =
            tokio::time::timeout(STREAM_WAIT, self.watch.watch(ReceiverStream::new(rx)))
                .await
                .expect("Watch opens in time")
                .expect("Watch")
                .into_inner();
        let created = next_message(&mut responses, "watch created").await;
        assert!(created.created, "first watch response: {created:?}");
        Watcher {
            _tx: tx,
            responses,
            pending: Vec::new(),
        }
    }
}

async fn next_message<T>(stream: &mut Streaming<T>, what: &str) -> T {
    match tokio::time::timeout(STREAM_WAIT, stream.message()).await {
        Err(_) => panic!("no {what} within {STREAM_WAIT:?}"),
        Ok(Err(status)) => panic!("{what}: stream failed: {status:?}"),
        Ok(Ok(None)) => panic!("{what}: stream ended"),
        Ok(Ok(Some(m))) => m,
    }
}

/// One keep-alive stream: requests go in through `tx`, answers come back in
/// order through `responses`.
pub struct KeepAlive {
    pub tx: mpsc::Sender<LeaseKeepAliveRequest>,
    pub responses: mpsc::Receiver<Result<LeaseKeepAliveResponse, Status>>,
}

impl KeepAlive {
    pub async fn send(&self, id: i64) {
        self.tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .expect("keep-alive stream open");
    }

    pub async fn recv(&mut self) -> LeaseKeepAliveResponse {
        match tokio::time::timeout(STREAM_WAIT, self.responses.recv()).await {
            Err(_) => panic!("no keep-alive response within {STREAM_WAIT:?}"),
            Ok(None) => panic!("keep-alive stream ended"),
            Ok(Some(Err(status))) => panic!("keep-alive stream failed: {status:?}"),
            Ok(Some(Ok(m))) => m,
        }
    }

    /// One renewal, waited for.
    pub async fn once(&mut self, id: i64) -> LeaseKeepAliveResponse {
        self.send(id).await;
        self.recv().await
    }
}

/// One watch stream with a single watcher.
pub struct Watcher {
    /// Kept so the request side stays open.
    _tx: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    /// Responses (with events) read and not yet handed out.
    pending: Vec<WatchResponse>,
}

impl Watcher {
    /// Reads responses until `count` DELETE events were seen or `within`
    /// passed; returns every response with events read (the DELETEs and
    /// whatever else came).
    pub async fn until_deletes(&mut self, count: usize, within: Duration) -> Vec<WatchResponse> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = std::mem::take(&mut self.pending);
        loop {
            let seen = got
                .iter()
                .flat_map(|r| &r.events)
                .filter(|e| is_delete(e))
                .count();
            if seen >= count {
                return got;
            }
            match tokio::time::timeout_at(deadline, self.responses.message()).await {
                Err(_) => panic!(
                    "only {seen} of {count} DELETE events within {within:?}; responses: {got:?}"
                ),
                Ok(Err(status)) => panic!("watch stream failed: {status:?}"),
                Ok(Ok(None)) => panic!("watch stream ended"),
                Ok(Ok(Some(resp))) => {
                    if !resp.events.is_empty() {
                        got.push(resp);
                    }
                }
            }
        }
    }
}

pub fn is_delete(e: &Event) -> bool {
    e.r#type == EventType::Delete as i32
}

/// The DELETE events of `responses` as (key, mod_revision), in order.
pub fn deletes(responses: &[WatchResponse]) -> Vec<(String, i64)> {
    responses
        .iter()
        .flat_map(|r| &r.events)
        .filter(|e| is_delete(e))
        .map(|e| {
            let kv = e.kv.as_ref().expect("a DELETE event has its key");
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .collect()
}

/// Polls `check` every 100 ms until it returns true; panics after `within`.
/// Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The distinct values of `items`.
pub fn distinct<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    items.into_iter().collect()
}

/// A rollcall started with extra `serve` flags (the harness's
/// `ServerConfig` has no field for lease flags): free port, temp dir,
/// readiness by polling Maintenance.Status with a deadline, SIGKILL and
/// cleanup in `Drop`.
pub struct FlaggedRollcall {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl FlaggedRollcall {
    pub async fn start(flags: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rollcall-lease-test-")
            .tempdir()
            .expect("temp dir");
        let port = rollcall_tests::ports::free_port().expect("free port");
        let metrics_port = rollcall_tests::ports::free_port().expect("free port");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let log_err = log.try_clone().expect("log file handle");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{metrics_port}"))
            .args(flags)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn rollcall");
        let mut server = Self { child, port, dir };
        server.wait_ready().await;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        use rollcall_proto::etcdserverpb::StatusRequest;
        use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rollcall exited early ({status}):\n{}", self.log());
            }
            let probe = async {
                let channel = tonic::transport::Endpoint::from_shared(self.endpoint())
                    .ok()?
                    .connect_timeout(Duration::from_millis(500))
                    .timeout(Duration::from_secs(2))
                    .connect()
                    .await
                    .ok()?;
                MaintenanceClient::new(channel)
                    .status(StatusRequest {})
                    .await
                    .ok()
            };
            if probe.await.is_some_and(|s| s.into_inner().leader != 0) {
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

    pub async fn client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("connect");
        Client::over(channel)
    }
}

impl Drop for FlaggedRollcall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- rollcall log -----\n{}", self.log());
        }
    }
}
