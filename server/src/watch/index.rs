//! Which synced watchers an event's key concerns, without visiting every
//! watcher: single-key watchers are found by key, prefix watchers (the
//! registry's common case: `/services/web/`) by looking up each prefix of the
//! event's key, so a match costs O(key length) hash lookups however many
//! watchers there are. Other ranges (from-key, arbitrary spans) are rare and
//! kept in a list that is scanned.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::mvcc::KeyRange;

/// A watcher's identity inside the hub, unique for the server's lifetime.
pub(crate) type WatcherKey = u64;

#[derive(Debug, Default)]
pub(crate) struct WatcherIndex {
    by_key: HashMap<Bytes, HashSet<WatcherKey>>,
    by_prefix: HashMap<Bytes, HashSet<WatcherKey>>,
    /// Lengths of the prefixes in `by_prefix`, with how many watchers use each,
    /// so a lookup tries only lengths that exist.
    prefix_lengths: HashMap<usize, usize>,
    spans: HashMap<WatcherKey, KeyRange>,
}

/// The range's prefix when `range` is exactly "every key starting with it".
fn as_prefix(range: &KeyRange) -> Option<&Bytes> {
    match range {
        KeyRange::Span {
            start,
            end: Some(end),
        } if prefix_end(start).as_slice() == end.as_ref() => Some(start),
        _ => None,
    }
}

/// etcd's prefix rule: the smallest key greater than every key with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff: no upper bound ("\0" means "to the end").
    vec![0]
}

impl WatcherIndex {
    pub(crate) fn insert(&mut self, key: WatcherKey, range: &KeyRange) {
        if let KeyRange::Single(k) = range {
            self.by_key.entry(k.clone()).or_default().insert(key);
        } else if let Some(prefix) = as_prefix(range) {
            if self
                .by_prefix
                .entry(prefix.clone())
                .or_default()
                .insert(key)
            {
                *self.prefix_lengths.entry(prefix.len()).or_default() += 1;
            }
        } else {
            self.spans.insert(key, range.clone());
        }
    }

    pub(crate) fn remove(&mut self, key: WatcherKey, range: &KeyRange) {
        if let KeyRange::Single(k) = range {
            remove_from(&mut self.by_key, k, key);
        } else if let Some(prefix) = as_prefix(range) {
            if remove_from(&mut self.by_prefix, prefix, key)
                && let Some(n) = self.prefix_lengths.get_mut(&prefix.len())
            {
                *n -= 1;
                if *n == 0 {
                    self.prefix_lengths.remove(&prefix.len());
                }
            }
        } else {
            self.spans.remove(&key);
        }
    }

    /// Calls `found` for every watcher whose range holds `key`.
    pub(crate) fn matching(&self, key: &[u8], mut found: impl FnMut(WatcherKey)) {
        if let Some(set) = self.by_key.get(key) {
            set.iter().copied().for_each(&mut found);
        }
        for &len in self.prefix_lengths.keys() {
            if len <= key.len()
                && let Some(set) = self.by_prefix.get(&key[..len])
            {
                set.iter().copied().for_each(&mut found);
            }
        }
        for (watcher, range) in &self.spans {
            if range.contains(key) {
                found(*watcher);
            }
        }
    }
}

/// Removes `watcher` from the set under `k`; true if it was there.
fn remove_from(
    map: &mut HashMap<Bytes, HashSet<WatcherKey>>,
    k: &Bytes,
    watcher: WatcherKey,
) -> bool {
    let Some(set) = map.get_mut(k) else {
        return false;
    };
    let removed = set.remove(&watcher);
    if set.is_empty() {
        map.remove(k);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &str, end: &[u8]) -> KeyRange {
        KeyRange::new(
            &Bytes::copy_from_slice(key.as_bytes()),
            &Bytes::copy_from_slice(end),
        )
    }

    fn matches(index: &WatcherIndex, key: &str) -> Vec<WatcherKey> {
        let mut out = Vec::new();
        index.matching(key.as_bytes(), |w| out.push(w));
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_single_prefix_and_span_watchers() {
        let mut index = WatcherIndex::default();
        index.insert(1, &range("/s/web/1", b""));
        index.insert(2, &range("/s/web/", b"/s/web0"));
        index.insert(3, &range("/s/", b"/s0"));
        index.insert(4, &range("/s/m", b"\0"));
        index.insert(5, &range("/s/a", b"/s/c"));
        assert_eq!(matches(&index, "/s/web/1"), vec![1, 2, 3, 4]);
        assert_eq!(matches(&index, "/s/web/2"), vec![2, 3, 4]);
        assert_eq!(matches(&index, "/s/b"), vec![3, 5]);
        // Only the from-key watcher reaches past its prefix.
        assert_eq!(matches(&index, "/x"), vec![4]);
        assert_eq!(matches(&index, "/a"), Vec::<WatcherKey>::new());
        index.remove(2, &range("/s/web/", b"/s/web0"));
        index.remove(4, &range("/s/m", b"\0"));
        assert_eq!(matches(&index, "/s/web/1"), vec![1, 3]);
        index.remove(3, &range("/s/", b"/s0"));
        assert!(index.prefix_lengths.is_empty());
    }

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
