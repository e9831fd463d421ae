//! [`ClientError`]: every way a call can fail, and the classification of
//! etcd's well-known server errors.
//!
//! A failed call is one of three things, and callers react differently to
//! each: the endpoint could not be reached or the connection broke
//! ([`ClientError::Transport`], [`ClientError::Unreachable`]: retry elsewhere),
//! the call ran out of time ([`ClientError::Timeout`]: the request may or may
//! not have been applied), or the server answered with a gRPC status
//! ([`ClientError::Server`]: the request was rejected).
//!
//! A watcher ends with a [`WatchError`]: its history was compacted (re-list
//! and watch again), the server canceled it, or its stream could not be
//! re-established within the retry policy.
//!
//! etcd clients recognise server errors by their message, byte for byte
//! (clientv3's `rpctypes` does exactly that), so [`EtcdErrorKind::classify`]
//! matches the exact strings of etcd's `api/v3rpc/rpctypes/error.go`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `Client::connect` was given no endpoint at all.
    #[error("no endpoints given")]
    NoEndpoints,

    /// An endpoint string is not a usable `http://host:port` or `host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        endpoint: String,
        reason: &'static str,
    },

    /// No endpoint accepted a connection; one entry per endpoint tried, in order.
    #[error("could not connect to any endpoint: {}", join_failures(.failures))]
    Unreachable { failures: Vec<EndpointFailure> },

    /// The connection failed or broke during a call (refused, reset, HTTP/2
    /// protocol error). The request may or may not have reached the server.
    #[error("transport error: {}", describe_status(.0))]
    Transport(#[source] tonic::Status),

    /// The call did not complete within the request timeout. As with any
    /// timeout, a write may still have been applied.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),

    /// The server answered with a non-OK gRPC status.
    #[error(transparent)]
    Server(#[from] ServerError),

    /// Options given to a helper (for example the load generator) are unusable.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: &'static str,
    },

    /// The TLS files could not be used.
    #[error("TLS: {0}")]
    Tls(String),

    /// A watch could not be created or ended.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// Why a watcher ended (or could not be created). After any of these the
/// watcher yields nothing more.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchError {
    /// The revision the watcher needed next has been compacted away: events
    /// were lost to it. Re-list (get the range, at revision R) and watch
    /// again from R + 1.
    #[error(
        "watch canceled: required revision has been compacted (compact revision {compact_revision})"
    )]
    Compacted { compact_revision: i64 },

    /// The server refused or canceled the watcher, with etcd's reason (for
    /// example `mvcc: watcher range is empty`); the reason may be empty.
    #[error("watch canceled by the server: {reason}")]
    Canceled { reason: String },

    /// The stream broke and could not be re-established within the retry
    /// policy; `attempts` consecutive attempts failed, the last with `source`.
    #[error("watch stream lost after {attempts} attempts: {source}")]
    Disconnected {
        attempts: u32,
        #[source]
        source: Arc<ClientError>,
    },

    /// The watch session is gone (its task ended), so nothing can be watched
    /// through it.
    #[error("watch session closed")]
    Closed,
}

impl WatchError {
    /// The compact revision, if the watcher ended because of a compaction.
    pub fn compact_revision(&self) -> Option<i64> {
        match self {
            Self::Compacted { compact_revision } => Some(*compact_revision),
            _ => None,
        }
    }
}

impl ClientError {
    /// The etcd error this is, if the server answered with one of etcd's
    /// well-known errors (`Some(EtcdErrorKind::Compacted)` and so on).
    pub fn etcd_kind(&self) -> Option<EtcdErrorKind> {
        match self {
            Self::Server(e) => e.kind,
            _ => None,
        }
    }

    /// The gRPC status code, if the server answered with a status.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Server(e) => Some(e.code),
            _ => None,
        }
    }

    /// True if the requested revision has been compacted away (re-list):
    /// a read at a compacted revision, or a watcher canceled by compaction.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Self::Watch(WatchError::Compacted { .. }))
            || self.etcd_kind() == Some(EtcdErrorKind::Compacted)
    }

    /// True if the call ran out of time, on this side or the server's.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Server(e) => e.code == Code::DeadlineExceeded,
            _ => false,
        }
    }

    /// True for failures where another endpoint might succeed: the connection
    /// failed, or the server said it cannot serve right now.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Transport(_) => true,
            Self::Server(e) => e.code == Code::Unavailable,
            Self::Watch(WatchError::Disconnected { .. }) => true,
            _ => false,
        }
    }

    /// False for failures a retry of the same request cannot fix: the
    /// server refused it as invalid, unauthorised or unimplemented, or the
    /// options given were unusable. A broken stream is re-opened only after
    /// a retryable failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Server(e) => !matches!(
                e.code,
                Code::InvalidArgument
                    | Code::PermissionDenied
                    | Code::Unauthenticated
                    | Code::Unimplemented
                    | Code::FailedPrecondition
                    | Code::OutOfRange
            ),
            Self::NoEndpoints
            | Self::InvalidEndpoint { .. }
            | Self::InvalidOption { .. }
            | Self::Tls(_) => false,
            Self::Watch(e) => matches!(e, WatchError::Disconnected { .. }),
            Self::Unreachable { .. } | Self::Transport(_) | Self::Timeout(_) => true,
        }
    }
}

