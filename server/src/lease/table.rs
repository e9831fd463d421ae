//! The leases that exist and the keys attached to each. Changed only by the
//! applier (grant, revoke, and attach/detach as keys are put and deleted), so
//! every member holding the same commands holds the same table.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseEntry {
    /// The TTL granted, in seconds.
    pub ttl: i64,
    /// Keys currently attached, in key order (revoke deletes them in this order).
    pub keys: BTreeSet<Bytes>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct LeaseTable {
    leases: BTreeMap<i64, LeaseEntry>,
    /// The lease of every leased key: a put must detach a key from the lease it
    /// had before without reading the old value.
    lease_of: HashMap<Bytes, i64>,
}

impl LeaseTable {
    pub(crate) fn get(&self, id: i64) -> Option<&LeaseEntry> {
        self.leases.get(&id)
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, e)| (*id, e.ttl))
    }

    /// Adds a lease; false if the id is taken.
    pub(crate) fn grant(&mut self, id: i64, ttl: i64) -> bool {
        if self.leases.contains_key(&id) {
            return false;
        }
        self.leases.insert(
            id,
            LeaseEntry {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        true
    }

    /// Removes a lease and returns the keys that were attached to it.
    pub(crate) fn revoke(&mut self, id: i64) -> Option<BTreeSet<Bytes>> {
        let entry = self.leases.remove(&id)?;
        for key in &entry.keys {
            self.lease_of.remove(key);
        }
        Some(entry.keys)
    }

    /// Records that `key` was put with `lease` (0 = none), detaching it from
    /// any lease it had.
    pub(crate) fn attach(&mut self, key: &Bytes, lease: i64) {
        self.detach(key);
        if lease != 0
            && let Some(entry) = self.leases.get_mut(&lease)
        {
            // Own the bytes: the caller's key may be a view into a whole
            // request buffer that would otherwise stay alive with the lease.
            let key = Bytes::copy_from_slice(key);
            entry.keys.insert(key.clone());
            self.lease_of.insert(key, lease);
        }
    }

    /// Records that `key` was deleted (or put without its lease).
    pub(crate) fn detach(&mut self, key: &[u8]) {
        if let Some(old) = self.lease_of.remove(key)
            && let Some(entry) = self.leases.get_mut(&old)
        {
            entry.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_moves_keys_between_leases() {
        let mut table = LeaseTable::default();
        assert!(table.grant(1, 10));
        assert!(table.grant(2, 10));
        assert!(!table.grant(1, 5));
        let k = Bytes::from_static(b"k");
        table.attach(&k, 1);
        assert!(table.get(1).is_some_and(|e| e.keys.contains(&k)));
        table.attach(&k, 2);
        assert!(table.get(1).is_some_and(|e| e.keys.is_empty()));
        assert!(table.get(2).is_some_and(|e| e.keys.contains(&k)));
        table.attach(&k, 0);
        assert!(table.get(2).is_some_and(|e| e.keys.is_empty()));
        table.attach(&k, 2);
        assert_eq!(table.revoke(2), Some(BTreeSet::from([k.clone()])));
        assert_eq!(table.revoke(2), None);
        // The key is no longer leased: detaching it again is harmless.
        table.detach(&k);
        assert_eq!(table.ids().count(), 1);
    }
}
