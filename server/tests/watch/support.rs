//! Helpers of the watch suite: a server launcher that takes the watch flags
//! the shared harness does not (yet) pass, a bundle of KV/Lease clients, a
//! watch stream wrapper whose every wait is bounded, and an event model that
//! derives the committed events from acknowledged writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::watch_create_request::FilterType;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, ResponseHeader, StatusRequest, TxnRequest, TxnResponse,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
    request_op, watch_request,
};
use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};
use rollcall_tests::{Backend, Tool, require_or_skip};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

/// Bound on any single wait for a watch response the test expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a stream must stay silent for "nothing more arrives".
pub const QUIET: Duration = Duration::from_millis(300);

/// Largest message the test clients accept (fragment tests send ~2.4 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
}

/// The etcd backend, or `None` (after printing SKIPPED) when etcd is missing.
pub fn etcd(test: &str) -> Option<Backend> {
    require_or_skip(Tool::Etcd, test).then_some(Backend::Etcd)
}

pub fn is_etcd(backend: &Backend) -> bool {
    matches!(backend, Backend::Etcd)
}

/// Server flags the watch tests vary; `None` keeps the server's default.
/// Flags etcd has no equivalent of are passed to rollcall only.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// rollcall `--watch-progress-notify-interval-ms`,
    /// etcd `--experimental-watch-progress-notify-interval`.
    pub progress_notify_ms: Option<u64>,
    /// rollcall `--watch-stream-buffer` (etcd: fixed, not configurable).
    pub stream_buffer: Option<usize>,
    /// rollcall `--min-lease-ttl` (etcd derives it from the election timeout).
    pub min_lease_ttl: Option<i64>,
    /// `--max-request-bytes` (both).
    pub max_request_bytes: Option<u64>,
    /// rollcall's `RUST_LOG` (default `info`).
    pub log_filter: Option<String>,
}

impl Opts {
    fn args(&self, backend: &Backend) -> Vec<String> {
        let mut args = Vec::new();
        let etcd = is_etcd(backend);
        if let Some(ms) = self.progress_notify_ms {
            if etcd {
                args.push(format!(
                    "--experimental-watch-progress-notify-interval={ms}ms"
                ));
            } else {
                args.push(format!("--watch-progress-notify-interval-ms={ms}"));
            }
        }
        if let Some(n) = self.max_request_bytes {
            args.push(format!("--max-request-bytes={n}"));
        }
        if !etcd {
            if let Some(n) = self.stream_buffer {
                args.push(format!("--watch-stream-buffer={n}"));
            }
            if let Some(n) = self.min_lease_ttl {
                args.push(format!("--min-lease-ttl={n}"));
            }
        }
        args
    }
}

/// One server process (rollcall or etcd) on a free loopback port, killed in
/// `Drop` (its log tail is printed when the test panics).
///
/// The shared harness's `ServerProcess` cannot pass extra flags, so this is a
/// small launcher of its own, with the same command lines and readiness rule.
pub struct Server {
    backend: Backend,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    _dir: TempDir,
}

