//! A watcher that follows a prefix through member failures as an etcd
//! client does: when its stream breaks it watches again on the next member
//! from the revision after the last event it received. Every stream is
//! recorded as one [`WatcherLog`], so `rollcall_tests::watch_check` can
//! check each (ordered, unique, no gap, exact resumption, same events as the
//! ground truth) and, across them, that no failover lost or repeated an
//! event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    WatchCreateRequest, WatchRequest as WireRequest, watch_request,
};
use rollcall_tests::grpc::{MAX_MESSAGE, prefix_end};
use rollcall_tests::watch_check::{GroundTruth, WatchRequest, WatchResponse, WatcherLog};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// Bound on opening a watch (the created response included).
const OPEN: Duration = Duration::from_secs(3);
/// How often a silent stream checks the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Streams one watcher opens at most (the loop's bound).
const MAX_STREAMS: usize = 200;

fn watch_client(endpoint: &str) -> WatchClient<Channel> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    WatchClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

fn create_request(prefix: &str, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: prefix.as_bytes().to_vec().into(),
        range_end: prefix_end(prefix),
        start_revision,
        prev_kv: true,
        ..WatchCreateRequest::default()
    }
}

/// One watch stream on `endpoint` from `start_revision`: the raw responses
/// until the stream breaks or `stop` is set, and the watch id. `None` if
/// the watch could not be created.
async fn one_stream(
    endpoint: &str,
    create: WatchCreateRequest,
    stop: &AtomicBool,
) -> Option<(i64, Vec<rollcall_proto::etcdserverpb::WatchResponse>)> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(WireRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    })
    .await
    .ok()?;
    let mut client = watch_client(endpoint);
    // grpc-go answers the call's headers with the first response, so the
    // create request is queued before the call is awaited.
    let opened = tokio::time::timeout(OPEN, client.watch(ReceiverStream::new(rx))).await;
    let mut stream = opened.ok()?.ok()?.into_inner();
    let mut raw = Vec::new();
    let mut watch_id = None;
    loop {
        match tokio::time::timeout(POLL, stream.message()).await {
            Ok(Ok(Some(resp))) => {
                if resp.created {
                    watch_id = Some(resp.watch_id);
                }
                raw.push(resp);
            }
            // Broken (killed member, lost connection) or closed.
            Ok(Ok(None) | Err(_)) => break,
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(_) => {}
        }
    }
    // Kept open until here: etcd ends a watch stream whose client half-closed.
    drop(tx);
    watch_id.map(|id| (id, raw))
}

/// Watches `prefix` (with `prev_kv`, from revision 1) starting on member
/// `first` until `stop` is set, moving to the next member whenever a stream
/// breaks; returns one log per stream that was created.
pub async fn follow(
    name: String,
    endpoints: Vec<String>,
    first: usize,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<WatcherLog> {
    let mut logs = Vec::new();
    let mut member = first;
    let mut next_revision = 1;
    for stream in 0..MAX_STREAMS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let create = create_request(prefix, next_revision);
        let request = WatchRequest::from(&create);
        if let Some((watch_id, raw)) = one_stream(&endpoints[member], create, &stop).await {
            let responses = WatchResponse::from_stream(&raw, watch_id);
            if let Some(last) = responses
                .iter()
                .flat_map(|r| r.events.iter())
                .map(|e| e.revision())
                .max()
            {
                next_revision = last + 1;
            }
            logs.push(WatcherLog {
                name: format!("{name} stream {stream} on member {member}"),
                request,
                responses,
            });
        }
        member = (member + 1) % endpoints.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    logs
}

/// Every event under `prefix` up to revision `through`, read with one
/// full-history watch on `endpoint`: the ground truth the watchers are
/// checked against.
pub async fn ground_truth(endpoint: &str, prefix: &str, through: i64) -> GroundTruth {
    let (tx, rx) = mpsc::channel(4);
    tx.send(WireRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create_request(
            prefix, 1,
        ))),
    })
    .await
    .unwrap();
    let mut client = watch_client(endpoint);
    let mut stream = tokio::time::timeout(OPEN, client.watch(ReceiverStream::new(rx)))
        .await
        .expect("ground-truth watch opens in time")
        .expect("ground-truth watch opens")
        .into_inner();
    let mut raw = Vec::new();
    let mut watch_id = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("ground truth delivered in time")
            .expect("ground-truth watch stream")
            .expect("ground-truth watch stays open");
        if resp.created {
            watch_id = resp.watch_id;
        }
        let reached = resp
            .events
            .iter()
            .any(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= through));
        raw.push(resp);
        if reached {
            break;
        }
    }
    drop(tx);
    GroundTruth::from_responses(&WatchResponse::from_stream(&raw, watch_id))
        .unwrap_or_else(|e| panic!("ground truth contradicts itself: {e}"))
}
