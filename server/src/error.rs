//! The errors of the store and the write path. Deterministic refusals
//! ([`Refusal`], etcd's `etcdserver: …` errors) are a type of their own, apart
//! from this member's failures, because replication depends on the
//! difference: a refusal is part of the replicated outcome, a storage failure
//! stops the member. `api::status` turns both into gRPC statuses in one place.

use std::path::PathBuf;

/// A request refused by etcd's rules: the same request against the same
/// state is refused the same way on every member and on every replay, so a
/// refusal is an answer to send, never a fault of this member. Each message
/// is etcd's, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
}

impl Refusal {
    /// Every refusal, in the order of its stable code: the code is its
    /// position here, so new refusals are only ever appended (members of
    /// different versions exchange these codes, see `raft/codec.rs`).
    const ALL: [Refusal; 13] = [
        Refusal::EmptyKey,
        Refusal::KeyNotFound,
        Refusal::ValueProvided,
        Refusal::LeaseProvided,
        Refusal::TooManyOps,
        Refusal::DuplicateKey,
        Refusal::RequestTooLarge,
        Refusal::Compacted,
        Refusal::FutureRevision,
        Refusal::LeaseNotFound,
        Refusal::LeaseExists,
        Refusal::LeaseTtlTooLarge,
        Refusal::NoSpace,
    ];

    /// The refusal's stable code on the peer wire.
    pub(crate) fn code(self) -> u32 {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(u32::MAX)
    }

    /// The refusal with stable code `code`, if there is one.
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

/// Everything that can go wrong in the store and the write path: a
/// [`Refusal`], or a failure of this member (its disk, a broken invariant,
/// a stopped applier) that says nothing about the request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A broken internal invariant: a bug, never a client's fault.
    #[error("rollcall: internal error: {0}")]
    Internal(&'static str),
    /// The applier has stopped (shutdown or a fatal storage error).
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The cluster's answers to a request it could not serve now (etcd's
    /// messages): retryable, on this member or another.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A membership change etcd refuses (its messages).
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The replication engine failed on this member.
    #[error("raft: {0}")]
    Raft(String),
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

impl Error {
    /// The same error for another caller of the same failed batch.
    pub(crate) fn shareable(&self) -> Self {
        match self {
            Self::Refused(r) => Self::Refused(*r),
            Self::Cluster(c) => Self::Cluster(*c),
            Self::Membership(m) => Self::Membership(*m),
            Self::Stopped => Self::Stopped,
            Self::Internal(m) => Self::Internal(m),
            other => Self::Raft(other.to_string()),
        }
    }
}

/// Why a member of a cluster could not serve a request now, with etcd 3.4's
/// messages (`rpctypes/error.go`): none says anything about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    TimeoutDueToConnectionLost,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: rpc not supported for learner")]
    LearnerRpc,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
}

/// Membership changes etcd refuses, with its messages (`rpctypes/error.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
}

impl ClusterError {
    /// The error whose message is `message`, as a peer sent it.
    pub(crate) fn from_message(message: &str) -> Option<Self> {
        [
            Self::NoLeader,
            Self::NotLeader,
            Self::LeaderChanged,
            Self::Timeout,
            Self::TimeoutDueToLeaderFail,
            Self::TimeoutDueToConnectionLost,
            Self::TooManyRequests,
            Self::LearnerRpc,
            Self::LeaderTransferTimeout,
        ]
        .into_iter()
        .find(|e| e.to_string() == message)
    }
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
