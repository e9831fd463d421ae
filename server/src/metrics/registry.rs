//! `rollcall_registry_instances{service,health}` without reading every
//! instance on every scrape.
//!
//! The watch hub hands each committed batch to [`RegistryInstances::observe`]
//! on the applier thread, which only notes the newest value of each changed
//! `/services/<service>/<id>` key (a hash insert; no parsing there). A scrape
//! ([`RegistryInstances::refresh`]) parses just those values and moves the
//! per-(service, health) counts. The first scrape after a start reads the
//! prefix once instead, as does a scrape after more than [`MAX_PENDING`]
//! keys changed since the previous one (which bounds the memory noted
//! between scrapes).
//!
//! The value's `health` field follows the client's registry convention; a
//! value that is not JSON or has no `health` counts as `unknown`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rollcall_proto::mvccpb::Event;
use rollcall_proto::mvccpb::event::EventType;

use super::InstanceLabels;
use crate::mvcc::{KeyRange, Store};

/// The registry's key prefix.
const SERVICES_PREFIX: &[u8] = b"/services/";

/// Changed keys noted between two scrapes before a rescan is cheaper.
const MAX_PENDING: usize = 100_000;

/// Changes noted since the last scrape: per key, the revision and value
/// (`None`: deleted) of its newest change.
#[derive(Default)]
struct Pending {
    changes: HashMap<Bytes, (i64, Option<Bytes>)>,
    /// Too many changes were noted: the next scrape rescans.
    overflowed: bool,
}

/// What the scrapes have built.
#[derive(Default)]
struct Table {
    /// False until a scan succeeded: the next scrape scans.
    built: bool,
    instances: HashMap<Bytes, InstanceLabels>,
    counts: HashMap<InstanceLabels, i64>,
}

impl Table {
    fn remove(&mut self, key: &[u8]) {
        if let Some(labels) = self.instances.remove(key)
            && let Some(count) = self.counts.get_mut(&labels)
        {
            *count -= 1;
            if *count <= 0 {
                self.counts.remove(&labels);
            }
        }
    }

    fn insert(&mut self, key: Bytes, value: &[u8]) {
        self.remove(&key);
        if let Some(labels) = labels(&key, value) {
            *self.counts.entry(labels.clone()).or_default() += 1;
            self.instances.insert(key, labels);
        }
    }
}

