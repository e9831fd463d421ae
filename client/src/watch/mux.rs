//! The watchers of one session and the protocol of one Watch stream, with no
//! I/O: the session task feeds it responses and stream breaks, and sends the
//! requests it returns. Kept apart so the tests can play any sequence.
//!
//! - Creates are answered in order with `created` (etcd clientv3 relies on
//!   the same), so the ids the server chooses are matched to watchers
//!   through a FIFO of the creates sent on the current stream.
//! - Each watcher remembers `next_rev`, the first revision it has not been
//!   given: the start revision asked for, then the created response's header
//!   revision + 1 for a watch "from now", then the last delivered event's
//!   revision + 1 (or a per-watcher progress notification's revision + 1).
//!   When the stream breaks every watcher is re-created from its `next_rev`,
//!   so nothing is skipped; events below it (which a server should not send)
//!   are dropped, so nothing is repeated.
//! - Fragments (`fragment: true`) are held until the last part arrives, so a
//!   batch always holds whole revisions; a break discards them, and the
//!   revision is sent again on the new stream.
//! - A stream-wide progress notification (watch id -1, the answer to a
//!   progress request) is passed to every watcher but moves no `next_rev`:
//!   etcd 3.4 sends it with the store's revision even for watchers still
//!   replaying history.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rollcall_proto::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use rollcall_proto::mvccpb::Event;
use tokio::sync::{mpsc, oneshot};

use super::event::{WatchBatch, WatchEvent};
use crate::error::WatchError;

/// Where a watcher's batches go.
pub(crate) type EventSender = mpsc::UnboundedSender<Result<WatchBatch, WatchError>>;
/// Told the created response's header revision, or why the create failed.
pub(crate) type CreatedSender = oneshot::Sender<Result<i64, WatchError>>;

/// The watch id of responses addressed to the whole stream.
const STREAM_WIDE: i64 = -1;

struct Entry {
    /// The create request as asked (its start revision as given).
    request: WatchCreateRequest,
    /// The first revision not delivered yet; 0 while unknown (a watch from
    /// now, not created yet).
    next_rev: i64,
    /// The server's id for it on the current stream, once created there.
    watch_id: Option<i64>,
    events: EventSender,
    /// Present until the first created response (or failure) is reported.
    created: Option<CreatedSender>,
}

impl Entry {
    /// Ends the watcher with `error`, through whichever channel its owner
    /// is waiting on.
    fn fail(mut self, error: WatchError) {
        match self.created.take() {
            Some(created) => {
                let _ = created.send(Err(error));
            }
            None => {
                let _ = self.events.send(Err(error));
            }
        }
    }

    fn create_request(&self) -> WatchRequest {
        let mut create = self.request.clone();
        if self.next_rev > 0 {
            create.start_revision = self.next_rev;
        }
        create.watch_id = 0;
        WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        }
    }
}

fn cancel_request(watch_id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id },
        )),
    }
}

/// Why the server ended a watcher, from a canceled response.
fn cancel_error(resp: &WatchResponse) -> WatchError {
    if resp.compact_revision > 0 {
        WatchError::Compacted {
            compact_revision: resp.compact_revision,
        }
    } else {
        WatchError::Canceled {
            reason: resp.cancel_reason.clone(),
        }
    }
}

