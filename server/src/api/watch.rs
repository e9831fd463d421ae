//! The Watch service: one bidirectional stream multiplexes many watchers.
//!
//! Per stream, a receive task turns create/cancel/progress requests into hub
//! calls, and a send task turns the stream's [`StreamMsg`] queue into
//! `WatchResponse`s: it fills headers, reads `prev_kv` when asked, and splits
//! large revisions when the watcher allows fragments.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use prost::Message;
use rollcall_proto::etcdserverpb::watch_create_request::FilterType;
use rollcall_proto::etcdserverpb::watch_server::Watch;
use rollcall_proto::etcdserverpb::{
    ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use rollcall_proto::mvccpb::Event;
use rollcall_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::header::HeaderFiller;
use super::shutdown::UntilStopped;
use crate::config::GRPC_OVERHEAD_BYTES;
use crate::mvcc::{KeyRange, Store};
use crate::watch::hub::CreateError;
use crate::watch::{StreamMsg, WatchHub, WatchSpec};

/// gRPC responses buffered between the send task and the transport.
const OUTBOUND_BUFFER: usize = 16;

pub(crate) struct WatchService {
    /// Turns true when the server stops: open streams then end.
    stop: tokio::sync::watch::Receiver<bool>,
    hub: Arc<WatchHub>,
    store: Store,
    header: HeaderFiller,
    /// Messages queued per stream before its watchers become victims.
    stream_buffer: usize,
    /// Responses larger than this are split when the watcher allows fragments.
    max_request_bytes: usize,
    next_stream: AtomicU64,
}

impl WatchService {
    pub(crate) fn new(
        hub: Arc<WatchHub>,
        store: Store,
        stream_buffer: usize,
        max_request_bytes: usize,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let header = HeaderFiller::new(store.clone());
        Self {
            stop,
            hub,
            store,
            header,
            stream_buffer,
            max_request_bytes,
            next_stream: AtomicU64::new(0),
        }
    }
}

type WatchStream = tonic::codegen::BoxStream<WatchResponse>;

#[tonic::async_trait]
impl Watch for WatchService {
    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (msg_tx, msg_rx) = mpsc::channel(self.stream_buffer.max(1));
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_BUFFER);
        let receiver = Receiver {
            hub: self.hub.clone(),
            store: self.store.clone(),
            stream,
            msg_tx,
            out_tx: out_tx.clone(),
            ids: HashMap::new(),
            next_auto_id: 0,
        };
        tokio::spawn(receiver.run(request.into_inner()));
        let sender = Sender {
            store: self.store.clone(),
            header: self.header.clone(),
            max_request_bytes: self.max_request_bytes,
            canceled: HashSet::new(),
        };
        tokio::spawn(sender.run(msg_rx, out_tx));
        let responses = UntilStopped::new(ReceiverStream::new(out_rx), self.stop.clone());
        Ok(Response::new(Box::pin(responses)))
    }
}

struct Receiver {
    hub: Arc<WatchHub>,
    store: Store,
    stream: u64,
    msg_tx: mpsc::Sender<StreamMsg>,
    out_tx: mpsc::Sender<Result<WatchResponse, Status>>,
    /// This stream's watch ids and their hub keys.
    ids: HashMap<i64, u64>,
    next_auto_id: i64,
}

impl Receiver {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>) {
        let mut half_closed = false;
        loop {
            let request = match inbound.next().await {
                Some(Ok(request)) => request,
                Some(Err(status)) => {
                    let _ = self.out_tx.send(Err(status)).await;
                    break;
                }
                None => {
                    half_closed = true;
                    break;
                }
            };
            let open = match request.request_union {
                Some(watch_request::RequestUnion::CreateRequest(create)) => {
                    self.create(create).await
                }
                Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                    self.cancel(cancel.watch_id).await
                }
                Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                    let progress = self.hub.progress_of(self.stream);
                    self.msg_tx.send(progress).await.is_ok()
                }
                None => true,
            };
            if !open {
                break;
            }
        }
        if half_closed {
            // A client that only closed its sending side still reads events,
            // as etcd allows: keep its watchers until it hangs up.
            self.out_tx.closed().await;
        }
        self.hub.close_stream(self.stream);
    }

    /// Cancels one of this stream's watchers (an unknown id is ignored, as
    /// etcd does; one the server already canceled, after a compaction, is
    /// answered too); false when the stream is gone.
    async fn cancel(&mut self, watch_id: i64) -> bool {
        let Some(key) = self.ids.remove(&watch_id) else {
            return true;
        };
        self.hub.cancel(key);
        let rev = self.store.current_rev();
        self.msg_tx
            .send(StreamMsg::Canceled {
                watcher: key,
                watch_id,
                rev,
                compact_rev: 0,
            })
            .await
            .is_ok()
    }

    /// Handles a create request; false when the stream is gone.
    async fn create(&mut self, req: WatchCreateRequest) -> bool {
        // As etcd: an empty key is the smallest key, "\0".
        let key = if req.key.is_empty() {
            Bytes::from_static(b"\0")
        } else {
            req.key.clone()
        };
        let range = KeyRange::new(&key, &req.range_end);
        let refuse = |reason: &str| StreamMsg::Refused {
            watch_id: -1,
            rev: self.store.current_rev(),
            reason: reason.to_string(),
        };
        if let KeyRange::Span {
            start,
            end: Some(end),
        } = &range
            && start >= end
        {
            return self
                .msg_tx
                .send(refuse("mvcc: watcher range is empty"))
                .await
                .is_ok();
        }
        let watch_id = if req.watch_id != 0 {
            if self.ids.contains_key(&req.watch_id) {
                return self
                    .msg_tx
                    .send(refuse(
                        "mvcc: duplicate watch ID provided on the WatchStream",
                    ))
                    .await
                    .is_ok();
            }
            req.watch_id
        } else {
            while self.ids.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id += 1;
            self.next_auto_id - 1
        };
        let spec = WatchSpec {
            stream: self.stream,
            watch_id,
            range,
            start_rev: req.start_revision,
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
            fragment: req.fragment,
            progress_notify: req.progress_notify,
        };
        let Ok(permit) = self.msg_tx.clone().reserve_owned().await else {
            return false;
        };
        match self.hub.create(spec, self.msg_tx.clone(), permit) {
            Ok(key) => {
                self.ids.insert(watch_id, key);
                true
            }
            Err(e @ CreateError::TooMany(_)) => {
                self.msg_tx.send(refuse(&e.to_string())).await.is_ok()
            }
        }
    }
}

