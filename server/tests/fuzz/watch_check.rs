//! What a watch stream's answers must satisfy, whatever its requests: each
//! create is answered once, in order; events belong to a watcher that was
//! created, fall in its key range, at or after its start revision, pass its
//! filters, never go back in revision, and are not newer than the response
//! header.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;
use rollcall_proto::etcdserverpb::watch_create_request::FilterType;
use rollcall_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use rollcall_proto::mvccpb::event::EventType;

struct Watcher {
    create: WatchCreateRequest,
    /// The newest event revision delivered so far.
    last: i64,
}

impl Watcher {
    fn covers(&self, key: &[u8]) -> bool {
        let start: &[u8] = if self.create.key.is_empty() {
            b"\0"
        } else {
            &self.create.key
        };
        match self.create.range_end.as_ref() {
            b"" => key == start,
            b"\0" => key >= start,
            end => start <= key && key < end,
        }
    }

    fn filters(&self, kind: i32) -> bool {
        let filter = if kind == EventType::Put as i32 {
            FilterType::Noput
        } else {
            FilterType::Nodelete
        };
        self.create.filters.contains(&(filter as i32))
    }
}

/// Checks `answers` to a stream whose create requests were `creates`.
pub fn check(creates: &[WatchCreateRequest], answers: &[Bytes]) -> Result<(), String> {
    let mut pending = creates.iter();
    let mut watchers: HashMap<i64, Watcher> = HashMap::new();
    for bytes in answers {
        let answer = WatchResponse::decode(bytes.clone()).map_err(|e| e.to_string())?;
        let header_rev = answer.header.as_ref().map_or(0, |h| h.revision);
        if answer.created {
            let create = pending
                .next()
                .ok_or("more created answers than create requests")?;
            if !answer.canceled {
                watchers.insert(
                    answer.watch_id,
                    Watcher {
                        create: create.clone(),
                        last: 0,
                    },
                );
            }
            continue;
        }
        if answer.events.is_empty() {
            continue;
        }
        let watcher = watchers
            .get_mut(&answer.watch_id)
            .ok_or_else(|| format!("events for unknown watch {}", answer.watch_id))?;
        for event in &answer.events {
            let kv = event.kv.as_ref().ok_or("an event without a key-value")?;
            let rev = kv.mod_revision;
            if !watcher.covers(&kv.key) {
                return Err(format!(
                    "event on {:?} outside {:?}",
                    kv.key, watcher.create
                ));
            }
            if watcher.filters(event.r#type) {
                return Err(format!("filtered event {event:?} for {:?}", watcher.create));
            }
            if rev < watcher.create.start_revision || rev < watcher.last || rev > header_rev {
                return Err(format!(
                    "event at {rev} (last {}, header {header_rev}) for {:?}",
                    watcher.last, watcher.create
                ));
            }
            watcher.last = rev;
        }
    }
    if pending.next().is_some() {
        return Err("a create request was not answered".into());
    }
    Ok(())
}
