//! Request-validation fuzzing of an in-process server: random (edge-biased)
//! requests through every KV, Lease and Watch method, random bytes as the
//! message body of each, and random HTTP/2 connections. Every answer must be a success or an etcd
//! error (`etcdserver: …`) or gRPC's own refusal of an undecodable or
//! oversized message; nothing may panic (a process-wide panic hook counts)
//! or hang (every call is under a timeout); revisions never go back; and the
//! state read at the end (HashKV, every key, every lease) is the same after
//! a restart on the same data dir.
//!
//! Cases per test: see each test (`ROLLCALL_PROPTEST_CASES` overrides them
//! for a longer local run).
//!
//! Modules:
//! - [`requests`]: the request strategies.
//! - [`connections`]: random HTTP/2 connections over TCP.
//! - [`harness`]: the server, answer checks, the state compared on restart.
//! - [`raw`]: a codec for arbitrary message bodies.
//! - [`watch_check`]: what a watch stream's answers must satisfy.

#![allow(clippy::unwrap_used)]

mod connections;
mod harness;
mod raw;
mod requests;
mod watch_check;

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::AtomicI64;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use prost::Message;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest, WatchCancelRequest,
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, request_op,
    watch_request,
};
use tokio::runtime::Runtime;

use harness::{Server, acceptable, check, panics, within};

fn cases(default: u32) -> u32 {
    std::env::var("ROLLCALL_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `case` on `cases` values of `strategy` (few shrink steps: each one
/// is a round trip to the server).
fn fuzz<T: Debug, F: Future<Output = Result<(), String>>>(
    rt: &Runtime,
    cases: u32,
    strategy: impl Strategy<Value = T>,
    case: impl Fn(T) -> F,
) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&strategy, |value| {
        let before = panics();
        let result = rt.block_on(case(value));
        if panics() > before {
            return Err(TestCaseError::fail("the server panicked"));
        }
        result.map_err(TestCaseError::fail)
    }) {
        panic!("{e}");
    }
}

/// A few keys, revisions and leases for the requests to meet.
async fn seed(server: &Server) {
    let mut kv = server.kv();
    for i in 0..20 {
        let put = PutRequest {
            key: Bytes::from(format!("k{}", i % 6)),
            value: Bytes::from(format!("v{i}")),
            ..Default::default()
        };
        within(kv.put(put)).await.unwrap();
    }
    for id in 1..3 {
        within(
            server
                .lease()
                .lease_grant(LeaseGrantRequest { ttl: 60, id }),
        )
        .await
        .unwrap();
    }
}

