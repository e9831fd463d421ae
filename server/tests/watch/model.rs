//! Model check: a seeded random writer (puts, deletes, delete-ranges, txns,
//! compactions, lease revokes and lease expiries) runs while ~30 watchers are
//! created at random moments on random ranges and start revisions, spread
//! over streams of which some read slowly (and, per seed, a small
//! `--watch-stream-buffer`).
//!
//! Ground truth is a model built from the acknowledged writes: with one
//! writer, an acknowledged write's revision is exactly its own. The only
//! changes the writer does not acknowledge are lease expiries; those
//! revisions are taken from a dedicated watcher of every key from revision 1
//! and checked to be exactly "delete every live key of one short lease". That
//! watcher must then agree with the model on every event.
//!
//! Each watcher must have received exactly the committed events in its range
//! (after its filters) from its effective start on (start_revision, or the
//! created header revision + 1), in order, with no duplicates, and with
//! correct prev_kv; or, if canceled, been canceled for a stated reason:
//! `compact_revision` of a compaction that happened, above the first revision
//! it could still have needed, after a prefix of its events. Progress
//! notifications must not claim a revision whose events were not delivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    LeaseRevokeRequest, LeaseTimeToLiveRequest, ResponseOp, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse, response_op, watch_request,
};
use rollcall_proto::mvccpb::Event;
use rollcall_tests::Backend;
use rollcall_tests::rng::SplitMix64;
use tokio::sync::{mpsc, watch};
use tonic::Code;

use crate::support::{
    Client, Model, Op, Opts, Range, Server, WatchStream, b, bare, bare_all, check_response,
    filters, is_etcd, is_put, rev, show,
};

backend_tests!(seed_1, seed_2, seed_3);

async fn seed_1(backend: Backend) {
    run(
        backend,
        Config {
            seed: 0x5eed_0001,
            stream_buffer: None,
            progress_notify_ms: None,
        },
    )
    .await;
}

async fn seed_2(backend: Backend) {
    run(
        backend,
        Config {
            seed: 0x5eed_0002,
            stream_buffer: Some(4),
            progress_notify_ms: None,
        },
    )
    .await;
}

async fn seed_3(backend: Backend) {
    run(
        backend,
        Config {
            seed: 0x5eed_0003,
            stream_buffer: Some(16),
            progress_notify_ms: Some(100),
        },
    )
    .await;
}

const OPS: usize = 400;
const WATCHERS: usize = 30;
const STREAMS: usize = 6;
/// Streams `0..SLOW_STREAMS` read slowly.
const SLOW_STREAMS: usize = 2;
const KEYS: [&str; 12] = [
    "a/0", "a/1", "a/2", "a/3", "a/4", "a/5", "b/0", "b/1", "b/2", "b/3", "b/4", "b/5",
];
/// Keys only short-lease puts write (other ops would detach them from their
/// lease before it expires); delete-ranges still cover them.
const LEASE_KEYS: [&str; 4] = ["a/x0", "a/x1", "b/x0", "b/x1"];
const SHORT_TTL: i64 = 1;
const LONG_TTL: i64 = 60;

struct Config {
    seed: u64,
    stream_buffer: Option<usize>,
    progress_notify_ms: Option<u64>,
}

/// One acknowledged write.
#[derive(Debug, Clone)]
enum Ack {
    /// A put, delete or txn; `changed` is what the response said (a delete
    /// that deleted nothing does not make a revision).
    Ops {
        ops: Vec<Op>,
        changed: bool,
    },
    Revoke(i64),
}

#[derive(Debug, Default)]
struct WriteLog {
    /// (revision, sequence number, ack), in acknowledgement order.
    acks: Vec<(i64, usize, Ack)>,
    compactions: Vec<i64>,
    short_leases: HashSet<i64>,
    revoked: usize,
    failed_puts: usize,
}

#[derive(Debug, Clone)]
struct Spec {
    stream: usize,
    id: i64,
    range: Range,
    start: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress: bool,
}

impl Spec {
    fn request(&self) -> WatchCreateRequest {
        WatchCreateRequest {
            start_revision: self.start,
            prev_kv: self.prev_kv,
            filters: filters(self.no_put, self.no_delete),
            watch_id: self.id,
            progress_notify: self.progress,
            ..self.range.create()
        }
    }

