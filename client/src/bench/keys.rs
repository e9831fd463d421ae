//! Keys and values for the scenarios: a key is the big-endian index in the key
//! space, right-aligned in `key_size` zero bytes (etcd's benchmark also packs
//! the index into a fixed-size key); a value is random bytes, made once.

use bytes::Bytes;
use rand::{Rng, RngCore};

/// The key of `index`: `key_size` bytes ending in the index's big-endian
/// bytes. With `key_size` < 8 only the low bytes fit, so indexes beyond
/// 256^key_size share keys.
pub(crate) fn key_for(index: u64, key_size: usize) -> Bytes {
    let mut key = vec![0u8; key_size];
    let be = index.to_be_bytes();
    let n = key_size.min(be.len());
    key[key_size - n..].copy_from_slice(&be[be.len() - n..]);
    Bytes::from(key)
}

/// A uniformly random key of the key space.
pub(crate) fn random_key(rng: &mut impl Rng, key_space: u64, key_size: usize) -> Bytes {
    key_for(rng.random_range(0..key_space), key_size)
}

/// `size` random bytes.
pub(crate) fn random_value(size: usize) -> Bytes {
    let mut value = vec![0u8; size];
    rand::rng().fill_bytes(&mut value);
    Bytes::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_size_and_distinct() {
        assert_eq!(key_for(1, 8), Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1]));
        assert_eq!(key_for(258, 4), Bytes::from_static(&[0, 0, 1, 2]));
        assert_eq!(key_for(258, 1), Bytes::from_static(&[2]));
        assert_eq!(key_for(7, 10).len(), 10);
        assert_ne!(key_for(0, 8), key_for(1, 8));
    }
}
