//! A tower layer recording `grpc_server_started_total`,
//! `grpc_server_handled_total` and `grpc_server_handling_seconds` (go-grpc-prometheus names and labels) for
//! every RPC. The status of a successful call travels in the trailers, so the
//! response body is wrapped to see them; a stream is counted when it ends.
//!
//! The same place logs every failed call with its method
//! (`method=/etcdserverpb.KV/Put`): server faults at error, a client's
//! mistakes (unknown lease, future revision, ...) at debug as etcd does. A
//! successful call costs no more than its metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tower::{Layer, Service};

use super::{GrpcCodeLabels, GrpcMethodLabels, Metrics};

#[derive(Clone)]
pub(crate) struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// Splits `/etcdserverpb.KV/Range` into its labels.
fn method_labels(path: &str) -> GrpcMethodLabels {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default().to_string();
    let method = parts.next().unwrap_or_default().to_string();
    let grpc_type = match method.as_str() {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" => "server_stream",
        _ => "unary",
    };
    GrpcMethodLabels {
        grpc_type: grpc_type.into(),
        grpc_service: service,
        grpc_method: method,
    }
}

/// The gRPC code names Go's `codes.Code.String()` prints.
fn code_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let labels = method_labels(request.uri().path());
        let metrics = self.metrics.clone();
        let start = Instant::now();
        metrics.grpc_started.get_or_create(&labels).inc();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // A trailers-only response (an error) carries the status in its headers.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(code_name);
            let pending = Pending {
                metrics,
                labels,
                start,
            };
            let done = if let Some(code) = code {
                pending.finish(code, Some(response.headers()));
                None
            } else {
                Some(pending)
            };
            Ok(response.map(|inner| MeteredBody {
                inner,
                pending: done,
            }))
        })
    }
}

struct Pending {
    metrics: Arc<Metrics>,
    labels: GrpcMethodLabels,
    start: Instant,
}

impl Pending {
    /// Records the outcome; `status` holds `grpc-status`/`grpc-message`
    /// (the headers of a trailers-only response, or the trailers).
    fn finish(self, code: &str, status: Option<&http::HeaderMap>) {
        if code != "OK" {
            log_failure(&self.labels, code, status);
        }
        let labels = GrpcCodeLabels {
            grpc_type: self.labels.grpc_type.clone(),
            grpc_service: self.labels.grpc_service.clone(),
            grpc_method: self.labels.grpc_method.clone(),
            grpc_code: code.to_string(),
        };
        self.metrics.grpc_handled.get_or_create(&labels).inc();
        self.metrics
            .grpc_handling_seconds
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// `/service/Method`, formatted only when a failure is logged.
struct MethodPath<'a>(&'a GrpcMethodLabels);

impl std::fmt::Display for MethodPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}/{}", self.0.grpc_service, self.0.grpc_method)
    }
}

/// Server faults, which an operator must see at the default level.
fn is_server_fault(code: &str) -> bool {
    matches!(code, "Internal" | "Unknown" | "DataLoss")
}

fn log_failure(labels: &GrpcMethodLabels, code: &str, status: Option<&http::HeaderMap>) {
    let method = MethodPath(labels);
    // Decodes the percent-encoded grpc-message; only on this failure path.
    let status = status.and_then(tonic::Status::from_header_map);
    let error = status.as_ref().map_or("", |s| s.message());
    if is_server_fault(code) {
        tracing::error!(method = %method, code = %code, error, "request failed");
    } else {
        tracing::debug!(method = %method, code = %code, error, "request failed");
    }
}

/// A response body that records the call's outcome when its trailers pass
/// (or when it is dropped unfinished: the client went away).
pub(crate) struct MeteredBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            // The client went away (a watch or keep-alive stream closed from
            // its side, a timeout): not the server's failure, nothing to log.
            pending.finish("Canceled", None);
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let outcome = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|trailers| {
                let code = trailers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("OK", code_name);
                (code, Some(trailers))
            }),
            Poll::Ready(Some(Err(_))) => Some(("Unknown", None)),
            Poll::Ready(None) => Some(("OK", None)),
            Poll::Pending => None,
        };
        if let Some((code, status)) = outcome
            && let Some(pending) = self.pending.take()
        {
            pending.finish(code, status);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_codes_follow_go_grpc_prometheus() {
        let l = method_labels("/etcdserverpb.KV/Range");
        assert_eq!(
            (
                l.grpc_service.as_str(),
                l.grpc_method.as_str(),
                l.grpc_type.as_str()
            ),
            ("etcdserverpb.KV", "Range", "unary")
        );
        assert_eq!(
            method_labels("/etcdserverpb.Watch/Watch").grpc_type,
            "bidi_stream"
        );
        assert_eq!(code_name("0"), "OK");
        assert_eq!(code_name("11"), "OutOfRange");
        assert_eq!(code_name("x"), "Unknown");
    }
}
