//! [`WatchStream`]: one bidirectional Watch stream whose every wait is
//! bounded, and the checks every event response must pass.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
    watch_request,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::grpc::{MAX_MESSAGE, rev};

/// Bound on any single wait for a watch response the test expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a stream must stay silent for "nothing more arrives".
pub const QUIET: Duration = Duration::from_millis(300);

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
    /// Opens a stream on `channel` (in the background, see the type docs).
    pub async fn open(channel: &Channel) -> Self {
        Self::open_with(
            WatchClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
    }

    /// Opens a stream with `client`.
    #[must_use]
    pub fn open_with(mut client: WatchClient<Channel>) -> Self {
        let (tx, rx) = mpsc::channel(64);
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
