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
    /// The remaining TTL at the last checkpoint; 0 when none (or renewed
    /// since), and then the full TTL counts.
    pub remaining_ttl: i64,
}

impl LeaseEntry {
    /// The TTL a lease starts with when a member takes over its clock: the
    /// checkpointed remaining TTL if any, else the full TTL.
    pub(crate) fn starting_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl.min(self.ttl)
        } else {
            self.ttl
        }
    }
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

    /// Every lease as `(id, ttl, starting ttl)`: the TTL it starts from when
    /// a member takes over the lease clock ([`LeaseEntry::starting_ttl`]).
    pub(crate) fn starting_ttls(&self) -> impl Iterator<Item = (i64, i64, i64)> + '_ {
        self.leases
            .iter()
            .map(|(id, e)| (*id, e.ttl, e.starting_ttl()))
    }

    /// Records a checkpointed remaining TTL (0 clears it); false if the
    /// lease is unknown.
    pub(crate) fn checkpoint(&mut self, id: i64, remaining_ttl: i64) -> bool {
        match self.leases.get_mut(&id) {
            Some(entry) => {
                entry.remaining_ttl = remaining_ttl.max(0);
                true
            }
            None => false,
        }
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
                remaining_ttl: 0,
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
