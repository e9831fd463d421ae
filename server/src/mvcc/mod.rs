//! Multi-version key-value storage with etcd's semantics: revisions, the key
//! index, reads at a revision, writes inside the applier's transaction, and
//! compaction.
//!
//! Readers work on a published [`store::Snapshot`] of the index paired with a
//! redb read transaction begun under the same (briefly held) lock, so the two
//! always belong together and no reader holds a lock while it reads (see
//! `store.rs`).

pub mod index;
pub mod key_index;
pub mod key_range;
pub mod record;
pub mod revision;
pub mod store;
pub mod view;
pub mod write;

pub use key_range::KeyRange;
pub use record::Record;
pub use revision::Revision;
pub use store::Store;
pub use view::View;
pub use write::WriteTxn;