impl From<tonic::Status> for ClientError {
    /// A status that carries a local error as its source was produced on this
    /// side (connect failure, broken connection); a status decoded from the
    /// server's trailers has none.
    fn from(status: tonic::Status) -> Self {
        if status.source().is_some() {
            Self::Transport(status)
        } else {
            Self::Server(ServerError::new(status.code(), status.message()))
        }
    }
}

/// A non-OK gRPC status sent by the server, with etcd's error recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server error ({code:?}): {message}")]
pub struct ServerError {
    /// The gRPC status code as sent.
    pub code: Code,
    /// The status message as sent.
    pub message: String,
    /// Which of etcd's well-known errors this is, if any.
    pub kind: Option<EtcdErrorKind>,
}

impl ServerError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let message = message.into();
        let kind = EtcdErrorKind::classify(&message);
        Self {
            code,
            message,
            kind,
        }
    }
}

/// etcd's well-known server errors, recognised by their exact message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtcdErrorKind {
    /// `etcdserver: key is not provided`
    EmptyKey,
    /// `etcdserver: key not found` (put with `ignore_value`/`ignore_lease` on a missing key)
    KeyNotFound,
    /// `etcdserver: value is provided`
    ValueProvided,
    /// `etcdserver: lease is provided`
    LeaseProvided,
    /// `etcdserver: too many operations in txn request`
    TooManyOps,
    /// `etcdserver: duplicate key given in txn request`
    DuplicateKey,
    /// `etcdserver: request is too large`
    RequestTooLarge,
    /// `etcdserver: mvcc: required revision has been compacted`
    Compacted,
    /// `etcdserver: mvcc: required revision is a future revision`
    FutureRevision,
    /// `etcdserver: mvcc: database space exceeded`
    NoSpace,
    /// `etcdserver: requested lease not found`
    LeaseNotFound,
    /// `etcdserver: lease already exists`
    LeaseExists,
    /// `etcdserver: too large lease TTL`
    LeaseTtlTooLarge,
    /// `etcdserver: no leader`
    NoLeader,
    /// `etcdserver: request timed out`
    ServerTimeout,
    /// `etcdserver: too many requests`
    TooManyRequests,
}

/// Every recognised message and its kind; the strings are etcd's, byte for byte.
const ETCD_MESSAGES: &[(&str, EtcdErrorKind)] = &[
    ("etcdserver: key is not provided", EtcdErrorKind::EmptyKey),
    ("etcdserver: key not found", EtcdErrorKind::KeyNotFound),
    (
        "etcdserver: value is provided",
        EtcdErrorKind::ValueProvided,
    ),
    (
        "etcdserver: lease is provided",
        EtcdErrorKind::LeaseProvided,
    ),
    (
        "etcdserver: too many operations in txn request",
        EtcdErrorKind::TooManyOps,
    ),
    (
        "etcdserver: duplicate key given in txn request",
        EtcdErrorKind::DuplicateKey,
    ),
    (
        "etcdserver: request is too large",
        EtcdErrorKind::RequestTooLarge,
    ),
    (
        "etcdserver: mvcc: required revision has been compacted",
        EtcdErrorKind::Compacted,
    ),
    (
        "etcdserver: mvcc: required revision is a future revision",
        EtcdErrorKind::FutureRevision,
    ),
    (
        "etcdserver: mvcc: database space exceeded",
        EtcdErrorKind::NoSpace,
    ),
    (
        "etcdserver: requested lease not found",
        EtcdErrorKind::LeaseNotFound,
    ),
    (
        "etcdserver: lease already exists",
        EtcdErrorKind::LeaseExists,
    ),
    (
        "etcdserver: too large lease TTL",
        EtcdErrorKind::LeaseTtlTooLarge,
    ),
    ("etcdserver: no leader", EtcdErrorKind::NoLeader),
    (
        "etcdserver: request timed out",
        EtcdErrorKind::ServerTimeout,
    ),
    (
        "etcdserver: too many requests",
        EtcdErrorKind::TooManyRequests,
    ),
];

