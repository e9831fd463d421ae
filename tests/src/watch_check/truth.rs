//! [`GroundTruth`]: the committed events, replayed once so that every
//! event's previous state of its key (for prev_kv and is_create) is known,
//! and checked for consistency with itself since it comes from the server
//! under test too.

use std::collections::HashMap;

use super::{
    Event, EventKind, KeyValue, Property, WatchRequest, WatchResponse, WatchViolation,
    WatchViolations,
};
use crate::linearizability::show_bytes;

/// Every committed event from revision 1 on, in commit order.
///
/// It must be complete from the first revision: the previous value of a key
/// is what the events before it left, so a truth read after a compaction
/// would make every prev_kv and is_create check wrong.
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    events: Vec<Event>,
    /// The key's record just before each event; `None` when absent.
    before: Vec<Option<KeyValue>>,
    index: HashMap<(i64, Vec<u8>), usize>,
}

/// Names the truth in violations.
pub(super) const TRUTH: &str = "<ground truth>";

impl GroundTruth {
    /// Checks and indexes `events` (commit order: by revision, and within a
    /// revision in the order the transaction applied them).
    ///
    /// # Errors
    /// When the events contradict themselves: revisions going back, an event
    /// twice, a delete of an absent key, wrong create_revision/version, or a
    /// prev_kv that is not the key's previous record.
    pub fn new(events: Vec<Event>) -> Result<Self, WatchViolations> {
        let mut problems = Vec::new();
        let mut problem = |property, detail: String| {
            problems.push(WatchViolation {
                watcher: TRUTH.to_owned(),
                property,
                detail,
            });
        };
        let mut state: HashMap<Vec<u8>, KeyValue> = HashMap::new();
        let mut before = Vec::with_capacity(events.len());
        let mut index = HashMap::with_capacity(events.len());
        let mut last = 0;
        for (i, e) in events.iter().enumerate() {
            let rev = e.revision();
            if rev < 1 || rev < last {
                problem(
                    Property::Ordered,
                    format!("event #{i} ({}) after revision {last}", show_event(e)),
                );
            }
            last = last.max(rev);
            if index.insert((rev, e.kv.key.clone()), i).is_some() {
                problem(
                    Property::Unique,
                    format!("event #{i} ({}) twice", show_event(e)),
                );
            }
            let prev = state.get(&e.kv.key).cloned();
            match e.kind {
                EventKind::Put => {
                    if let Some(why) = create_mismatch(e, prev.as_ref()) {
                        problem(
                            Property::IsCreate,
                            format!("event #{i} {}: {why}", show_event(e)),
                        );
                    }
                    state.insert(e.kv.key.clone(), e.kv.clone());
                }
                EventKind::Delete => {
                    if prev.is_none() {
                        problem(
                            Property::GroundTruth,
                            format!("event #{i} ({}) deletes an absent key", show_event(e)),
                        );
                    }
                    state.remove(&e.kv.key);
                }
                EventKind::Other(t) => problem(
                    Property::GroundTruth,
                    format!("event #{i} ({}) has unknown type {t}", show_event(e)),
                ),
            }
            if e.prev_kv.is_some() && e.prev_kv != prev {
                problem(
                    Property::PrevKv,
                    format!(
                        "event #{i} {}: {}",
                        show_event(e),
                        prev_mismatch(e, prev.as_ref())
                    ),
                );
            }
            before.push(prev);
        }
        if problems.is_empty() {
            Ok(Self {
                events,
                before,
                index,
            })
        } else {
            Err(WatchViolations(problems))
        }
    }

    /// The events of a full-history watch (all keys, from revision 1).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn from_responses(responses: &[WatchResponse]) -> Result<Self, WatchViolations> {
        Self::new(
            responses
                .iter()
                .flat_map(|r| r.events.iter().cloned())
                .collect(),
        )
    }

    /// The events, in commit order.
    #[must_use]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The revision of the last event; 0 when there is none.
    #[must_use]
    pub fn last_revision(&self) -> i64 {
        self.events.last().map_or(0, Event::revision)
    }

    /// The index of the event at `revision` on `key`.
    pub(super) fn find(&self, revision: i64, key: &[u8]) -> Option<usize> {
        self.index.get(&(revision, key.to_vec())).copied()
    }

    /// The key's record just before event `i`.
    pub(super) fn before(&self, i: usize) -> Option<&KeyValue> {
        self.before.get(i).and_then(Option::as_ref)
    }

    /// The events `request` should receive with revisions in `from..=to`.
    pub(super) fn matching<'a>(
        &'a self,
        request: &'a WatchRequest,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = &'a Event> + 'a {
        let start = self.events.partition_point(|e| e.revision() < from);
        self.events[start..]
            .iter()
            .take_while(move |e| e.revision() <= to)
            .filter(move |e| request.matches(e))
    }
}

/// Why a put's create_revision / version do not follow from the key's
/// previous record, if they do not.
pub(super) fn create_mismatch(e: &Event, prev: Option<&KeyValue>) -> Option<String> {
    let (create, version, what) = match prev {
        None => (e.revision(), 1, "creates"),
        Some(p) => (p.create_revision, p.version + 1, "updates"),
    };
    (e.kv.create_revision != create || e.kv.version != version).then(|| {
        format!("it {what} the key, so create_revision {create} and version {version} were due")
    })
}

/// The prev_kv check's message.
pub(super) fn prev_mismatch(e: &Event, prev: Option<&KeyValue>) -> String {
    format!(
        "prev_kv is {}, but the key's previous record is {}",
        show_kv(e.prev_kv.as_ref()),
        show_kv(prev)
    )
}

/// One event on one line.
#[must_use]
pub fn show_event(e: &Event) -> String {
    let kind = match e.kind {
        EventKind::Put => "PUT".to_owned(),
        EventKind::Delete => "DELETE".to_owned(),
        EventKind::Other(t) => format!("TYPE{t}"),
    };
    format!(
        "{kind} {}={} @{} (create {} version {} lease {})",
        show_bytes(&e.kv.key),
        show_bytes(&e.kv.value),
        e.kv.mod_revision,
        e.kv.create_revision,
        e.kv.version,
        e.kv.lease
    )
}

fn show_kv(kv: Option<&KeyValue>) -> String {
    kv.map_or_else(
        || "<none>".to_owned(),
        |kv| {
            format!(
                "{}={} (create {} mod {} version {} lease {})",
                show_bytes(&kv.key),
                show_bytes(&kv.value),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease
            )
        },
    )
}
