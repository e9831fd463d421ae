//! The typed Lease API on [`Client`]: grant, revoke, time-to-live, the lease
//! list and a single keep-alive, each returning etcd's own response; and
//! [`Client::keep_alive`], which hands a lease to a [`LeaseKeeper`] that
//! renews it in the background (`keeper.rs`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::ClientError> {
//! use rollcall_client::{Client, PutOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let lease = client.grant(10).await?.id;
//! client
//!     .put_with("/services/web/1", "10.0.0.1:80", PutOptions::new().lease(lease))
//!     .await?;
//! let keeper = client.keep_alive(lease).await?;
//! let reason = keeper.lost().await; // re-register when this resolves
//! # let _ = reason; Ok(()) }
//! ```

mod keeper;

use rollcall_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;

pub use keeper::{KeepAliveOptions, KeeperState, LeaseKeeper, LeaseLost, renew_interval};

use crate::client::Client;
use crate::error::{ClientError, EtcdErrorKind, ServerError};
use crate::stream::Opener;

impl Client {
    /// Grants a lease of `ttl` seconds with an id the server chooses. etcd
    /// raises a TTL below its minimum and refuses one above its maximum.
    pub async fn grant(&self, ttl: i64) -> Result<LeaseGrantResponse, ClientError> {
        self.grant_with_id(0, ttl).await
    }

    /// Grants a lease with the given positive `id` (0 lets the server
    /// choose); an id in use fails with [`EtcdErrorKind::LeaseExists`].
    pub async fn grant_with_id(
        &self,
        id: i64,
        ttl: i64,
    ) -> Result<LeaseGrantResponse, ClientError> {
        let mut lease = self.lease_client();
        let request = LeaseGrantRequest { ttl, id };
        self.unary(request, |r| async move { lease.lease_grant(r).await })
            .await
    }

    /// Revokes the lease, deleting every key attached to it in one revision.
    pub async fn revoke(&self, id: i64) -> Result<LeaseRevokeResponse, ClientError> {
        let mut lease = self.lease_client();
        let request = LeaseRevokeRequest { id };
        self.unary(request, |r| async move { lease.lease_revoke(r).await })
            .await
    }

    /// The lease's remaining and granted TTL, and with `keys` the keys
    /// attached to it. An unknown lease answers TTL -1 (not an error).
    pub async fn time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, ClientError> {
        let mut lease = self.lease_client();
        let request = LeaseTimeToLiveRequest { id, keys };
        self.unary(
            request,
            |r| async move { lease.lease_time_to_live(r).await },
        )
        .await
    }

    /// Every lease the server knows.
    pub async fn leases(&self) -> Result<LeaseLeasesResponse, ClientError> {
        let mut lease = self.lease_client();
        self.unary(LeaseLeasesRequest {}, |r| async move {
            lease.lease_leases(r).await
        })
        .await
    }

    /// Renews the lease once, on a stream opened for the purpose, and
    /// returns the new TTL. As etcd clientv3's `KeepAliveOnce`, a server
    /// answer of TTL 0 (the lease is unknown) becomes
    /// [`EtcdErrorKind::LeaseNotFound`].
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, ClientError> {
        keep_alive_once(
            &self.keep_alive_opener(),
            id,
            self.options().request_timeout,
        )
        .await
    }

    /// Renews the lease now and then keeps it alive in the background with
    /// [`KeepAliveOptions::default`]; see [`LeaseKeeper`]. Fails if the first
    /// renewal does (for example, the lease does not exist).
    pub async fn keep_alive(&self, id: i64) -> Result<LeaseKeeper, ClientError> {
        self.keep_alive_with(id, KeepAliveOptions::default()).await
    }

    /// [`Client::keep_alive`] with explicit options.
    pub async fn keep_alive_with(
        &self,
        id: i64,
        options: KeepAliveOptions,
    ) -> Result<LeaseKeeper, ClientError> {
        LeaseKeeper::start(
            self.keep_alive_opener(),
            id,
            options,
            self.options().request_timeout,
        )
        .await
    }
}

/// The error etcd's clients report for a keep-alive answered with TTL 0.
pub(crate) fn lease_not_found() -> ClientError {
    ClientError::Server(ServerError::new(
        Code::NotFound,
        EtcdErrorKind::LeaseNotFound.message(),
    ))
}

pub(crate) async fn keep_alive_once(
    opener: &Opener<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
    id: i64,
    timeout: std::time::Duration,
) -> Result<LeaseKeepAliveResponse, ClientError> {
    let (tx, rx) = mpsc::unbounded_channel();
    // Queued before the call: etcd sends the response headers only with the
    // first answer. `tx` stays alive until the answer is in.
    let _ = tx.send(LeaseKeepAliveRequest { id });
    let call = async {
        let mut responses = opener(UnboundedReceiverStream::new(rx)).await?;
        loop {
            match responses.next().await {
                Some(Ok(resp)) if resp.id == id => return Ok(resp),
                Some(Ok(_)) => {}
                Some(Err(status)) => return Err(ClientError::from(status)),
                None => {
                    return Err(ClientError::Transport(tonic::Status::unavailable(
                        "keep-alive stream closed before answering",
                    )));
                }
            }
        }
    };
    let resp = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result?,
        Err(_elapsed) => return Err(ClientError::Timeout(timeout)),
    };
    drop(tx);
    if resp.ttl <= 0 {
        return Err(lease_not_found());
    }
    Ok(resp)
}
