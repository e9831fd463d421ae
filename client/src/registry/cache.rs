//! The discovery cache of one service, with no I/O: the instances by id and
//! the revision they reflect. A listing replaces it; watch events after that
//! revision update it. Kept apart so the tests can play any sequence.
//!
//! Invariant: every change up to `revision` is reflected, so an event at or
//! below it is already in and is ignored. That makes a re-list safe while
//! an older watcher is still delivering: `list@12; put a@10` leaves `a` as
//! listed at 12.
//!
//! A key counts as an instance when it is exactly `/services/<service>/<id>`
//! and its value is registry JSON naming the same service and id; anything
//! else under the prefix is skipped (with a warning), and a put that turns a
//! valid value into garbage removes the instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use rollcall_proto::mvccpb::KeyValue;

use super::{Instance, InstanceError, ServiceSnapshot, parse_key};
use crate::watch::{EventKind, WatchEvent};

/// Why a key-value under the prefix is not an instance.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Skip {
    #[error("not an instance key")]
    NotAnInstanceKey,
    #[error(transparent)]
    Invalid(#[from] InstanceError),
    #[error("the value names {service:?}/{id:?}, not the key's service and id")]
    Mismatch { service: String, id: String },
}

/// The instance a registry key-value holds, checked against its key.
pub(crate) fn decode(kv: &KeyValue) -> Result<Instance, Skip> {
    let (service, id) = parse_key(&kv.key).ok_or(Skip::NotAnInstanceKey)?;
    let instance = Instance::from_json(&kv.value)?;
    if instance.service != service || instance.id != id {
        return Err(Skip::Mismatch {
            service: instance.service,
            id: instance.id,
        });
    }
    Ok(instance)
}

#[derive(Debug)]
pub(crate) struct Cache {
    service: String,
    /// By instance id, so iteration is key order.
    instances: BTreeMap<String, Instance>,
    revision: i64,
}

impl Cache {
    pub(crate) fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            instances: BTreeMap::new(),
            revision: 0,
        }
    }

    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// Replaces everything with a listing of the prefix taken at `revision`.
    pub(crate) fn reset(&mut self, kvs: &[KeyValue], revision: i64) {
        self.instances.clear();
        for kv in kvs {
            if let Some(instance) = self.accept(kv) {
                self.instances.insert(instance.id.clone(), instance);
            }
        }
        self.revision = revision;
    }

    /// Applies one watch event; true if the instance set changed.
    pub(crate) fn apply(&mut self, event: &WatchEvent) -> bool {
        let revision = event.revision();
        if revision <= self.revision {
            return false;
        }
        self.revision = revision;
        let Some((service, id)) = parse_key(event.key()) else {
            return false;
        };
        if service != self.service {
            return false;
        }
        let updated = match event.kind {
            EventKind::Put => self.accept(&event.kv),
            EventKind::Delete => None,
        };
        match updated {
            Some(instance) => {
                self.instances.insert(id.to_owned(), instance.clone()) != Some(instance)
            }
            None => self.instances.remove(id).is_some(),
        }
    }

    pub(crate) fn snapshot(&self, stale: bool) -> ServiceSnapshot {
        ServiceSnapshot {
            service: self.service.clone(),
            instances: Arc::new(self.instances.values().cloned().collect()),
            revision: self.revision,
            stale,
        }
    }

    fn accept(&self, kv: &KeyValue) -> Option<Instance> {
        match decode(kv) {
            Ok(instance) if instance.service == self.service => Some(instance),
            Ok(_) => None,
            Err(skip) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(&kv.key),
                    revision = kv.mod_revision,
                    "discovery skips a value under {}: {skip}",
                    self.service
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Health;

    fn kv(id: &str, value: &str, revision: i64) -> KeyValue {
        KeyValue {
            key: format!("/services/web/{id}").into_bytes().into(),
            value: value.as_bytes().to_vec().into(),
            mod_revision: revision,
            ..KeyValue::default()
        }
    }

    fn json(id: &str, health: Health) -> String {
        let mut instance = Instance::new("web", id, format!("10.0.0.1:{}", id.len()));
        instance.health = health;
        instance.to_json()
    }

    fn put(id: &str, value: &str, revision: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: kv(id, value, revision),
            prev_kv: None,
        }
    }

    fn delete(id: &str, revision: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Delete,
            kv: kv(id, "", revision),
            prev_kv: None,
        }
    }

    fn ids(cache: &Cache) -> Vec<String> {
        cache
            .snapshot(false)
            .instances
            .iter()
            .map(|i| i.id.clone())
            .collect()
    }

    #[test]
    fn listing_keeps_valid_instances_in_key_order() {
        let mut cache = Cache::new("web");
        let mut nested = kv("x", &json("x", Health::Passing), 3);
        nested.key = "/services/web/x/extra".into();
        let mut other_service = kv("y", &json("y", Health::Passing), 3);
        other_service.value = Instance::new("api", "y", "h:1")
            .to_json()
            .into_bytes()
            .into();
        cache.reset(
            &[
                kv("b", &json("b", Health::Passing), 2),
                kv("a", &json("a", Health::Critical), 3),
                kv("garbage", "{not json", 4),
                nested,
                other_service,
            ],
            9,
        );
        assert_eq!(ids(&cache), ["a", "b"]);
        let snapshot = cache.snapshot(true);
        assert_eq!(
            (snapshot.revision, snapshot.stale, snapshot.service.as_str()),
            (9, true, "web")
        );
        assert_eq!(snapshot.eligible(0.5).len(), 1);
    }

    #[test]
    fn events_after_the_revision_apply_once() {
        let mut cache = Cache::new("web");
        cache.reset(&[kv("a", &json("a", Health::Passing), 5)], 10);
        // Already reflected by the listing.
        assert!(!cache.apply(&delete("a", 8)));
        assert!(cache.apply(&put("b", &json("b", Health::Passing), 11)));
        assert!(!cache.apply(&put("b", &json("b", Health::Passing), 11)));
        // The same value again (a re-put) changes nothing visible.
        assert!(!cache.apply(&put("b", &json("b", Health::Passing), 12)));
        assert!(cache.apply(&put("b", &json("b", Health::Critical), 13)));
        assert!(cache.apply(&delete("a", 14)));
        assert!(!cache.apply(&delete("zz", 15)));
        assert_eq!(ids(&cache), ["b"]);
        // A valid value turned into garbage removes the instance.
        assert!(cache.apply(&put("b", "[]", 16)));
        assert!(ids(&cache).is_empty());
        assert_eq!(cache.revision(), 16);
    }

    #[test]
    fn values_must_match_their_key() {
        let wrong_id = kv("a", &json("b", Health::Passing), 1);
        assert!(matches!(decode(&wrong_id), Err(Skip::Mismatch { id, .. }) if id == "b"));
        assert!(matches!(decode(&kv("a", "1", 1)), Err(Skip::Invalid(_))));
        assert!(decode(&kv("a", &json("a", Health::Passing), 1)).is_ok());
    }
}