/// The server still serves a plain write and read.
async fn still_answers(server: &Server) {
    let mut kv = server.kv();
    let put = PutRequest {
        key: Bytes::from_static(b"after"),
        value: Bytes::from_static(b"fuzz"),
        ..Default::default()
    };
    within(kv.put(put)).await.unwrap();
    let got = within(kv.range(RangeRequest {
        key: Bytes::from_static(b"after"),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner();
    assert_eq!(got.kvs[0].value, Bytes::from_static(b"fuzz"));
}

#[derive(Debug, Clone)]
enum KvOp {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

fn kv_op() -> BoxedStrategy<KvOp> {
    prop_oneof![
        3 => requests::range().prop_map(KvOp::Range),
        4 => requests::put().prop_map(KvOp::Put),
        2 => requests::delete().prop_map(KvOp::Delete),
        5 => requests::txn().prop_map(KvOp::Txn),
        1 => requests::compaction().prop_map(KvOp::Compact),
    ]
    .boxed()
}

async fn kv_call(server: &Server, op: KvOp, last: &AtomicI64) -> Result<(), String> {
    let mut kv = server.kv();
    match op {
        KvOp::Range(r) => check(
            &within(kv.range(r)).await,
            |r| r.get_ref().header.as_ref(),
            last,
        ),
        KvOp::Put(r) => check(
            &within(kv.put(r)).await,
            |r| r.get_ref().header.as_ref(),
            last,
        ),
        KvOp::Delete(r) => check(
            &within(kv.delete_range(r)).await,
            |r| r.get_ref().header.as_ref(),
            last,
        ),
        KvOp::Txn(r) => check(
            &within(kv.txn(r)).await,
            |r| r.get_ref().header.as_ref(),
            last,
        ),
        KvOp::Compact(r) => check(
            &within(kv.compact(r)).await,
            |r| r.get_ref().header.as_ref(),
            last,
        ),
    }
}

/// Range, Put, DeleteRange, Txn (nested, every compare target and result,
/// duplicate keys, too many ops, too deep) and Compact: 300 cases.
#[test]
fn kv_requests() {
    let exclusive = harness::exclusive();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path()));
    rt.block_on(seed(&server));
    let last = AtomicI64::new(0);
    fuzz(&rt, cases(300), kv_op(), |op| kv_call(&server, op, &last));
    let (ok, errors) = harness::report("kv_requests");
    assert!(ok > 0 && errors > 0, "{ok} successes, {errors} errors");
    rt.block_on(still_answers(&server));
    rt.block_on(harness::assert_survives_restart(server, dir.path()));
    assert_eq!(exclusive.panics(), 0);
}

#[derive(Debug, Clone)]
enum LeaseOp {
    Grant(LeaseGrantRequest),
    Revoke(i64),
    TimeToLive(i64, bool),
    Leases,
    KeepAlive(Vec<i64>),
    /// A put attached to a lease, so revokes have keys to delete.
    Put(PutRequest),
}

fn lease_op() -> BoxedStrategy<LeaseOp> {
    prop_oneof![
        3 => requests::grant().prop_map(LeaseOp::Grant),
        2 => requests::lease_id().prop_map(LeaseOp::Revoke),
        2 => (requests::lease_id(), any::<bool>()).prop_map(|(id, keys)| LeaseOp::TimeToLive(id, keys)),
        1 => Just(LeaseOp::Leases),
        2 => vec(requests::lease_id(), 1..5).prop_map(LeaseOp::KeepAlive),
        2 => requests::put().prop_map(LeaseOp::Put),
    ]
    .boxed()
}

fn header(h: &Option<ResponseHeader>) -> Option<&ResponseHeader> {
    h.as_ref()
}

async fn lease_call(server: &Server, op: LeaseOp, last: &AtomicI64) -> Result<(), String> {
    let mut lease = server.lease();
    match op {
        LeaseOp::Grant(r) => check(
            &within(lease.lease_grant(r)).await,
            |r| header(&r.get_ref().header),
            last,
        ),
        LeaseOp::Revoke(id) => check(
            &within(lease.lease_revoke(LeaseRevokeRequest { id })).await,
            |r| header(&r.get_ref().header),
            last,
        ),
        LeaseOp::TimeToLive(id, keys) => check(
            &within(lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys })).await,
            |r| header(&r.get_ref().header),
            last,
        ),
        LeaseOp::Leases => check(
            &within(lease.lease_leases(LeaseLeasesRequest {})).await,
            |r| header(&r.get_ref().header),
            last,
        ),
        LeaseOp::Put(r) => check(
            &within(server.kv().put(r)).await,
            |r| header(&r.get_ref().header),
            last,
        ),
        LeaseOp::KeepAlive(ids) => {
            let requests: Vec<_> = ids.iter().map(|&id| LeaseKeepAliveRequest { id }).collect();
            let count = requests.len();
            let answer = within(async {
                let (tx, rx) = tokio::sync::mpsc::channel(count);
                for r in requests {
                    tx.try_send(r).unwrap();
                }
                let mut inbound = lease
                    .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                let mut answers = Vec::new();
                while answers.len() < count {
                    match inbound.message().await? {
                        Some(answer) => answers.push(answer),
                        None => break,
                    }
                }
                drop(tx);
                Ok::<Vec<LeaseKeepAliveResponse>, tonic::Status>(answers)
            })
            .await;
            match &answer {
                Ok(answers) if answers.len() != count => Err(format!(
                    "{} keepalive answers to {count} requests",
                    answers.len()
                )),
                Ok(answers) => {
                    for (answer, id) in answers.iter().zip(&ids) {
                        if answer.id != *id {
                            return Err(format!("keepalive of {id} answered for {}", answer.id));
                        }
                        check(&Ok::<_, tonic::Status>(answer), |r| header(&r.header), last)?;
                    }
                    Ok(())
                }
                Err(_) => check(&answer, |_| None, last),
            }
        }
    }
}

