//! [`Client`]: a connection to one of several etcd v3 endpoints, the gRPC
//! stubs over it, and the one place a unary call gets its deadline, its
//! retries on another endpoint and its error mapping.
//!
//! The typed calls live next to their options: KV in `kv/`, leases in
//! `lease/`, watches in `watch/`, Status and MemberList in `maintenance.rs`;
//! each is an `impl Client` block. Unary calls build the request and hand it
//! to [`Client::unary`]; the two bidirectional streams (Watch, LeaseKeepAlive)
//! are opened through [`Client::watch_opener`] and
//! [`Client::keep_alive_opener`], on the same channel, so when they re-open
//! after a break they reach whichever endpoint is current (`endpoint.rs`).
//!
//! Failover of a unary call: when an attempt fails because no endpoint
//! accepted a connection, because the connection broke, or because the
//! server answered `Unavailable`, the client moves to the next endpoint and
//! tries again after a backoff with jitter ([`Client::DEFAULT_RETRY`]), for
//! as long as the policy's attempts and the call's one deadline (the request
//! timeout, across all attempts) allow. A request that may already have been
//! applied is not sent twice: writes (put, delete, a txn that writes,
//! compact, lease grant and revoke) are retried only when the failed attempt
//! never left this process (the connection could not be made); reads are
//! retried after any of those failures. A timeout is never retried.

use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollcall_proto::etcdserverpb::cluster_client::ClusterClient;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::request_op::Request as OpRequest;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    MemberListRequest, PutRequest, RangeRequest, StatusRequest, TxnRequest, WatchRequest,
    WatchResponse,
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::backoff::{Backoff, RetryPolicy};
use crate::endpoint::{self, ConnectOptions, Endpoints};
use crate::error::ClientError;
use crate::stream::{Opener, Responses};
use crate::tls::ClientTls;

/// The largest response accepted, as etcd clientv3 (`math.MaxInt32`): a range
/// over a big keyspace can legitimately exceed tonic's 4 MiB default.
const MAX_DECODING_MESSAGE_SIZE: usize = i32::MAX as usize;

/// A client of one or more etcd v3 endpoints, connected to one at a time
/// and failing over to the others (see the module docs). Cloning is cheap
/// and clones share the connection; calls take `&self` and may run
/// concurrently.
#[derive(Debug, Clone)]
pub struct Client {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
    cluster: ClusterClient<Channel>,
    /// Every endpoint given, normalised, in order, and the current one.
    endpoints: Arc<Endpoints>,
    options: ConnectOptions,
    /// Retries of a unary call that failed over.
    retry: RetryPolicy,
}

