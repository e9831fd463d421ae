//! Endpoints and connections: [`ConnectOptions`], turning the strings a user
//! gives (`http://host:port` or bare `host:port`) into canonical endpoints,
//! and failover between them.
//!
//! A client has one HTTP/2 connection (one tonic `Channel`) at a time, to
//! its *current* endpoint. [`Endpoints`] holds the list and the index of the
//! current one, shared by every clone of the client and by the channel's
//! [`FailoverConnector`]:
//!
//! - The channel reconnects lazily: the first call after the connection
//!   broke dials again. The connector dials the current endpoint, and if
//!   that fails, the next ones in order, once around the list; the first that
//!   accepts becomes current. So unary calls *and* the watch and keep-alive
//!   streams, which re-open on the same channel, land on a live endpoint.
//! - A unary call that failed in a way another endpoint might not (the
//!   server said `Unavailable`, or the connection broke mid-call) moves the
//!   current endpoint on with [`Endpoints::advance_from`]. A connection to an
//!   endpoint that is no longer current closes itself ([`EndpointIo`]), so the
//!   next call dials the new one even if the old one still answers.
//! - [`Endpoints::connect_first`] makes the first connection eagerly, trying
//!   each endpoint in turn and reporting every failure
//!   ([`ClientError::Unreachable`]) if none answers.
//!
//! The retry loop itself (which failures are retried, the backoff between
//! attempts, the deadline) is [`Client::unary`](crate::Client) in `client.rs`.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::error::{ClientError, EndpointFailure};
use crate::tls::Conn;

/// How to connect and how long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Limit on establishing the TCP + HTTP/2 connection to one endpoint.
    pub connect_timeout: Duration,
    /// Limit on each unary call, measured on this side and also sent to the
    /// server as the gRPC deadline. Expiry gives [`ClientError::Timeout`].
    pub request_timeout: Duration,
}

impl ConnectOptions {
    /// etcdctl's dial timeout (2 s) and a request timeout that leaves room for
    /// an fsync-bound write under load (10 s).
    pub const DEFAULT: Self = Self {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    };
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The canonical form of an endpoint: `http://host:port` or
/// `https://host:port`. A bare `host:port` gets `http://`. An `https://`
/// endpoint is only dialled with TLS options ([`crate::ClientTls`]), never
/// in plain text.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let invalid = |reason| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let trimmed = endpoint.trim().trim_end_matches('/');
    let (scheme, authority) = if let Some(rest) = trimmed.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = trimmed.strip_prefix("https://") {
        ("https", rest)
    } else if trimmed.contains("://") {
        return Err(invalid("only http:// and https:// endpoints are supported"));
    } else {
        ("http", trimmed)
    };
    if authority.is_empty() {
        return Err(invalid("no host given"));
    }
    if authority.contains('/') {
        return Err(invalid("an endpoint has no path"));
    }
    let normalized = format!("{scheme}://{authority}");
    if normalized.parse::<tonic::codegen::http::Uri>().is_err() {
        return Err(invalid("not a valid host:port"));
    }
    Ok(normalized)
}

/// Normalises every endpoint; an empty list or any malformed entry is an error
/// (a typo should not be skipped silently).
pub fn normalize_endpoints<I, S>(endpoints: I) -> Result<Vec<String>, ClientError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let list = endpoints
        .into_iter()
        .map(|e| normalize_endpoint(&e.into()))
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    Ok(list)
}

/// A client's endpoints, normalised, and which one is current. Shared by the
/// client's clones and its channel's connector.
pub(crate) struct Endpoints {
    list: Arc<[String]>,
    /// Index in `list` of the current endpoint; connections watch it to close
    /// themselves when it moves away from theirs.
    current: watch::Sender<usize>,
    /// Whether a dial may go on to the other endpoints when the current one
    /// fails. Off during [`Endpoints::connect_first`], which walks the list
    /// itself to report each endpoint's failure.
    rotate: AtomicBool,
    /// Bound on dialling one endpoint.
    connect_timeout: Duration,
    /// For `https://` endpoints (not `Debug`, hence the manual impl below).
    tls: Option<TlsConnector>,
}

impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("list", &self.list)
            .field("current", &*self.current.borrow())
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoints {
    /// `list` must be normalised and non-empty.
    pub(crate) fn new(list: Vec<String>, connect_timeout: Duration) -> Arc<Self> {
        Self::with_tls(list, connect_timeout, None)
    }

    pub(crate) fn with_tls(
        list: Vec<String>,
        connect_timeout: Duration,
        tls: Option<TlsConnector>,
    ) -> Arc<Self> {
        Arc::new(Self {
            list: list.into(),
            current: watch::Sender::new(0),
            rotate: AtomicBool::new(true),
            connect_timeout,
            tls,
        })
    }

    pub(crate) fn list(&self) -> &[String] {
        &self.list
    }

    /// Index of the current endpoint.
    pub(crate) fn current(&self) -> usize {
        *self.current.borrow()
    }

    /// The current endpoint (`http://host:port`).
    pub(crate) fn current_endpoint(&self) -> &str {
        self.list.get(self.current()).map_or("", String::as_str)
    }

    /// Moves from endpoint `from` to the next one (wrapping around), unless
    /// the current endpoint is no longer `from` (a concurrent call already
    /// moved on) or there is no other. Returns whether it moved.
    pub(crate) fn advance_from(&self, from: usize) -> bool {
        let len = self.list.len();
        self.current.send_if_modified(|current| {
            if *current != from || len < 2 {
                return false;
            }
            *current = (from + 1) % len;
            true
        })
    }

    fn set_current(&self, index: usize) {
        self.current.send_if_modified(|current| {
            let moved = *current != index;
            *current = index;
            moved
        });
    }

    /// The order a dial tries the endpoints in: the current one, then (if
    /// rotating) the others, once around.
    pub(crate) fn dial_order(&self) -> Vec<usize> {
        let len = self.list.len();
        let start = self.current();
        let count = if self.rotate.load(Ordering::Relaxed) {
            len
        } else {
            1.min(len)
        };
        (0..count).map(|step| (start + step) % len).collect()
    }

    /// Dials the endpoints in [`Endpoints::dial_order`]; the first that
    /// accepts becomes current.
    async fn dial(&self) -> Result<EndpointIo, ConnectFailed> {
        let mut failures = Vec::new();
        for index in self.dial_order() {
            let Some(endpoint) = self.list.get(index) else {
                continue;
            };
            match dial(endpoint, self.connect_timeout, self.tls.as_ref()).await {
                Ok(stream) => {
                    self.set_current(index);
                    return Ok(EndpointIo::new(stream, index, self.current.subscribe()));
                }
                Err(error) => failures.push((endpoint.clone(), error)),
            }
        }
        Err(ConnectFailed { failures })
    }

    /// Opens the client's channel: tries each endpoint in order, eagerly, and
    /// keeps the channel of the first that answers (it then fails over by
    /// itself, see the module docs); if none does, reports each failure.
    pub(crate) async fn connect_first(self: &Arc<Self>) -> Result<Channel, ClientError> {
        self.rotate.store(false, Ordering::Relaxed);
        let mut failures = Vec::new();
        for (index, endpoint) in self.list.iter().enumerate() {
            self.set_current(index);
            match channel_endpoint(endpoint)?
                .connect_with_connector(FailoverConnector {
                    endpoints: Arc::clone(self),
                })
                .await
            {
                Ok(channel) => {
                    self.rotate.store(true, Ordering::Relaxed);
                    return Ok(channel);
                }
                Err(error) => failures.push(EndpointFailure {
                    endpoint: endpoint.clone(),
                    error,
                }),
            }
        }
        self.rotate.store(true, Ordering::Relaxed);
        self.set_current(0);
        if failures.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        Err(ClientError::Unreachable { failures })
    }
}

/// The tonic endpoint a channel is built on. Its URI only sets the
/// `:authority` of requests; where the connection goes is the connector's
/// choice. No connect timeout here: the connector bounds each dial itself
/// (one bound over a whole pass would starve the later endpoints).
fn channel_endpoint(endpoint: &str) -> Result<Endpoint, ClientError> {
    // TLS is the connector's business; the URI stays http:// for tonic.
    let uri = endpoint.replacen("https://", "http://", 1);
    Endpoint::from_shared(uri)
        .map(|e| e.tcp_nodelay(true))
        .map_err(|_| ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason: "not a valid host:port",
        })
}