impl Server {
    /// Starts `backend` with `opts`, panicking (with the log) on failure.
    pub async fn start(backend: &Backend, opts: &Opts) -> Self {
        for _ in 0..3 {
            let port = rollcall_tests::ports::free_port().expect("free port");
            let peer = rollcall_tests::ports::free_port().expect("free port");
            let dir = tempfile::Builder::new()
                .prefix(&format!("rollcall-watch-{}-", backend.name()))
                .tempdir()
                .expect("temp dir");
            let log = dir.path().join("server.log");
            let data = dir.path().join("data");
            let endpoint = format!("http://127.0.0.1:{port}");
            let mut cmd = Command::new(backend.program());
            match backend {
                Backend::Rollcall(_) => {
                    cmd.arg("serve")
                        .arg("--data-dir")
                        .arg(&data)
                        .arg("--listen-client-urls")
                        .arg(&endpoint)
                        .arg("--name")
                        .arg("watch")
                        // rollcall has no peers: the second free port serves
                        // metrics (its default, 2381, is fixed).
                        .arg("--listen-metrics-urls")
                        .arg(format!("http://127.0.0.1:{peer}"));
                    if let Some(filter) = &opts.log_filter {
                        cmd.env("RUST_LOG", filter);
                    } else if std::env::var_os("RUST_LOG").is_none() {
                        cmd.env("RUST_LOG", "info");
                    }
                    cmd.env("NO_COLOR", "1");
                }
                Backend::Etcd => {
                    let peer_url = format!("http://127.0.0.1:{peer}");
                    cmd.arg("--name")
                        .arg("watch")
                        .arg("--data-dir")
                        .arg(&data)
                        .arg("--listen-client-urls")
                        .arg(&endpoint)
                        .arg("--advertise-client-urls")
                        .arg(&endpoint)
                        .arg("--listen-peer-urls")
                        .arg(&peer_url)
                        .arg("--initial-advertise-peer-urls")
                        .arg(&peer_url)
                        .arg("--initial-cluster")
                        .arg(format!("watch={peer_url}"))
                        .arg("--logger=zap")
                        .arg("--log-outputs=stderr");
                }
            }
            cmd.args(opts.args(backend));
            let out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open server log");
            let err = out.try_clone().expect("clone log handle");
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", backend.program().display()));
            let mut server = Self {
                backend: backend.clone(),
                port,
                log,
                child: Some(child),
                _dir: dir,
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(e) => {
                    let tail = server.log_tail(30);
                    server.kill();
                    if tail.to_lowercase().contains("address already in use") {
                        continue;
                    }
                    panic!("{} did not become ready: {e}\n{tail}", backend.name());
                }
            }
        }
        panic!("{}: ports kept being taken", backend.name());
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::from("no probe finished");
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited early with {status}"));
            }
            match self.probe().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not ready after 20 s: {last}"))
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
            return Err("no leader yet".to_owned());
        }
        Ok(())
    }

    /// A fresh connection (its own HTTP/2 connection, so streams on
    /// different channels do not share flow control).
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint()))
    }

    /// A fresh connection whose HTTP/2 receive windows are the protocol
    /// minimum (64 KiB), so a stream that is not read pushes back on the
    /// server quickly.
    pub async fn small_window_channel(&self) -> Channel {
        Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .initial_stream_window_size(Some(65_535))
            .initial_connection_window_size(Some(65_535))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint()))
    }

    /// The server's whole log.
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Whether the server's log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log_text().contains(needle)
    }

    pub async fn client(&self) -> Client {
        Client::over(self.channel().await)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log) else {
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log, last lines -----\n{}\n----- end of log -----",
                self.backend.name(),
                self.log_tail(40)
            );
        }
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn rev(header: Option<&ResponseHeader>) -> i64 {
    header.expect("response has a header").revision
}

/// clientv3's GetPrefixRangeEnd.
pub fn prefix_end(p: &[u8]) -> Bytes {
    let mut end = p.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return Bytes::from(end);
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

/// A watched key range, as the server interprets `key` / `range_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    Key(Bytes),
    Prefix(Bytes),
    FromKey(Bytes),
    /// `[start, end)`.
    Span(Bytes, Bytes),
}

impl Range {
    pub fn key(k: &str) -> Self {
        Self::Key(b(k))
    }
    pub fn prefix(p: &str) -> Self {
        Self::Prefix(b(p))
    }
    pub fn from_key(k: &str) -> Self {
        Self::FromKey(b(k))
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Range::Key(k) => k.as_ref() == key,
            Range::Prefix(p) => key.starts_with(p),
            Range::FromKey(k) => key >= k.as_ref(),
            Range::Span(start, end) => key >= start.as_ref() && key < end.as_ref(),
        }
    }

    /// `(key, range_end)` for a request.
    pub fn wire(&self) -> (Bytes, Bytes) {
        match self {
            Range::Key(k) => (k.clone(), Bytes::new()),
            Range::Prefix(p) => (p.clone(), prefix_end(p)),
            Range::FromKey(k) => (k.clone(), Bytes::from_static(b"\0")),
            Range::Span(start, end) => (start.clone(), end.clone()),
        }
    }

    pub fn create(&self) -> WatchCreateRequest {
        let (key, range_end) = self.wire();
        WatchCreateRequest {
            key,
            range_end,
            ..WatchCreateRequest::default()
        }
    }
}

