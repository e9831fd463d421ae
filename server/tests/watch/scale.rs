//! Many watchers and streams, revision atomicity of responses, fragments,
//! and a reader that stops reading during a write burst.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use rollcall_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use rollcall_proto::mvccpb::Event;
use rollcall_tests::Backend;

use crate::support::{
    Op, Opts, Range, Server, WAIT, WatchStream, Writer, b, bare_all, check_response,
    concurrent_puts, events_of, is_etcd, rev, show,
};

backend_tests!(
    fragment_split_as_etcd,
    many_watchers_one_stream,
    many_streams,
    txn_revision_in_one_response,
    fragment_large_revision,
    slow_reader_catches_up,
    progress_request_on_full_stream,
);

#[track_caller]
fn assert_events(got: &[Event], want: &[Event], what: &str) {
    if bare_all(got) != bare_all(want) {
        let got = show(got);
        let want = show(want);
        let first = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} events, {} expected; first difference at index {first}:\n got  {:?}\n want {:?}",
            got.len(),
            want.len(),
            got.get(first.saturating_sub(2)..(first + 3).min(got.len())),
            want.get(first.saturating_sub(2)..(first + 3).min(want.len())),
        );
    }
}

async fn many_watchers_one_stream(backend: Backend) {
    const N: usize = 200;
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    let channel = server.channel().await;
    let mut stream = WatchStream::open(&channel).await;
    let ranges: Vec<Range> = (0..N)
        .map(|i| Range::prefix(&format!("m/{i}/")))
        .chain([Range::prefix("m/")])
        .collect();
    let mut start = 0;
    for (id, range) in (0..).zip(&ranges) {
        let created = stream.create(range.create()).await;
        assert_eq!(created.watch_id, id);
        start = rev(created.header.as_ref()) + 1;
    }
    let puts: Vec<(String, Bytes)> = (0..N)
        .flat_map(|i| [0, 1].map(|j| (format!("m/{i}/{j}"), b(&format!("v{i}.{j}")))))
        .collect();
    for (rev, op) in concurrent_puts(&w.client, puts, 8).await {
        w.model.apply(rev, &[op]);
    }
    let want: Vec<Vec<Event>> = ranges.iter().map(|r| w.model.events_in(r, start)).collect();
    let got = stream
        .collect(&(0..).zip(want.iter().map(Vec::len)).collect())
        .await;
    for (id, (range, want)) in (0..).zip(ranges.iter().zip(&want)) {
        assert_events(&events_of(&got, id), want, &format!("{range:?}"));
    }
}

async fn many_streams(backend: Backend) {
    const STREAMS: usize = 20;
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.channel().await);
    }
    let mut streams = Vec::new();
    let mut start = 0;
    for i in 0..STREAMS {
        let mut stream = WatchStream::open(&channels[i % channels.len()]).await;
        stream.create(Range::prefix("ms/").create()).await;
        let created = stream.create(Range::key(&format!("ms/{i}")).create()).await;
        start = rev(created.header.as_ref()) + 1;
        streams.push(stream);
    }
    let puts: Vec<(String, Bytes)> = (0..2 * STREAMS)
        .map(|i| (format!("ms/{}", i % STREAMS), b(&format!("v{i}"))))
        .collect();
    for (rev, op) in concurrent_puts(&w.client, puts, 4).await {
        w.model.apply(rev, &[op]);
    }
    w.delete(Range::prefix("ms/")).await;

    let mut readers = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let all = w.model.events_in(&Range::prefix("ms/"), start);
        let mine = w.model.events_in(&Range::key(&format!("ms/{i}")), start);
        readers.push(tokio::spawn(async move {
            let want = BTreeMap::from([(0, all.len()), (1, mine.len())]);
            let got = stream.collect(&want).await;
            assert_events(&events_of(&got, 0), &all, &format!("stream {i}, prefix"));
            assert_events(&events_of(&got, 1), &mine, &format!("stream {i}, own key"));
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
}

async fn txn_revision_in_one_response(backend: Backend) {
    const TASKS: usize = 4;
    const TXNS: usize = 15;
    let server = Server::start(&backend, &Opts::default()).await;
    let client = server.client().await;
    let channel = server.channel().await;
    let mut stream = WatchStream::open(&channel).await;
    let created = stream.create(Range::prefix("t/").create()).await;
    let start = rev(created.header.as_ref()) + 1;

    // Concurrent txns of 2 to 5 ops each, so the server may commit several
    // in one batch.
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let mut client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for n in 0..TXNS {
                let ops: Vec<Op> = (0..2 + (task + n) % 4)
                    .map(|k| {
                        if (task + n + k) % 5 == 4 {
                            Op::Delete(Range::key(&format!("t/{task}/{k}")))
                        } else {
                            Op::put(&format!("t/{task}/{k}"), &format!("{n}"))
                        }
                    })
                    .collect();
                let resp = client.txn(ops.iter().map(Op::request).collect()).await;
                done.push((rev(resp.header.as_ref()), ops));
            }
            done
        }));
    }
    let mut done = Vec::new();
    for handle in handles {
        done.extend(handle.await.unwrap());
    }
    done.sort_by_key(|(rev, _)| *rev);
    let mut w = Writer::new(client);
    for (rev, ops) in &done {
        w.model.apply(*rev, ops);
    }
    let want = w.model.events_in(&Range::prefix("t/"), start);
    let got = stream.collect(&BTreeMap::from([(0, want.len())])).await;
    assert_events(&events_of(&got, 0), &want, "all txn events");

    // No revision's events are split across responses.
    let mut seen = BTreeSet::new();
    for resp in &got {
        let revs: BTreeSet<i64> = resp
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        for r in revs {
            assert!(seen.insert(r), "revision {r} split across responses");
        }
    }
}

