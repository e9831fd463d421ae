//! The typed KV API on [`Client`]: get, put, delete, txn and compact, each
//! returning etcd's own response message (its `header.revision` is reachable
//! through [`HasHeader`](crate::HasHeader)).

mod options;
mod txn;

use rollcall_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeResponse, PutResponse, RangeResponse,
    TxnResponse,
};

pub use options::{DeleteOptions, GetOptions, PutOptions};
pub use txn::{Compare, CompareOp, Op, Txn};

use crate::client::Client;
use crate::error::ClientError;
use crate::key::IntoBytes;

impl Client {
    /// The key's current key-value, if any (`kvs` has zero or one entry).
    pub async fn get(&self, key: impl IntoBytes) -> Result<RangeResponse, ClientError> {
        self.get_with(key, GetOptions::default()).await
    }

    /// A range read with every etcd option.
    pub async fn get_with(
        &self,
        key: impl IntoBytes,
        options: GetOptions,
    ) -> Result<RangeResponse, ClientError> {
        let mut kv = self.kv_client();
        let request = options.to_request(key.into_bytes());
        self.unary(request, |r| async move { kv.range(r).await })
            .await
    }

    /// Sets the key to the value (detaching it from any lease).
    pub async fn put(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
    ) -> Result<PutResponse, ClientError> {
        self.put_with(key, value, PutOptions::default()).await
    }

    pub async fn put_with(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        options: PutOptions,
    ) -> Result<PutResponse, ClientError> {
        let mut kv = self.kv_client();
        let request = options.to_request(key.into_bytes(), value.into_bytes());
        self.unary(request, |r| async move { kv.put(r).await })
            .await
    }

    /// Deletes the key; `deleted` says whether it existed.
    pub async fn delete(&self, key: impl IntoBytes) -> Result<DeleteRangeResponse, ClientError> {
        self.delete_with(key, DeleteOptions::default()).await
    }

    pub async fn delete_with(
        &self,
        key: impl IntoBytes,
        options: DeleteOptions,
    ) -> Result<DeleteRangeResponse, ClientError> {
        let mut kv = self.kv_client();
        let request = options.to_request(key.into_bytes());
        self.unary(request, |r| async move { kv.delete_range(r).await })
            .await
    }

    /// Runs a transaction; `succeeded` says which branch ran.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, ClientError> {
        let mut kv = self.kv_client();
        self.unary(txn.into_request(), |r| async move { kv.txn(r).await })
            .await
    }

    /// Compacts the history below `revision`; with `physical` the call returns
    /// only once the space is reclaimed.
    pub async fn compact(
        &self,
        revision: i64,
        physical: bool,
    ) -> Result<CompactionResponse, ClientError> {
        let mut kv = self.kv_client();
        let request = CompactionRequest { revision, physical };
        self.unary(request, |r| async move { kv.compact(r).await })
            .await
    }
}
