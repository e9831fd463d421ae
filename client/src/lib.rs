//! `rollcall-client`: a typed async client for rollcall and for any etcd v3
//! endpoint (it speaks only the etcd v3 gRPC API, so it works against real
//! etcd as well).
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::ClientError> {
//! use rollcall_client::{Client, Compare, CompareOp, GetOptions, HasHeader, Op, Txn};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let put = client.put("/services/web/1", "10.0.0.1:80").await?;
//! let listed = client.get_with("/services/", GetOptions::new().prefix()).await?;
//! assert!(listed.revision() >= put.revision());
//! let txn = Txn::new()
//!     .when([Compare::version("/lock", CompareOp::Equal, 0)])
//!     .and_then([Op::put("/lock", "me")]);
//! let won = client.txn(txn).await?.succeeded;
//! # let _ = won; Ok(()) }
//! ```
//!
//! Leases and watches:
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::ClientError> {
//! use rollcall_client::{Client, PutOptions, WatchOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let lease = client.grant(10).await?.id;
//! client.put_with("/services/web/1", "10.0.0.1:80", PutOptions::new().lease(lease)).await?;
//! let keeper = client.keep_alive(lease).await?; // renews every TTL/3
//! let mut watcher = client.watch("/services/", WatchOptions::new().prefix()).await?;
//! tokio::select! {
//!     lost = keeper.lost() => eprintln!("lease lost: {lost}"),
//!     batch = watcher.next() => println!("{batch:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - `client.rs`: [`Client`], its connection and the deadline + error mapping
//!   of every unary call;
//! - `endpoint.rs`: [`ConnectOptions`], endpoint parsing, the connection that
//!   fails over to the next endpoint;
//! - `tls.rs`: [`ClientTls`], TLS and mutual TLS to `https://` endpoints
//!   ([`tls_handshake`] on a connection of your own);
//! - `kv/`: get/put/delete/txn/compact, their options and the [`Txn`] builder;
//! - `lease/`: grant/revoke/time-to-live/leases/keep-alive-once and the
//!   [`LeaseKeeper`] that renews a lease in the background;
//! - `watch/`: [`WatchSession`] (one stream, many watchers, resumed after a
//!   disconnect) and [`Watcher`];
//! - `stream.rs`: how the two bidirectional streams are opened;
//! - `backoff.rs`: [`RetryPolicy`], the reconnect delays;
//! - `maintenance.rs`: [`Client::status`] and [`Client::member_list`];
//! - `key.rs`: [`IntoBytes`], [`RangeEnd`] and [`prefix_end`];
//! - `header.rs`: [`HasHeader`], the revision a response was served at;
//! - `error.rs`: [`ClientError`] and the recognition of etcd's errors;
//! - `registry/`: the registry conventions, `Registration` (with health
//!   probes) and `Discovery`;
//! - `balance/`: balancers over discovered instances and a `tower` Discover;
//! - `bench/` (feature `bench`): the load generator behind `rollcall bench`;
//! - `cli/` (feature `cli`): the `rollcall bench` command line over `bench/`,
//!   and in `cli/commands/` the client commands (`get`, `put`, `register`, ...).
//!
//! Default features are empty: a library user compiles neither the load
//! generator nor the command lines (nor clap, indicatif, hdrhistogram).

mod backoff;
pub mod balance;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod endpoint;
mod error;
mod header;
mod key;
mod kv;
mod lease;
mod maintenance;
pub mod registry;
pub use tls::{ClientTls, handshake as tls_handshake};
mod stream;
mod tls;
mod watch;

pub use backoff::RetryPolicy;
pub use client::Client;
pub use endpoint::{ConnectOptions, normalize_endpoint, normalize_endpoints};
pub use error::{ClientError, EndpointFailure, EtcdErrorKind, ServerError, WatchError};
pub use header::HasHeader;
pub use key::{FROM_KEY, IntoBytes, RangeEnd, prefix_end};
pub use kv::{Compare, CompareOp, DeleteOptions, GetOptions, Op, PutOptions, Txn};
pub use lease::{KeepAliveOptions, KeeperState, LeaseKeeper, LeaseLost, renew_interval};
/// The generated etcd v3 types, for the raw stubs and the responses.
pub use rollcall_proto as proto;
pub use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
pub use watch::{EventKind, WatchBatch, WatchEvent, WatchOptions, WatchSession, Watcher};