/// `--max-request-bytes` default (etcd's and rollcall's).
const LIMIT: usize = 1536 * 1024;
/// etcd 3.4's watch server splits at `--max-request-bytes` plus this gRPC
/// overhead allowance (`v3rpc.grpcOverheadBytes`), not at the request limit.
const GRPC_OVERHEAD: usize = 512 * 1024;

/// etcd 3.4's `sendFragments`, replayed on the whole response: the number of
/// events in each fragment it sends.
fn etcd_split(whole: &WatchResponse, limit: usize) -> Vec<usize> {
    if whole.encoded_len() < limit || whole.events.len() < 2 {
        return vec![whole.events.len()];
    }
    let base = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..whole.clone()
    };
    let mut out = Vec::new();
    let mut idx = 0;
    loop {
        let mut cur = base.clone();
        for event in &whole.events[idx..] {
            cur.events.push(event.clone());
            if cur.events.len() > 1 && cur.encoded_len() >= limit {
                cur.events.pop();
                break;
            }
            idx += 1;
        }
        if idx == whole.events.len() {
            cur.fragment = false;
        }
        out.push(cur.events.len());
        if !cur.fragment {
            return out;
        }
    }
}

/// The fragments of one large revision are exactly those etcd 3.4 sends.
async fn fragment_split_as_etcd(backend: Backend) {
    const VALUE: usize = 300 * 1024;
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    for i in 0..8 {
        w.put_with(&format!("big/{i}"), Bytes::from(vec![b'a' + i; VALUE]), 0)
            .await;
    }
    let channel = server.channel().await;
    let mut stream = WatchStream::open(&channel).await;
    let range = Range::prefix("big/");
    stream
        .create(WatchCreateRequest {
            prev_kv: true,
            fragment: true,
            ..range.create()
        })
        .await;
    w.delete(range).await;
    let got = stream.collect(&BTreeMap::from([(0, 8)])).await;
    let whole = WatchResponse {
        events: got.iter().flat_map(|r| r.events.clone()).collect(),
        fragment: false,
        ..got[0].clone()
    };
    let counts: Vec<usize> = got.iter().map(|r| r.events.len()).collect();
    assert_eq!(
        counts,
        etcd_split(&whole, LIMIT + GRPC_OVERHEAD),
        "events per fragment of a {}-byte response (etcd splits at --max-request-bytes + 512 KiB)",
        whole.encoded_len()
    );
}

