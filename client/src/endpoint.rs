//! Endpoints and connections: [`ConnectOptions`], turning the strings a user
//! gives (`http://host:port` or bare `host:port`) into tonic endpoints, and
//! opening a channel to the first endpoint that answers.
//!
//! Failover is meant to live here: [`connect_first`] already walks the list in
//! order and reports every failure, so a later reconnect-on-failure policy can
//! reuse it starting after the endpoint that broke.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{ClientError, EndpointFailure};

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

/// The canonical form of an endpoint: `http://host:port`. A bare `host:port`
/// gets `http://`; TLS is not supported yet, so `https://` is refused rather
/// than silently spoken in plain text.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let invalid = |reason| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let trimmed = endpoint.trim().trim_end_matches('/');
    let authority = if let Some(rest) = trimmed.strip_prefix("http://") {
        rest
    } else if trimmed.starts_with("https://") {
        return Err(invalid("TLS (https://) is not supported yet"));
    } else if trimmed.contains("://") {
        return Err(invalid("only http:// endpoints are supported"));
    } else {
        trimmed
    };
    if authority.is_empty() {
        return Err(invalid("no host given"));
    }
    if authority.contains('/') {
        return Err(invalid("an endpoint has no path"));
    }
    let normalized = format!("http://{authority}");
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

/// Opens one HTTP/2 connection to `endpoint` (already normalised).
pub(crate) async fn connect_channel(
    endpoint: &str,
    options: &ConnectOptions,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .connect()
        .await
}

/// Connects to the first endpoint of `endpoints` (normalised) that accepts a
/// connection, trying them in order. Returns its index and the channel.
pub(crate) async fn connect_first(
    endpoints: &[String],
    options: &ConnectOptions,
) -> Result<(usize, Channel), ClientError> {
    let mut failures = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        match connect_channel(endpoint, options).await {
            Ok(channel) => return Ok((i, channel)),
            Err(error) => failures.push(EndpointFailure {
                endpoint: endpoint.clone(),
                error,
            }),
        }
    }
    if failures.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    Err(ClientError::Unreachable { failures })
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
        for bad in ["", "https://a:1", "unix:///tmp/s", "http://a:1/x", "a b:1"] {
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
}
