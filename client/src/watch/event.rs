//! What a watcher yields: [`WatchBatch`]es of [`WatchEvent`]s.

use bytes::Bytes;
use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};

/// Whether an event set or deleted its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For a put, the key-value after it; for a delete, the key, and the
    /// delete's revision in `mod_revision`.
    pub kv: KeyValue,
    /// The key-value before the change, when the watch asked for `prev_kv`
    /// (none for a creation or when that revision is compacted).
    pub prev_kv: Option<KeyValue>,
}

impl WatchEvent {
    pub fn key(&self) -> &Bytes {
        &self.kv.key
    }

    pub fn value(&self) -> &Bytes {
        &self.kv.value
    }

    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }

    pub fn is_put(&self) -> bool {
        self.kind == EventKind::Put
    }

    pub fn is_delete(&self) -> bool {
        self.kind == EventKind::Delete
    }
}

impl From<Event> for WatchEvent {
    fn from(event: Event) -> Self {
        let kind = if event.r#type == EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        Self {
            kind,
            kv: event.kv.unwrap_or_default(),
            prev_kv: event.prev_kv,
        }
    }
}

/// What one watch response (fragments reassembled) delivered to a watcher:
/// the events of one or more whole revisions in revision order, or, with no
/// events, a progress notification.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchBatch {
    /// The response header's revision: the store revision when it was sent
    /// (for a progress notification, every event up to it was delivered).
    pub revision: i64,
    pub events: Vec<WatchEvent>,
}

impl WatchBatch {
    /// True for a progress notification (no events).
    pub fn is_progress(&self) -> bool {
        self.events.is_empty()
    }

    /// The revision of the last event, if any.
    pub fn last_revision(&self) -> Option<i64> {
        self.events.last().map(WatchEvent::revision)
    }
}
