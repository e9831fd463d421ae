//! Multi-version key-value storage with etcd's semantics: revisions, the key
//! index, reads at a revision, writes inside the applier's transaction, and
//! compaction.
//!
//! Locking order: the [`store::Committed`] lock is taken before a redb read
//! transaction is begun, so a reader's index state and its redb snapshot always
//! belong together (see `store.rs`).

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
