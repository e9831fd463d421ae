//! The HTTP listener for operators (`--listen-metrics-urls`): `/metrics`
//! (Prometheus/OpenMetrics text), `/health` (etcd's JSON shape), `/livez` and
//! `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use rollcall_proto::etcdserverpb::AlarmType;

use super::{AlarmLabels, Metrics};
use crate::mvcc::Store;
use crate::proposer::Proposer;

pub(crate) struct HttpState {
    pub metrics: Arc<Metrics>,
    /// The configured backend quota, exported as etcd does.
    pub quota_bytes: u64,
    pub store: Store,
    pub proposer: Proposer,
}

/// Serves `listener` until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond<B>(state: &HttpState, req: &Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            sample(state);
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.encode(),
            )
        }
        "/health" => match unhealthy_reason(state) {
            None => reply(
                StatusCode::OK,
                "application/json",
                r#"{"health":"true"}"#.into(),
            ),
            Some(reason) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                serde_json::json!({ "health": "false", "reason": reason }).to_string(),
            ),
        },
        "/livez" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => match unhealthy_reason(state) {
            None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Some(reason) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{reason}\n"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

/// Why the member cannot serve writes, if it cannot.
fn unhealthy_reason(state: &HttpState) -> Option<String> {
    if state.proposer.is_stopped() {
        return Some("the store cannot commit (the applier stopped)".into());
    }
    if let Some(node) = state.proposer.node()
        && node.leader().is_none()
    {
        return Some("no leader".into());
    }
    if let Err(e) = state.store.read(|view| view.resolve(0).map(drop)) {
        return Some(format!("the store cannot be read: {e}"));
    }
    let alarms = state.store.read_committed().alarms.describe();
    if !alarms.is_empty() {
        return Some(format!("alarm active: {}", alarms.join(", ").trim_end()));
    }
    None
}

/// Refreshes the values read at scrape time.
fn sample(state: &HttpState) {
    let metrics = &state.metrics;
    let size = state.store.db_size();
    metrics.db_total_size.set(size);
    metrics.db_in_use_size.set(size);
    metrics
        .quota_backend_bytes
        .set(i64::try_from(state.quota_bytes).unwrap_or(i64::MAX));
    // Every alarm type is exported, 0 when not raised, so rules see a series.
    let active = state
        .store
        .read_committed()
        .alarms
        .get(AlarmType::None as i32);
    for kind in [AlarmType::Nospace, AlarmType::Corrupt] {
        let raised = active.iter().any(|a| a.alarm == kind as i32);
        let labels = AlarmLabels {
            alarm: kind.as_str_name().to_string(),
        };
        metrics
            .alarm_active
            .get_or_create(&labels)
            .set(i64::from(raised));
    }
    metrics
        .instances
        .refresh(&state.store, &metrics.registry_instances);
}
