//! Validators for etcd's watch guarantees, as the etcd robustness tests
//! check them: what each watcher received is compared with the ground truth
//! of committed events (read afterwards from a reliable source, e.g. a
//! full-history watch from revision 1 with `prev_kv`).
//!
//! Checked per watcher ([`Property`] names them): events are ordered,
//! unique, atomic (a revision is never split across responses), reliable (no
//! gap between the first and last event delivered), resumable (a watch from
//! revision R starts exactly at the first matching event at or after R),
//! bookmarkable (a progress notification at R comes after every matching
//! event up to R), is_create and prev_kv correct, within the watched range
//! and filters, committed (equal to the ground truth), and nothing follows a
//! cancel.
//!
//! The types are plain Rust (no prost), so tests can write streams by hand;
//! `from_proto` conversions take what a [`crate::watch_stream::WatchStream`]
//! receives.

mod proto;
mod truth;
mod validate;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::fmt;

pub use truth::GroundTruth;

/// A key-value record as a watch event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// The type of a watch event; `Other` keeps an unknown wire value so that it
/// is reported rather than lost in conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Put,
    Delete,
    Other(i32),
}

/// One watch event. For a delete, `kv` holds the key and the delete's
/// revision in `mod_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision of the event.
    #[must_use]
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// A watched key range with etcd's `key` / `range_end` semantics: an empty
/// `range_end` is the single key, `"\0"` is every key from `key` on,
/// anything else is `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

impl KeyRange {
    /// Exactly `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    /// Every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = crate::grpc::prefix_end(&key).to_vec();
        Self { key, range_end }
    }

    /// Whether `key` is in the range.
    #[must_use]
    pub fn contains(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }
}

impl From<&crate::events::Range> for KeyRange {
    fn from(range: &crate::events::Range) -> Self {
        let (key, range_end) = range.wire();
        Self {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }
}

/// What a watcher asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchRequest {
    pub range: KeyRange,
    /// First revision to deliver; 0 means "after now", and then the start is
    /// not checked (a server may legitimately start a moment later than its
    /// created response suggests).
    pub start_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl WatchRequest {
    /// Whether the watcher should receive `event` (range and filters).
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        let filtered = match event.kind {
            EventKind::Put => self.no_put,
            EventKind::Delete => self.no_delete,
            EventKind::Other(_) => false,
        };
        !filtered && self.range.contains(&event.kv.key)
    }
}

/// One response a watcher received (fragments already merged).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchResponse {
    pub header_revision: i64,
    pub created: bool,
    pub canceled: bool,
    pub compact_revision: i64,
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// A progress notification: no events, not a create, cancel or
    /// compaction response.
    #[must_use]
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }
}

/// Everything one watcher asked for and received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatcherLog {
    /// Names the watcher in reports.
    pub name: String,
    pub request: WatchRequest,
    pub responses: Vec<WatchResponse>,
}

/// The guarantee a [`WatchViolation`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    Ordered,
    Unique,
    Atomic,
    Reliable,
    Resumable,
    Bookmarkable,
    IsCreate,
    PrevKv,
    Filter,
    /// A delivered event differs from the committed one, or none was
    /// committed at its revision and key.
    Committed,
    /// A response arrived after the watcher's cancel response.
    Canceled,
    /// The ground truth contradicts itself (it came from the server too).
    GroundTruth,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::Ordered => "ordered",
            Property::Unique => "unique",
            Property::Atomic => "atomic",
            Property::Reliable => "reliable",
            Property::Resumable => "resumable",
            Property::Bookmarkable => "bookmarkable",
            Property::IsCreate => "is_create",
            Property::PrevKv => "prev_kv",
            Property::Filter => "filter",
            Property::Committed => "committed",
            Property::Canceled => "canceled",
            Property::GroundTruth => "ground truth",
        })
    }
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchViolation {
    /// The watcher's name, or `<ground truth>`.
    pub watcher: String,
    pub property: Property,
    pub detail: String,
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.property, self.watcher, self.detail)
    }
}

/// Every broken guarantee found, in watcher order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WatchViolations(pub Vec<WatchViolation>);

/// How many violations the `Display` of [`WatchViolations`] lists.
const SHOWN: usize = 40;

impl fmt::Display for WatchViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} watch guarantee violation(s):", self.0.len())?;
        for v in self.0.iter().take(SHOWN) {
            writeln!(f, "  {v}")?;
        }
        if self.0.len() > SHOWN {
            writeln!(f, "  ... and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl WatchViolations {
    /// Whether some violation breaks `property`.
    #[must_use]
    pub fn has(&self, property: Property) -> bool {
        self.0.iter().any(|v| v.property == property)
    }

    /// The distinct properties broken, sorted.
    #[must_use]
    pub fn properties(&self) -> Vec<Property> {
        let mut p: Vec<_> = self.0.iter().map(|v| v.property).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

/// What a passed check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchReport {
    pub watchers: usize,
    /// Events delivered over all watchers.
    pub events: usize,
    pub progress_notifications: usize,
}

/// Checks every watcher against `truth`.
///
/// # Errors
/// Every violation found, over all watchers.
pub fn check(truth: &GroundTruth, watchers: &[WatcherLog]) -> Result<WatchReport, WatchViolations> {
    let mut violations = Vec::new();
    let mut report = WatchReport {
        watchers: watchers.len(),
        ..WatchReport::default()
    };
    for log in watchers {
        let seen = validate::watcher(truth, log, &mut violations);
        report.events += seen.events;
        report.progress_notifications += seen.progress_notifications;
    }
    if violations.is_empty() {
        Ok(report)
    } else {
        Err(WatchViolations(violations))
    }
}
