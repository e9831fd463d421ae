//! [`Clients`]: every etcd v3 gRPC stub of one server over one channel, with
//! `try_*` calls that return the response or the status, and the request
//! builders and asserts the suites share.
//!
//! Suites wrap [`Clients`] in their own `Client` (through `Deref`) to add
//! conveniences whose shape is theirs (what a `put` returns, say).

use bytes::Bytes;
use rollcall_proto::etcdserverpb::cluster_client::ClusterClient;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    DefragmentRequest, DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest,
    HashKvResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse, alarm_request::AlarmAction,
};
use rollcall_proto::mvccpb::KeyValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::ServerProcess;

/// Largest message the test clients send or accept (fragment and quota
/// tests move several MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// etcd's error messages the suites assert.
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// See [`COMPACTED`].
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

/// Declares `pub struct $name(Clients)`, dereferencing to the harness's
/// [`Clients`], for a suite to add its own conveniences to in an `impl`.
#[macro_export]
macro_rules! suite_client {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(pub $crate::grpc::Clients);

        impl ::std::ops::Deref for $name {
            type Target = $crate::grpc::Clients;
            fn deref(&self) -> &$crate::grpc::Clients {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::grpc::Clients {
                &mut self.0
            }
        }
    };
}

/// The stubs of one server, over one channel.
#[derive(Clone)]
pub struct Clients {
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
    pub cluster: ClusterClient<Channel>,
}

impl Clients {
    /// Stubs over `channel`.
    #[must_use]
    pub fn over(channel: Channel) -> Self {
        Self {
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            lease: LeaseClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            maintenance: MaintenanceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            cluster: ClusterClient::new(channel),
        }
    }

    /// Connects to `server`.
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn connect(server: &ServerProcess) -> Self {
        let channel = server
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", server.endpoint()));
        Self::over(channel)
    }