impl Client {
    /// How a unary call is retried on another endpoint: 50 ms doubling to
    /// 1 s, at most 5 retries, and never past the request timeout.
    pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        max_attempts: Some(5),
    };

    /// Connects with [`ConnectOptions::default`] to the first of `endpoints`
    /// (`http://host:port` or `host:port`) that accepts a connection; later
    /// calls fail over to the others.
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
        let endpoints = Endpoints::new(
            endpoint::normalize_endpoints(endpoints)?,
            options.connect_timeout,
        );
        let channel = endpoints.connect_first().await?;
        Ok(Self::from_channel(channel, endpoints, options))
    }

    /// Connects over TLS to `https://` endpoints (plain `http://` ones in the
    /// list are still dialled in the clear).
    pub async fn connect_with_tls<I, S>(
        endpoints: I,
        options: ConnectOptions,
        tls: &ClientTls,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints = Endpoints::with_tls(
            endpoint::normalize_endpoints(endpoints)?,
            options.connect_timeout,
            Some(tls.connector()?),
        );
        let channel = endpoints.connect_first().await?;
        Ok(Self::from_channel(channel, endpoints, options))
    }

    fn from_channel(channel: Channel, endpoints: Arc<Endpoints>, options: ConnectOptions) -> Self {
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
            options,
            retry: Self::DEFAULT_RETRY,
        }
    }

    /// A clone of this client (same connection) whose calls use `timeout`.
    #[must_use]
    pub fn with_request_timeout(&self, timeout: Duration) -> Self {
        let mut client = self.clone();
        client.options.request_timeout = timeout;
        client
    }

    /// A clone of this client (same connection) whose unary calls retry on
    /// another endpoint with `retry` (`max_attempts: Some(0)` never retries).
    #[must_use]
    pub fn with_retry_policy(&self, retry: RetryPolicy) -> Self {
        let mut client = self.clone();
        client.retry = retry;
        client
    }

    /// How unary calls are retried on another endpoint.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The endpoint this client is connected to, or will connect to next
    /// (`http://host:port`); it changes on failover.
    pub fn endpoint(&self) -> &str {
        self.endpoints.current_endpoint()
    }

    /// Every endpoint the client was given, normalised.
    pub fn endpoints(&self) -> &[String] {
        self.endpoints.list()
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The raw generated KV stub on this connection, for requests the typed
    /// API does not cover. No deadline is applied to calls made through it,
    /// and they are not retried (the connection still fails over).
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
    /// the server (`grpc-timeout`) and enforced here, across every attempt. An
    /// attempt that failed over (see the module docs) moves the client to the
    /// next endpoint and, where that is safe for the request, is tried again
    /// after a backoff. The last failure becomes a [`ClientError`].
    ///
    /// `call` is cloned per attempt; the closures of the typed API capture
    /// only a stub, which is cheap to clone.
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        message: Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Idempotent + Clone,
        F: FnOnce(tonic::Request<Req>) -> Fut + Clone,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = self.options.request_timeout;
        let deadline = Instant::now() + timeout;
        let idempotent = message.is_idempotent();
        let mut backoff = Backoff::new(self.retry);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout(timeout));
            }
            let serving = self.endpoints.current();
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(remaining);
            let status = match tokio::time::timeout(remaining, (call.clone())(request)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_elapsed) => return Err(ClientError::Timeout(timeout)),
            };
            let retry = match Failure::of(&status) {
                Failure::Final => false,
                // The dial already went round every endpoint.
                Failure::NotSent => true,
                Failure::Failover => {
                    self.endpoints.advance_from(serving);
                    idempotent
                }
            };
            if !retry {
                return Err(ClientError::from(status));
            }
            let Some(delay) = backoff.fail(&mut rand::rng()) else {
                return Err(ClientError::from(status));
            };
            if delay >= deadline.saturating_duration_since(Instant::now()) {
                return Err(ClientError::from(status));
            }
            tracing::debug!(
                endpoint = self.endpoints.current_endpoint(),
                attempt = backoff.failures(),
                ?delay,
                "retrying after: {}",
                status.message()
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// How a failed attempt of a unary call is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No endpoint accepted a connection: the request never left this
    /// process, so any request may be sent again.
    NotSent,
    /// The connection broke during the call, or the server answered
    /// `Unavailable`: try another endpoint; send the request again only if
    /// applying it twice is harmless.
    Failover,
    /// Any other answer (including a timeout): returned as it is.
    Final,
}

impl Failure {
    pub(crate) fn of(status: &tonic::Status) -> Self {
        match status.source() {
            Some(source) if endpoint::connect_failures(source).is_some() => Self::NotSent,
            // A status made on this side (the connection failed).
            Some(_) if status.code() != tonic::Code::DeadlineExceeded => Self::Failover,
            None if status.code() == tonic::Code::Unavailable => Self::Failover,
            _ => Self::Final,
        }
    }
}

/// Whether sending a request twice has the same effect as sending it once,
/// which decides whether a unary call may be retried after its first attempt
/// may have reached the server (as etcd clientv3's repeatable and
/// non-repeatable RPCs).
pub(crate) trait Idempotent {
    fn is_idempotent(&self) -> bool;
}

macro_rules! idempotent {
    ($value:expr => $($t:ty),* $(,)?) => {$(
        impl Idempotent for $t {
            fn is_idempotent(&self) -> bool {
                $value
            }
        }
    )*};
}

idempotent!(true => RangeRequest, LeaseTimeToLiveRequest, LeaseLeasesRequest, StatusRequest, MemberListRequest);
idempotent!(false => PutRequest, DeleteRangeRequest, CompactionRequest, LeaseGrantRequest, LeaseRevokeRequest);

impl Idempotent for TxnRequest {
    /// A txn is idempotent when neither branch writes.
    fn is_idempotent(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| match &op.request {
                Some(OpRequest::RequestRange(_)) | None => true,
                Some(OpRequest::RequestTxn(txn)) => txn.is_idempotent(),
                Some(OpRequest::RequestPut(_) | OpRequest::RequestDeleteRange(_)) => false,
            })
    }
}

#[cfg(test)]
mod tests {
    //! The retry loop of [`Client::unary`] against scripted attempts, on a
    //! paused clock: which failures are retried, on which endpoint, after
    //! which delays, and within which bounds.

    use std::sync::Mutex;