/// Grant (ids and TTLs 0, negative, huge), Revoke, KeepAlive streams,
/// TimeToLive and Leases: 200 cases.
#[test]
fn lease_requests() {
    let exclusive = harness::exclusive();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path()));
    rt.block_on(seed(&server));
    let last = AtomicI64::new(0);
    fuzz(&rt, cases(200), lease_op(), |op| {
        lease_call(&server, op, &last)
    });
    let (ok, errors) = harness::report("lease_requests");
    assert!(ok > 0 && errors > 0, "{ok} successes, {errors} errors");
    rt.block_on(still_answers(&server));
    rt.block_on(harness::assert_survives_restart(server, dir.path()));
    assert_eq!(exclusive.panics(), 0);
}

#[derive(Debug, Clone)]
enum WatchOp {
    Create(WatchCreateRequest),
    Cancel(i64),
    Progress,
    Empty,
}

fn watch_ops() -> BoxedStrategy<Vec<WatchOp>> {
    vec(
        prop_oneof![
            5 => requests::watch_create().prop_map(WatchOp::Create),
            2 => prop_oneof![0i64..4, requests::int()].prop_map(WatchOp::Cancel),
            1 => Just(WatchOp::Progress),
            1 => Just(WatchOp::Empty),
        ],
        1..6,
    )
    .boxed()
}

/// Created last on every stream: once its answer is in, every earlier
/// request of the stream has had its own.
const SENTINEL_WATCH: i64 = 7_777_777;

fn sentinel_create() -> (WatchCreateRequest, Bytes) {
    let create = WatchCreateRequest {
        key: Bytes::from_static(b"sentinel"),
        watch_id: SENTINEL_WATCH,
        ..Default::default()
    };
    let message = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create.clone())),
    }
    .encode_to_vec()
    .into();
    (create, message)
}

fn progress_request() -> Bytes {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    }
    .encode_to_vec()
    .into()
}

fn is_sentinel(message: &Bytes) -> bool {
    WatchResponse::decode(message.clone())
        .is_ok_and(|r| r.watch_id == SENTINEL_WATCH && r.created && !r.canceled)
}

async fn watch_stream(server: &Server, ops: Vec<WatchOp>, case: usize) -> Result<(), String> {
    // Done when a progress answer says every watcher of the stream has been
    // given everything up to the head as of now (the write of the case may
    // add a revision meanwhile).
    let head = within(server.kv().range(RangeRequest {
        key: Bytes::from_static(b"k0"),
        ..Default::default()
    }))
    .await
    .map_err(|e| e.to_string())?
    .into_inner()
    .header
    .map_or(0, |h| h.revision);
    let mut creates = Vec::new();
    let mut messages: Vec<Bytes> = ops
        .into_iter()
        .map(|op| {
            let request_union = match op {
                WatchOp::Create(mut c) => {
                    // Small start revisions count back from the head, so
                    // they stay within the history the compactions keep.
                    if (1..=40).contains(&c.start_revision) && head > 45 {
                        c.start_revision += head - 45;
                    }
                    creates.push(c.clone());
                    Some(watch_request::RequestUnion::CreateRequest(c))
                }
                WatchOp::Cancel(watch_id) => Some(watch_request::RequestUnion::CancelRequest(
                    WatchCancelRequest { watch_id },
                )),
                WatchOp::Progress => Some(watch_request::RequestUnion::ProgressRequest(
                    WatchProgressRequest {},
                )),
                WatchOp::Empty => None,
            };
            WatchRequest { request_union }.encode_to_vec().into()
        })
        .collect();
    let (sentinel, message) = sentinel_create();
    creates.push(sentinel);
    messages.push(message);
    messages.push(progress_request());
    let mut asked = 1;
    let mut sentinel_seen = false;
    let on_answer = move |answer: &Bytes| {
        sentinel_seen |= is_sentinel(answer);
        let Ok(r) = WatchResponse::decode(answer.clone()) else {
            return raw::Next::Wait;
        };
        let progress = r.watch_id == -1 && !r.created && !r.canceled && r.events.is_empty();
        // The fuzzed requests' own progress answers come before the sentinel.
        if !progress || !sentinel_seen {
            return raw::Next::Wait;
        }
        if r.header.is_some_and(|h| h.revision >= head) {
            return raw::Next::Done;
        }
        asked += 1;
        if asked > 10_000 {
            // Surfaces as "the stream ended" rather than a hang.
            return raw::Next::Wait;
        }
        raw::Next::Send(progress_request())
    };
    let stream = streamed(server, "/etcdserverpb.Watch/Watch", messages, on_answer);
    let (answers, written) = tokio::join!(stream, write(server, case));
    written?;
    let answers = answers?;
    for answer in &answers {
        let Ok(r) = WatchResponse::decode(answer.clone()) else {
            continue;
        };
        if r.canceled {
            harness::record(format!("watch canceled: {}", r.cancel_reason));
        }
        if !r.events.is_empty() {
            harness::record("watch events".into());
        }
        if r.fragment {
            harness::record("watch fragments".into());
        }
    }
    watch_check::check(&creates, &answers)
}

