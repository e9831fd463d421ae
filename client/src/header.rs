//! [`HasHeader`]: uniform access to the response header (and so the store
//! revision a response was served at) of every etcd response.

use rollcall_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse,
    PutResponse, RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};

/// A response that carries etcd's `ResponseHeader`.
pub trait HasHeader {
    fn header(&self) -> Option<&ResponseHeader>;

    /// The store revision the response reflects (0 if the server sent no header).
    fn revision(&self) -> i64 {
        self.header().map_or(0, |h| h.revision)
    }
}

macro_rules! has_header {
    ($($t:ty),* $(,)?) => {$(
        impl HasHeader for $t {
            fn header(&self) -> Option<&ResponseHeader> {
                self.header.as_ref()
            }
        }
    )*};
}

has_header!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    StatusResponse,
    MemberListResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    LeaseKeepAliveResponse,
    LeaseTimeToLiveResponse,
    LeaseLeasesResponse,
    WatchResponse,
);
