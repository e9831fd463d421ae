//! The gRPC services (tonic types stop here): each handler validates, reads
//! a snapshot or proposes a command, and fills the response header.

pub mod cluster;
pub mod header;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod oversize;
pub mod quota_guard;
pub mod shutdown;
pub mod status;
pub mod validate;
pub mod watch;