struct Sender {
    store: Store,
    header: HeaderFiller,
    max_request_bytes: usize,
    /// Watchers already told they are canceled: anything queued for them
    /// afterwards (a catch-up step racing the cancel) is dropped.
    canceled: HashSet<u64>,
}

impl Sender {
    async fn run(
        mut self,
        mut msgs: mpsc::Receiver<StreamMsg>,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
    ) {
        while let Some(msg) = msgs.recv().await {
            for response in self.responses(msg) {
                if out.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        }
    }

    fn header(&self, rev: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader {
            revision: rev,
            ..Default::default()
        });
        self.header.fill(&mut header);
        header
    }

    fn responses(&mut self, msg: StreamMsg) -> Vec<WatchResponse> {
        match msg {
            StreamMsg::Created { watch_id, rev } => {
                vec![WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    created: true,
                    ..Default::default()
                }]
            }
            StreamMsg::Refused {
                watch_id,
                rev,
                reason,
            } => vec![WatchResponse {
                header: self.header(rev),
                watch_id,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..Default::default()
            }],
            StreamMsg::Canceled {
                watcher,
                watch_id,
                rev,
                compact_rev,
            } => {
                self.canceled.insert(watcher);
                vec![WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    canceled: true,
                    compact_revision: compact_rev,
                    ..Default::default()
                }]
            }
            StreamMsg::Progress { watch_id, rev } => {
                vec![WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    ..Default::default()
                }]
            }
            StreamMsg::Events {
                watcher,
                watch_id,
                rev,
                mut events,
                prev_kv,
                fragment,
            } => {
                if self.canceled.contains(&watcher) {
                    return Vec::new();
                }
                if prev_kv {
                    self.fill_prev_kvs(&mut events);
                }
                let whole = WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    events,
                    ..Default::default()
                };
                if fragment {
                    fragments(whole, self.max_request_bytes + GRPC_OVERHEAD_BYTES)
                } else {
                    vec![whole]
                }
            }
        }
    }

    /// The key-value before each event, as etcd reads it: at the revision
    /// just before the event; none for creations or when compacted.
    fn fill_prev_kvs(&self, events: &mut [Event]) {
        let _ = self.store.read(|view| {
            for event in events.iter_mut() {
                let Some(kv) = &event.kv else { continue };
                let created =
                    event.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
                if created {
                    continue;
                }
                let range = KeyRange::Single(kv.key.clone());
                if let Ok(mut found) = view.range_keys(&range, kv.mod_revision - 1, 0, false) {
                    event.prev_kv = found.kvs.pop();
                }
            }
            Ok(())
        });
    }
}

/// Splits a response as etcd's `sendFragments` does: left whole when it is
/// under `limit` or holds one event; otherwise each fragment takes events
/// until the next would reach `limit`, and all but the last are marked
/// `fragment`.
fn fragments(whole: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if whole.encoded_len() < limit || whole.events.len() < 2 {
        return vec![whole];
    }
    let WatchResponse {
        header,
        watch_id,
        events,
        ..
    } = whole;
    let base = WatchResponse {
        header,
        watch_id,
        fragment: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut current = base.clone();
    for event in events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= limit {
            let spill = current.events.pop();
            out.push(std::mem::replace(&mut current, base.clone()));
            current.events.extend(spill);
        }
    }
    current.fragment = false;
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_proto::mvccpb::KeyValue;

    #[test]
    fn fragments_keep_whole_events_and_mark_all_but_last() {
        let events: Vec<Event> = (0..10)
            .map(|i| Event {
                kv: Some(KeyValue {
                    key: Bytes::from(format!("k{i}")),
                    value: Bytes::from(vec![b'x'; 100]),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let whole = WatchResponse {
            watch_id: 3,
            events: events.clone(),
            ..Default::default()
        };
        let parts = fragments(whole.clone(), 350);
        assert!(parts.len() > 1);
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p.fragment && p.encoded_len() <= 350)
        );
        assert!(parts.last().is_some_and(|p| !p.fragment));
        let joined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
        assert_eq!(fragments(whole, 1 << 20).len(), 1);
    }
}
