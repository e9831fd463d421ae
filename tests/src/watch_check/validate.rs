//! The checks of one watcher's responses against the ground truth.

use std::collections::{BTreeMap, HashSet};

use super::truth::{create_mismatch, prev_mismatch, show_event};
use super::{Event, EventKind, GroundTruth, Property, WatchResponse, WatchViolation, WatcherLog};

/// How many missing events one violation lists.
const LISTED: usize = 5;

/// What one watcher received.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub events: usize,
    pub progress_notifications: usize,
}

/// The state of the walk through one watcher's responses.
struct Walk<'a> {
    truth: &'a GroundTruth,
    log: &'a WatcherLog,
    out: &'a mut Vec<WatchViolation>,
    delivered: HashSet<(i64, Vec<u8>)>,
    first_rev: Option<i64>,
    last_rev: i64,
    /// Revision of the last event of the last response with events.
    last_response_rev: i64,
    /// Commit-order index of the last delivered event found in the truth.
    last_truth_index: Option<usize>,
    /// The highest progress notification so far.
    bookmark: i64,
}

/// Checks `log`, appending what it breaks to `out`.
pub(super) fn watcher(
    truth: &GroundTruth,
    log: &WatcherLog,
    out: &mut Vec<WatchViolation>,
) -> Seen {
    let mut walk = Walk {
        truth,
        log,
        out,
        delivered: HashSet::new(),
        first_rev: None,
        last_rev: 0,
        last_response_rev: 0,
        last_truth_index: None,
        bookmark: 0,
    };
    let mut seen = Seen::default();
    let mut canceled_at = None;
    for (r, response) in log.responses.iter().enumerate() {
        if let Some(c) = canceled_at {
            walk.report(
                Property::Canceled,
                format!("response #{r} arrived after the cancel response #{c}"),
            );
            break;
        }
        if response.canceled {
            canceled_at = Some(r);
        }
        if response.is_progress_notify() {
            seen.progress_notifications += 1;
            walk.progress_notify(r, response.header_revision);
            continue;
        }
        seen.events += response.events.len();
        walk.response(r, response);
    }
    walk.gaps();
    seen
}