fn event_revision(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Every watcher of a session, keyed by the session's own (local) ids.
#[derive(Default)]
pub(crate) struct Mux {
    entries: BTreeMap<u64, Entry>,
    /// Local ids of the creates sent on the current stream and not yet
    /// answered, in the order sent.
    pending: VecDeque<u64>,
    /// The current stream's watch ids.
    by_id: HashMap<i64, u64>,
    /// Events of fragmented responses, until the last fragment.
    fragments: HashMap<i64, Vec<Event>>,
    /// Whether a stream is open (requests returned are sent on it).
    up: bool,
}

impl Mux {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a watcher; returns its create request if a stream is open
    /// (otherwise it is created when one opens).
    pub(crate) fn add(
        &mut self,
        local: u64,
        request: WatchCreateRequest,
        events: EventSender,
        created: CreatedSender,
    ) -> Option<WatchRequest> {
        let entry = Entry {
            next_rev: request.start_revision.max(0),
            request,
            watch_id: None,
            events,
            created: Some(created),
        };
        let create = self.up.then(|| entry.create_request());
        if create.is_some() {
            self.pending.push_back(local);
        }
        self.entries.insert(local, entry);
        create
    }

    /// Removes a watcher its owner dropped; returns the cancel request to
    /// send if the server knows it. One still being created is canceled
    /// when its created response arrives.
    pub(crate) fn remove(&mut self, local: u64) -> Option<WatchRequest> {
        let entry = self.entries.remove(&local)?;
        let id = entry.watch_id?;
        self.by_id.remove(&id);
        self.fragments.remove(&id);
        self.up.then(|| cancel_request(id))
    }

    /// A new stream is open: the create requests of every watcher, in
    /// local id order, each from its `next_rev`.
    pub(crate) fn open(&mut self) -> Vec<WatchRequest> {
        self.reset();
        self.up = true;
        let mut creates = Vec::with_capacity(self.entries.len());
        for (&local, entry) in &self.entries {
            creates.push(entry.create_request());
            self.pending.push_back(local);
        }
        creates
    }

    /// The stream broke: forget everything about it (watchers stay, to be
    /// re-created on the next one).
    pub(crate) fn reset(&mut self) {
        self.up = false;
        self.pending.clear();
        self.by_id.clear();
        self.fragments.clear();
        for entry in self.entries.values_mut() {
            entry.watch_id = None;
        }
    }

    /// Ends every watcher with `error` (the stream is given up).
    pub(crate) fn fail_all(&mut self, error: &WatchError) {
        self.reset();
        for (_, entry) in std::mem::take(&mut self.entries) {
            entry.fail(error.clone());
        }
    }

    /// Handles one response; returns requests to send (cancels of watchers
    /// dropped while being created).
    pub(crate) fn on_response(&mut self, resp: WatchResponse) -> Vec<WatchRequest> {
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        if resp.created {
            return self.on_created(resp, revision);
        }
        let id = resp.watch_id;
        if resp.canceled {
            if let Some(local) = self.by_id.remove(&id) {
                self.fragments.remove(&id);
                if let Some(entry) = self.entries.remove(&local) {
                    entry.fail(cancel_error(&resp));
                }
            }
            return Vec::new();
        }
        if id == STREAM_WIDE && resp.events.is_empty() {
            for entry in self.entries.values().filter(|e| e.watch_id.is_some()) {
                let _ = entry.events.send(Ok(WatchBatch {
                    revision,
                    events: Vec::new(),
                }));
            }
            return Vec::new();
        }
        let Some(&local) = self.by_id.get(&id) else {
            return Vec::new();
        };
        if resp.fragment {
            self.fragments.entry(id).or_default().extend(resp.events);
            return Vec::new();
        }
        let mut events = self.fragments.remove(&id).unwrap_or_default();
        events.extend(resp.events);
        let Some(entry) = self.entries.get_mut(&local) else {
            return Vec::new();
        };
        if events.is_empty() {
            // This watcher's own progress notification: etcd sends it only
            // to watchers that have every event up to `revision`.
            entry.next_rev = entry.next_rev.max(revision + 1);
            let _ = entry.events.send(Ok(WatchBatch {
                revision,
                events: Vec::new(),
            }));
            return Vec::new();
        }
        let next_rev = entry.next_rev;
        events.retain(|e| event_revision(e) >= next_rev);
        let Some(last) = events.last() else {
            return Vec::new();
        };
        entry.next_rev = event_revision(last) + 1;
        let _ = entry.events.send(Ok(WatchBatch {
            revision,
            events: events.into_iter().map(WatchEvent::from).collect(),
        }));
        Vec::new()
    }

    fn on_created(&mut self, resp: WatchResponse, revision: i64) -> Vec<WatchRequest> {
        let Some(local) = self.pending.pop_front() else {
            return Vec::new();
        };
        let Some(entry) = self.entries.get_mut(&local) else {
            // Dropped while being created: cancel it now that it has an id.
            return if resp.canceled {
                Vec::new()
            } else {
                vec![cancel_request(resp.watch_id)]
            };
        };
        if resp.canceled {
            if let Some(entry) = self.entries.remove(&local) {
                entry.fail(cancel_error(&resp));
            }
            return Vec::new();
        }
        entry.watch_id = Some(resp.watch_id);
        if entry.next_rev == 0 {
            entry.next_rev = revision + 1;
        }
        if let Some(created) = entry.created.take() {
            let _ = created.send(Ok(revision));
        }
        self.by_id.insert(resp.watch_id, local);
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rollcall_proto::etcdserverpb::ResponseHeader;
    use rollcall_proto::mvccpb::KeyValue;
    use rollcall_proto::mvccpb::event::EventType;

    use super::*;

    type Events = mpsc::UnboundedReceiver<Result<WatchBatch, WatchError>>;
    type Created = oneshot::Receiver<Result<i64, WatchError>>;

    fn create(key: &'static [u8], start_revision: i64) -> WatchCreateRequest {
        WatchCreateRequest {
            key: Bytes::from_static(key),
            start_revision,
            ..WatchCreateRequest::default()
        }
    }

    fn add(mux: &mut Mux, local: u64, start: i64) -> (Option<WatchRequest>, Events, Created) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctx, crx) = oneshot::channel();
        (mux.add(local, create(b"k", start), tx, ctx), rx, crx)
    }

    fn start_of(req: &WatchRequest) -> Option<i64> {
        match &req.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => Some(c.start_revision),
            _ => None,
        }
    }

    fn cancel_of(req: &WatchRequest) -> Option<i64> {
        match &req.request_union {
            Some(watch_request::RequestUnion::CancelRequest(c)) => Some(c.watch_id),
            _ => None,
        }
    }

    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        })
    }

    fn created(watch_id: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            header: header(revision),
            watch_id,
            created: true,
            ..WatchResponse::default()
        }
    }

    fn put(revision: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: Bytes::from_static(b"k"),
                mod_revision: revision,
                ..KeyValue::default()
            }),
            prev_kv: None,
        }
    }

    fn events(watch_id: i64, revision: i64, revs: &[i64]) -> WatchResponse {
        WatchResponse {
            header: header(revision),
            watch_id,
            events: revs.iter().map(|&r| put(r)).collect(),
            ..WatchResponse::default()
        }
    }

    fn revisions(rx: &mut Events) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        while let Ok(Ok(batch)) = rx.try_recv() {
            out.push(batch.events.iter().map(WatchEvent::revision).collect());
        }
        out
    }

    #[test]
    fn creates_match_in_order_and_resume_after_the_last_event() {
        let mut mux = Mux::default();
        assert!(mux.open().is_empty());
        let (a_req, mut a, mut a_created) = add(&mut mux, 1, 0);
        let (b_req, mut b, _b_created) = add(&mut mux, 2, 5);
        assert_eq!(a_req.as_ref().and_then(start_of), Some(0));
        assert_eq!(b_req.as_ref().and_then(start_of), Some(5));
        mux.on_response(created(0, 10));
        mux.on_response(created(1, 10));
        assert_eq!(a_created.try_recv().ok().and_then(Result::ok), Some(10));
        mux.on_response(events(1, 10, &[5, 7]));
        mux.on_response(events(0, 12, &[12]));
        mux.on_response(events(1, 12, &[12]));
        assert_eq!(revisions(&mut a), [vec![12]]);
        assert_eq!(revisions(&mut b), [vec![5, 7], vec![12]]);
        // The stream breaks: both are re-created after what they saw.
        mux.reset();
        let resumed: Vec<_> = mux.open().iter().filter_map(start_of).collect();
        assert_eq!(resumed, [13, 13]);
    }

    #[test]
    fn a_watch_from_now_resumes_after_its_created_revision() {
        let mut mux = Mux::default();
        mux.open();
        let (_, _a, _c) = add(&mut mux, 1, 0);
        // Broken before `created`: still "from now".
        mux.reset();
        assert_eq!(
            mux.open().iter().filter_map(start_of).collect::<Vec<_>>(),
            [0]
        );
        mux.on_response(created(4, 20));
        mux.reset();
        assert_eq!(
            mux.open().iter().filter_map(start_of).collect::<Vec<_>>(),
            [21]
        );
    }

    #[test]
    fn fragments_are_joined_and_duplicates_dropped() {
        let mut mux = Mux::default();
        mux.open();
        let (_, mut a, _c) = add(&mut mux, 1, 3);
        mux.on_response(created(0, 9));
        let mut part = events(0, 9, &[3, 3]);
        part.fragment = true;
        mux.on_response(part.clone());
        mux.on_response(part);
        assert!(revisions(&mut a).is_empty());
        mux.on_response(events(0, 9, &[3, 4]));
        assert_eq!(revisions(&mut a), [vec![3, 3, 3, 3, 3, 4]]);
        // Replayed revisions (a server resending after a resume) are dropped.
        mux.on_response(events(0, 9, &[4, 5]));
        mux.on_response(events(0, 9, &[5]));
        assert_eq!(revisions(&mut a), [vec![5]]);
    }

    #[test]
    fn a_break_discards_partial_fragments() {
        let mut mux = Mux::default();
        mux.open();
        let (_, mut a, _c) = add(&mut mux, 1, 3);
        mux.on_response(created(0, 9));
        let mut part = events(0, 9, &[3]);
        part.fragment = true;
        mux.on_response(part);
        mux.reset();
        assert_eq!(
            mux.open().iter().filter_map(start_of).collect::<Vec<_>>(),
            [3]
        );
        mux.on_response(created(0, 9));
        mux.on_response(events(0, 9, &[3, 3]));
        assert_eq!(revisions(&mut a), [vec![3, 3]]);
    }

    #[test]
    fn compaction_and_refusal_end_watchers() {
        let mut mux = Mux::default();
        mux.open();
        let (_, mut a, _ac) = add(&mut mux, 1, 2);
        let (_, _b, mut b_created) = add(&mut mux, 2, 0);
        mux.on_response(created(0, 50));
        mux.on_response(WatchResponse {
            header: header(50),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: "mvcc: watcher range is empty".into(),
            ..WatchResponse::default()
        });
        assert!(matches!(
            b_created.try_recv(),
            Ok(Err(WatchError::Canceled { reason })) if reason.contains("empty")
        ));
        mux.on_response(WatchResponse {
            header: header(50),
            watch_id: 0,
            canceled: true,
            compact_revision: 30,
            ..WatchResponse::default()
        });
        assert!(matches!(
            a.try_recv(),
            Ok(Err(WatchError::Compacted {
                compact_revision: 30
            }))
        ));
        assert!(mux.is_empty());
    }

    #[test]
    fn progress_moves_only_the_watcher_it_names() {
        let mut mux = Mux::default();
        mux.open();
        let (_, mut a, _ac) = add(&mut mux, 1, 0);
        let (_, mut b, _bc) = add(&mut mux, 2, 0);
        mux.on_response(created(0, 10));
        mux.on_response(created(1, 10));
        // Stream-wide: both hear it, neither moves.
        mux.on_response(events(-1, 40, &[]));
        // Per watcher: b moves.
        mux.on_response(events(1, 30, &[]));
        assert_eq!(revisions(&mut a), [Vec::<i64>::new()]);
        assert_eq!(revisions(&mut b), [Vec::<i64>::new(), Vec::new()]);
        mux.reset();
        let resumed: Vec<_> = mux.open().iter().filter_map(start_of).collect();
        assert_eq!(resumed, [11, 31]);
    }

    #[test]
    fn dropped_watchers_are_canceled() {
        let mut mux = Mux::default();
        mux.open();
        let (_, _a, _ac) = add(&mut mux, 1, 0);
        let (_, _b, _bc) = add(&mut mux, 2, 0);
        mux.on_response(created(7, 1));
        assert_eq!(mux.remove(1).as_ref().and_then(cancel_of), Some(7));
        // b is dropped before its created response: canceled on arrival.
        assert!(mux.remove(2).is_none());
        let sent = mux.on_response(created(8, 1));
        assert_eq!(sent.iter().filter_map(cancel_of).collect::<Vec<_>>(), [8]);
        assert!(mux.is_empty());
        // Late responses for them are ignored.
        assert!(mux.on_response(events(7, 2, &[2])).is_empty());
        assert!(mux.open().is_empty());
    }

    #[test]
    fn fail_all_reaches_created_and_running_watchers() {
        let mut mux = Mux::default();
        mux.open();
        let (_, mut a, _ac) = add(&mut mux, 1, 0);
        mux.on_response(created(0, 1));
        let (_, _b, mut b_created) = add(&mut mux, 2, 0);
        mux.fail_all(&WatchError::Closed);
        assert!(matches!(a.try_recv(), Ok(Err(WatchError::Closed))));
        assert!(matches!(b_created.try_recv(), Ok(Err(WatchError::Closed))));
        assert!(mux.is_empty());
    }
}
