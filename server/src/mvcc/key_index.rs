//! The revision history of one key, split into generations, as etcd's
//! `keyIndex`.
//!
//! A generation runs from the put that creates the key to the delete
//! (tombstone) that ends it; the last generation is the live one and is empty
//! while the key does not exist. Worked example:
//!
//! ```text
//! put(2.0); put(3.0); tombstone(4.0); put(5.0)
//!   generations: {created 2, ver 3, revs [2.0 3.0 4.0]}, {created 5, ver 1, revs [5.0]}
//! get(3) -> mod 3.0, created 2.0, version 2
//! get(4) -> none (deleted at 4)
//! compact(4): the first generation ends at or below 4, so it goes entirely:
//!   generations: {created 5, ver 1, revs [5.0]}
//! ```
//!
//! Compaction keeps, for the generation alive at the compact revision, the
//! latest revision at or below it (unless that is a tombstone), so reads at any
//! revision at or above the compact revision stay correct.

use std::collections::HashSet;

use super::revision::Revision;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Generation {
    /// Revision of the put that created the key in this generation.
    created: Revision,
    /// Changes in this generation, the tombstone included.
    ver: i64,
    /// Revisions in this generation, ascending; a closed generation ends with
    /// its tombstone.
    revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }
}

/// What a read at some revision sees of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self {
            generations: vec![Generation::default()],
        }
    }
}

impl KeyIndex {
    /// Rebuilds a key's index from its oldest surviving record, whose creation
    /// revision and version may predate compacted history.
    pub(crate) fn restored(created: Revision, modified: Revision, version: i64) -> Self {
        Self {
            generations: vec![Generation {
                created,
                ver: version,
                revs: vec![modified],
            }],
        }
    }

    /// Records a put at `rev`.
    pub(crate) fn put(&mut self, rev: Revision) {
        let last = self.live_generation_mut();
        if last.is_empty() {
            last.created = rev;
        }
        last.revs.push(rev);
        last.ver += 1;
    }

    /// Records a delete at `rev`; returns false (and changes nothing) when the
    /// key is not live.
    pub(crate) fn tombstone(&mut self, rev: Revision) -> bool {
        if self.live_generation_mut().is_empty() {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    fn live_generation_mut(&mut self) -> &mut Generation {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let last = self.generations.len() - 1;
        &mut self.generations[last]
    }

    /// Whether `rev` is one of this key's revisions.
    pub(crate) fn holds(&self, rev: Revision) -> bool {
        self.generations
            .iter()
            .any(|g| g.revs.binary_search(&rev).is_ok())
    }

    /// True when nothing of the key is left (no revision in any generation).
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.iter().all(Generation::is_empty)
    }

    /// The key as a read at `at` sees it, or `None` when it did not exist then.
    pub(crate) fn get(&self, at: i64) -> Option<KeyAt> {
        let generation = self.find_generation(at)?;
        let n = generation.revs.iter().rposition(|r| r.main <= at)?;
        let newer = i64::try_from(generation.revs.len() - n - 1).unwrap_or(i64::MAX);
        Some(KeyAt {
            modified: generation.revs[n],
            created: generation.created,
            version: generation.ver - newer,
        })
    }

    /// The generation alive at `at`, if the key existed then.
    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, generation) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (generation.revs.first(), generation.revs.last()) else {
                continue;
            };
            // A closed generation whose tombstone is at or before `at`: the key
            // was deleted by then, and older generations are older still.
            if i != last && end.main <= at {
                return None;
            }
            if first.main <= at {
                return Some(generation);
            }
        }
        None
    }

    /// Drops history below `at` that no read at or above `at` can see, and adds
    /// the revisions that must stay in the history table to `keep`.
    pub(crate) fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) {
        let mut gen_idx = 0;
        // Skip generations closed at or before `at`: nothing of them is visible.
        while gen_idx + 1 < self.generations.len() {
            let closed_at = self.generations[gen_idx]
                .revs
                .last()
                .map_or(i64::MIN, |r| r.main);
            if closed_at > at {
                break;
            }
            gen_idx += 1;
        }
        let last = self.generations.len() - 1;
        let generation = &mut self.generations[gen_idx];
        if let Some(n) = generation.revs.iter().rposition(|r| r.main <= at) {
            keep.insert(generation.revs[n]);
            generation.revs.drain(..n);
            // A lone tombstone in a closed generation describes a deleted key.
            if generation.revs.len() == 1 && gen_idx != last {
                keep.remove(&generation.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(rev(2));
        ki.put(rev(3));
        assert!(ki.tombstone(rev(4)));
        ki.put(rev(5));
        ki
    }

    #[test]
    fn get_sees_generations_and_versions() {
        let ki = sample();
        assert_eq!(ki.get(1), None);
        assert_eq!(
            ki.get(2),
            Some(KeyAt {
                modified: rev(2),
                created: rev(2),
                version: 1
            })
        );
        assert_eq!(
            ki.get(3),
            Some(KeyAt {
                modified: rev(3),
                created: rev(2),
                version: 2
            })
        );
        assert_eq!(ki.get(4), None);
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: rev(5),
                created: rev(5),
                version: 1
            })
        );
    }

    #[test]
    fn tombstone_of_missing_key_is_refused() {
        let mut ki = KeyIndex::default();
        assert!(!ki.tombstone(rev(2)));
        ki.put(rev(3));
        assert!(ki.tombstone(rev(4)));
        assert!(!ki.tombstone(rev(5)));
    }

    #[test]
    fn compact_keeps_latest_live_revision() {
        let mut ki = sample();
        let mut keep = HashSet::new();
        ki.compact(3, &mut keep);
        assert_eq!(keep, HashSet::from([rev(3)]));
        assert_eq!(ki.get(3).map(|k| k.version), Some(2));
        assert_eq!(ki.get(4), None);
        assert_eq!(ki.get(5).map(|k| k.created), Some(rev(5)));
    }

    #[test]
    fn compact_at_tombstone_drops_the_generation() {
        let mut ki = sample();
        let mut keep = HashSet::new();
        ki.compact(4, &mut keep);
        assert!(keep.is_empty());
        assert_eq!(ki.get(4), None);
        assert_eq!(ki.get(5).map(|k| k.version), Some(1));
    }

    #[test]
    fn compact_of_deleted_key_empties_it() {
        let mut ki = KeyIndex::default();
        ki.put(rev(2));
        ki.tombstone(rev(3));
        let mut keep = HashSet::new();
        ki.compact(7, &mut keep);
        assert!(keep.is_empty());
        assert!(ki.is_empty());
    }

    #[test]
    fn restored_key_continues_versions() {
        let mut ki = KeyIndex::restored(rev(2), rev(7), 4);
        ki.put(rev(9));
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: rev(9),
                created: rev(2),
                version: 5
            })
        );
        assert_eq!(ki.get(8).map(|k| k.version), Some(4));
        assert_eq!(ki.get(6), None);
    }
}
