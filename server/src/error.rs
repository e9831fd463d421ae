//! The errors of the store and the write path. Each etcd-visible error is its
//! own variant whose message is etcd's, byte for byte (clients match on the
//! strings); `api::status` turns them into gRPC statuses in one place.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A broken internal invariant: a bug, never a client's fault.
    #[error("rollcall: internal error: {0}")]
    Internal(&'static str),
    /// The applier has stopped (shutdown or a fatal storage error).
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("corrupt record at revision {main}.{sub}: {reason}")]
    CorruptRecord { main: i64, sub: i64, reason: String },
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Storage(e.into())
            }
        }
    )*};
}

storage_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
