//! The `[key, range_end)` convention of the etcd API, decoded once.
//!
//! * empty `range_end`: the single key `key`;
//! * `range_end == "\0"`: every key `>= key`;
//! * otherwise: `key <= k < range_end` (empty when `range_end <= key`).

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRange {
    Single(Bytes),
    /// `end == None` is unbounded above.
    Span {
        start: Bytes,
        end: Option<Bytes>,
    },
}

impl KeyRange {
    pub(crate) fn new(key: &Bytes, range_end: &Bytes) -> Self {
        if range_end.is_empty() {
            Self::Single(key.clone())
        } else if range_end.as_ref() == b"\0" {
            Self::Span {
                start: key.clone(),
                end: None,
            }
        } else {
            Self::Span {
                start: key.clone(),
                end: Some(range_end.clone()),
            }
        }
    }

    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        match self {
            Self::Single(key) => key.as_ref() == k,
            Self::Span { start, end } => {
                start.as_ref() <= k && end.as_ref().is_none_or(|e| k < e.as_ref())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_three_forms() {
        let single = KeyRange::new(&Bytes::from_static(b"a"), &Bytes::new());
        assert!(single.contains(b"a") && !single.contains(b"ab"));
        let prefix = KeyRange::new(&Bytes::from_static(b"a"), &Bytes::from_static(b"b"));
        assert!(prefix.contains(b"a") && prefix.contains(b"az") && !prefix.contains(b"b"));
        let from = KeyRange::new(&Bytes::from_static(b"b"), &Bytes::from_static(b"\0"));
        assert!(from.contains(b"zzz") && !from.contains(b"a"));
    }
}
