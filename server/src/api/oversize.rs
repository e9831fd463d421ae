//! Gives an over-large request etcd's status. tonic refuses a message above
//! the decoding limit (before buffering it) with OUT_OF_RANGE and its own
//! wording; etcd's gRPC stack answers RESOURCE_EXHAUSTED
//! "grpc: received message larger than max (N vs. M)", and clients key
//! retries off the code. This layer rewrites that one status.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use tower::{Layer, Service};

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";

#[derive(Clone, Copy, Default)]
pub(crate) struct OversizeStatusLayer;

impl<S> Layer<S> for OversizeStatusLayer {
    type Service = OversizeStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OversizeStatus { inner }
    }
}

#[derive(Clone)]
pub(crate) struct OversizeStatus<S> {
    inner: S,
}

/// etcd's message for tonic's "found N bytes, the limit is: M bytes".
fn etcd_message(tonic_message: &str) -> Option<String> {
    let rest = tonic_message.strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    let (found, limit): (u64, u64) = (found.parse().ok()?, limit.parse().ok()?);
    Some(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for OversizeStatus<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let rewritten = (headers.get("grpc-status").map(HeaderValue::as_bytes) == Some(b"11"))
                .then(|| headers.get("grpc-message")?.to_str().ok())
                .flatten()
                .and_then(|m| etcd_message(&percent_decode(m)));
            if let Some(message) = rewritten
                && let Ok(value) = HeaderValue::from_str(&message)
            {
                headers.insert("grpc-status", HeaderValue::from_static("8"));
                headers.insert("grpc-message", value);
            }
            Ok(response)
        })
    }
}

/// grpc-message is percent-encoded; this one is ASCII with `%20`-style escapes.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_tonic_wording_only() {
        assert_eq!(
            etcd_message("Error, decoded message length too large: found 655370 bytes, the limit is: 589824 bytes")
                .as_deref(),
            Some("grpc: received message larger than max (655370 vs. 589824)")
        );
        assert_eq!(
            etcd_message("etcdserver: mvcc: required revision is a future revision"),
            None
        );
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
    }
}
