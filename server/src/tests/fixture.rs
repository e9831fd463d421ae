//! The one place the in-process tests build what they test: a scratch store
//! driven without the applier thread ([`Scratch`]), a full single member
//! (store, applier, lessor, watch hub: [`Node`]), request and command
//! constructors, and the clock helpers of paused-time tests.
//!
//! Everything that depends on how the applier and the store are wired
//! (`Proposer::start`, `apply::apply`, `SideState`, `WriteTxn` construction,
//! `Store::read`/`read_committed`) is used here only, so a change of that
//! wiring is adapted in this file and nowhere else.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};
use rollcall_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, alarm_request, compare,
    request_op,
};
use rollcall_proto::mvccpb::Event;
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::alarm::AlarmSet;
use crate::apply::side_state::SideChange;
use crate::apply::{Applied, Command, apply_batch};
use crate::config::ServeConfig;
use crate::error::Error;
use crate::lease::{LeaseTable, Lessor};
use crate::metrics::Metrics;
use crate::mvcc::index::TreeIndex;
use crate::mvcc::store::{Committed, delete_compacted};
use crate::mvcc::{KeyRange, Record, Revision, Store, View, WriteTxn};
use crate::proposer::Proposer;
use crate::state::State;
use crate::storage::{self, HISTORY};
use crate::watch::hub::StreamMsg;
use crate::watch::index::WatcherKey;
use crate::watch::{WatchHub, WatchSpec};

/// The history table as readers see it.
pub(crate) type ReadHistory = ReadOnlyTable<(i64, i64), &'static [u8]>;

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

// ---------------------------------------------------------------------------
// Requests and commands.

pub(crate) fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..Default::default()
    }
}

pub(crate) fn put(key: &str, value: &str) -> Command {
    Command::Put(put_req(key, value))
}

pub(crate) fn put_leased(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        lease,
        ..put_req(key, value)
    })
}

pub(crate) fn delete_req(key: &str, range_end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        range_end: b(range_end),
        ..Default::default()
    }
}

/// Deletes `[key, range_end)` (`range_end` empty: the single key).
pub(crate) fn delete(key: &str, range_end: &str) -> Command {
    Command::DeleteRange(delete_req(key, range_end))
}

pub(crate) fn txn(req: TxnRequest) -> Command {
    Command::Txn(req)
}

pub(crate) fn grant(id: i64, ttl: i64) -> Command {
    Command::LeaseGrant(LeaseGrantRequest { ttl, id })
}

pub(crate) fn revoke(id: i64) -> Command {
    Command::LeaseRevoke(LeaseRevokeRequest { id })
}

pub(crate) fn compact(revision: i64) -> Command {
    Command::Compact(CompactionRequest {
        revision,
        physical: false,
    })
}

pub(crate) fn alarm(action: alarm_request::AlarmAction, member_id: u64) -> Command {
    Command::Alarm(AlarmRequest {
        action: action as i32,
        member_id,
        alarm: AlarmType::Nospace as i32,
    })
}

pub(crate) fn range_req(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: b(range_end),
        ..Default::default()
    }
}

pub(crate) fn key_range(key: &str, range_end: &str) -> KeyRange {
    KeyRange::new(&b(key), &b(range_end))
}

pub(crate) fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, value))),
    }
}

pub(crate) fn op_put_leased(key: &str, value: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            lease,
            ..put_req(key, value)
        })),
    }
}

pub(crate) fn op_range(key: &str, range_end: &str) -> RequestOp {
    op_range_req(range_req(key, range_end))
}

pub(crate) fn op_range_req(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

pub(crate) fn op_delete(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(delete_req(
            key, range_end,
        ))),
    }
}

pub(crate) fn op_txn(req: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(req)),
    }
}

/// A compare of `key` (`range_end` empty: the single key).
pub(crate) fn cmp(
    key: &str,
    range_end: &str,
    result: compare::CompareResult,
    target: compare::TargetUnion,
) -> Compare {
    let kind = match target {
        compare::TargetUnion::Version(_) => compare::CompareTarget::Version,
        compare::TargetUnion::CreateRevision(_) => compare::CompareTarget::Create,
        compare::TargetUnion::ModRevision(_) => compare::CompareTarget::Mod,
        compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
        compare::TargetUnion::Lease(_) => compare::CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: kind as i32,
        key: b(key),
        range_end: b(range_end),
        target_union: Some(target),
    }
}

