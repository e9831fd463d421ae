//! Helpers of the lease suite: the client conveniences whose shape is this
//! suite's (a put with a lease, a watcher waiting for DELETEs), etcd's lease
//! error messages, and a rollcall started with lease flags. Processes,
//! clients and bounded streams are the harness's.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, RangeRequest,
    WatchCreateRequest, WatchResponse,
};
use rollcall_proto::mvccpb::{Event, event::EventType};
use rollcall_tests::grpc::Clients;
pub use rollcall_tests::grpc::{assert_status, b, del_req, prefix_end, prefix_req, rev};
pub use rollcall_tests::keepalive::{KeepAlive, STREAM_WAIT};
use rollcall_tests::watch_stream::WatchStream;
use rollcall_tests::{Backend, ServerConfig, ServerProcess};

pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
pub const TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// etcd's `MaxLeaseTTL`, in seconds.
pub const MAX_TTL: i64 = 9_000_000_000;

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(env!("CARGO_BIN_EXE_rollcall").into())
}

/// Starts `backend` with its defaults, panicking with the log on failure.
pub async fn start(backend: &Backend) -> ServerProcess {
    match backend.start().await {
        Ok(s) => s,
        Err(e) => panic!("cannot start {}: {e}", backend.name()),
    }
}

/// Starts rollcall with extra `serve` flags.
pub async fn start_flagged(flags: &[&str]) -> ServerProcess {
    rollcall()
        .start_with(ServerConfig::with_args(flags.iter().copied()))
        .await
        .unwrap_or_else(|e| panic!("cannot start rollcall {flags:?}: {e}"))
}

/// Byte keys as strings, sorted (etcd lists a lease's keys in map order).
pub fn sorted_keys(keys: &[Bytes]) -> Vec<String> {
    let mut out: Vec<String> = keys.iter().map(|k| rollcall_tests::grpc::s(k)).collect();
    out.sort();
    out
}

pub fn put_req(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..rollcall_tests::grpc::put_req(key, value)
    }
}

rollcall_tests::suite_client!(
    /// The harness's clients, with this suite's conveniences.
    Client
);

impl Client {
    pub async fn connect(server: &ServerProcess) -> Self {
        Self(Clients::connect(server).await)
    }

    /// Grants a lease (`id` 0: the server chooses).
    pub async fn grant(&mut self, ttl: i64, id: i64) -> LeaseGrantResponse {
        let resp = self.try_grant(ttl, id).await;
        resp.unwrap_or_else(|e| panic!("grant ttl={ttl} id={id}: {e:?}"))
    }

    pub async fn revoke(&mut self, id: i64) -> LeaseRevokeResponse {
        let resp = self.try_revoke(id).await;
        resp.unwrap_or_else(|e| panic!("revoke {id}: {e:?}"))
    }

    /// Puts `key` = `value` with `lease` (0: none); returns the revision.
    pub async fn put(&mut self, key: &str, value: &str, lease: i64) -> i64 {
        let resp = self.try_put(put_req(key, value, lease)).await;
        rev(&resp
            .unwrap_or_else(|e| panic!("put {key}={value} lease={lease}: {e:?}"))
            .header)
    }

    /// The keys under `prefix` at `revision` (0: current), in key order.
    pub async fn keys_at(&mut self, prefix: &str, revision: i64) -> Vec<String> {
        let req = RangeRequest {
            revision,
            ..prefix_req(prefix)
        };
        rollcall_tests::grpc::keys(&self.range(req).await.kvs)
    }

    pub async fn delete(&mut self, key: &str) -> DeleteRangeResponse {
        let resp = self.try_delete(del_req(key)).await;
        resp.unwrap_or_else(|e| panic!("delete {key}: {e:?}"))
    }

    /// Opens a keep-alive stream.
    pub fn keep_alive(&mut self) -> KeepAlive {
        KeepAlive::open(&self.lease)
    }

    /// Opens a watch on `prefix` from `start_revision`.
    pub async fn watch_prefix(&mut self, prefix: &str, start_revision: i64) -> Watcher {
        let channel = self.0.watch.clone();
        let mut stream = WatchStream::open_with(channel);
        stream
            .create(WatchCreateRequest {
                key: b(prefix),
                range_end: prefix_end(prefix),
                start_revision,
                ..WatchCreateRequest::default()
            })
            .await;
        Watcher { stream }
    }
}

/// One watch stream with a single watcher.
pub struct Watcher {
    stream: WatchStream,
}

impl Watcher {
    /// Reads responses until `count` DELETE events were seen or `within`
    /// passed; returns every response with events read (the DELETEs and
    /// whatever else came).
    pub async fn until_deletes(&mut self, count: usize, within: Duration) -> Vec<WatchResponse> {
        let deadline = Instant::now() + within;
        let mut got: Vec<WatchResponse> = Vec::new();
        loop {
            let seen = got
                .iter()
                .flat_map(|r| &r.events)
                .filter(|e| is_delete(e))
                .count();
            if seen >= count {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stream.next_within(left).await {
                None => panic!(
                    "only {seen} of {count} DELETE events within {within:?}; responses: {got:?}"
                ),
                Some(resp) if !resp.events.is_empty() => got.push(resp),
                Some(_) => {}
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
            (rollcall_tests::grpc::s(&kv.key), kv.mod_revision)
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
    let every = Duration::from_millis(100);
    let done = rollcall_tests::wait::poll(within, every, || {
        let ok = check();
        async move { ok.await.then_some(()) }
    })
    .await;
    assert!(done.is_some(), "{what}: not within {within:?}");
    started.elapsed()
}

/// The distinct values of `items`.
pub fn distinct<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    items.into_iter().collect()
}