/// etcd's rule: a response larger than the limit is split when the watcher
/// allows fragments; every part but the last is marked `fragment`.
async fn fragment_large_revision(backend: Backend) {
    const VALUE: usize = 300 * 1024;
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    for i in 0..8 {
        let value = Bytes::from(vec![b'a' + i; VALUE]);
        w.put_with(&format!("big/{i}"), value, 0).await;
    }
    let channel = server.channel().await;
    let mut fragmented = WatchStream::open(&channel).await;
    let mut whole = WatchStream::open(&channel).await;
    let mut small = WatchStream::open(&channel).await;
    let range = Range::prefix("big/");
    let created = fragmented
        .create(WatchCreateRequest {
            prev_kv: true,
            fragment: true,
            ..range.create()
        })
        .await;
    let start = rev(created.header.as_ref()) + 1;
    whole
        .create(WatchCreateRequest {
            prev_kv: true,
            ..range.create()
        })
        .await;
    small
        .create(WatchCreateRequest {
            fragment: true,
            ..range.create()
        })
        .await;

    // Revision A: a txn overwriting 4 keys (1.2 MiB of request); with
    // prev_kv its events carry 2.4 MiB. Revision B: deleting all 8 keys;
    // with prev_kv 2.4 MiB again.
    let ops: Vec<Op> = (0..4u8)
        .map(|i| Op::Put {
            key: b(&format!("big/{i}")),
            value: Bytes::from(vec![b'A' + i; VALUE]),
            lease: 0,
        })
        .collect();
    let rev_a = w.txn(ops).await;
    let rev_b = w.delete(range.clone()).await;
    let want = w.model.events_in(&range, start);
    assert_eq!(want.len(), 12);

    let got = fragmented.collect(&BTreeMap::from([(0, 12)])).await;
    let events = events_of(&got, 0);
    assert_events(&events, &want, "fragmented watcher");
    for event in &events {
        assert_eq!(event.prev_kv, w.model.prev_of(event), "prev_kv");
    }
    let mut parts: BTreeMap<i64, Vec<&WatchResponse>> = BTreeMap::new();
    for resp in &got {
        let revs: BTreeSet<i64> = resp
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert_eq!(revs.len(), 1, "one revision per response here");
        parts.entry(*revs.first().unwrap()).or_default().push(resp);
    }
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [rev_a, rev_b]);
    let mut sizes = Vec::new();
    for (r, responses) in &parts {
        let flags: Vec<bool> = responses.iter().map(|p| p.fragment).collect();
        let counts: Vec<usize> = responses.iter().map(|p| p.events.len()).collect();
        sizes.push((
            *r,
            counts.clone(),
            responses
                .iter()
                .map(|p| p.encoded_len())
                .collect::<Vec<_>>(),
        ));
        assert!(
            responses.len() > 1,
            "revision {r} not fragmented: {counts:?}"
        );
        let mut want_flags = vec![true; responses.len()];
        *want_flags.last_mut().unwrap() = false;
        assert_eq!(flags, want_flags, "fragment flags of revision {r}");
        for p in responses {
            assert!(
                p.encoded_len() <= LIMIT + GRPC_OVERHEAD || p.events.len() == 1,
                "a fragment of {} bytes",
                p.encoded_len()
            );
        }
    }
    eprintln!(
        "{}: fragment sizes (events per response) {sizes:?}",
        backend.name()
    );

    // Without `fragment`, each revision arrives whole.
    let got = whole.collect(&BTreeMap::from([(0, 12)])).await;
    assert_events(&events_of(&got, 0), &want, "unfragmented watcher");
    assert!(got.iter().all(|r| !r.fragment), "{:?}", got.len());
    assert_eq!(
        got.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
        [4, 8]
    );
    // Small responses are not split even when fragments are allowed.
    let got = small.collect(&BTreeMap::from([(0, 12)])).await;
    assert_events(&events_of(&got, 0), &want, "small watcher");
    assert_eq!(
        got.iter()
            .map(|r| (r.events.len(), r.fragment))
            .collect::<Vec<_>>(),
        [(4, false), (8, false)]
    );
}