// ---------------------------------------------------------------------------
// Scratch: the write path without the applier thread.

/// What applying one request did.
#[derive(Debug)]
pub(crate) struct Outcome<R> {
    pub(crate) result: Result<R, Error>,
    /// The request's changes, in order: what watchers would be told.
    pub(crate) changes: Vec<Record>,
    /// Side-state changes (leases, alarms) the request logged.
    pub(crate) side: Vec<SideChange>,
    /// The store revision after the request.
    pub(crate) rev: i64,
}

impl<R> Outcome<R> {
    pub(crate) fn ok(self) -> R {
        match self.result {
            Ok(r) => r,
            Err(e) => panic!("request refused: {e}"),
        }
    }

    pub(crate) fn err(self) -> Error {
        match self.result {
            Ok(_) => panic!("request unexpectedly accepted"),
            Err(e) => e,
        }
    }
}

/// A store in a temp dir that the test writes to request by request, each in
/// its own committed redb transaction, as the applier would with batches of
/// one. Compactions are carried out (index, then history) like the applier.
pub(crate) struct Scratch {
    pub(crate) db: Database,
    pub(crate) index: TreeIndex,
    pub(crate) leases: LeaseTable,
    pub(crate) alarms: AlarmSet,
    pub(crate) rev: i64,
    pub(crate) compact_rev: i64,
    _dir: TempDir,
}

/// The record an event was made from (`Record::into_event` loses nothing).
fn record_of(event: rollcall_proto::mvccpb::Event) -> Record {
    let kv = event.kv.unwrap_or_default();
    if event.r#type == rollcall_proto::mvccpb::event::EventType::Delete as i32 {
        Record::Tombstone(kv)
    } else {
        Record::Put(kv)
    }
}

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = storage::open(dir.path(), 1 << 20).expect("open db");
        Self {
            db,
            index: TreeIndex::default(),
            leases: LeaseTable::default(),
            alarms: AlarmSet::default(),
            rev: 1,
            compact_rev: -1,
            _dir: dir,
        }
    }

    /// A write transaction whose commit skips the fsync: a scratch store
    /// is never reopened, and the tests are many.
    fn begin_write(&self) -> redb::WriteTransaction {
        let mut txn = self.db.begin_write().expect("begin write");
        txn.set_durability(redb::Durability::None)
            .expect("set durability");
        txn
    }

    /// Runs one write request on a [`WriteTxn`] and commits it.
    pub(crate) fn write<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTxn<'_, '_>) -> Result<R, Error>,
    ) -> Outcome<R> {
        let txn = self.begin_write();
        let (result, changes, rev) = {
            let mut history = txn.open_table(HISTORY).expect("history table");
            let mut write = WriteTxn {
                index: &mut self.index,
                history: &mut history,
                begin_rev: self.rev,
                compact_rev: self.compact_rev,
                changes: Vec::new(),
            };
            let result = f(&mut write);
            let rev = write.rev();
            (result, std::mem::take(&mut write.changes), rev)
        };
        txn.commit().expect("commit");
        self.rev = rev;
        Outcome {
            result,
            changes,
            side: Vec::new(),
            rev,
        }
    }

    /// Applies one command as the applier does: a batch of one through the
    /// pure step, compaction (logical and physical) included.
    pub(crate) fn apply(&mut self, command: &Command) -> Outcome<Applied> {
        let txn = self.begin_write();
        let mut state = State {
            index: std::mem::take(&mut self.index),
            leases: std::mem::take(&mut self.leases),
            alarms: std::mem::take(&mut self.alarms),
            rev: self.rev,
            compact_rev: self.compact_rev,
        };
        let outcome = apply_batch(&mut state, &txn, [command]).expect("storage");
        txn.commit().expect("commit");
        self.index = state.index;
        self.leases = state.leases;
        self.alarms = state.alarms;
        self.rev = state.rev;
        self.compact_rev = state.compact_rev;
        if let Some((at, keep)) = &outcome.compaction {
            self.delete_history(*at, keep);
        }
        let changes = outcome
            .events
            .into_iter()
            .flat_map(|(_, events)| events)
            .map(record_of)
            .collect();
        let result = outcome
            .results
            .into_iter()
            .next()
            .expect("one result per command")
            .map_err(Error::Refused);
        Outcome {
            result,
            changes,
            side: outcome.side_log,
            rev: self.rev,
        }
    }

    /// Applies commands that must all succeed; returns the last revision.
    pub(crate) fn apply_all(&mut self, commands: &[Command]) -> i64 {
        for command in commands {
            self.apply(command).ok();
        }
        self.rev
    }

    /// Logical compaction only: the index and the compact revision, history
    /// left in place (as between the applier's commit and its cleanup).
    pub(crate) fn compact_logically(&mut self, at: i64) -> HashSet<Revision> {
        self.compact_rev = self.compact_rev.max(at);
        self.index.compact(at)
    }

    /// The physical half of a compaction: deletes history below `at` except
    /// `keep`.
    pub(crate) fn delete_history(&self, at: i64, keep: &HashSet<Revision>) {
        delete_compacted(&self.db, at, keep).expect("delete compacted");
    }

    /// Runs `f` on a reader's view of the newest revision.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View<'_, ReadHistory>) -> R) -> R {
        let txn = self.db.begin_read().expect("begin read");
        let history = txn.open_table(HISTORY).expect("history table");
        let view = View {
            index: &self.index,
            history: &history,
            rev: self.rev,
            compact_rev: self.compact_rev,
        };
        f(&view)
    }

    /// Every `(main, sub)` key of the history table, in order.
    pub(crate) fn history_keys(&self) -> Vec<(i64, i64)> {
        history_keys(&self.db)
    }
}