/// `host:port` of a normalised endpoint (port 80 when none is given, as
/// for any `http://` URL).
fn socket_address(endpoint: &str) -> io::Result<String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let authority = uri
        .authority()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Ok(match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:{default_port}", authority.as_str()),
    })
}

/// One connection to a normalised endpoint: TCP, then TLS for `https://`.
async fn dial(endpoint: &str, timeout: Duration, tls: Option<&TlsConnector>) -> io::Result<Conn> {
    let stream = dial_tcp(endpoint, timeout).await?;
    if !endpoint.starts_with("https://") {
        return Ok(Conn::Plain(stream));
    }
    let Some(connector) = tls else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an https:// endpoint needs TLS options (--cacert)",
        ));
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let host = uri.host().unwrap_or_default().to_owned();
    let handshake = crate::tls::handshake(connector, &host, stream);
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Conn::Tls(Box::new(stream)))
}

/// One TCP connection to a normalised endpoint, within `timeout`.
async fn dial_tcp(endpoint: &str, timeout: Duration) -> io::Result<TcpStream> {
    let address = socket_address(endpoint)?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Every endpoint a dial tried, with why each failed. Reaches callers as
/// the source of a transport error ([`connect_failures`] finds it).
#[derive(Debug)]
pub(crate) struct ConnectFailed {
    /// `(endpoint, error)` in the order tried.
    pub(crate) failures: Vec<(String, io::Error)>,
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.is_empty() {
            return f.write_str("no endpoint to connect to");
        }
        for (i, (endpoint, error)) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{endpoint}: {error}")?;
        }
        Ok(())
    }
}

impl StdError for ConnectFailed {}

/// The [`ConnectFailed`] in an error's source chain, if the error is a
/// failure to connect (the request was then never sent).
pub(crate) fn connect_failures<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a ConnectFailed> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(failed) = e.downcast_ref::<ConnectFailed>() {
            return Some(failed);
        }
        next = e.source();
    }
    None
}

/// The channel's connector: dials the current endpoint, failing over to the
/// others (see [`Endpoints::dial`]).
#[derive(Debug, Clone)]
pub(crate) struct FailoverConnector {
    endpoints: Arc<Endpoints>,
}

impl tower::Service<Uri> for FailoverConnector {
    type Response = TokioIo<EndpointIo>;
    type Error = ConnectFailed;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectFailed>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectFailed>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let endpoints = Arc::clone(&self.endpoints);
        Box::pin(async move { endpoints.dial().await.map(TokioIo::new) })
    }
}

/// Resolves once the current endpoint is not `index` any more (or the
/// client is gone).
type Moved = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A connection to one endpoint that fails its reads and writes once the
/// client has moved to another endpoint, so HTTP/2 drops it and the next
/// call dials the endpoint that is current.
pub(crate) struct EndpointIo {
    stream: Conn,
    moved: Option<Moved>,
}

impl fmt::Debug for EndpointIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointIo")
            .field("stream", &self.stream)
            .field("moved", &self.moved.is_none())
            .finish()
    }
}

impl EndpointIo {
    fn new(stream: Conn, index: usize, mut current: watch::Receiver<usize>) -> Self {
        let moved: Moved = Box::pin(async move {
            let _ = current.wait_for(|&c| c != index).await;
        });
        Self {
            stream,
            moved: Some(moved),
        }
    }

