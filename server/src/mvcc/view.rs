//! Reading the store at one revision: the key index says which revision of
//! each key is visible, the history table (of a read snapshot, or of the
//! applier's own write transaction) holds the values.
//!
//! [`View::range`] implements etcd's Range semantics: filters, sort, limit and
//! `more`, `count` unaffected by limit and filters.

use std::cmp::Ordering;

use redb::ReadableTable;
use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rollcall_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use rollcall_proto::mvccpb::KeyValue;

use super::index::TreeIndex;
use super::key_range::KeyRange;
use super::record::Record;
use super::revision::Revision;
use crate::error::{Error, Refusal};

/// The history table of any transaction, read or write.
pub(crate) trait History: ReadableTable<(i64, i64), &'static [u8]> {}
impl<T: ReadableTable<(i64, i64), &'static [u8]>> History for T {}

/// A consistent view: the index, the history table and the revisions that
/// bound what may be read.
pub(crate) struct View<'a, H: History> {
    pub index: &'a TreeIndex,
    pub history: &'a H,
    /// The newest revision visible in this view.
    pub rev: i64,
    /// Reads below this revision fail as compacted (-1 before any compaction).
    pub compact_rev: i64,
}

/// The raw result of a range: the visible key-values, and how many keys the
/// range holds in all.
pub(crate) struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub count: i64,
}

impl<H: History> View<'_, H> {
    /// Checks a requested read revision against this view (0 or less = newest).
    pub(crate) fn resolve(&self, requested: i64) -> Result<i64, Error> {
        if requested > self.rev {
            return Err(Error::Refused(Refusal::FutureRevision));
        }
        let at = if requested <= 0 { self.rev } else { requested };
        if at < self.compact_rev {
            return Err(Error::Refused(Refusal::Compacted));
        }
        Ok(at)
    }

    /// The key-value stored at `rev` (a put record).
    pub(crate) fn fetch(&self, rev: Revision) -> Result<KeyValue, Error> {
        let raw = self.history.get(rev.key())?.ok_or(Error::CorruptRecord {
            main: rev.main,
            sub: rev.sub,
            reason: "indexed revision missing from history".into(),
        })?;
        match Record::decode(rev.key(), raw.value())? {
            Record::Put(kv) => Ok(kv),
            Record::Tombstone(_) => Err(Error::CorruptRecord {
                main: rev.main,
                sub: rev.sub,
                reason: "index points at a tombstone".into(),
            }),
        }
    }

    /// Keys of `range` at revision `requested`, at most `limit` values fetched
    /// (0 = all), or only counted.
    pub(crate) fn range_keys(
        &self,
        range: &KeyRange,
        requested: i64,
        limit: usize,
        count_only: bool,
    ) -> Result<RangeResult, Error> {
        let at = self.resolve(requested)?;
        let found = self.index.live_keys(range, at);
        let count = i64::try_from(found.len()).unwrap_or(i64::MAX);
        if count_only {
            return Ok(RangeResult {
                kvs: Vec::new(),
                count,
            });
        }
        let take = if limit == 0 {
            found.len()
        } else {
            limit.min(found.len())
        };
        let kvs = found[..take]
            .iter()
            .map(|(_, k)| self.fetch(k.modified))
            .collect::<Result<_, _>>()?;
        Ok(RangeResult { kvs, count })
    }

    /// The live key-value of one key, if any.
    pub(crate) fn get(&self, key: &bytes::Bytes) -> Result<Option<KeyValue>, Error> {
        Ok(self
            .range_keys(&KeyRange::Single(key.clone()), 0, 0, false)?
            .kvs
            .pop())
    }

    /// etcd's Range: the response carries only `header.revision`; the API layer
    /// fills the rest of the header.
    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse, Error> {
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let sort_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
        let sort_target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
        // Like etcd: with an explicit sort order or a filter everything is
        // fetched and truncated afterwards; otherwise one extra key tells `more`.
        let fetch_limit = if sort_order != SortOrder::None || filtered || r.limit <= 0 {
            0
        } else {
            usize::try_from(r.limit.saturating_add(1)).unwrap_or(usize::MAX)
        };
        let range = KeyRange::new(&r.key, &r.range_end);
        let mut result = self.range_keys(&range, r.revision, fetch_limit, r.count_only)?;

        let kvs = &mut result.kvs;
        if r.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
        }
        if r.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
        }
        if r.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
        }
        if r.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
        }

        // A non-key target without an order sorts ascending (etcd does the
        // same, after the limit above was already applied).
        let order = if sort_target != SortTarget::Key && sort_order == SortOrder::None {
            SortOrder::Ascend
        } else {
            sort_order
        };
        if order != SortOrder::None {
            let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
                match sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                }
            };
            // Stable, so ties keep key order as etcd's sort does on small sets.
            if order == SortOrder::Descend {
                kvs.sort_by(|a, b| cmp(b, a));
            } else {
                kvs.sort_by(cmp);
            }
        }

        let mut more = false;
        if let Ok(limit) = usize::try_from(r.limit)
            && limit > 0
            && kvs.len() > limit
        {
            kvs.truncate(limit);
            more = true;
        }
        if r.keys_only {
            for kv in kvs.iter_mut() {
                kv.value = bytes::Bytes::new();
            }
        }
        Ok(RangeResponse {
            header: Some(ResponseHeader {
                revision: self.rev,
                ..Default::default()
            }),
            kvs: result.kvs,
            more,
            count: result.count,
        })
    }
}

impl<H: History> View<'_, H> {
    /// History events of `range` with revisions in `[from, to]`, in revision
    /// order, as watchers receive them (a delete carries the key and the
    /// delete's revision).
    pub(crate) fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, rollcall_proto::mvccpb::Event)>, Error> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        for entry in self.history.range((from, 0)..=(to, i64::MAX))? {
            let (k, v) = entry?;
            let key = k.value();
            let record = Record::decode(key, v.value())?;
            if range.contains(&record.kv().key) {
                out.push((key.0, record.into_event()));
            }
        }
        Ok(out)
    }
}

impl<H: History> View<'_, H> {
    /// etcd's HashKV: a CRC-32 of the history a member keeps up to revision
    /// `requested` (0 = newest): every record above the compact revision and,
    /// at or below it, only those compaction keeps. Whether the physical
    /// deletion has run yet does not change the hash. Returns the hash and the
    /// revision it covers.
    pub(crate) fn hash_kv(&self, requested: i64) -> Result<(u32, i64), Error> {
        if requested > self.rev {
            return Err(Error::Refused(Refusal::FutureRevision));
        }
        // Unlike a range, etcd refuses the compact revision itself here.
        if requested > 0 && requested <= self.compact_rev {
            return Err(Error::Refused(Refusal::Compacted));
        }
        let at = if requested <= 0 { self.rev } else { requested };
        let mut hasher = crc32fast::Hasher::new();
        for entry in self.history.range(..=(at, i64::MAX))? {
            let (k, v) = entry?;
            let (main, sub) = k.value();
            if main <= self.compact_rev {
                let record = Record::decode((main, sub), v.value())?;
                if !self.index.holds(&record.kv().key, Revision::new(main, sub)) {
                    continue;
                }
            }
            hasher.update(&main.to_be_bytes());
            hasher.update(&sub.to_be_bytes());
            hasher.update(v.value());
        }
        Ok((hasher.finalize(), at))
    }
}