/// Overwrites one meta counter of the closed store in `data_dir`.
pub(crate) fn set_meta(data_dir: &std::path::Path, key: storage::MetaKey, value: u64) {
    let db = storage::open(data_dir, 1 << 20).expect("open db");
    let txn = db.begin_write().expect("begin write");
    txn.open_table(storage::META)
        .expect("meta table")
        .insert(key.as_str(), value)
        .expect("write meta");
    txn.commit().expect("commit");
}

pub(crate) fn history_keys(db: &Database) -> Vec<(i64, i64)> {
    let txn = db.begin_read().expect("begin read");
    let history = txn.open_table(HISTORY).expect("history table");
    history
        .iter()
        .expect("iterate history")
        .map(|entry| entry.expect("history entry").0.value())
        .collect()
}

// ---------------------------------------------------------------------------
// Node: a whole member minus the network.

/// A store opened on a temp dir with a running applier, lessor and watch hub.
/// Must be created inside a tokio runtime (the hub spawns catch-up tasks).
pub(crate) struct Node {
    pub(crate) store: Store,
    pub(crate) proposer: Proposer,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) metrics: Arc<Metrics>,
    applier: JoinHandle<Result<(), Error>>,
    dir: TempDir,
}

impl Node {
    pub(crate) fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"))
    }

    /// A node whose hub takes at most `max_watchers` watchers.
    pub(crate) fn with_max_watchers(max_watchers: usize) -> Self {
        Self::open(tempfile::tempdir().expect("temp dir"), max_watchers)
    }

    fn start_in(dir: TempDir) -> Self {
        Self::open(dir, 1000)
    }

    fn open(dir: TempDir, max_watchers: usize) -> Self {
        let (store, state) = State::open(dir.path(), 1 << 20).expect("open store");
        let metrics = Arc::new(Metrics::new());
        let lessor = Arc::new(Lessor::default());
        let hub = WatchHub::new(
            store.clone(),
            store.current_rev(),
            tokio::runtime::Handle::current(),
            max_watchers,
            metrics.clone(),
        );
        let (proposer, applier) = Proposer::start(
            store.clone(),
            state,
            lessor.clone(),
            hub.clone(),
            metrics.clone(),
        );
        Self {
            store,
            proposer,
            hub,
            lessor,
            metrics,
            applier,
            dir,
        }
    }

    /// Stops the applier, closes the store and opens it again from disk.
    pub(crate) fn restart(self) -> Self {
        self.restart_with(|_| {})
    }

    /// Like [`Node::restart`], running `offline` on the data directory while
    /// the store is closed (to stage what a crash could leave behind).
    pub(crate) fn restart_with(self, offline: impl FnOnce(&std::path::Path)) -> Self {
        let Self {
            store,
            proposer,
            hub,
            applier,
            dir,
            ..
        } = self;
        drop(proposer);
        applier
            .join()
            .expect("applier thread panicked")
            .expect("applier failed");
        drop(hub);
        drop(store);
        offline(dir.path());
        Self::start_in(dir)
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, Error> {
        self.proposer.propose(command).await
    }

    /// Puts `key`; returns the revision of the put.
    pub(crate) async fn put(&self, key: &str, value: &str) -> i64 {
        match self.propose(put(key, value)).await {
            Ok(Applied::Put(resp)) => resp.header.map_or(0, |h| h.revision),
            other => panic!("put {key}: {other:?}"),
        }
    }

    /// Proposes `n` puts of `{prefix}{i}` at once (they share commits);
    /// returns the newest revision afterwards.
    pub(crate) async fn put_many(&self, prefix: &str, n: usize) -> i64 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let proposer = self.proposer.clone();
            let command = put(&format!("{prefix}{i}"), "v");
            tasks.spawn(async move { proposer.propose(command).await });
        }
        while let Some(done) = tasks.join_next().await {
            assert!(matches!(done, Ok(Ok(Applied::Put(_)))), "{done:?}");
        }
        self.store.current_rev()
    }

    /// Runs `f` on a reader's view of the newest committed revision.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View<'_, ReadHistory>) -> R) -> R {
        self.store.read(|view| Ok(f(view))).expect("read")
    }

    /// The committed state readers see (index, leases, alarms, revisions).
    pub(crate) fn committed(&self) -> std::sync::RwLockReadGuard<'_, Committed> {
        self.store.read_committed()
    }

    pub(crate) fn history_keys(&self) -> Vec<(i64, i64)> {
        history_keys(&self.store.db())
    }

    /// Holds the readers' lock on another thread until the guard is dropped:
    /// the applier then stalls inside its next batch (it publishes under the
    /// write lock), and whatever is proposed meanwhile is applied together
    /// in the batch after it.
    pub(crate) fn stall_applier(&self) -> Stall {
        let store = self.store.clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _guard = store.read_committed();
            let _ = held_tx.send(());
            let _ = released.recv();
        });
        held_rx.recv().expect("lock holder started");
        Stall {
            release: Some(release),
            thread: Some(thread),
        }
    }

    /// Creates a watcher on a stream of `capacity` messages; the first message
    /// on the receiver is its `Created`.
    pub(crate) async fn watch(&self, spec: WatchSpec, capacity: usize) -> Watch {
        self.try_watch(spec, capacity)
            .await
            .expect("create watcher")
    }

    pub(crate) async fn try_watch(
        &self,
        spec: WatchSpec,
        capacity: usize,
    ) -> Result<Watch, crate::watch::hub::CreateError> {
        let (tx, rx) = mpsc::channel(capacity);
        let permit = tx.clone().reserve_owned().await.expect("stream open");
        let key = self.hub.create(spec, tx, permit)?;
        Ok(Watch { key, rx })
    }
}

