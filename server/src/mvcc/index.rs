//! The in-memory key index (etcd's `treeIndex`): every key's revision history,
//! ordered by key, so a range read at any revision finds the revisions to
//! fetch without scanning the history table.
//!
//! It holds revisions only; values stay in redb. The map is persistent
//! (`imbl::OrdMap`, a B-tree whose nodes are shared between copies): cloning
//! it is O(1), and the applier's next write copies only the nodes on its
//! path. That is what lets a reader keep a snapshot of the index for as long
//! as its range takes while the applier goes on writing its own copy; each
//! key's history sits behind an `Arc` so copying a node copies pointers, not
//! revision lists.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;

use super::key_index::{KeyAt, KeyIndex};
use super::key_range::KeyRange;
use super::revision::Revision;

/// Cloning is O(1) and shares every node with the original (see above).
#[derive(Debug, Default, Clone)]
pub(crate) struct TreeIndex {
    keys: OrdMap<Bytes, Arc<KeyIndex>>,
}

impl TreeIndex {
    pub(crate) fn put(&mut self, key: &Bytes, rev: Revision) {
        if let Some(ki) = self.keys.get_mut(key.as_ref()) {
            Arc::make_mut(ki).put(rev);
            return;
        }
        let mut ki = KeyIndex::default();
        ki.put(rev);
        // A request's key is a view into its whole decode buffer; a key kept
        // for the life of the index must not pin that buffer.
        self.keys.insert(Bytes::copy_from_slice(key), Arc::new(ki));
    }

    /// Restores a key from its oldest surviving record during start-up.
    pub(crate) fn restore(
        &mut self,
        key: &Bytes,
        created: Revision,
        modified: Revision,
        version: i64,
    ) {
        match self.keys.get_mut(key.as_ref()) {
            Some(ki) => Arc::make_mut(ki).put(modified),
            None => {
                self.keys.insert(
                    Bytes::copy_from_slice(key),
                    Arc::new(KeyIndex::restored(created, modified, version)),
                );
            }
        }
    }

    /// Marks `key` deleted at `rev`; false when it was not live.
    pub(crate) fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys
            .get_mut(key)
            .is_some_and(|ki| Arc::make_mut(ki).tombstone(rev))
    }

    pub(crate) fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.keys.get(key).and_then(|ki| ki.get(at))
    }

    /// Visits the keys of `range` alive at revision `at`, in key order, until
    /// `visit` returns false.
    pub(crate) fn visit(
        &self,
        range: &KeyRange,
        at: i64,
        mut visit: impl FnMut(&Bytes, KeyAt) -> bool,
    ) {
        match range {
            KeyRange::Single(key) => {
                if let Some((k, ki)) = self.keys.get_key_value(key.as_ref())
                    && let Some(found) = ki.get(at)
                {
                    visit(k, found);
                }
            }
            KeyRange::Span { start, end } => {
                let upper = match end {
                    Some(end) if end <= start => return,
                    Some(end) => Bound::Excluded(end.as_ref()),
                    None => Bound::Unbounded,
                };
                let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(start.as_ref()), upper);
                for (k, ki) in self.keys.range::<_, [u8]>(bounds) {
                    if let Some(found) = ki.get(at)
                        && !visit(k, found)
                    {
                        return;
                    }
                }
            }
        }
    }

    /// The live keys of `range` at revision `at`.
    pub(crate) fn live_keys(&self, range: &KeyRange, at: i64) -> Vec<(Bytes, KeyAt)> {
        let mut out = Vec::new();
        self.visit(range, at, |k, found| {
            out.push((k.clone(), found));
            true
        });
        out
    }

    /// Whether `rev` is still part of `key`'s history (not compacted away).
    pub(crate) fn holds(&self, key: &[u8], rev: Revision) -> bool {
        self.keys.get(key).is_some_and(|ki| ki.holds(rev))
    }

    /// How many keys are alive at revision `at`.
    pub(crate) fn live_count(&self, at: i64) -> usize {
        self.keys.values().filter(|ki| ki.get(at).is_some()).count()
    }

    /// Compacts every key at `at`; returns the revisions at or below `at` that
    /// the history table must keep.
    pub(crate) fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        let mut emptied = Vec::new();
        // Walk a clone (O(1)) so the map itself can be changed on the way.
        for (key, ki) in &self.keys.clone() {
            let mut compacted = KeyIndex::clone(ki);
            compacted.compact(at, &mut keep);
            if compacted.is_empty() {
                emptied.push(key.clone());
            } else if compacted != **ki {
                self.keys.insert(key.clone(), Arc::new(compacted));
            }
        }
        for key in emptied {
            self.keys.remove(key.as_ref());
        }
        keep
    }
}
