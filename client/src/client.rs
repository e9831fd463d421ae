//! [`Client`]: one connection to an etcd v3 endpoint, the gRPC stubs over it,
//! and the one place a unary call gets its deadline and its error mapping.
//!
//! The typed calls live next to their options: KV in `kv/`, leases in
//! `lease/`, watches in `watch/`, Status and MemberList in `maintenance.rs`;
//! each is an `impl Client` block. Unary calls build the request and hand it
//! to [`Client::unary`]; the two bidirectional streams (Watch, LeaseKeepAlive)
//! are opened through [`Client::watch_opener`] and
//! [`Client::keep_alive_opener`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollcall_proto::etcdserverpb::cluster_client::ClusterClient;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchRequest, WatchResponse,
};
use tonic::transport::Channel;

use crate::endpoint::{self, ConnectOptions};
use crate::error::ClientError;
use crate::stream::{Opener, Responses};

/// The largest response accepted, as etcd clientv3 (`math.MaxInt32`): a range
/// over a big keyspace can legitimately exceed tonic's 4 MiB default.
const MAX_DECODING_MESSAGE_SIZE: usize = i32::MAX as usize;

/// A client of one etcd v3 endpoint. Cloning is cheap and clones share the
/// connection; calls take `&self` and may run concurrently.
#[derive(Debug, Clone)]
pub struct Client {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
    cluster: ClusterClient<Channel>,
    /// Every endpoint given, normalised, in order (kept for failover).
    endpoints: Arc<[String]>,
    /// Index in `endpoints` of the one this client is connected to.
    current: usize,
    options: ConnectOptions,
}

impl Client {
    /// Connects with [`ConnectOptions::default`] to the first of `endpoints`
    /// (`http://host:port` or `host:port`) that accepts a connection.
    pub async fn connect<I, S>(endpoints: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_with(endpoints, ConnectOptions::default()).await
    }

    /// Connects with the given options to the first endpoint that answers.
    pub async fn connect_with<I, S>(
        endpoints: I,
        options: ConnectOptions,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints = endpoint::normalize_endpoints(endpoints)?;
        let (current, channel) = endpoint::connect_first(&endpoints, &options).await?;
        Ok(Self::from_channel(
            channel,
            endpoints.into(),
            current,
            options,
        ))
    }

    fn from_channel(
        channel: Channel,
        endpoints: Arc<[String]>,
        current: usize,
        options: ConnectOptions,
    ) -> Self {
        Self {
            kv: KvClient::new(channel.clone()).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            lease: LeaseClient::new(channel.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            watch: WatchClient::new(channel.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            maintenance: MaintenanceClient::new(channel.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            cluster: ClusterClient::new(channel)
                .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
            endpoints,
            current,
            options,
        }
    }

    /// A clone of this client (same connection) whose calls use `timeout`.
    #[must_use]
    pub fn with_request_timeout(&self, timeout: Duration) -> Self {
        let mut client = self.clone();
        client.options.request_timeout = timeout;
        client
    }

    /// The endpoint this client is connected to (`http://host:port`).
    pub fn endpoint(&self) -> &str {
        self.endpoints.get(self.current).map_or("", String::as_str)
    }

    /// Every endpoint the client was given, normalised.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The raw generated KV stub on this connection, for requests the typed
    /// API does not cover. No deadline is applied to calls made through it.
    pub fn kv_client(&self) -> KvClient<Channel> {
        self.kv.clone()
    }

    /// The raw generated Lease stub on this connection.
    pub fn lease_client(&self) -> LeaseClient<Channel> {
        self.lease.clone()
    }

    /// The raw generated Watch stub on this connection.
    pub fn watch_client(&self) -> WatchClient<Channel> {
        self.watch.clone()
    }

    /// The raw generated Maintenance stub on this connection.
    pub fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        self.maintenance.clone()
    }

    /// The raw generated Cluster stub on this connection.
    pub fn cluster_client(&self) -> ClusterClient<Channel> {
        self.cluster.clone()
    }

    /// Opens Watch streams on this connection.
    pub(crate) fn watch_opener(&self) -> Opener<WatchRequest, WatchResponse> {
        let watch = self.watch.clone();
        Arc::new(move |requests| {
            let mut watch = watch.clone();
            Box::pin(async move {
                let responses = watch.watch(requests).await?.into_inner();
                Ok(Box::pin(responses) as Responses<WatchResponse>)
            })
        })
    }

    /// Opens LeaseKeepAlive streams on this connection.
    pub(crate) fn keep_alive_opener(
        &self,
    ) -> Opener<LeaseKeepAliveRequest, LeaseKeepAliveResponse> {
        let lease = self.lease.clone();
        Arc::new(move |requests| {
            let mut lease = lease.clone();
            Box::pin(async move {
                let responses = lease.lease_keep_alive(requests).await?.into_inner();
                Ok(Box::pin(responses) as Responses<LeaseKeepAliveResponse>)
            })
        })
    }

    /// Runs one unary call under the request timeout: the deadline is sent to
    /// the server (`grpc-timeout`) and enforced here, and a failure becomes a
    /// [`ClientError`].
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        message: Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = self.options.request_timeout;
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, call(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(ClientError::from(status)),
            Err(_elapsed) => Err(ClientError::Timeout(timeout)),
        }
    }
}
