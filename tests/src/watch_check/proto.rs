//! Conversions from the wire types a watch stream yields, so a test can
//! record raw responses and check them afterwards.

use rollcall_proto::etcdserverpb::watch_create_request::FilterType;
use rollcall_proto::etcdserverpb::{WatchCreateRequest, WatchResponse as WireResponse};
use rollcall_proto::mvccpb::{self, event::EventType};

use super::{Event, EventKind, KeyRange, KeyValue, WatchRequest, WatchResponse};

/// The watch id of a response to a progress request.
const PROGRESS_ID: i64 = -1;

impl From<&mvccpb::KeyValue> for KeyValue {
    fn from(kv: &mvccpb::KeyValue) -> Self {
        Self {
            key: kv.key.to_vec(),
            value: kv.value.to_vec(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

impl From<&mvccpb::Event> for Event {
    fn from(e: &mvccpb::Event) -> Self {
        let kind = match EventType::try_from(e.r#type) {
            Ok(EventType::Put) => EventKind::Put,
            Ok(EventType::Delete) => EventKind::Delete,
            Err(_) => EventKind::Other(e.r#type),
        };
        Self {
            kind,
            // A missing kv is reported as an event on the empty key at
            // revision 0, which no ground truth contains.
            kv: e.kv.as_ref().map(KeyValue::from).unwrap_or_default(),
            prev_kv: e.prev_kv.as_ref().map(KeyValue::from),
        }
    }
}

impl From<&WireResponse> for WatchResponse {
    fn from(r: &WireResponse) -> Self {
        Self {
            header_revision: r.header.as_ref().map_or(0, |h| h.revision),
            created: r.created,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            events: r.events.iter().map(Event::from).collect(),
        }
    }
}

impl From<&WatchCreateRequest> for WatchRequest {
    fn from(c: &WatchCreateRequest) -> Self {
        Self {
            range: KeyRange {
                key: c.key.to_vec(),
                range_end: c.range_end.to_vec(),
            },
            start_revision: c.start_revision,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
        }
    }
}

impl WatchResponse {
    /// The responses of watch `watch_id` on a stream, with fragmented
    /// responses (`fragment: true` until the last piece) merged back into
    /// one, as the watch guarantees speak of whole responses. The answers to
    /// a progress request (watch id -1) speak for every watch of the stream,
    /// so they are included.
    #[must_use]
    pub fn from_stream(responses: &[WireResponse], watch_id: i64) -> Vec<Self> {
        let mut merged: Vec<Self> = Vec::new();
        let mut open_fragment = false;
        let ours = |r: &&WireResponse| {
            r.watch_id == watch_id || (r.watch_id == PROGRESS_ID && r.events.is_empty())
        };
        for r in responses.iter().filter(ours) {
            let piece = Self::from(r);
            match merged.last_mut() {
                Some(last) if open_fragment => {
                    last.events.extend(piece.events);
                    last.header_revision = piece.header_revision;
                }
                _ => merged.push(piece),
            }
            open_fragment = r.fragment;
        }
        merged
    }
}
