//! Watched key ranges and watch events: a [`Range`] as the server
//! interprets `key` / `range_end`, create-request filters, and the events of
//! watch responses picked, stripped and rendered for assertions.

use bytes::Bytes;
use rollcall_proto::etcdserverpb::watch_create_request::FilterType;
use rollcall_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use rollcall_proto::mvccpb::Event;
use rollcall_proto::mvccpb::event::EventType;

use crate::grpc::{b, prefix_end, s};

/// A watched key range, as the server interprets `key` / `range_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    Key(Bytes),
    Prefix(Bytes),
    FromKey(Bytes),
    /// `[start, end)`.
    Span(Bytes, Bytes),
}

impl Range {
    pub fn key(k: &str) -> Self {
        Self::Key(b(k))
    }
    pub fn prefix(p: &str) -> Self {
        Self::Prefix(b(p))
    }
    pub fn from_key(k: &str) -> Self {
        Self::FromKey(b(k))
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Range::Key(k) => k.as_ref() == key,
            Range::Prefix(p) => key.starts_with(p),
            Range::FromKey(k) => key >= k.as_ref(),
            Range::Span(start, end) => key >= start.as_ref() && key < end.as_ref(),
        }
    }

    /// `(key, range_end)` for a request.
    pub fn wire(&self) -> (Bytes, Bytes) {
        match self {
            Range::Key(k) => (k.clone(), Bytes::new()),
            Range::Prefix(p) => (p.clone(), prefix_end(p)),
            Range::FromKey(k) => (k.clone(), Bytes::from_static(b"\0")),
            Range::Span(start, end) => (start.clone(), end.clone()),
        }
    }

    pub fn create(&self) -> WatchCreateRequest {
        let (key, range_end) = self.wire();
        WatchCreateRequest {
            key,
            range_end,
            ..WatchCreateRequest::default()
        }
    }
}

/// The filter values of a create request.
pub fn filters(no_put: bool, no_delete: bool) -> Vec<i32> {
    let mut f = Vec::new();
    if no_put {
        f.push(FilterType::Noput as i32);
    }
    if no_delete {
        f.push(FilterType::Nodelete as i32);
    }
    f
}

/// The events of `responses` for `watch_id`, in arrival order.
pub fn events_of(responses: &[WatchResponse], watch_id: i64) -> Vec<Event> {
    responses
        .iter()
        .filter(|r| r.watch_id == watch_id)
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

/// An event without its prev_kv, for comparisons of the event itself.
pub fn bare(event: &Event) -> Event {
    Event {
        prev_kv: None,
        ..event.clone()
    }
}

pub fn bare_all(events: &[Event]) -> Vec<Event> {
    events.iter().map(bare).collect()
}

/// A compact, readable rendering of events for assertion messages.
pub fn show(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.clone().unwrap_or_default();
            let kind = if e.r#type == EventType::Put as i32 {
                "PUT"
            } else {
                "DEL"
            };
            let value = if kv.value.len() > 16 {
                format!("<{} bytes>", kv.value.len())
            } else {
                s(&kv.value)
            };
            format!(
                "{kind} {}={} @{} (c{} v{} l{}){}",
                s(&kv.key),
                value,
                kv.mod_revision,
                kv.create_revision,
                kv.version,
                kv.lease,
                e.prev_kv
                    .as_ref()
                    .map(|p| format!(" prev@{}", p.mod_revision))
                    .unwrap_or_default()
            )
        })
        .collect()
}

pub fn is_put(event: &Event) -> bool {
    event.r#type == EventType::Put as i32
}
