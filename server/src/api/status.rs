//! The one mapping from [`Error`] to a gRPC status, with etcd's codes and
//! messages (`api/v3rpc/rpctypes/error.go`).

use tonic::{Code, Status};

use crate::error::Error;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::EmptyKey
            | Error::KeyNotFound
            | Error::ValueProvided
            | Error::LeaseProvided
            | Error::TooManyOps
            | Error::DuplicateKey
            | Error::RequestTooLarge => Code::InvalidArgument,
            Error::Compacted | Error::FutureRevision | Error::LeaseTtlTooLarge => Code::OutOfRange,
            Error::LeaseExists => Code::FailedPrecondition,
            Error::LeaseNotFound => Code::NotFound,
            Error::Stopped => Code::Unavailable,
            Error::NoSpace => Code::ResourceExhausted,
            Error::Storage(_)
            | Error::CorruptRecord { .. }
            | Error::DataDir { .. }
            // Logged, with the method, by the gRPC layer (metrics/grpc.rs).
            | Error::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