/// The filter values of a create request.
pub fn filters(no_put: bool, no_delete: bool) -> Vec<i32> {
    let mut f = Vec::new();
    if no_put {
        f.push(FilterType::Noput as i32);
    }
    if no_delete {
        f.push(FilterType::Nodelete as i32);
    }
    f
}

/// The KV and Lease clients of one server.
#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
}

impl Client {
    pub fn over(channel: Channel) -> Self {
        Self {
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            lease: LeaseClient::new(channel),
        }
    }

    pub async fn put_with(&mut self, key: &str, value: Bytes, lease: i64) -> i64 {
        let resp = self
            .kv
            .put(PutRequest {
                key: b(key),
                value,
                lease,
                ..PutRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
            .into_inner();
        rev(resp.header.as_ref())
    }

    /// Delete `range`; returns (deleted count, revision of the response).
    pub async fn delete(&mut self, range: &Range) -> (i64, i64) {
        let (key, range_end) = range.wire();
        let resp = self
            .kv
            .delete_range(DeleteRangeRequest {
                key,
                range_end,
                ..DeleteRangeRequest::default()
            })
            .await
            .unwrap_or_else(|e| panic!("delete {range:?}: {e:?}"))
            .into_inner();
        (resp.deleted, rev(resp.header.as_ref()))
    }

    pub async fn txn(&mut self, success: Vec<RequestOp>) -> TxnResponse {
        self.kv
            .txn(TxnRequest {
                compare: Vec::new(),
                success,
                failure: Vec::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("txn: {e:?}"))
            .into_inner()
    }

    pub async fn compact(&mut self, revision: i64) {
        self.kv
            .compact(CompactionRequest {
                revision,
                physical: false,
            })
            .await
            .unwrap_or_else(|e| panic!("compact {revision}: {e:?}"));
    }

    /// The store's current revision.
    pub async fn revision(&mut self) -> i64 {
        let resp = self
            .kv
            .range(RangeRequest {
                key: b("\0nothing"),
                ..RangeRequest::default()
            })
            .await
            .expect("range")
            .into_inner();
        rev(resp.header.as_ref())
    }

    pub async fn grant(&mut self, ttl: i64) -> i64 {
        let resp = self
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await
            .unwrap_or_else(|e| panic!("grant ttl {ttl}: {e:?}"))
            .into_inner();
        assert!(resp.error.is_empty(), "grant: {}", resp.error);
        resp.id
    }

    pub async fn revoke(&mut self, id: i64) -> i64 {
        let resp = self
            .lease
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .unwrap_or_else(|e| panic!("revoke {id}: {e:?}"))
            .into_inner();
        rev(resp.header.as_ref())
    }
}

/// One bidirectional Watch stream; every wait is bounded.
///
/// The call is opened in the background: etcd (grpc-go) sends the response
/// headers only with the first response, so awaiting the call before sending
/// the first request would wait forever.
pub struct WatchStream {
    tx: mpsc::Sender<WatchRequest>,
    incoming: Incoming,
    /// Responses read past while waiting for a creation, returned first.
    pending: VecDeque<WatchResponse>,
}

enum Incoming {
    Opening(oneshot::Receiver<Result<Streaming<WatchResponse>, tonic::Status>>),
    Open(Box<Streaming<WatchResponse>>),
}

impl WatchStream {
    pub async fn open(channel: &Channel) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let mut client = WatchClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let (opened_tx, opened_rx) = oneshot::channel();
        tokio::spawn(async move {
            let result = client
                .watch(ReceiverStream::new(rx))
                .await
                .map(tonic::Response::into_inner);
            let _ = opened_tx.send(result);
        });
        Self {
            tx,
            incoming: Incoming::Opening(opened_rx),
            pending: VecDeque::new(),
        }
    }

    /// The request sender and the response stream, for a reader task (waits
    /// at most [`WAIT`] for the call to open).
    pub async fn split(self) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
        assert!(self.pending.is_empty(), "split with unread responses");
        let rx = match self.incoming {
            Incoming::Open(rx) => *rx,
            Incoming::Opening(opening) => tokio::time::timeout(WAIT, opening)
                .await
                .expect("watch call opens in time")
                .expect("watch call task")
                .expect("open watch stream"),
        };
        (self.tx, rx)
    }

    /// Ends the request side of the call (HTTP/2 half-close); responses may
    /// still arrive.
    pub fn half_close(&mut self) {
        let (closed, _) = mpsc::channel(1);
        self.tx = closed;
    }

    /// A handle to send requests while another task reads.
    pub fn sender(&self) -> mpsc::Sender<WatchRequest> {
        self.tx.clone()
    }

    pub async fn send(&self, request: watch_request::RequestUnion) {
        self.tx
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .expect("watch stream request channel open");
    }

    pub async fn send_create(&self, create: WatchCreateRequest) {
        self.send(watch_request::RequestUnion::CreateRequest(create))
            .await;
    }

    /// Sends a create request and returns its response, asserting it is a
    /// successful creation. Responses of other watchers read meanwhile are
    /// kept for the next reads.
    pub async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        self.send_create(create.clone()).await;
        let mut stash = Vec::new();
        loop {
            let resp = self.next().await;
            if resp.created {
                assert!(
                    !resp.canceled && resp.events.is_empty(),
                    "expected a created response to {create:?}, got {resp:?}"
                );
                let rest: Vec<WatchResponse> = self.pending.drain(..).collect();
                self.pending = stash.into_iter().chain(rest).collect();
                return resp;
            }
            stash.push(resp);
        }
    }