impl EtcdErrorKind {
    /// The etcd error a status message denotes, matched exactly.
    pub fn classify(message: &str) -> Option<Self> {
        ETCD_MESSAGES
            .iter()
            .find(|(m, _)| *m == message)
            .map(|&(_, kind)| kind)
    }

    /// etcd's message for this error.
    pub fn message(self) -> &'static str {
        ETCD_MESSAGES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |&(m, _)| m)
    }
}

/// One endpoint that could not be connected to.
#[derive(Debug)]
pub struct EndpointFailure {
    /// The endpoint as normalised (`http://host:port`).
    pub endpoint: String,
    pub error: tonic::transport::Error,
}

impl fmt::Display for EndpointFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.endpoint, error_chain(&self.error))
    }
}

fn join_failures(failures: &[EndpointFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `code: message`, then the local cause chain (tonic's own messages are terse).
fn describe_status(status: &tonic::Status) -> String {
    let mut out = format!("{:?}: {}", status.code(), status.message());
    append_sources(&mut out, status.source());
    out
}

/// An error and its sources joined with `: ` (tonic's transport error on its
/// own only says "transport error").
fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    append_sources(&mut out, e.source());
    out
}

fn append_sources(out: &mut String, mut source: Option<&(dyn StdError + 'static)>) {
    while let Some(e) = source {
        let text = e.to_string();
        // hyper and tonic often repeat their inner error's text.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: Code, message: &str) -> ClientError {
        ClientError::from(tonic::Status::new(code, message))
    }

    #[test]
    fn etcd_errors_are_classified_by_exact_message() {
        let cases = [
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
                EtcdErrorKind::Compacted,
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
                EtcdErrorKind::FutureRevision,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: key not found",
                EtcdErrorKind::KeyNotFound,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
                EtcdErrorKind::TooManyOps,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
                EtcdErrorKind::DuplicateKey,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large",
                EtcdErrorKind::RequestTooLarge,
            ),
            (
                Code::NotFound,
                "etcdserver: requested lease not found",
                EtcdErrorKind::LeaseNotFound,
            ),
            (
                Code::InvalidArgument,
                "etcdserver: key is not provided",
                EtcdErrorKind::EmptyKey,
            ),
        ];
        for (code, message, kind) in cases {
            let e = server(code, message);
            assert_eq!(e.etcd_kind(), Some(kind), "{message}");
            assert_eq!(e.code(), Some(code));
            assert_eq!(kind.message(), message);
            match e {
                ClientError::Server(s) => assert_eq!(s.message, message),
                other => panic!("not a server error: {other:?}"),
            }
        }
        assert!(
            server(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted"
            )
            .is_compacted()
        );
    }

    #[test]
    fn other_statuses_keep_code_and_message() {
        let e = server(
            Code::Internal,
            "etcdserver: mvcc: required revision has been compacted!",
        );
        assert_eq!(e.etcd_kind(), None);
        assert!(!e.is_compacted());
        let e = server(Code::PermissionDenied, "nope");
        assert!(matches!(
            &e,
            ClientError::Server(ServerError { code: Code::PermissionDenied, message, kind: None })
                if message == "nope"
        ));
        assert!(server(Code::Unavailable, "etcdserver: no leader").is_unavailable());
        assert!(server(Code::DeadlineExceeded, "context deadline exceeded").is_timeout());
    }

    #[test]
    fn every_kind_has_its_message() {
        for &(message, kind) in ETCD_MESSAGES {
            assert_eq!(EtcdErrorKind::classify(message), Some(kind));
            assert_eq!(kind.message(), message);
        }
    }

    #[test]
    fn watch_errors_classify() {
        let compacted = ClientError::from(WatchError::Compacted {
            compact_revision: 7,
        });
        assert!(compacted.is_compacted());
        assert!(!compacted.is_retryable());
        let lost = ClientError::from(WatchError::Disconnected {
            attempts: 3,
            source: Arc::new(ClientError::Timeout(Duration::from_secs(1))),
        });
        assert!(lost.is_unavailable());
        assert!(lost.to_string().contains("3 attempts"), "{lost}");
        assert_eq!(
            WatchError::Compacted {
                compact_revision: 9
            }
            .compact_revision(),
            Some(9)
        );
        assert!(!server(Code::InvalidArgument, "bad").is_retryable());
        assert!(server(Code::Unavailable, "etcdserver: no leader").is_retryable());
    }

    #[test]
    fn a_status_with_a_local_source_is_a_transport_error() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(io));
        let e = ClientError::from(status);
        assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