/// The tracker behind the gauge; one per member, in [`super::Metrics`].
#[derive(Default)]
pub(crate) struct RegistryInstances {
    pending: Mutex<Pending>,
    table: Mutex<Table>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service and health of an instance key's value; `None` for a key
/// that is not `/services/<service>/<id>`.
fn labels(key: &[u8], value: &[u8]) -> Option<InstanceLabels> {
    let rest = key.strip_prefix(SERVICES_PREFIX)?;
    let slash = rest.iter().position(|b| *b == b'/')?;
    let service = String::from_utf8_lossy(&rest[..slash]).into_owned();
    let health = serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v.get("health").and_then(|h| h.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    Some(InstanceLabels { service, health })
}

impl RegistryInstances {
    /// Notes the registry keys a committed batch changed. Called by the
    /// applier for every batch, so it does no more than that.
    pub(crate) fn observe(&self, batch: &[(i64, Vec<Event>)]) {
        let mut pending: Option<MutexGuard<'_, Pending>> = None;
        for (rev, events) in batch {
            for event in events {
                let Some(kv) = &event.kv else { continue };
                if !kv.key.starts_with(SERVICES_PREFIX) {
                    continue;
                }
                let p = pending.get_or_insert_with(|| lock(&self.pending));
                if p.overflowed {
                    return;
                }
                let value = (event.r#type == EventType::Put as i32).then(|| kv.value.clone());
                p.changes.insert(kv.key.clone(), (*rev, value));
                if p.changes.len() > MAX_PENDING {
                    p.changes = HashMap::new();
                    p.overflowed = true;
                    return;
                }
            }
        }
    }

    /// Brings the counts up to date and writes them into `family`.
    pub(crate) fn refresh(&self, store: &Store, family: &Family<InstanceLabels, Gauge>) {
        let mut table = lock(&self.table);
        let mut changes = self.take_pending(&mut table);
        let mut scanned_at = 0;
        if !table.built {
            let range = KeyRange::Span {
                start: Bytes::from_static(SERVICES_PREFIX),
                end: Some(Bytes::from(crate::watch::index::prefix_end(
                    SERVICES_PREFIX,
                ))),
            };
            let Ok((rev, kvs)) =
                store.read(|view| Ok((view.rev, view.range_keys(&range, 0, 0, false)?.kvs)))
            else {
                return;
            };
            *table = Table::default();
            for kv in kvs {
                table.insert(kv.key, &kv.value);
            }
            table.built = true;
            scanned_at = rev;
            // Changes committed while scanning; those up to `rev` are in it.
            changes.extend(self.take_pending(&mut table));
        }
        for (key, (rev, value)) in changes {
            if rev <= scanned_at {
                continue;
            }
            match value {
                Some(value) => table.insert(key, &value),
                None => table.remove(&key),
            }
        }
        family.clear();
        for (labels, count) in &table.counts {
            family.get_or_create(labels).set(*count);
        }
    }

    /// Drains the noted changes; after an overflow, marks the table for a
    /// rescan instead.
    fn take_pending(&self, table: &mut Table) -> HashMap<Bytes, (i64, Option<Bytes>)> {
        let mut pending = lock(&self.pending);
        if std::mem::take(&mut pending.overflowed) {
            table.built = false;
        }
        std::mem::take(&mut pending.changes)
    }
}

#[cfg(test)]
mod tests {
    use rollcall_proto::mvccpb::KeyValue;

    use super::*;

    fn event(kind: EventType, key: &str, value: &str) -> Event {
        Event {
            r#type: kind as i32,
            kv: Some(KeyValue {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn counts(tracker: &RegistryInstances) -> Vec<(String, String, i64)> {
        let table = lock(&tracker.table);
        let mut out: Vec<_> = table
            .counts
            .iter()
            .map(|(l, n)| (l.service.clone(), l.health.clone(), *n))
            .collect();
        out.sort();
        out
    }

    /// Applies the noted changes to an already built (empty) table, as a
    /// scrape does after its first scan.
    fn apply(tracker: &RegistryInstances) {
        let mut table = lock(&tracker.table);
        table.built = true;
        let changes = tracker.take_pending(&mut table);
        for (key, (_, value)) in changes {
            match value {
                Some(value) => table.insert(key, &value),
                None => table.remove(&key),
            }
        }
    }

    #[test]
    fn changes_move_the_counts_and_only_registry_keys_count() {
        let tracker = RegistryInstances::default();
        let passing = r#"{"health":"passing"}"#;
        tracker.observe(&[
            (2, vec![event(EventType::Put, "/services/web/1", passing)]),
            (
                3,
                vec![
                    event(EventType::Put, "/services/web/2", passing),
                    event(EventType::Put, "/services/api/1", "not json"),
                    event(EventType::Put, "/services/lonely", passing),
                    event(EventType::Put, "/other/web/1", passing),
                ],
            ),
        ]);
        apply(&tracker);
        assert_eq!(
            counts(&tracker),
            [
                ("api".into(), "unknown".into(), 1),
                ("web".into(), "passing".into(), 2)
            ]
        );
        // A health flip moves the instance; a delete removes it; a key put
        // and deleted between two scrapes never counts.
        tracker.observe(&[
            (
                4,
                vec![event(
                    EventType::Put,
                    "/services/web/1",
                    r#"{"health":"critical"}"#,
                )],
            ),
            (5, vec![event(EventType::Delete, "/services/api/1", "")]),
            (6, vec![event(EventType::Put, "/services/db/1", passing)]),
            (7, vec![event(EventType::Delete, "/services/db/1", "")]),
        ]);
        apply(&tracker);
        assert_eq!(
            counts(&tracker),
            [
                ("web".into(), "critical".into(), 1),
                ("web".into(), "passing".into(), 1)
            ]
        );
    }

    #[test]
    fn too_many_changes_between_scrapes_ask_for_a_rescan() {
        let tracker = RegistryInstances::default();
        let batch: Vec<(i64, Vec<Event>)> = (0..=MAX_PENDING)
            .map(|i| {
                let key = format!("/services/web/{i}");
                (
                    i64::try_from(i).unwrap_or(0) + 2,
                    vec![event(EventType::Put, &key, "{}")],
                )
            })
            .collect();
        tracker.observe(&batch);
        let mut table = lock(&tracker.table);
        table.built = true;
        assert!(tracker.take_pending(&mut table).is_empty());
        assert!(!table.built, "the next scrape rescans");
    }
}