    pub async fn cancel(&self, watch_id: i64) {
        self.send(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id },
        ))
        .await;
    }

    pub async fn request_progress(&self) {
        self.send(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        ))
        .await;
    }

    /// The next response within `limit`, or None; panics on a stream error
    /// or end.
    pub async fn next_within(&mut self, limit: Duration) -> Option<WatchResponse> {
        if let Some(resp) = self.pending.pop_front() {
            return Some(resp);
        }
        let incoming = &mut self.incoming;
        let read = async move {
            if let Incoming::Opening(opening) = incoming {
                let opened = opening
                    .await
                    .expect("watch call task")
                    .expect("open watch stream");
                *incoming = Incoming::Open(Box::new(opened));
            }
            let Incoming::Open(rx) = incoming else {
                unreachable!("opened above")
            };
            rx.message().await
        };
        match tokio::time::timeout(limit, read).await {
            Err(_) => None,
            Ok(Ok(Some(resp))) => Some(resp),
            Ok(Ok(None)) => panic!("watch stream ended"),
            Ok(Err(status)) => panic!("watch stream failed: {status:?}"),
        }
    }

    /// The next response; panics after [`WAIT`].
    pub async fn next(&mut self) -> WatchResponse {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no watch response within {WAIT:?}"))
    }

    /// Asserts nothing arrives for [`QUIET`].
    pub async fn assert_quiet(&mut self) {
        if let Some(resp) = self.next_within(QUIET).await {
            panic!("expected silence, got {resp:?}");
        }
    }

    /// Reads responses until each watch id in `want` has received that many
    /// events, then asserts a quiet period. Returns every response read.
    /// Panics on cancellations and after [`WAIT`] without progress.
    pub async fn collect(&mut self, want: &BTreeMap<i64, usize>) -> Vec<WatchResponse> {
        let mut got: BTreeMap<i64, usize> = want.keys().map(|id| (*id, 0)).collect();
        let mut out = Vec::new();
        while want.iter().any(|(id, n)| got[id] < *n) {
            let Some(resp) = self.next_within(WAIT).await else {
                panic!("timed out: want {want:?} events, got {got:?}; responses {out:#?}");
            };
            assert!(
                !resp.canceled,
                "unexpected cancel {resp:?}; responses so far {out:#?}"
            );
            check_response(&resp);
            *got.entry(resp.watch_id).or_default() += resp.events.len();
            out.push(resp);
        }
        if let Some(resp) = self.next_within(QUIET).await {
            panic!("extra response after all expected events: {resp:?}; before it {out:#?}");
        }
        out
    }
}