    pub async fn try_put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.kv.put(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.kv.range(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_delete(
        &mut self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        self.kv
            .delete_range(req)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.kv.txn(req).await.map(tonic::Response::into_inner)
    }

    pub async fn try_compact(
        &mut self,
        revision: i64,
        physical: bool,
    ) -> Result<CompactionResponse, Status> {
        self.kv
            .compact(CompactionRequest { revision, physical })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_grant(&mut self, ttl: i64, id: i64) -> Result<LeaseGrantResponse, Status> {
        self.lease
            .lease_grant(LeaseGrantRequest { ttl, id })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        self.lease
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_time_to_live(
        &mut self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        self.lease
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_leases(&mut self) -> Result<LeaseLeasesResponse, Status> {
        self.lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_alarm(
        &mut self,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, Status> {
        self.maintenance
            .alarm(AlarmRequest {
                action: action as i32,
                member_id,
                alarm: alarm as i32,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_defragment(&mut self) -> Result<DefragmentResponse, Status> {
        self.maintenance
            .defragment(DefragmentRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn try_hash_kv(&mut self, revision: i64) -> Result<HashKvResponse, Status> {
        self.maintenance
            .hash_kv(HashKvRequest { revision })
            .await
            .map(tonic::Response::into_inner)
    }

    /// # Panics
    /// When the range fails.
    pub async fn range(&mut self, req: RangeRequest) -> RangeResponse {
        let shown = format!("{req:?}");
        self.try_range(req)
            .await
            .unwrap_or_else(|e| panic!("range {shown}: {e:?}"))
    }

    /// The single record of `key`, or None.
    ///
    /// # Panics
    /// When the range fails or returns several records.
    pub async fn get_kv(&mut self, key: &str) -> Option<KeyValue> {
        let mut resp = self.range(get_req(key)).await;
        assert!(resp.kvs.len() <= 1, "one key gave {resp:?}");
        resp.kvs.pop()
    }

    /// The store's current revision (the header of a read).
    pub async fn revision(&mut self) -> i64 {
        rev(&self.range(get_req("\0nothing")).await.header)
    }

    /// # Panics
    /// When Status fails.
    pub async fn status(&mut self) -> StatusResponse {
        self.maintenance
            .status(StatusRequest {})
            .await
            .unwrap_or_else(|e| panic!("Status: {e:?}"))
            .into_inner()
    }

    /// This member's id, from the Status header.
    pub async fn member_id(&mut self) -> u64 {
        self.status().await.header.unwrap_or_default().member_id
    }

    /// The active alarms (GET of every type).
    ///
    /// # Panics
    /// When the call fails.
    pub async fn alarms(&mut self) -> Vec<AlarmMember> {
        self.try_alarm(AlarmAction::Get, 0, AlarmType::None)
            .await
            .unwrap_or_else(|e| panic!("Alarm GET: {e:?}"))
            .alarms
    }

    /// # Panics
    /// When HashKV fails.
    pub async fn hash_kv(&mut self, revision: i64) -> HashKvResponse {
        self.try_hash_kv(revision)
            .await
            .unwrap_or_else(|e| panic!("HashKV at {revision}: {e:?}"))
    }

    /// # Panics
    /// When TimeToLive fails.
    pub async fn time_to_live(&mut self, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
        self.try_time_to_live(id, keys)
            .await
            .unwrap_or_else(|e| panic!("time-to-live {id}: {e:?}"))
    }

    /// The ids of all leases, sorted (etcd lists them in map order).
    ///
    /// # Panics
    /// When LeaseLeases fails.
    pub async fn lease_ids(&mut self) -> Vec<i64> {
        let resp = self
            .try_leases()
            .await
            .unwrap_or_else(|e| panic!("LeaseLeases: {e:?}"));
        let mut ids: Vec<i64> = resp.leases.iter().map(|l| l.id).collect();
        ids.sort_unstable();
        ids
    }
}

/// A response header, however the caller holds it.
pub trait HeaderRef<'a> {
    fn header_ref(self) -> Option<&'a ResponseHeader>;
}

impl<'a> HeaderRef<'a> for Option<&'a ResponseHeader> {
    fn header_ref(self) -> Option<&'a ResponseHeader> {
        self
    }
}

impl<'a> HeaderRef<'a> for &'a Option<ResponseHeader> {
    fn header_ref(self) -> Option<&'a ResponseHeader> {
        self.as_ref()
    }
}

/// The revision of a response header.
///
/// # Panics
/// When the header is missing.
#[track_caller]
pub fn rev<'a>(header: impl HeaderRef<'a>) -> i64 {
    match header.header_ref() {
        Some(h) => h.revision,
        None => panic!("response has no header"),
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Bytes as text, for messages and comparisons.
#[must_use]
pub fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The range end that selects every key with prefix `p` (clientv3's
/// GetPrefixRangeEnd): increment the last byte that is not 0xff; a prefix of
/// only 0xff bytes gives `\0` (every key from it on).
pub fn prefix_end(p: impl AsRef<[u8]>) -> Bytes {
    let mut end = p.as_ref().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    }
}

pub fn get_req(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        ..RangeRequest::default()
    }
}

pub fn get_at(key: &str, revision: i64) -> RangeRequest {
    RangeRequest {
        revision,
        ..get_req(key)
    }
}

pub fn prefix_req(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: b(prefix),
        range_end: prefix_end(prefix),
        ..RangeRequest::default()
    }
}

pub fn del_req(key: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        ..DeleteRangeRequest::default()
    }
}

/// The keys of `kvs`, as strings, in order.
pub fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| s(&kv.key)).collect()
}

/// Asserts that `result` is an error with exactly this code and message.
///
/// # Panics
/// When it is not.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} {message:?}, got Ok({v:?})"),
        Err(s) => assert_eq!(
            (s.code(), s.message()),
            (code, message),
            "wrong error (full status: {s:?})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_clientv3s() {
        assert_eq!(prefix_end("a/").as_ref(), b"a0");
        assert_eq!(prefix_end([b'a', 0xff]).as_ref(), b"b");
        assert_eq!(prefix_end([0xff, 0xff]).as_ref(), b"\0");
    }
}