/// One write while a watch stream is open, so its watchers get live events
/// too: puts and deletes of the seeded keys, every tenth case three ~480 KB
/// values in one revision (with `prev_kv`, over the 2 MiB a response may
/// have, so fragmenting watchers split it), every fiftieth a compaction.
async fn write(server: &Server, case: usize) -> Result<(), String> {
    let mut kv = server.kv();
    let key = Bytes::from(format!("k{}", case % 6));
    let answer = match case % 10 {
        // Keeps the history (and so a catch-up from an old revision) small
        // however many cases run; old start revisions then meet compaction.
        _ if case % 50 == 49 => {
            let head = within(kv.range(RangeRequest {
                key: key.clone(),
                ..Default::default()
            }))
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .header
            .map_or(0, |h| h.revision);
            within(kv.compact(CompactionRequest {
                revision: head - 5,
                physical: false,
            }))
            .await
            .map(drop)
        }
        9 => {
            let big = |k: &'static str| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: Bytes::from_static(k.as_bytes()),
                    value: Bytes::from(vec![b'w'; 480 * 1024]),
                    ..Default::default()
                })),
            };
            let txn = TxnRequest {
                success: vec![big("k3"), big("k4"), big("k5")],
                ..Default::default()
            };
            within(kv.txn(txn)).await.map(drop)
        }
        n if n % 3 == 2 => within(kv.delete_range(DeleteRangeRequest {
            key,
            ..Default::default()
        }))
        .await
        .map(drop),
        _ => within(kv.put(PutRequest {
            key,
            value: Bytes::from(format!("w{case}")),
            ..Default::default()
        }))
        .await
        .map(drop),
    };
    answer.map_err(|e| format!("a plain write failed: {e:?}"))
}

/// Sends `messages` on a stream and requires it to get to
/// [`raw::Next::Done`] (or fail acceptably, then no answers are returned).
async fn streamed(
    server: &Server,
    path: &'static str,
    messages: Vec<Bytes>,
    on_answer: impl FnMut(&Bytes) -> raw::Next,
) -> Result<Vec<Bytes>, String> {
    let answer = within(raw::streaming(&server.channel, path, messages, on_answer)).await;
    harness::record(match &answer {
        Ok(_) => "ok".into(),
        Err(status) => status.message().chars().take(70).collect(),
    });
    match answer {
        Ok((answers, true)) => Ok(answers),
        Ok((answers, false)) => Err(format!("the stream ended after {} answers", answers.len())),
        Err(status) if acceptable(&status) => Ok(Vec::new()),
        Err(status) => Err(format!("unexpected error: {status:?}")),
    }
}

/// Done once `done` is answered.
fn until(done: fn(&Bytes) -> bool) -> impl FnMut(&Bytes) -> raw::Next {
    move |answer| {
        if done(answer) {
            raw::Next::Done
        } else {
            raw::Next::Wait
        }
    }
}

/// Watch streams of creates (odd ranges, revisions, filters, ids,
/// fragment), cancels of unknown ids, progress and empty requests: 100
/// streams.
#[test]
fn watch_requests() {
    let exclusive = harness::exclusive();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path()));
    rt.block_on(seed(&server));
    let case = std::sync::atomic::AtomicUsize::new(0);
    fuzz(&rt, cases(100), watch_ops(), |ops| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        watch_stream(&server, ops, n)
    });
    let (ok, errors) = harness::report("watch_requests");
    assert!(ok > 0 && errors > 0, "{ok} successes, {errors} errors");
    assert!(harness::seen("watch events") > 0);
    rt.block_on(still_answers(&server));
    rt.block_on(harness::assert_survives_restart(server, dir.path()));
    assert_eq!(exclusive.panics(), 0);
}

