//! Helpers of the watch suite: the watch flags passed to either server, a
//! KV/Lease client with the writes the model needs, and an event model that
//! derives the committed events from acknowledged writes. Processes,
//! clients, key ranges, event helpers and the bounded watch stream are the
//! harness's.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, TxnResponse, request_op,
};
use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};
pub use rollcall_tests::events::{Range, bare, bare_all, events_of, filters, is_put, show};
use rollcall_tests::grpc::Clients;
pub use rollcall_tests::grpc::{b, rev};
pub use rollcall_tests::watch_stream::{QUIET, WAIT, WatchStream, check_response};
use rollcall_tests::{Backend, ServerConfig, ServerProcess};
use tonic::transport::{Channel, Endpoint};

pub fn is_etcd(backend: &Backend) -> bool {
    backend.is_etcd()
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

/// A server started with [`Opts`] (killed on drop, like every harness
/// process).
pub struct Server(ServerProcess);

impl Deref for Server {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl Server {
    /// Starts `backend` with `opts`, panicking (with the log) on failure.
    pub async fn start(backend: &Backend, opts: &Opts) -> Self {
        let mut config = ServerConfig::with_args(opts.args(backend));
        config.name = "watch".to_owned();
        if let Some(filter) = &opts.log_filter {
            config = config.env("RUST_LOG", filter);
        }
        match backend.start_with(config).await {
            Ok(server) => Self(server),
            Err(e) => panic!("cannot start {}: {e}", backend.name()),
        }
    }

    /// A fresh connection (its own HTTP/2 connection, so streams on
    /// different channels do not share flow control).
    pub async fn channel(&self) -> Channel {
        self.0
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint()))
    }

    /// A fresh connection whose HTTP/2 receive windows are the protocol
    /// minimum (64 KiB), so a stream that is not read pushes back on the
    /// server quickly.
    pub async fn small_window_channel(&self) -> Channel {
        Endpoint::from_shared(self.endpoint())
            .unwrap()
            .connect_timeout(std::time::Duration::from_secs(5))
            .initial_stream_window_size(Some(65_535))
            .initial_connection_window_size(Some(65_535))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.endpoint()))
    }

    /// Whether the server's log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log_text().contains(needle)
    }

    pub async fn client(&self) -> Client {
        Client::over(self.channel().await)
    }
}

rollcall_tests::suite_client!(
    /// The harness's clients, with the writes of this suite.
    Client
);

impl Client {
    pub fn over(channel: Channel) -> Self {
        Self(Clients::over(channel))
    }

    pub async fn put_with(&mut self, key: &str, value: Bytes, lease: i64) -> i64 {
        let req = PutRequest {
            key: b(key),
            value,
            lease,
            ..PutRequest::default()
        };
        let resp = self.try_put(req).await;
        rev(&resp.unwrap_or_else(|e| panic!("put {key}: {e:?}")).header)
    }

    /// Delete `range`; returns (deleted count, revision of the response).
    pub async fn delete(&mut self, range: &Range) -> (i64, i64) {
        let (key, range_end) = range.wire();
        let req = DeleteRangeRequest {
            key,
            range_end,
            ..DeleteRangeRequest::default()
        };
        let resp = self.try_delete(req).await;
        let resp = resp.unwrap_or_else(|e| panic!("delete {range:?}: {e:?}"));
        (resp.deleted, rev(&resp.header))
    }

    pub async fn txn(&mut self, success: Vec<RequestOp>) -> TxnResponse {
        let req = TxnRequest {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        };
        self.try_txn(req)
            .await
            .unwrap_or_else(|e| panic!("txn: {e:?}"))
    }

    pub async fn compact(&mut self, revision: i64) {
        let done = self.try_compact(revision, false).await;
        done.unwrap_or_else(|e| panic!("compact {revision}: {e:?}"));
    }

    pub async fn grant(&mut self, ttl: i64) -> i64 {
        let resp = self.try_grant(ttl, 0).await;
        let resp = resp.unwrap_or_else(|e| panic!("grant ttl {ttl}: {e:?}"));
        assert!(resp.error.is_empty(), "grant: {}", resp.error);
        resp.id
    }

    pub async fn revoke(&mut self, id: i64) -> i64 {
        let resp = self.try_revoke(id).await;
        rev(&resp.unwrap_or_else(|e| panic!("revoke {id}: {e:?}")).header)
    }
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
