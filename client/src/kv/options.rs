//! The options of get, put and delete, and how each becomes its etcd request.
//! Zero values mean "not set", exactly as on the wire.

use bytes::Bytes;
use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rollcall_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

use crate::key::RangeEnd;

/// Options of a get (etcd `Range`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOptions {
    /// Which keys, starting at the key: itself, a prefix, from-key, or up to an end.
    pub range: RangeEnd,
    /// At most this many keys (0 = no limit); `more` tells if some were left out.
    pub limit: i64,
    /// Read at this revision (0 = current).
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    /// Answer from the local member without a linearizable read.
    pub serializable: bool,
    /// Return keys and metadata without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Filters on the keys' revisions (0 = no bound).
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

impl Default for GetOptions {
    fn default() -> Self {
        Self {
            range: RangeEnd::Key,
            limit: 0,
            revision: 0,
            sort_order: SortOrder::None,
            sort_target: SortTarget::Key,
            serializable: false,
            keys_only: false,
            count_only: false,
            min_mod_revision: 0,
            max_mod_revision: 0,
            min_create_revision: 0,
            max_create_revision: 0,
        }
    }
}

impl GetOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key starting with the key.
    #[must_use]
    pub fn prefix(mut self) -> Self {
        self.range = RangeEnd::Prefix;
        self
    }

    /// Every key ≥ the key.
    #[must_use]
    pub fn from_key(mut self) -> Self {
        self.range = RangeEnd::FromKey;
        self
    }

    /// Keys in `[key, end)`.
    #[must_use]
    pub fn range_end(mut self, end: impl crate::IntoBytes) -> Self {
        self.range = RangeEnd::Until(end.into_bytes());
        self
    }

    #[must_use]
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    #[must_use]
    pub fn revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    #[must_use]
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }

    #[must_use]
    pub fn serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    #[must_use]
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    #[must_use]
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    #[must_use]
    pub fn mod_revision_between(mut self, min: i64, max: i64) -> Self {
        self.min_mod_revision = min;
        self.max_mod_revision = max;
        self
    }

    #[must_use]
    pub fn create_revision_between(mut self, min: i64, max: i64) -> Self {
        self.min_create_revision = min;
        self.max_create_revision = max;
        self
    }

    /// The `RangeRequest` these options make for `key`.
    pub fn to_request(&self, key: Bytes) -> RangeRequest {
        let (key, range_end) = self.range.resolve(key);
        RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.revision,
            sort_order: self.sort_order as i32,
            sort_target: self.sort_target as i32,
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        }
    }
}

/// Options of a put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Attach the key to this lease (0 = none; a put without it detaches).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist; the value sent must be empty).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist; `lease` must be 0).
    pub ignore_lease: bool,
}

impl PutOptions {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    #[must_use]
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    #[must_use]
    pub fn ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    #[must_use]
    pub fn ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// The `PutRequest` these options make for `key` and `value`.
    pub fn to_request(&self, key: Bytes, value: Bytes) -> PutRequest {
        PutRequest {
            key,
            value,
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options of a delete (etcd `DeleteRange`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Which keys, starting at the key.
    pub range: RangeEnd,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteOptions {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn prefix(mut self) -> Self {
        self.range = RangeEnd::Prefix;
        self
    }

    #[must_use]
    pub fn from_key(mut self) -> Self {
        self.range = RangeEnd::FromKey;
        self
    }

    #[must_use]
    pub fn range_end(mut self, end: impl crate::IntoBytes) -> Self {
        self.range = RangeEnd::Until(end.into_bytes());
        self
    }

    #[must_use]
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The `DeleteRangeRequest` these options make for `key`.
    pub fn to_request(&self, key: Bytes) -> DeleteRangeRequest {
        let (key, range_end) = self.range.resolve(key);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_options_fill_every_field() {
        let req = GetOptions::new()
            .prefix()
            .limit(5)
            .revision(7)
            .sort(SortTarget::Mod, SortOrder::Descend)
            .serializable()
            .keys_only()
            .count_only()
            .mod_revision_between(1, 2)
            .create_revision_between(3, 4)
            .to_request(Bytes::from_static(b"/a/"));
        assert_eq!(
            req,
            RangeRequest {
                key: Bytes::from_static(b"/a/"),
                range_end: Bytes::from_static(b"/a0"),
                limit: 5,
                revision: 7,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Mod as i32,
                serializable: true,
                keys_only: true,
                count_only: true,
                min_mod_revision: 1,
                max_mod_revision: 2,
                min_create_revision: 3,
                max_create_revision: 4,
            }
        );
    }

    #[test]
    fn default_get_is_a_single_key() {
        let req = GetOptions::new().to_request(Bytes::from_static(b"k"));
        assert_eq!(
            req,
            RangeRequest {
                key: Bytes::from_static(b"k"),
                ..RangeRequest::default()
            }
        );
    }

    #[test]
    fn delete_options_resolve_ranges() {
        let req = DeleteOptions::new()
            .from_key()
            .prev_kv()
            .to_request(Bytes::from_static(b"a"));
        assert_eq!(req.range_end, Bytes::from_static(b"\0"));
        assert!(req.prev_kv);
        let req = DeleteOptions::new()
            .range_end("c")
            .to_request(Bytes::from_static(b"a"));
        assert_eq!(req.range_end, Bytes::from_static(b"c"));
    }
}