/// A stream that is not read while 3000 puts of 1 KiB happen must later
/// deliver every revision exactly once, in order; a second stream read
/// promptly must not be held back meanwhile.
async fn slow_reader_catches_up(backend: Backend) {
    const PUTS: usize = 3000;
    let opts = Opts {
        stream_buffer: Some(8),
        log_filter: Some("info,rollcall_server::watch=debug".to_owned()),
        ..Opts::default()
    };
    let server = Server::start(&backend, &opts).await;
    let mut w = Writer::new(server.client().await);
    let range = Range::prefix("s/");

    // The slow stream has its own connection with minimal HTTP/2 windows,
    // so the server feels its back-pressure quickly.
    let slow_channel = server.small_window_channel().await;
    let mut slow = WatchStream::open(&slow_channel).await;
    let created = slow.create(range.create()).await;
    let start = rev(created.header.as_ref()) + 1;

    let fast_channel = server.channel().await;
    let mut fast = WatchStream::open(&fast_channel).await;
    let created = fast.create(range.create()).await;
    assert_eq!(rev(created.header.as_ref()) + 1, start);
    let received: Arc<Mutex<Vec<Event>>> = Arc::default();
    let fast_events = received.clone();
    let (_fast_tx, mut fast_rx) = fast.split().await;
    let fast_reader = tokio::spawn(async move {
        while let Ok(Some(resp)) = fast_rx.message().await {
            check_response(&resp);
            assert!(!resp.canceled, "fast watcher canceled: {resp:?}");
            fast_events.lock().unwrap().extend(resp.events);
        }
    });

    let burst = Instant::now();
    let puts: Vec<(String, Bytes)> = (0..PUTS)
        .map(|i| {
            let mut value = format!("{i:06}").into_bytes();
            value.resize(1024, b'.');
            (format!("s/{:03}", i % 97), Bytes::from(value))
        })
        .collect();
    for (rev, op) in concurrent_puts(&w.client, puts, 8).await {
        w.model.apply(rev, &[op]);
    }
    let burst = burst.elapsed();
    let want = w.model.events_in(&range, start);
    assert_eq!(want.len(), PUTS);

    // The prompt reader has everything shortly after the burst, while the
    // slow stream is still unread.
    let at_end = received.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().len() < PUTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fast_got = received.lock().unwrap().clone();
    assert_events(&fast_got, &want, "prompt reader");
    eprintln!(
        "{}: burst of {PUTS} puts took {burst:?}; the prompt reader had {at_end} events when it ended",
        backend.name()
    );

    // Now read the slow stream: every revision exactly once, in order.
    let read = Instant::now();
    let got = tokio::time::timeout(WAIT * 3, slow.collect(&BTreeMap::from([(0, PUTS)])))
        .await
        .expect("slow stream drained in time");
    assert_events(&events_of(&got, 0), &want, "slow reader");
    eprintln!(
        "{}: slow stream delivered {PUTS} events in {} responses in {:?}",
        backend.name(),
        got.len(),
        read.elapsed()
    );
    if !is_etcd(&backend) {
        assert!(
            server.log_contains("slow watch stream: catching up from history"),
            "the slow stream's watcher never became a victim: the test did not exercise catch-up"
        );
    }
    fast_reader.abort();
}

/// A WatchProgressRequest on a stream whose client is not reading (its queue
/// full) is still answered once the client reads: etcd queues the answer
/// (it blocks the stream's receive loop rather than drop it).
async fn progress_request_on_full_stream(backend: Backend) {
    const PUTS: usize = 3000;
    let opts = Opts {
        stream_buffer: Some(8),
        log_filter: Some("info,rollcall_server::watch=debug".to_owned()),
        ..Opts::default()
    };
    let server = Server::start(&backend, &opts).await;
    let mut w = Writer::new(server.client().await);
    let slow_channel = server.small_window_channel().await;
    let mut slow = WatchStream::open(&slow_channel).await;
    let range = Range::prefix("q/");
    // Many watchers, so that while the client does not read, more of them
    // wait to send than the stream's queue holds.
    const WATCHERS: usize = 16;
    let mut start = 0;
    for _ in 0..WATCHERS {
        let created = slow.create(range.create()).await;
        start = rev(created.header.as_ref()) + 1;
    }
    let puts: Vec<(String, Bytes)> = (0..PUTS)
        .map(|i| (format!("q/{}", i % 10), Bytes::from(vec![b'v'; 1024])))
        .collect();
    for (rev, op) in concurrent_puts(&w.client, puts, 8).await {
        w.model.apply(rev, &[op]);
    }
    if !is_etcd(&backend) {
        assert!(
            server.log_contains("slow watch stream: catching up from history"),
            "the stream never filled up: the test did not test a full stream"
        );
    }
    slow.request_progress().await;
    let want = w.model.events_in(&range, start);
    let mut events: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    let mut progress = Vec::new();
    let deadline = Instant::now() + WAIT;
    let complete = |events: &BTreeMap<i64, Vec<Event>>| {
        events.len() == WATCHERS && events.values().all(|e| e.len() >= want.len())
    };
    while (!complete(&events) || progress.is_empty()) && Instant::now() < deadline {
        let Some(resp) = slow.next_within(Duration::from_secs(2)).await else {
            break;
        };
        if resp.events.is_empty() {
            if resp.watch_id == -1 {
                progress.push(rev(resp.header.as_ref()));
            }
        } else {
            events.entry(resp.watch_id).or_default().extend(resp.events);
        }
    }
    for (id, got) in &events {
        assert_events(got, &want, &format!("watcher {id}"));
    }
    assert_eq!(events.len(), WATCHERS);
    assert_eq!(
        progress.len(),
        1,
        "answers to one WatchProgressRequest sent while the stream was full"
    );
}
