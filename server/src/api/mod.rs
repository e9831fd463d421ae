//! The gRPC services (tonic types stop here): each handler validates, reads
//! a snapshot or proposes a command, and fills the response header.

pub(crate) mod cluster;
pub(crate) mod header;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod maintenance;
pub(crate) mod oversize;
pub(crate) mod peer;
pub(crate) mod quota_guard;
pub(crate) mod shutdown;
pub(crate) mod status;
pub(crate) mod validate;
pub(crate) mod watch;
