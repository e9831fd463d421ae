//! The one mapping from [`Error`] to a gRPC status, with etcd's codes and
//! messages (`api/v3rpc/rpctypes/error.go`).

use tonic::{Code, Status};

use crate::error::{ClusterError, Error, MembershipError, Refusal};

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let code = match refusal {
            Refusal::EmptyKey
            | Refusal::KeyNotFound
            | Refusal::ValueProvided
            | Refusal::LeaseProvided
            | Refusal::TooManyOps
            | Refusal::DuplicateKey
            | Refusal::RequestTooLarge => Code::InvalidArgument,
            Refusal::Compacted | Refusal::FutureRevision | Refusal::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            Refusal::LeaseExists => Code::FailedPrecondition,
            Refusal::LeaseNotFound => Code::NotFound,
            Refusal::NoSpace => Code::ResourceExhausted,
        };
        Status::new(code, refusal.to_string())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Refused(refusal) => return (*refusal).into(),
            Error::Stopped => Code::Unavailable,
            Error::Cluster(ClusterError::NotLeader) => Code::FailedPrecondition,
            Error::Cluster(ClusterError::TooManyRequests) => Code::ResourceExhausted,
            Error::Cluster(_) => Code::Unavailable,
            Error::Raft(_) => Code::Unavailable,
            Error::Membership(MembershipError::MemberNotFound) => Code::NotFound,
            Error::Membership(MembershipError::BadUrls) => Code::InvalidArgument,
            Error::Membership(_) => Code::FailedPrecondition,
            Error::Storage(_)
            | Error::CorruptRecord { .. }
            | Error::DataDir { .. }
            // Logged, with the method, by the gRPC layer (metrics/grpc.rs).
            | Error::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