    use rollcall_proto::etcdserverpb::request_op;
    use rollcall_proto::etcdserverpb::{RangeResponse, RequestOp};
    use tonic::Code;

    use super::*;
    use crate::endpoint::ConnectFailed;

    /// One scripted attempt's outcome.
    #[derive(Clone, Copy)]
    enum Outcome {
        Ok,
        /// `Unavailable` sent by the server.
        Unavailable,
        /// No endpoint accepted a connection (made on this side).
        Unreachable,
        /// The connection broke mid-call (made on this side).
        Broken,
        Refused,
        Hang,
    }

    fn status(outcome: Outcome) -> tonic::Status {
        match outcome {
            Outcome::Unavailable => tonic::Status::unavailable("etcdserver: no leader"),
            Outcome::Unreachable => {
                tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(ConnectFailed {
                    failures: vec![(
                        "http://a:1".into(),
                        std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                    )],
                }))))
            }
            Outcome::Broken => tonic::Status::from_error(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
            _ => tonic::Status::invalid_argument("etcdserver: key is not provided"),
        }
    }

    /// What the attempts saw: when each ran and which endpoint was current.
    #[derive(Default)]
    struct Log {
        attempts: Vec<(Instant, usize)>,
    }

    struct Script {
        client: Client,
        log: Arc<Mutex<Log>>,
        outcomes: Arc<Mutex<Vec<Outcome>>>,
    }

    fn script(endpoints: usize, timeout: Duration, outcomes: &[Outcome]) -> Script {
        let list = (0..endpoints)
            .map(|i| format!("http://127.0.0.1:{}", i + 1))
            .collect();
        let endpoints = Endpoints::new(list, Duration::from_secs(1));
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let options = ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: timeout,
        };
        Script {
            client: Client::from_channel(channel, endpoints, options),
            log: Arc::default(),
            outcomes: Arc::new(Mutex::new(outcomes.iter().rev().copied().collect())),
        }
    }

    impl Script {
        async fn run<Req: Idempotent + Clone>(&self, request: Req) -> Result<(), ClientError> {
            let (log, outcomes) = (Arc::clone(&self.log), Arc::clone(&self.outcomes));
            let endpoints = Arc::clone(&self.client.endpoints);
            self.client
                .unary(request, move |_r| async move {
                    let outcome = outcomes
                        .lock()
                        .map(|mut o| o.pop().unwrap_or(Outcome::Ok))
                        .unwrap_or(Outcome::Ok);
                    if let Ok(mut log) = log.lock() {
                        log.attempts.push((Instant::now(), endpoints.current()));
                    }
                    match outcome {
                        Outcome::Ok => Ok(tonic::Response::new(RangeResponse::default())),
                        Outcome::Hang => std::future::pending().await,
                        other => Err(status(other)),
                    }
                })
                .await
                .map(|_| ())
        }

        fn attempts(&self) -> Vec<(Instant, usize)> {
            self.log
                .lock()
                .map(|l| l.attempts.clone())
                .unwrap_or_default()
        }

        fn endpoints_tried(&self) -> Vec<usize> {
            self.attempts().iter().map(|&(_, e)| e).collect()
        }

        /// The waits between consecutive attempts.
        fn delays(&self) -> Vec<Duration> {
            self.attempts()
                .windows(2)
                .map(|w| w[1].0.duration_since(w[0].0))
                .collect()
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_read_fails_over_round_the_endpoints_with_jittered_backoff() {
        use Outcome::*;
        let s = script(3, 10 * SECOND, &[Unavailable, Broken, Unavailable, Ok]);
        assert!(s.run(RangeRequest::default()).await.is_ok());
        assert_eq!(s.endpoints_tried(), [0, 1, 2, 0]);
        let delays = s.delays();
        assert_eq!(delays.len(), 3);
        for (attempt, delay) in delays.iter().enumerate() {
            let ceiling = Client::DEFAULT_RETRY.ceiling(u32::try_from(attempt).unwrap_or(0));
            assert!(
                *delay >= ceiling / 2 && *delay <= ceiling,
                "retry {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(s.client.endpoint(), "http://127.0.0.1:1");
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_the_delays() {
        let mut first = Vec::new();
        for _ in 0..20 {
            let s = script(2, 10 * SECOND, &[Outcome::Unavailable, Outcome::Ok]);
            assert!(s.run(RangeRequest::default()).await.is_ok());
            first.extend(s.delays());
        }
        first.sort();
        first.dedup();
        assert!(
            first.len() > 10,
            "20 first delays, {} distinct",
            first.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let s = script(2, 60 * SECOND, &[Outcome::Unavailable; 20]);
        let e = s.run(RangeRequest::default()).await.err();
        assert!(e.as_ref().is_some_and(ClientError::is_unavailable), "{e:?}");
        let retries = Client::DEFAULT_RETRY.max_attempts.unwrap_or(0);
        assert_eq!(s.attempts().len(), 1 + retries as usize);
        let none = s.client.with_retry_policy(RetryPolicy {
            max_attempts: Some(0),
            ..Client::DEFAULT_RETRY
        });
        let s = Script {
            client: none,
            ..script(2, SECOND, &[Outcome::Unavailable; 3])
        };
        assert!(s.run(RangeRequest::default()).await.is_err());
        assert_eq!(s.attempts().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stay_within_the_request_timeout() {
        let timeout = Duration::from_millis(300);
        let s = script(2, timeout, &[Outcome::Unavailable; 20]);
        let started = Instant::now();
        let e = s.run(RangeRequest::default()).await.err();
        assert!(e.as_ref().is_some_and(ClientError::is_unavailable), "{e:?}");
        assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
        assert!(s.attempts().len() >= 2, "at least one retry fits in 300 ms");
        // An attempt that hangs ends with the deadline, not retried.
        let s = script(2, timeout, &[Outcome::Hang]);
        let started = Instant::now();
        let e = s.run(RangeRequest::default()).await.err();
        assert!(
            matches!(e, Some(ClientError::Timeout(t)) if t == timeout),
            "{e:?}"
        );
        assert_eq!(started.elapsed(), timeout);
        assert_eq!(s.attempts().len(), 1);
        assert_eq!(
            s.client.endpoint(),
            "http://127.0.0.1:1",
            "a timeout does not fail over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_retried_only_when_never_sent() {
        // Not connected anywhere: sent again, on the endpoint the dial found.
        let s = script(2, 10 * SECOND, &[Outcome::Unreachable, Outcome::Ok]);
        assert!(s.run(PutRequest::default()).await.is_ok());
        assert_eq!(s.endpoints_tried(), [0, 0]);
        // Maybe applied: not sent again, but the next call goes elsewhere.
        for outcome in [Outcome::Unavailable, Outcome::Broken] {
            let s = script(2, 10 * SECOND, &[outcome, Outcome::Ok]);
            assert!(s.run(PutRequest::default()).await.is_err());
            assert_eq!(s.attempts().len(), 1);
            assert_eq!(s.client.endpoint(), "http://127.0.0.1:2");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_returned_at_once() {
        let s = script(2, 10 * SECOND, &[Outcome::Refused, Outcome::Ok]);
        let e = s.run(RangeRequest::default()).await.err();
        assert_eq!(
            e.as_ref().and_then(ClientError::code),
            Some(Code::InvalidArgument)
        );
        assert_eq!(s.attempts().len(), 1);
        assert_eq!(s.client.endpoint(), "http://127.0.0.1:1");
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(Failure::of(&status(Outcome::Unreachable)), Failure::NotSent);
        assert_eq!(Failure::of(&status(Outcome::Broken)), Failure::Failover);
        assert_eq!(
            Failure::of(&status(Outcome::Unavailable)),
            Failure::Failover
        );
        assert_eq!(Failure::of(&status(Outcome::Refused)), Failure::Final);
        assert_eq!(
            Failure::of(&tonic::Status::deadline_exceeded(
                "context deadline exceeded"
            )),
            Failure::Final
        );
    }

    #[test]
    fn only_read_only_txns_are_idempotent() {
        let op = |request| RequestOp {
            request: Some(request),
        };
        let read = op(request_op::Request::RequestRange(RangeRequest::default()));
        let write = op(request_op::Request::RequestPut(PutRequest::default()));
        let reads = TxnRequest {
            success: vec![read.clone()],
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest {
                success: vec![read.clone()],
                ..TxnRequest::default()
            }))],
            ..TxnRequest::default()
        };
        assert!(reads.is_idempotent());
        let nested_write = TxnRequest {
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest {
                success: vec![write.clone()],
                ..TxnRequest::default()
            }))],
            ..TxnRequest::default()
        };
        assert!(!nested_write.is_idempotent());
        assert!(
            !TxnRequest {
                success: vec![read, write],
                ..TxnRequest::default()
            }
            .is_idempotent()
        );
        assert!(RangeRequest::default().is_idempotent());
        assert!(!LeaseGrantRequest::default().is_idempotent());
    }
}
