//! One write request's changes inside the applier's redb write transaction
//! (etcd's `storeTxnWrite`).
//!
//! Every change of the request gets the revision `begin_rev + 1` with `sub`
//! counting the changes, so a txn's operations share one revision. A request
//! that changes nothing (a delete that deletes nothing) creates no revision.
//! Reads inside the request see its own earlier changes.

use bytes::Bytes;
use redb::Table;
use rollcall_proto::mvccpb::KeyValue;

use super::index::TreeIndex;
use super::key_range::KeyRange;
use super::record::Record;
use super::revision::Revision;
use super::view::View;
use crate::error::Error;

pub(crate) type HistoryTable<'t> = Table<'t, (i64, i64), &'static [u8]>;

pub(crate) struct WriteTxn<'a, 't> {
    pub index: &'a mut TreeIndex,
    pub history: &'a mut HistoryTable<'t>,
    /// The store revision before this request.
    pub begin_rev: i64,
    pub compact_rev: i64,
    /// This request's changes so far, in order: what watchers will be told.
    pub changes: Vec<Record>,
}

impl WriteTxn<'_, '_> {
    /// The revision reads inside this request see: the new one once it has
    /// changed anything.
    pub(crate) fn rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    pub(crate) fn view(&self) -> View<'_, HistoryTable<'_>> {
        View {
            index: self.index,
            history: self.history,
            rev: self.rev(),
            compact_rev: self.compact_rev,
        }
    }

    fn next_revision(&self) -> Revision {
        let sub = i64::try_from(self.changes.len()).unwrap_or(i64::MAX);
        Revision::new(self.begin_rev + 1, sub)
    }

    /// Writes `key`; returns the request's revision.
    pub(crate) fn put(&mut self, key: &Bytes, value: Bytes, lease: i64) -> Result<i64, Error> {
        let rev = self.next_revision();
        let previous = self.index.get(key, rev.main);
        let kv = KeyValue {
            key: key.clone(),
            create_revision: previous.map_or(rev.main, |p| p.created.main),
            mod_revision: rev.main,
            version: previous.map_or(0, |p| p.version) + 1,
            value,
            lease,
        };
        let record = Record::Put(kv);
        self.history.insert(rev.key(), record.encode().as_ref())?;
        self.index.put(key, rev);
        self.changes.push(record);
        Ok(rev.main)
    }

    /// Deletes the live keys of `range`; returns how many and the revision
    /// (unchanged when nothing was deleted and nothing else changed).
    pub(crate) fn delete_range(&mut self, range: &KeyRange) -> Result<(i64, i64), Error> {
        let keys = self.index.live_keys(range, self.rev());
        for (key, _) in &keys {
            let rev = self.next_revision();
            let tombstone = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            let record = Record::Tombstone(tombstone);
            self.history.insert(rev.key(), record.encode().as_ref())?;
            self.index.tombstone(key, rev);
            self.changes.push(record);
        }
        Ok((i64::try_from(keys.len()).unwrap_or(i64::MAX), self.rev()))
    }
}