/// See [`Node::stall_applier`].
pub(crate) struct Stall {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.release.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A watch spec for `range` from `start_rev` (0 = from now) on stream 0.
pub(crate) fn watch_spec(range: KeyRange, start_rev: i64) -> WatchSpec {
    WatchSpec {
        stream: 0,
        watch_id: 0,
        range,
        start_rev,
        no_put: false,
        no_delete: false,
        prev_kv: false,
        fragment: false,
        progress_notify: false,
    }
}

/// One watcher and its stream's receiving end.
pub(crate) struct Watch {
    pub(crate) key: WatcherKey,
    pub(crate) rx: mpsc::Receiver<StreamMsg>,
}

impl Watch {
    /// The next message, failing the test after `REAL_WAIT` of real time.
    pub(crate) async fn next(&mut self) -> StreamMsg {
        real_timeout(REAL_WAIT, self.rx.recv())
            .await
            .expect("stream closed")
    }

    /// Collects `(revision, event)` pairs from `Events` messages until the
    /// newest event revision reaches `until`. Events carry their revision
    /// in `kv.mod_revision`.
    pub(crate) async fn events_until(&mut self, until: i64) -> Vec<(i64, Event)> {
        let mut out: Vec<(i64, Event)> = Vec::new();
        while out.last().is_none_or(|(rev, _)| *rev < until) {
            match self.next().await {
                StreamMsg::Events { events, .. } => {
                    for event in events {
                        let rev = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        out.push((rev, event));
                    }
                }
                StreamMsg::Progress { .. } => {}
                other => panic!("unexpected stream message {other:?}"),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Time.

/// How long a test waits, in real time, for something that should happen
/// promptly before it fails instead of hanging.
pub(crate) const REAL_WAIT: Duration = Duration::from_secs(30);

/// `fut`, or a panic after `limit` of *real* time. Safe under a paused clock:
/// the limit is measured on a blocking thread, not by tokio's timer (which a
/// paused clock would auto-advance). The blocking thread ends as soon as the
/// future does.
pub(crate) async fn real_timeout<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
    let mut expired = tokio::task::spawn_blocking(move || {
        matches!(
            cancelled.recv_timeout(limit),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    });
    tokio::pin!(fut);
    let out = tokio::select! {
        out = &mut fut => out,
        timed_out = &mut expired => {
            assert!(!matches!(timed_out, Ok(false)), "timer cancelled early");
            panic!("no result after {limit:?} of real time");
        }
    };
    drop(cancel);
    let _ = expired.await;
    out
}

/// While held, a paused tokio clock moves only by `tokio::time::advance`:
/// tokio does not auto-advance time while a blocking task runs, and this
/// holds one. Without it, every wait for the applier thread or for the
/// network (real time) lets the paused clock jump to the next timer.
pub(crate) struct ClockHold {
    release: Option<std::sync::mpsc::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ClockHold {
    pub(crate) fn new() -> Self {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        Self {
            release: Some(release),
            task: Some(task),
        }
    }

    /// Lets the clock auto-advance again.
    pub(crate) async fn release(mut self) {
        self.release.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.release.take();
    }
}

/// A `serve` configuration for an in-process server in `data_dir`: the
/// defaults of `rollcall serve` (parsed as the binary would, so a new flag
/// needs no change here) with no listeners of its own, a small page cache,
/// a one-second minimum lease TTL and a small watcher limit.
pub(crate) fn serve_config(data_dir: &std::path::Path) -> ServeConfig {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }
    let dir = data_dir.to_str().expect("temp dir paths are UTF-8");
    <Cli as clap::Parser>::parse_from([
        "rollcall",
        "--data-dir",
        dir,
        "--listen-client-urls",
        "",
        "--listen-metrics-urls",
        "",
        "--name",
        "inprocess",
        "--backend-cache-bytes",
        "1048576",
        "--min-lease-ttl",
        "1",
        "--max-watchers",
        "1000",
    ])
    .serve
}

// ---------------------------------------------------------------------------
// A whole server in this process.

/// `server::run` on a loopback port in a temp dir, with a gRPC channel to it.
pub(crate) struct InProcess {
    pub(crate) channel: tonic::transport::Channel,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), crate::server::ServeError>>,
    _dir: TempDir,
}

impl InProcess {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::run(
            serve_config(dir.path()),
            crate::server::Listeners {
                client: vec![(listener, false)],
                metrics: Vec::new(),
                peer: Vec::new(),
            },
            async move {
                let _ = stop.await;
            },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        Self {
            channel,
            shutdown: Some(shutdown),
            task,
            _dir: dir,
        }
    }

    /// Shuts the server down and returns how `run` ended. Drop every client
    /// first: an open stream holds shutdown for its grace period.
    pub(crate) async fn stop(mut self) -> Result<(), crate::server::ServeError> {
        drop(self.channel);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.task).await.expect("server task panicked")
    }
}