fn encode(op: KvOp) -> Vec<u8> {
    match op {
        KvOp::Range(r) => r.encode_to_vec(),
        KvOp::Put(r) => r.encode_to_vec(),
        KvOp::Delete(r) => r.encode_to_vec(),
        KvOp::Txn(r) => r.encode_to_vec(),
        KvOp::Compact(r) => r.encode_to_vec(),
    }
}

/// Random bytes, a valid request truncated or with a byte flipped, or a
/// field announcing more bytes than follow.
fn raw_body() -> BoxedStrategy<Bytes> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..64),
        3 => (kv_op().prop_map(encode), any::<usize>(), 1u8.., any::<bool>()).prop_map(
            |(mut body, at, xor, truncate)| {
                if !body.is_empty() {
                    let at = at % body.len();
                    if truncate {
                        body.truncate(at);
                    } else {
                        body[at] ^= xor;
                    }
                }
                body
            }
        ),
        1 => Just(vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

const SENTINEL_LEASE: i64 = 7_777_777;

fn is_sentinel_keepalive(message: &Bytes) -> bool {
    LeaseKeepAliveResponse::decode(message.clone()).is_ok_and(|r| r.id == SENTINEL_LEASE)
}

async fn raw_call(server: &Server, method: usize, body: Bytes) -> Result<(), String> {
    if let Some(path) = raw::UNARY.get(method) {
        let answer = within(raw::unary(&server.channel, path, body)).await;
        return harness::check_error(&answer);
    }
    if method == raw::UNARY.len() {
        let (_, sentinel) = sentinel_create();
        let path = "/etcdserverpb.Watch/Watch";
        streamed(server, path, vec![body, sentinel], until(is_sentinel))
            .await
            .map(drop)
    } else {
        let sentinel = LeaseKeepAliveRequest { id: SENTINEL_LEASE }
            .encode_to_vec()
            .into();
        streamed(
            server,
            "/etcdserverpb.Lease/LeaseKeepAlive",
            vec![body, sentinel],
            until(is_sentinel_keepalive),
        )
        .await
        .map(drop)
    }
}

/// Random bytes as the body of every KV and Lease method, Watch and
/// LeaseKeepAlive: 300 cases, and one body past the gRPC size limit.
#[test]
fn raw_message_bodies() {
    let exclusive = harness::exclusive();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path()));
    rt.block_on(seed(&server));
    let methods = 0..raw::UNARY.len() + 2;
    fuzz(&rt, cases(300), (methods, raw_body()), |(method, body)| {
        raw_call(&server, method, body)
    });
    let oversized = Bytes::from(vec![0; requests::MAX_REQUEST_BYTES + 512 * 1024 + 1]);
    let answer = rt.block_on(within(raw::unary(
        &server.channel,
        "/etcdserverpb.KV/Put",
        oversized,
    )));
    let status = answer.unwrap_err();
    assert!(acceptable(&status), "{status:?}");
    let (ok, errors) = harness::report("raw_message_bodies");
    assert!(ok > 0 && errors > 0, "{ok} successes, {errors} errors");
    rt.block_on(still_answers(&server));
    rt.block_on(harness::assert_survives_restart(server, dir.path()));
    assert_eq!(exclusive.panics(), 0);
}

/// Random HTTP/2 connections over TCP, through the authority shim to the
/// h2 server: 200 cases.
#[test]
fn raw_connections() {
    let exclusive = harness::exclusive();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path()));
    rt.block_on(seed(&server));
    let addr = server.addr;
    fuzz(&rt, cases(200), connections::connection(), |bytes| {
        connections::exchange(addr, bytes)
    });
    assert!(harness::seen("answered") > 0);
    harness::report("raw_connections");
    rt.block_on(still_answers(&server));
    rt.block_on(harness::assert_survives_restart(server, dir.path()));
    assert_eq!(exclusive.panics(), 0);
}