    /// An error once the client has moved away from this endpoint. Only
    /// reads wait for the move (HTTP/2 always has a read pending, so the
    /// connection task is woken by it); writes just see that it happened.
    fn check(&mut self, cx: Option<&mut Context<'_>>) -> io::Result<()> {
        if let (Some(moved), Some(cx)) = (&mut self.moved, cx)
            && moved.as_mut().poll(cx).is_ready()
        {
            self.moved = None;
        }
        if self.moved.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client moved to another endpoint",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for EndpointIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(Some(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for EndpointIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(None) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(None) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_http_endpoints_normalise() -> Result<(), ClientError> {
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379")?,
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:2379/")?,
            "http://127.0.0.1:2379"
        );
        assert_eq!(normalize_endpoint("localhost:1")?, "http://localhost:1");
        assert_eq!(normalize_endpoint("[::1]:2379")?, "http://[::1]:2379");
        Ok(())
    }

    #[test]
    fn bad_endpoints_are_rejected() {
        for bad in ["", "unix:///tmp/s", "http://a:1/x", "a b:1"] {
            assert!(
                matches!(
                    normalize_endpoint(bad),
                    Err(ClientError::InvalidEndpoint { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            normalize_endpoints(Vec::<String>::new()),
            Err(ClientError::NoEndpoints)
        ));
    }

    /// An address nothing listens on: a port bound, then released.
    async fn closed_endpoint() -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        drop(listener);
        Ok(format!("http://127.0.0.1:{port}"))
    }

    fn three() -> Arc<Endpoints> {
        Endpoints::new(
            vec![
                "http://a:1".into(),
                "http://b:2".into(),
                "http://c:3".into(),
            ],
            Duration::from_secs(1),
        )
    }

    #[test]
    fn advancing_rotates_once_per_failed_endpoint() {
        let e = three();
        assert_eq!(e.current_endpoint(), "http://a:1");
        assert!(e.advance_from(0));
        assert_eq!(e.current(), 1);
        // A second call that failed on endpoint 0 does not skip endpoint 1.
        assert!(!e.advance_from(0));
        assert_eq!(e.current(), 1);
        assert!(e.advance_from(1));
        assert!(e.advance_from(2));
        assert_eq!(e.current(), 0, "wraps around");
        let single = Endpoints::new(vec!["http://a:1".into()], Duration::from_secs(1));
        assert!(!single.advance_from(0));
        assert_eq!(single.current(), 0);
    }

    #[test]
    fn a_dial_starts_at_the_current_endpoint_and_goes_round_once() {
        let e = three();
        assert_eq!(e.dial_order(), [0, 1, 2]);
        e.advance_from(0);
        e.advance_from(1);
        assert_eq!(e.dial_order(), [2, 0, 1]);
        e.rotate.store(false, Ordering::Relaxed);
        assert_eq!(e.dial_order(), [2]);
    }

    #[test]
    fn socket_addresses() -> std::io::Result<()> {
        assert_eq!(socket_address("http://127.0.0.1:2379")?, "127.0.0.1:2379");
        assert_eq!(socket_address("http://[::1]:2379")?, "[::1]:2379");
        assert_eq!(socket_address("http://example.com")?, "example.com:80");
        Ok(())
    }

    #[tokio::test]
    async fn a_dial_fails_over_to_the_next_endpoint_that_listens() -> std::io::Result<()> {
        let dead = closed_endpoint().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let live = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let e = Endpoints::new(vec![dead.clone(), live.clone()], Duration::from_secs(2));
        let io = e.dial().await.map_err(std::io::Error::other)?;
        assert_eq!(e.current_endpoint(), live);
        drop(io);
        // Every endpoint down: each is named with its error.
        drop(listener);
        let failed = e
            .dial()
            .await
            .err()
            .map(|f| f.to_string())
            .unwrap_or_default();
        assert!(failed.contains(&dead) && failed.contains(&live), "{failed}");
        assert!(failed.contains("refused"), "{failed}");
        Ok(())
    }

    #[tokio::test]
    async fn the_first_connect_reports_every_endpoint() -> std::io::Result<()> {
        let (a, b) = (closed_endpoint().await?, closed_endpoint().await?);
        let e = Endpoints::new(vec![a.clone(), b.clone()], Duration::from_secs(2));
        match e.connect_first().await {
            Err(ClientError::Unreachable { failures }) => {
                let names: Vec<&str> = failures.iter().map(|f| f.endpoint.as_str()).collect();
                assert_eq!(names, [a.as_str(), b.as_str()]);
                let text = failures[0].to_string();
                assert!(text.contains("refused"), "{text}");
                assert!(
                    connect_failures(&failures[0].error).is_some(),
                    "the dial's failure is in the source chain"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(e.rotate.load(Ordering::Relaxed));
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_closes_once_the_client_moves_away() -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let live = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let e = Endpoints::new(
            vec![live, "http://127.0.0.1:9".into()],
            Duration::from_secs(2),
        );
        let mut io = e.dial().await.map_err(std::io::Error::other)?;
        let (mut peer, _) = listener.accept().await?;
        peer.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        assert_eq!(&byte, b"x");
        // A read that waits is woken and fails when the endpoint changes.
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            io.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(e.advance_from(0));
        let result = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        let error = result.err().map(|e| e.kind());
        assert_eq!(error, Some(std::io::ErrorKind::ConnectionAborted));
        Ok(())
    }
}
