//! Keys and key ranges: [`IntoBytes`] (what a key or value may be given as),
//! [`RangeEnd`] (single key, prefix, from-key or explicit end) and
//! [`prefix_end`], with etcd's rules for each.

use bytes::Bytes;

/// Anything usable as a key or value. `Bytes` and `Vec<u8>`/`String` are
/// taken without copying; borrowed slices and strings are copied.
pub trait IntoBytes {
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl IntoBytes for &Bytes {
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &String {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &str {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

/// The `range_end` meaning "every key ≥ key" (etcd's `WithFromKey`), and also
/// the prefix end when no key sorts after the prefix.
pub const FROM_KEY: &[u8] = b"\0";

/// The end of the range of keys starting with `prefix`, with etcd clientv3's
/// rule: increment the last byte that is below 0xff and drop what follows it.
/// When every byte is 0xff (or the prefix is empty) no such key exists and the
/// range runs to the end of the keyspace: `"\0"`.
///
/// `prefix_end(b"a/")` is `b"a0"`, `prefix_end(b"a\xff")` is `b"b"`,
/// `prefix_end(b"\xff\xff")` is `b"\0"`.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            Bytes::from(end)
        }
        None => Bytes::from_static(FROM_KEY),
    }
}

/// Which keys a get, delete or compare covers, starting from its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RangeEnd {
    /// Just the key itself.
    #[default]
    Key,
    /// Every key starting with the key (`range_end = prefix_end(key)`).
    Prefix,
    /// Every key ≥ the key (`range_end = "\0"`).
    FromKey,
    /// Keys in `[key, end)`; an empty end means the key alone.
    Until(Bytes),
}

impl RangeEnd {
    /// The `(key, range_end)` pair to send, as etcd clientv3 computes it: an
    /// empty key with `Prefix` or `FromKey` means every key (`"\0"`, `"\0"`).
    pub fn resolve(&self, key: Bytes) -> (Bytes, Bytes) {
        match self {
            Self::Key => (key, Bytes::new()),
            Self::Until(end) => (key, end.clone()),
            Self::Prefix | Self::FromKey if key.is_empty() => {
                (Bytes::from_static(FROM_KEY), Bytes::from_static(FROM_KEY))
            }
            Self::Prefix => {
                let end = prefix_end(&key);
                (key, end)
            }
            Self::FromKey => (key, Bytes::from_static(FROM_KEY)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"a"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"/services/"), Bytes::from_static(b"/services0"));
        assert_eq!(prefix_end(b"a\x00"), Bytes::from_static(b"a\x01"));
        assert_eq!(prefix_end(b"\xfe"), Bytes::from_static(b"\xff"));
    }

    #[test]
    fn prefix_end_drops_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"a\xfe\xff\xff"), Bytes::from_static(b"a\xff"));
        assert_eq!(prefix_end(b"\x01\xff"), Bytes::from_static(b"\x02"));
    }

    #[test]
    fn prefix_end_of_all_ff_or_empty_is_from_key() {
        assert_eq!(prefix_end(b"\xff"), Bytes::from_static(b"\0"));
        assert_eq!(prefix_end(b"\xff\xff\xff"), Bytes::from_static(b"\0"));
        assert_eq!(prefix_end(b""), Bytes::from_static(b"\0"));
    }

    #[test]
    fn range_end_resolves_like_clientv3() {
        let k = || Bytes::from_static(b"k");
        assert_eq!(RangeEnd::Key.resolve(k()), (k(), Bytes::new()));
        assert_eq!(
            RangeEnd::Prefix.resolve(k()),
            (k(), Bytes::from_static(b"l"))
        );
        assert_eq!(
            RangeEnd::FromKey.resolve(k()),
            (k(), Bytes::from_static(b"\0"))
        );
        assert_eq!(
            RangeEnd::Until(Bytes::from_static(b"z")).resolve(k()),
            (k(), Bytes::from_static(b"z"))
        );
        let all = (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
        assert_eq!(RangeEnd::Prefix.resolve(Bytes::new()), all);
        assert_eq!(RangeEnd::FromKey.resolve(Bytes::new()), all);
    }
}