impl Walk<'_> {
    fn report(&mut self, property: Property, detail: String) {
        self.out.push(WatchViolation {
            watcher: self.log.name.clone(),
            property,
            detail,
        });
    }

    /// The revision from which every matching event must have arrived, when
    /// it is known: the requested one, else the first one delivered.
    fn start(&self) -> Option<i64> {
        match self.log.request.start_revision {
            r if r > 0 => Some(r),
            _ => self.first_rev,
        }
    }

    /// Up to [`LISTED`] of the matching events in `from..=to` that were not
    /// delivered, and how many there are.
    fn missing(&self, from: i64, to: i64) -> (String, usize) {
        let to = to.min(self.truth.last_revision());
        let missing: Vec<&Event> = self
            .truth
            .matching(&self.log.request, from, to)
            .filter(|e| !self.delivered.contains(&(e.revision(), e.kv.key.clone())))
            .collect();
        let mut listed: Vec<String> = missing.iter().take(LISTED).map(|e| show_event(e)).collect();
        if missing.len() > LISTED {
            listed.push("...".to_owned());
        }
        (listed.join("; "), missing.len())
    }

    fn progress_notify(&mut self, r: usize, revision: i64) {
        if revision < self.last_rev {
            self.report(
                Property::Bookmarkable,
                format!(
                    "progress notification #{r} at revision {revision} after an event at {}",
                    self.last_rev
                ),
            );
        }
        if let Some(start) = self.start() {
            let (listed, count) = self.missing(start, revision);
            if count > 0 {
                self.report(
                    Property::Bookmarkable,
                    format!(
                        "progress notification #{r} at revision {revision}, but {count} matching event(s) up to it were not delivered before it: {listed}"
                    ),
                );
            }
        }
        self.bookmark = self.bookmark.max(revision);
    }

    fn response(&mut self, r: usize, response: &WatchResponse) {
        let mut previous: Option<i64> = None;
        let mut by_revision: BTreeMap<i64, HashSet<&[u8]>> = BTreeMap::new();
        for (i, e) in response.events.iter().enumerate() {
            let rev = e.revision();
            let at = format!("response #{r} event #{i} {}", show_event(e));
            if !self.log.request.range.contains(&e.kv.key) {
                self.report(
                    Property::Filter,
                    format!("{at} is outside the watched range"),
                );
            } else if !self.log.request.matches(e) {
                self.report(Property::Filter, format!("{at} has a filtered-out type"));
            }
            if !self.delivered.insert((rev, e.kv.key.clone())) {
                self.report(Property::Unique, format!("{at} was already delivered"));
                continue;
            }
            by_revision.entry(rev).or_default().insert(&e.kv.key);
            self.order(&at, rev, previous);
            let found = self.truth.find(rev, &e.kv.key);
            if let (Some(t), Some(last)) = (found, self.last_truth_index)
                && t < last
                && previous == Some(rev)
            {
                self.report(
                    Property::Ordered,
                    format!("{at} comes after an event its transaction applied later"),
                );
            }
            if rev <= self.bookmark {
                self.report(
                    Property::Bookmarkable,
                    format!(
                        "{at} arrived after a progress notification at revision {}",
                        self.bookmark
                    ),
                );
            }
            let start = self.log.request.start_revision;
            if start > 0 && rev < start {
                self.report(
                    Property::Resumable,
                    format!("{at} precedes the requested start revision {start}"),
                );
            }
            match found {
                Some(t) => self.committed(&at, e, t),
                None => self.report(
                    Property::Committed,
                    format!(
                        "{at} was never committed (the ground truth ends at revision {})",
                        self.truth.last_revision()
                    ),
                ),
            }
            self.last_truth_index = found.or(self.last_truth_index);
            self.first_rev.get_or_insert(rev);
            self.last_rev = self.last_rev.max(rev);
            previous = Some(rev);
        }
        for (rev, keys) in by_revision {
            let split: Vec<String> = self
                .truth
                .matching(&self.log.request, rev, rev)
                .filter(|e| !keys.contains(e.kv.key.as_slice()))
                .map(show_event)
                .collect();
            if !split.is_empty() {
                self.report(
                    Property::Atomic,
                    format!(
                        "response #{r} carries only part of revision {rev}; missing {}",
                        split.join("; ")
                    ),
                );
            }
        }
        if let Some(rev) = previous {
            self.last_response_rev = rev;
        }
    }

    /// Revisions never go back; a revision that continues the previous
    /// response's last one was split across responses.
    fn order(&mut self, at: &str, rev: i64, previous_in_response: Option<i64>) {
        let (before, within) = match previous_in_response {
            Some(p) => (p, true),
            None => (self.last_response_rev, false),
        };
        if rev < before {
            self.report(
                Property::Ordered,
                format!("{at} goes back from revision {before}"),
            );
        } else if !within && rev == before {
            self.report(
                Property::Atomic,
                format!("{at} continues revision {rev} of the previous response"),
            );
        }
    }

    /// Equal to the committed event, with the right is_create fields and
    /// prev_kv.
    fn committed(&mut self, at: &str, e: &Event, t: usize) {
        let Some(truth) = self.truth.events().get(t) else {
            return;
        };
        let same = e.kind == truth.kind
            && e.kv.key == truth.kv.key
            && e.kv.value == truth.kv.value
            && e.kv.lease == truth.kv.lease;
        if !same {
            self.report(
                Property::Committed,
                format!("{at} differs from the committed {}", show_event(truth)),
            );
        }
        let prev = self.truth.before(t);
        if e.kind == EventKind::Put
            && let Some(why) = create_mismatch(e, prev)
        {
            self.report(Property::IsCreate, format!("{at}: {why}"));
        }
        if self.log.request.prev_kv {
            if e.prev_kv.as_ref() != prev {
                self.report(
                    Property::PrevKv,
                    format!("{at}: {}", prev_mismatch(e, prev)),
                );
            }
        } else if e.prev_kv.is_some() {
            self.report(
                Property::PrevKv,
                format!("{at} carries a prev_kv the watcher did not ask for"),
            );
        }
    }

    /// Reliable: no matching event missing between the first and the last
    /// delivered. Resumable: none missing between the requested start and
    /// the first delivered.
    fn gaps(&mut self) {
        let Some(first) = self.first_rev else { return };
        let start = self.log.request.start_revision;
        // Events before the start are reported on their own; they do not
        // widen the window the watcher owed.
        let (listed, count) = self.missing(first.max(start), self.last_rev);
        if count > 0 {
            self.report(
                Property::Reliable,
                format!(
                    "{count} matching event(s) between revisions {} and {} were not delivered: {listed}",
                    first.max(start),
                    self.last_rev
                ),
            );
        }
        if start > 0 && start < first {
            let (listed, count) = self.missing(start, first - 1);
            if count > 0 {
                self.report(
                    Property::Resumable,
                    format!(
                        "the watch from revision {start} began at {first}, skipping {count} matching event(s): {listed}"
                    ),
                );
            }
        }
    }
}
