//! Multi-version key-value storage with etcd's semantics: revisions, the key
//! index, reads at a revision, writes inside the applier's transaction, and
//! compaction.
//!
//! Readers work on a published [`store::Snapshot`] of the index paired with a
//! redb read transaction begun under the same (briefly held) lock, so the two
//! always belong together and no reader holds a lock while it reads (see
//! `store.rs`).

pub(crate) mod index;
pub(crate) mod key_index;
pub(crate) mod key_range;
pub(crate) mod record;
pub(crate) mod revision;
pub(crate) mod store;
pub(crate) mod view;
pub(crate) mod write;

pub(crate) use key_range::KeyRange;
pub(crate) use record::Record;
pub(crate) use revision::Revision;
pub(crate) use store::Store;
pub(crate) use view::View;
pub(crate) use write::WriteTxn;
