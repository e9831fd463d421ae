//! [`WatchOptions`] and the `WatchCreateRequest` they make. Zero values mean
//! "not set", exactly as on the wire.

use bytes::Bytes;
use rollcall_proto::etcdserverpb::WatchCreateRequest;
use rollcall_proto::etcdserverpb::watch_create_request::FilterType;

use crate::key::RangeEnd;

/// Options of a watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Which keys, starting at the key: itself, a prefix, from-key, or up to
    /// an end.
    pub range: RangeEnd,
    /// The first revision to deliver (history is replayed from it); 0 means
    /// the changes after the revision current at creation.
    pub start_revision: i64,
    /// Deliver each event with the key-value before it.
    pub prev_kv: bool,
    /// Leave out puts.
    pub no_put: bool,
    /// Leave out deletes.
    pub no_delete: bool,
    /// Ask the server for periodic progress notifications while idle.
    pub progress_notify: bool,
    /// Let the server split a revision too large for one message (the
    /// client reassembles it: a batch always holds whole revisions).
    pub fragment: bool,
}

impl WatchOptions {
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
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    #[must_use]
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    #[must_use]
    pub fn no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    #[must_use]
    pub fn no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    #[must_use]
    pub fn progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    #[must_use]
    pub fn fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// The `WatchCreateRequest` these options make for `key` (the server
    /// chooses the watch id).
    pub fn to_request(&self, key: Bytes) -> WatchCreateRequest {
        let (key, range_end) = self.range.resolve(key);
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        WatchCreateRequest {
            key,
            range_end,
            start_revision: self.start_revision,
            progress_notify: self.progress_notify,
            filters,
            prev_kv: self.prev_kv,
            watch_id: 0,
            fragment: self.fragment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fill_every_field() {
        let req = WatchOptions::new()
            .prefix()
            .start_revision(5)
            .prev_kv()
            .no_put()
            .no_delete()
            .progress_notify()
            .fragment()
            .to_request(Bytes::from_static(b"/s/"));
        assert_eq!(
            req,
            WatchCreateRequest {
                key: Bytes::from_static(b"/s/"),
                range_end: Bytes::from_static(b"/s0"),
                start_revision: 5,
                progress_notify: true,
                filters: vec![FilterType::Noput as i32, FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 0,
                fragment: true,
            }
        );
    }

    #[test]
    fn default_is_one_key_from_now() {
        let req = WatchOptions::new().to_request(Bytes::from_static(b"k"));
        assert_eq!(
            req,
            WatchCreateRequest {
                key: Bytes::from_static(b"k"),
                ..WatchCreateRequest::default()
            }
        );
        let req = WatchOptions::new()
            .from_key()
            .to_request(Bytes::from_static(b"k"));
        assert_eq!(req.range_end, Bytes::from_static(b"\0"));
        let req = WatchOptions::new()
            .range_end("m")
            .to_request(Bytes::from_static(b"k"));
        assert_eq!(req.range_end, Bytes::from_static(b"m"));
    }
}