/// Checks that hold for every event response: the header revision is at
/// least each event's revision, and the events are in revision order.
#[track_caller]
pub fn check_response(resp: &WatchResponse) {
    let head = rev(resp.header.as_ref());
    let revs: Vec<i64> = resp
        .events
        .iter()
        .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision))
        .collect();
    assert!(
        revs.windows(2).all(|w| w[0] <= w[1]) && revs.iter().all(|r| *r <= head && *r > 0),
        "event revisions {revs:?} out of order or above the header revision {head}"
    );
}

/// The events of `responses` for `watch_id`, in arrival order.
pub fn events_of(responses: &[WatchResponse], watch_id: i64) -> Vec<Event> {
    responses
        .iter()
        .filter(|r| r.watch_id == watch_id)
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

/// An event without its prev_kv, for comparisons of the event itself.
pub fn bare(event: &Event) -> Event {
    Event {
        prev_kv: None,
        ..event.clone()
    }
}

pub fn bare_all(events: &[Event]) -> Vec<Event> {
    events.iter().map(bare).collect()
}

/// A compact, readable rendering of events for assertion messages.
pub fn show(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.clone().unwrap_or_default();
            let kind = if e.r#type == EventType::Put as i32 {
                "PUT"
            } else {
                "DEL"
            };
            let value = if kv.value.len() > 16 {
                format!("<{} bytes>", kv.value.len())
            } else {
                s(&kv.value)
            };
            format!(
                "{kind} {}={} @{} (c{} v{} l{}){}",
                s(&kv.key),
                value,
                kv.mod_revision,
                kv.create_revision,
                kv.version,
                kv.lease,
                e.prev_kv
                    .as_ref()
                    .map(|p| format!(" prev@{}", p.mod_revision))
                    .unwrap_or_default()
            )
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Bytes,
        value: Bytes,
        lease: i64,
    },
    Delete(Range),
}

/// The committed history, derived from acknowledged writes (a single writer,
/// so each acknowledged write's revision is exactly its own).
#[derive(Debug, Default, Clone)]
pub struct Model {
    live: BTreeMap<Bytes, KeyValue>,
    /// Every committed event, in commit order (`kv.mod_revision` is its
    /// revision).
    pub events: Vec<Event>,
    /// The live record of each key at each revision it changed (for prev_kv):
    /// key → (revision, record before that revision's change).
    prev: HashMap<(Bytes, i64), Option<KeyValue>>,
    pub rev: i64,
}

impl Model {
    /// Applies the ops of one revision `rev` (a request or a txn).
    pub fn apply(&mut self, rev: i64, ops: &[Op]) {
        let mut changed = false;
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let old = self.live.get(key).cloned();
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
                        mod_revision: rev,
                        version: old.as_ref().map_or(1, |o| o.version + 1),
                        value: value.clone(),
                        lease: *lease,
                    };
                    self.prev.insert((key.clone(), rev), old);
                    self.live.insert(key.clone(), kv.clone());
                    self.events.push(Event {
                        r#type: EventType::Put as i32,
                        kv: Some(kv),
                        prev_kv: None,
                    });
                    changed = true;
                }
                Op::Delete(range) => {
                    let keys: Vec<Bytes> = self
                        .live
                        .keys()
                        .filter(|k| range.contains(k))
                        .cloned()
                        .collect();
                    for key in keys {
                        self.delete_key(rev, &key);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            assert!(
                rev > self.rev,
                "revision {rev} after {} in the model",
                self.rev
            );
            self.rev = rev;
        }
    }

    fn delete_key(&mut self, rev: i64, key: &Bytes) {
        let old = self.live.remove(key);
        self.prev.insert((key.clone(), rev), old);
        self.events.push(Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: key.clone(),
                mod_revision: rev,
                ..KeyValue::default()
            }),
            prev_kv: None,
        });
    }

    /// The lease `key` is attached to, when it is live and leased.
    pub fn lease_of(&self, key: &[u8]) -> Option<i64> {
        self.live
            .get(key)
            .map(|kv| kv.lease)
            .filter(|lease| *lease != 0)
    }

    /// The live keys attached to `lease`, in key order.
    pub fn keys_of_lease(&self, lease: i64) -> Vec<Bytes> {
        self.live
            .values()
            .filter(|kv| kv.lease == lease)
            .map(|kv| kv.key.clone())
            .collect()
    }

    /// Revocation of `lease` at `rev`: its live keys are deleted.
    pub fn revoke(&mut self, rev: i64, lease: i64) {
        let keys = self.keys_of_lease(lease);
        let ops: Vec<Op> = keys
            .iter()
            .map(|k| Op::Delete(Range::Key(k.clone())))
            .collect();
        self.apply(rev, &ops);
    }

    /// The committed events in `range` from revision `from` on.
    pub fn events_in(&self, range: &Range, from: i64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| {
                let kv = e.kv.as_ref().expect("kv");
                kv.mod_revision >= from && range.contains(&kv.key)
            })
            .cloned()
            .collect()
    }

    /// The record a watcher's prev_kv should carry for `event`.
    pub fn prev_of(&self, event: &Event) -> Option<KeyValue> {
        let kv = event.kv.as_ref()?;
        self.prev
            .get(&(kv.key.clone(), kv.mod_revision))
            .cloned()
            .flatten()
    }
}