    fn wants(&self, event: &Event) -> bool {
        if is_put(event) {
            !self.no_put
        } else {
            !self.no_delete
        }
    }
}

struct StreamSlot {
    sender: mpsc::Sender<WatchRequest>,
    responses: Arc<Mutex<Vec<WatchResponse>>>,
    next_id: i64,
    progress_sent: usize,
}

fn event_rev(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

#[allow(clippy::too_many_lines)]
async fn run(backend: Backend, config: Config) {
    let started = Instant::now();
    let name = format!("{} seed {:#x}", backend.name(), config.seed);
    let opts = Opts {
        stream_buffer: config.stream_buffer,
        progress_notify_ms: config.progress_notify_ms,
        min_lease_ttl: Some(1),
        log_filter: Some("info,rollcall_server::watch=debug".to_owned()),
        ..Opts::default()
    };
    let server = Server::start(&backend, &opts).await;
    let mut client = server.client().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let truth_seen = Arc::new(AtomicI64::new(0));
    let mut readers = Vec::new();

    // The ground-truth watcher: every key, from revision 1, on its own stream.
    let truth_stream = WatchStream::open(&server.channel().await).await;
    truth_stream
        .send_create(WatchCreateRequest {
            start_revision: 1,
            watch_id: 1,
            ..Range::from_key("").create()
        })
        .await;
    let truth_responses: Arc<Mutex<Vec<WatchResponse>>> = Arc::default();
    readers.push(tokio::spawn(read(
        truth_stream,
        truth_responses.clone(),
        None,
        Some(truth_seen.clone()),
        stop_rx.clone(),
    )));

    let shared = server.channel().await;
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let slow = i < SLOW_STREAMS;
        let channel = if slow {
            server.small_window_channel().await
        } else {
            shared.clone()
        };
        let stream = WatchStream::open(&channel).await;
        let responses: Arc<Mutex<Vec<WatchResponse>>> = Arc::default();
        streams.push(StreamSlot {
            sender: stream.sender(),
            responses: responses.clone(),
            next_id: 1,
            progress_sent: 0,
        });
        let pace = slow.then(|| SplitMix64::new(config.seed.wrapping_add(i as u64)));
        readers.push(tokio::spawn(read(
            stream,
            responses,
            pace,
            None,
            stop_rx.clone(),
        )));
    }

    let head = Arc::new(AtomicI64::new(client.revision().await));
    let compacted = Arc::new(AtomicI64::new(0));
    let writer = tokio::spawn(write(
        client.clone(),
        config.seed,
        head.clone(),
        truth_seen.clone(),
        compacted.clone(),
    ));

    // Watchers at random moments, on random ranges and start revisions.
    let mut rng = SplitMix64::new(config.seed ^ 0x00ff_00ff);
    let mut specs: Vec<Spec> = Vec::new();
    let mut progress_requests = 0;
    for _ in 0..WATCHERS {
        tokio::time::sleep(Duration::from_millis(rng.range_inclusive(5, 80))).await;
        let stream = usize::try_from(rng.below(STREAMS as u64)).unwrap();
        let key = *rng.pick(&KEYS);
        let range = match rng.below(3) {
            0 => Range::key(key),
            1 => Range::prefix(rng.pick::<&str>(&["a/", "b/", ""])),
            _ => Range::from_key(key),
        };
        let now = head.load(Ordering::SeqCst);
        let start = match rng.below(10) {
            0..=3 => 0,
            4 => 1,
            // Exactly the compaction revision: the oldest one still allowed.
            5 => compacted.load(Ordering::SeqCst).max(1),
            _ => (now - i64::try_from(rng.below(40)).unwrap()).max(1),
        };
        let slot = &mut streams[stream];
        let spec = Spec {
            stream,
            id: slot.next_id,
            range,
            start,
            prev_kv: rng.chance(30),
            no_put: rng.chance(10),
            no_delete: rng.chance(10),
            progress: config.progress_notify_ms.is_some() && rng.chance(50),
        };
        slot.next_id += 1;
        send(
            &slot.sender,
            watch_request::RequestUnion::CreateRequest(spec.request()),
        )
        .await;
        specs.push(spec);
        if rng.chance(30) {
            let target = &mut streams[usize::try_from(rng.below(STREAMS as u64)).unwrap()];
            send(
                &target.sender,
                watch_request::RequestUnion::ProgressRequest(WatchProgressRequest {}),
            )
            .await;
            target.progress_sent += 1;
            progress_requests += 1;
        }
    }
    let log = writer.await.unwrap();

    // Quiescence: the writer revoked its remaining short leases (or they
    // expired); wait until the revision stays put.
    let mut last = client.revision().await;
    let mut stable = 0;
    let settle = Instant::now();
    while stable < 3 && settle.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = client.revision().await;
        if now == last {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
    }
    let final_rev = last;
    let waited = Instant::now();
    while truth_seen.load(Ordering::SeqCst) < final_rev
        && waited.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The ground truth.
    let truth = {
        let responses = truth_responses.lock().unwrap();
        for resp in responses.iter() {
            assert!(
                !resp.canceled,
                "{name}: the truth watcher was canceled: {resp:?}"
            );
            check_response(resp);
        }
        responses
            .iter()
            .flat_map(|r| r.events.iter().map(bare))
            .collect::<Vec<Event>>()
    };
    let (model, expiries) = replay(&name, &log, &truth, final_rev);
    let model_events = bare_all(&model.events);
    if truth != model_events {
        let first = truth
            .iter()
            .zip(&model_events)
            .position(|(t, m)| t != m)
            .unwrap_or(truth.len().min(model_events.len()));
        panic!(
            "{name}: the all-keys watcher disagrees with the acknowledged writes at event {first} ({} vs {} events):\n watcher {:?}\n model   {:?}",
            truth.len(),
            model_events.len(),
            show(&truth[first.saturating_sub(2)..(first + 3).min(truth.len())]),
            show(&model_events[first.saturating_sub(2)..(first + 3).min(model_events.len())]),
        );
    }

    // Wait until every watcher is complete or canceled, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: Vec<i64> = specs
            .iter()
            .filter(|spec| {
                let responses = streams[spec.stream].responses.lock().unwrap();
                let view = View::of(spec, &responses);
                match &view.created {
                    None => true,
                    Some(_) if view.canceled.is_some() => false,
                    Some(created) => {
                        // Complete once the last expected event arrived
                        // (counting alone would wait out the deadline for a
                        // watcher that lost an event).
                        let want = expected(spec, created, &model);
                        view.events.len() < want.len()
                            && view.events.last().map_or(0, event_rev)
                                < want.last().map_or(0, event_rev)
                    }
                }
            })
            .map(|spec| spec.id)
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    for reader in readers {
        reader.await.unwrap();
    }

    // Validate every watcher.
    let max_compaction = log.compactions.iter().copied().max().unwrap_or(0);
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for spec in &specs {
        let responses = streams[spec.stream].responses.lock().unwrap();
        let tolerate = is_etcd(&backend);
        if let Err(e) = validate(
            spec,
            &responses,
            &model,
            &log,
            max_compaction,
            tolerate,
            &mut stats,
        ) {
            failures.push(format!(
                "watcher {} on stream {}: {spec:?}\n  {e}",
                spec.id, spec.stream
            ));
        }
    }
    // rollcall's own claim (hub.rs `request_progress`): a WatchProgressRequest
    // is answered with a revision every watcher of the stream has been given
    // all events up to. etcd 3.4 answers with its current revision whatever
    // its watchers were sent, so against etcd violations are only counted.
    let mut etcd_progress_violations = Vec::new();
    for (i, slot) in streams.iter().enumerate() {
        let responses = slot.responses.lock().unwrap();
        // etcd answers every WatchProgressRequest.
        let answers = responses
            .iter()
            .filter(|r| r.watch_id == -1 && !r.created && !r.canceled && r.events.is_empty())
            .count();
        if answers != slot.progress_sent {
            failures.push(format!(
                "stream {i}: {} progress requests, {answers} answers",
                slot.progress_sent
            ));
        }
        let mine: Vec<&Spec> = specs.iter().filter(|s| s.stream == i).collect();
        if let Err(e) = validate_stream_progress(&mine, &responses, &model, &mut stats) {
            if is_etcd(&backend) {
                etcd_progress_violations.push(e);
            } else {
                failures.push(format!("stream {i}: {e}"));
            }
        }
    }
    if !etcd_progress_violations.is_empty() {
        eprintln!(
            "{name}: etcd answered progress requests ahead of its watchers: {etcd_progress_violations:?}"
        );
    }
    let victims = if is_etcd(&backend) {
        String::from("n/a")
    } else {
        server
            .log_text()
            .matches("slow watch stream: catching up from history")
            .count()
            .to_string()
    };
    eprintln!(
        "{name}: {} acked writes, final revision {final_rev}, {} compactions {:?}, {} revokes, {expiries} expiries, {} failed lease puts; {} watchers: {} complete, {} canceled by compaction, {} refused; {} periodic progress checked, {}/{progress_requests} progress-request answers checked ({} ahead of a compaction cancel); victim transitions {victims}; DELETEs lost to etcd-io/etcd#18089 (tolerated for etcd) {}; {:?}",
        log.acks.len(),
        log.compactions.len(),
        log.compactions,
        log.revoked,
        log.failed_puts,
        specs.len(),
        stats.complete,
        stats.compacted,
        stats.refused,
        stats.progress,
        stats.stream_progress,
        stats.progress_before_cancel,
        stats.lost_18089,
        started.elapsed(),
    );
    assert!(
        failures.is_empty(),
        "{name}: {} of {} watchers wrong:\n{}",
        failures.len(),
        specs.len(),
        failures.join("\n")
    );
}