pub fn is_put(event: &Event) -> bool {
    event.r#type == EventType::Put as i32
}

impl Op {
    pub fn put(key: &str, value: &str) -> Self {
        Self::Put {
            key: b(key),
            value: b(value),
            lease: 0,
        }
    }

    pub fn request(&self) -> RequestOp {
        match self {
            Op::Put { key, value, lease } => RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    lease: *lease,
                    ..PutRequest::default()
                })),
            },
            Op::Delete(range) => {
                let (key, range_end) = range.wire();
                RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(
                        DeleteRangeRequest {
                            key,
                            range_end,
                            ..DeleteRangeRequest::default()
                        },
                    )),
                }
            }
        }
    }
}

/// A client whose acknowledged writes are applied to a [`Model`].
pub struct Writer {
    pub client: Client,
    pub model: Model,
}

impl Writer {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            model: Model::default(),
        }
    }

    pub async fn put(&mut self, key: &str, value: &str) -> i64 {
        self.put_with(key, b(value), 0).await
    }

    pub async fn put_with(&mut self, key: &str, value: Bytes, lease: i64) -> i64 {
        let rev = self.client.put_with(key, value.clone(), lease).await;
        self.model.apply(
            rev,
            &[Op::Put {
                key: b(key),
                value,
                lease,
            }],
        );
        rev
    }

    pub async fn delete(&mut self, range: Range) -> i64 {
        let (_, rev) = self.client.delete(&range).await;
        self.model.apply(rev, &[Op::Delete(range)]);
        rev
    }

    pub async fn txn(&mut self, ops: Vec<Op>) -> i64 {
        let resp = self.client.txn(ops.iter().map(Op::request).collect()).await;
        assert!(resp.succeeded, "txn without compares succeeds");
        let rev = rev(resp.header.as_ref());
        self.model.apply(rev, &ops);
        rev
    }
}

/// Puts `puts` from `tasks` concurrent tasks (so the server can group
/// commit), and returns each acknowledged put with its revision, in revision
/// order. Asserts every put got its own revision.
pub async fn concurrent_puts(
    client: &Client,
    puts: Vec<(String, Bytes)>,
    tasks: usize,
) -> Vec<(i64, Op)> {
    let mut shares: Vec<Vec<(String, Bytes)>> = vec![Vec::new(); tasks];
    for (i, put) in puts.into_iter().enumerate() {
        shares[i % tasks].push(put);
    }
    let mut handles = Vec::new();
    for share in shares {
        let mut client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for (key, value) in share {
                let rev = client.put_with(&key, value.clone(), 0).await;
                done.push((
                    rev,
                    Op::Put {
                        key: b(&key),
                        value,
                        lease: 0,
                    },
                ));
            }
            done
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("writer task"));
    }
    all.sort_by_key(|(rev, _)| *rev);
    assert!(
        all.windows(2).all(|w| w[0].0 + 1 == w[1].0),
        "puts did not get consecutive revisions"
    );
    all
}