async fn send(sender: &mpsc::Sender<WatchRequest>, request: watch_request::RequestUnion) {
    sender
        .send(WatchRequest {
            request_union: Some(request),
        })
        .await
        .expect("stream open");
}

/// Reads one stream into `out` until stopped; `pace` makes it a slow reader.
async fn read(
    mut stream: WatchStream,
    out: Arc<Mutex<Vec<WatchResponse>>>,
    mut pace: Option<SplitMix64>,
    seen: Option<Arc<AtomicI64>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let resp = tokio::select! {
            resp = stream.next_within(Duration::from_secs(3600)) => resp,
            _ = stop.changed() => return,
        };
        let Some(resp) = resp else { continue };
        if let Some(seen) = &seen {
            for event in &resp.events {
                seen.fetch_max(event_rev(event), Ordering::SeqCst);
            }
        }
        out.lock().unwrap().push(resp);
        if let Some(rng) = &mut pace {
            let mut ms = rng.range_inclusive(1, 4);
            // Now and then a long stall.
            if rng.below(1000) < 5 {
                ms += rng.range_inclusive(300, 800);
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

fn deleted_count(op: &ResponseOp) -> i64 {
    match &op.response {
        Some(response_op::Response::ResponseDeleteRange(d)) => d.deleted,
        _ => 0,
    }
}

/// The writer: `OPS` random operations, one at a time.
#[allow(clippy::too_many_lines)]
async fn write(
    mut client: Client,
    seed: u64,
    head: Arc<AtomicI64>,
    truth_seen: Arc<AtomicI64>,
    compacted: Arc<AtomicI64>,
) -> WriteLog {
    let mut rng = SplitMix64::new(seed);
    let mut log = WriteLog::default();
    let mut long_leases: Vec<i64> = Vec::new();
    let mut short_leases: Vec<i64> = Vec::new();
    let mut seq = 0;
    let mut ack = |log: &mut WriteLog, rev: i64, ack: Ack| {
        head.fetch_max(rev, Ordering::SeqCst);
        log.acks.push((rev, seq, ack));
        seq += 1;
    };
    for n in 0..OPS {
        // Values of up to 1 KiB, so slow streams fill their windows.
        let mut value = format!("v{n}.").into_bytes();
        value.resize(
            value.len() + usize::try_from(rng.below(1024)).unwrap(),
            b'x',
        );
        let value = Bytes::from(value);
        match rng.below(100) {
            0..=34 => {
                let key = *rng.pick(&KEYS);
                let lease = if !long_leases.is_empty() && rng.chance(15) {
                    *rng.pick(&long_leases)
                } else {
                    0
                };
                let rev = client.put_with(key, value.clone(), lease).await;
                let ops = vec![Op::Put {
                    key: b(key),
                    value,
                    lease,
                }];
                ack(&mut log, rev, Ack::Ops { ops, changed: true });
            }
            35..=46 => {
                let range = Range::key(rng.pick::<&str>(&KEYS));
                let (deleted, rev) = client.delete(&range).await;
                let ops = vec![Op::Delete(range)];
                ack(
                    &mut log,
                    rev,
                    Ack::Ops {
                        ops,
                        changed: deleted > 0,
                    },
                );
            }
            47..=51 => {
                let range = match rng.below(3) {
                    0 => Range::prefix("a/"),
                    1 => Range::prefix("b/"),
                    _ => Range::Span(b("a/3"), b("b/2")),
                };
                let (deleted, rev) = client.delete(&range).await;
                let ops = vec![Op::Delete(range)];
                ack(
                    &mut log,
                    rev,
                    Ack::Ops {
                        ops,
                        changed: deleted > 0,
                    },
                );
            }
            52..=71 => {
                let count = rng.range_inclusive(2, 3);
                let mut keys: Vec<&str> = Vec::new();
                while (keys.len() as u64) < count {
                    let key = *rng.pick(&KEYS);
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                let ops: Vec<Op> = keys
                    .iter()
                    .map(|key| {
                        if rng.chance(70) {
                            Op::Put {
                                key: b(key),
                                value: value.clone(),
                                lease: 0,
                            }
                        } else {
                            Op::Delete(Range::key(key))
                        }
                    })
                    .collect();
                let resp = client.txn(ops.iter().map(Op::request).collect()).await;
                let changed = ops.iter().any(|op| matches!(op, Op::Put { .. }))
                    || resp.responses.iter().any(|r| deleted_count(r) > 0);
                ack(
                    &mut log,
                    rev(resp.header.as_ref()),
                    Ack::Ops { ops, changed },
                );
            }
            72..=75 => {
                // Compact to an older revision, never past what the
                // ground-truth watcher has received.
                let now = head.load(Ordering::SeqCst);
                let floor = log.compactions.last().copied().unwrap_or(0);
                let target = (now - i64::try_from(rng.below(30)).unwrap())
                    .min(truth_seen.load(Ordering::SeqCst));
                if target > floor {
                    client.compact(target).await;
                    log.compactions.push(target);
                    compacted.store(target, Ordering::SeqCst);
                }
            }
            76..=81 if long_leases.len() < 4 => {
                let lease = client.grant(LONG_TTL).await;
                long_leases.push(lease);
                for _ in 0..rng.range_inclusive(1, 2) {
                    let key = *rng.pick(&KEYS);
                    let rev = client.put_with(key, value.clone(), lease).await;
                    let ops = vec![Op::Put {
                        key: b(key),
                        value: value.clone(),
                        lease,
                    }];
                    ack(&mut log, rev, Ack::Ops { ops, changed: true });
                }
            }
            82..=85 if !long_leases.is_empty() => {
                let i = usize::try_from(rng.below(long_leases.len() as u64)).unwrap();
                let lease = long_leases.swap_remove(i);
                let rev = client.revoke(lease).await;
                log.revoked += 1;
                ack(&mut log, rev, Ack::Revoke(lease));
            }
            86..=89 if short_leases.len() < 12 => {
                let lease = client.grant(SHORT_TTL).await;
                short_leases.push(lease);
                log.short_leases.insert(lease);
                for _ in 0..rng.range_inclusive(1, 2) {
                    let key = *rng.pick(&LEASE_KEYS);
                    if let Some(rev) = try_put(&mut client, key, &value, lease, &mut log).await {
                        let ops = vec![Op::Put {
                            key: b(key),
                            value: value.clone(),
                            lease,
                        }];
                        ack(&mut log, rev, Ack::Ops { ops, changed: true });
                    }
                }
            }
            _ => {
                // Attach a key to a short lease that may have expired.
                if !short_leases.is_empty() {
                    let lease = *rng.pick(&short_leases);
                    let key = *rng.pick(&LEASE_KEYS);
                    if let Some(rev) = try_put(&mut client, key, &value, lease, &mut log).await {
                        let ops = vec![Op::Put {
                            key: b(key),
                            value,
                            lease,
                        }];
                        ack(&mut log, rev, Ack::Ops { ops, changed: true });
                    }
                }
            }
        }
    }
    // Let the remaining short leases expire (TTL 1 s; etcd raises it to its
    // minimum of 2 s), so every run has expiries; revoke any that outlive the
    // bound, so the history ends here.
    let deadline = Instant::now() + Duration::from_secs(6);
    for lease in short_leases {
        loop {
            let ttl = client
                .lease
                .lease_time_to_live(LeaseTimeToLiveRequest {
                    id: lease,
                    keys: false,
                })
                .await
                .unwrap_or_else(|e| panic!("time to live of {lease}: {e:?}"))
                .into_inner()
                .ttl;
            if ttl == -1 {
                break;
            }
            if Instant::now() > deadline {
                match client
                    .lease
                    .lease_revoke(LeaseRevokeRequest { id: lease })
                    .await
                {
                    Ok(resp) => {
                        let rev = rev(resp.into_inner().header.as_ref());
                        log.revoked += 1;
                        ack(&mut log, rev, Ack::Revoke(lease));
                    }
                    Err(status) if status.code() == Code::NotFound => {}
                    Err(status) => panic!("revoke {lease}: {status:?}"),
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    log
}

/// A put with a lease that may have expired: `None` when the server says the
/// lease is gone.
async fn try_put(
    client: &mut Client,
    key: &str,
    value: &Bytes,
    lease: i64,
    log: &mut WriteLog,
) -> Option<i64> {
    let req = rollcall_proto::etcdserverpb::PutRequest {
        key: b(key),
        value: value.clone(),
        lease,
        ..Default::default()
    };
    match client.kv.put(req).await {
        Ok(resp) => Some(rev(resp.into_inner().header.as_ref())),
        Err(status) if status.code() == Code::NotFound => {
            log.failed_puts += 1;
            None
        }
        Err(status) => panic!("put {key} with lease {lease}: {status:?}"),
    }
}

/// Replays the acknowledged writes in revision order; a revision no write
/// explains must be a short lease's expiry, as seen by the truth watcher.
/// Returns the model and the number of expiries.
fn replay(name: &str, log: &WriteLog, truth: &[Event], final_rev: i64) -> (Model, usize) {
    let mut by_rev: BTreeMap<i64, Vec<(usize, Ack)>> = BTreeMap::new();
    for (rev, seq, ack) in &log.acks {
        by_rev.entry(*rev).or_default().push((*seq, ack.clone()));
    }
    let mut truth_by_rev: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for event in truth {
        truth_by_rev
            .entry(event_rev(event))
            .or_default()
            .push(event.clone());
    }
    let mut model = Model::default();
    let mut expiries = 0;
    let mut expired: HashSet<i64> = HashSet::new();
    for r in 2..=final_rev {
        let mut acks = by_rev.remove(&r).unwrap_or_default();
        acks.sort_by_key(|(seq, _)| *seq);
        let changes = |model: &Model, ack: &Ack| match ack {
            Ack::Ops { changed, .. } => *changed,
            Ack::Revoke(lease) => !model.keys_of_lease(*lease).is_empty(),
        };
        if !acks.iter().any(|(_, ack)| changes(&model, ack)) {
            // No acknowledged write made revision r: a lease expiry.
            let events = truth_by_rev.get(&r).unwrap_or_else(|| {
                panic!("{name}: revision {r}: no acknowledged write and no event of the all-keys watcher")
            });
            let first = events[0].kv.as_ref().unwrap();
            let lease = model.lease_of(&first.key).unwrap_or_else(|| {
                panic!(
                    "{name}: revision {r}: unexplained events {:?}",
                    show(events)
                )
            });
            assert!(
                log.short_leases.contains(&lease) && expired.insert(lease),
                "{name}: revision {r}: deletes of lease {lease}, not an unexpired short lease: {:?}",
                show(events)
            );
            model.revoke(r, lease);
            expiries += 1;
        }
        for (_, ack) in acks {
            let before = model.events.len();
            let changed = changes(&model, &ack);
            match &ack {
                Ack::Ops { ops, .. } => model.apply(r, ops),
                Ack::Revoke(lease) => model.revoke(r, *lease),
            }
            assert_eq!(
                model.events.len() > before,
                changed,
                "{name}: revision {r}: the model and the server disagree on whether {ack:?} changed anything"
            );
        }
        assert!(
            model.events.last().is_some_and(|e| event_rev(e) == r),
            "{name}: revision {r} has no events"
        );
    }
    assert!(
        by_rev.keys().all(|r| *r <= 1),
        "{name}: acknowledged revisions past the final revision {final_rev}: {:?}",
        by_rev.keys().collect::<Vec<_>>()
    );
    (model, expiries)
}

/// What one watcher received, read from its stream's responses.
struct View {
    created: Option<WatchResponse>,
    /// Events after creation.
    events: Vec<Event>,
    canceled: Option<WatchResponse>,
    /// (events received before it, revision) of each progress notification.
    progress: Vec<(usize, i64)>,
    /// Responses for this id before its creation, or after its cancel.
    stray: Vec<WatchResponse>,
}

impl View {
    fn of(spec: &Spec, responses: &[WatchResponse]) -> Self {
        let mut view = View {
            created: None,
            events: Vec::new(),
            canceled: None,
            progress: Vec::new(),
            stray: Vec::new(),
        };
        for resp in responses.iter().filter(|r| r.watch_id == spec.id) {
            if view.created.is_none() {
                if resp.created {
                    view.created = Some(resp.clone());
                    if resp.canceled {
                        view.canceled = Some(resp.clone());
                    }
                } else {
                    view.stray.push(resp.clone());
                }
            } else if view.canceled.is_some() || resp.created {
                view.stray.push(resp.clone());
            } else if resp.canceled {
                view.canceled = Some(resp.clone());
            } else if resp.events.is_empty() {
                view.progress
                    .push((view.events.len(), rev(resp.header.as_ref())));
            } else {
                view.events.extend(resp.events.iter().cloned());
            }
        }
        view
    }
}

fn effective_start(spec: &Spec, created: &WatchResponse) -> i64 {
    if spec.start > 0 {
        spec.start
    } else {
        rev(created.header.as_ref()) + 1
    }
}

fn expected(spec: &Spec, created: &WatchResponse, model: &Model) -> Vec<Event> {
    model
        .events_in(&spec.range, effective_start(spec, created))
        .into_iter()
        .filter(|e| spec.wants(e))
        .collect()
}

#[derive(Default)]
struct Stats {
    complete: usize,
    compacted: usize,
    refused: usize,
    progress: usize,
    stream_progress: usize,
    lost_18089: usize,
    progress_before_cancel: usize,
}

/// `tolerate_18089`: accept DELETE events at a compaction revision missing
/// from a watcher that read that revision from history, the known bug of
/// etcd 3.4.23 (etcd-io/etcd#18089). Only for etcd; rollcall must deliver
/// them.
fn validate(
    spec: &Spec,
    responses: &[WatchResponse],
    model: &Model,
    log: &WriteLog,
    max_compaction: i64,
    tolerate_18089: bool,
    stats: &mut Stats,
) -> Result<(), String> {
    for resp in responses.iter().filter(|r| r.watch_id == spec.id) {
        check_response(resp);
    }
    let view = View::of(spec, responses);
    let Some(created) = &view.created else {
        return Err("no created response".to_owned());
    };
    if !view.stray.is_empty() {
        return Err(format!(
            "responses before creation or after cancel: {:?}",
            view.stray
        ));
    }
    if created.canceled {
        // Refused at creation: acceptable only with a reason.
        if created.cancel_reason.is_empty() {
            return Err(format!("refused without a reason: {created:?}"));
        }
        stats.refused += 1;
        return Ok(());
    }
    let start = effective_start(spec, created);
    let want = expected(spec, created, model);
    let got = &view.events;
    let shown = || {
        format!(
            "start {start}\n  got  {:?}\n  want {:?}",
            show(got),
            show(&want)
        )
    };
    // prev_kv: as the model says, or absent when the revision before the
    // event was compacted by then.
    for event in got {
        let actual = &event.prev_kv;
        if !spec.prev_kv {
            if actual.is_some() {
                return Err(format!("prev_kv not asked for: {event:?}"));
            }
            continue;
        }
        let want_prev = model.prev_of(event);
        let may_lack = event_rev(event) - 1 < max_compaction;
        if *actual != want_prev && !(actual.is_none() && may_lack) {
            return Err(format!(
                "prev_kv of {:?} is {actual:?}, expected {want_prev:?}",
                show(std::slice::from_ref(event))
            ));
        }
    }
    let got_bare = bare_all(got);
    let mut want_bare = bare_all(&want);
    // DELETE events at compaction revisions that did not arrive although
    // later events did (or the watcher is complete): etcd-io/etcd#18089.
    let last_got = got.last().map_or(0, event_rev);
    let lost: Vec<Event> = want_bare
        .iter()
        .filter(|e| {
            !is_put(e)
                && log.compactions.contains(&event_rev(e))
                && !got_bare.contains(e)
                && (view.canceled.is_none() || event_rev(e) < last_got)
        })
        .cloned()
        .collect();
    if !lost.is_empty() {
        let without: Vec<Event> = want_bare
            .iter()
            .filter(|e| !lost.contains(e))
            .cloned()
            .collect();
        if !tolerate_18089 {
            return Err(format!(
                "lost DELETE event(s) {:?} at a compaction revision (etcd-io/etcd#18089): {}",
                show(&lost),
                shown()
            ));
        }
        stats.lost_18089 += lost.len();
        want_bare = without;
    }
    match &view.canceled {
        None => {
            if got_bare != want_bare {
                return Err(format!("wrong events: {}", shown()));
            }
            stats.complete += 1;
        }
        Some(canceled) => {
            if canceled.compact_revision == 0 {
                if canceled.cancel_reason.is_empty() {
                    return Err(format!("canceled without a reason: {canceled:?}"));
                }
                stats.refused += 1;
            } else {
                let compact = canceled.compact_revision;
                if !log.compactions.contains(&compact) {
                    return Err(format!(
                        "compact_revision {compact} is no compaction that happened ({:?})",
                        log.compactions
                    ));
                }
                if got_bare.len() > want_bare.len() || got_bare != want_bare[..got_bare.len()] {
                    return Err(format!(
                        "canceled at compaction {compact} after events that are not a prefix of the expected ones: {}",
                        shown()
                    ));
                }
                let next = got.last().map_or(start, |e| event_rev(e) + 1).max(start);
                if compact <= next {
                    return Err(format!(
                        "canceled by compaction {compact}, but it could resume at {next}: {}",
                        shown()
                    ));
                }
                stats.compacted += 1;
            }
        }
    }
    // A progress notification at P promises every event up to P.
    for (received, at) in &view.progress {
        let owed = want_bare.iter().filter(|e| event_rev(e) <= *at).count();
        if *received < owed {
            return Err(format!(
                "progress notification at revision {at} after {received} events, but {owed} events up to it exist: {}",
                shown()
            ));
        }
        stats.progress += 1;
    }
    Ok(())
}

/// Checks each answer to a WatchProgressRequest (watch id -1) on one stream:
/// every watcher created before it (and not canceled) has received every
/// event up to its revision.
fn validate_stream_progress(
    specs: &[&Spec],
    responses: &[WatchResponse],
    model: &Model,
    stats: &mut Stats,
) -> Result<(), String> {
    for (pos, resp) in responses.iter().enumerate() {
        let is_progress =
            resp.watch_id == -1 && !resp.created && !resp.canceled && resp.events.is_empty();
        if !is_progress {
            continue;
        }
        let at = rev(resp.header.as_ref());
        let before = &responses[..pos];
        for spec in specs {
            let view = View::of(spec, before);
            let Some(created) = &view.created else {
                continue;
            };
            if view.canceled.is_some() {
                continue;
            }
            let owed = expected(spec, created, model)
                .iter()
                .filter(|e| event_rev(e) <= at)
                .count();
            if view.events.len() < owed {
                // A watcher canceled by compaction may have its cancel
                // queued behind the progress answer: it is dead, so the
                // answer is not wrong about it; counted, not failed.
                let later = View::of(spec, responses);
                if later.canceled.is_some() {
                    stats.progress_before_cancel += 1;
                    continue;
                }
                return Err(format!(
                    "progress response at revision {at} (response {pos}) while watcher {} had {} of the {owed} events up to it (and later {})",
                    spec.id,
                    view.events.len(),
                    later.events.len()
                ));
            }
        }
        stats.stream_progress += 1;
    }
    Ok(())
}
