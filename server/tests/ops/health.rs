//! The operator endpoints besides `/metrics`: `/health` in etcd's JSON
//! shape (false with a reason while an alarm is raised), `/livez`,
//! `/readyz`, and 404 for anything else.

use rollcall_proto::etcdserverpb::alarm_request::AlarmAction;
use rollcall_proto::etcdserverpb::{AlarmRequest, AlarmType, StatusRequest};

use crate::support::Ops;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_livez_and_readyz_answer_ok() {
    let ops = Ops::start().await;

    let health = ops.get("/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&health.body)
        .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {:?}", health.body));
    // etcd's exact shape: the value is the string "true", not a boolean.
    assert_eq!(body, serde_json::json!({ "health": "true" }));
    assert_eq!(health.body, r#"{"health":"true"}"#);

    for path in ["/livez", "/readyz"] {
        let response = ops.get(path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.body.trim(), "ok", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404() {
    let ops = Ops::start().await;
    for path in ["/", "/nope", "/metrics/extra", "/healthz", "/v3/kv/range"] {
        let response = ops.get(path).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
    }
    // The listener keeps serving after the 404s.
    assert_eq!(ops.get("/metrics").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_false_while_an_alarm_is_raised() {
    let mut ops = Ops::start().await;
    let member = ops
        .maintenance
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .header
        .expect("a header")
        .member_id;
    let alarm = |action: AlarmAction| AlarmRequest {
        action: action as i32,
        member_id: member,
        alarm: AlarmType::Nospace as i32,
    };
    ops.maintenance
        .alarm(alarm(AlarmAction::Activate))
        .await
        .expect("activate NOSPACE");

    let health = ops.get("/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&health.body)
        .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {:?}", health.body));
    assert_eq!(body["health"], "false", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("NOSPACE"), "reason {reason:?}");
    let ready = ops.get("/readyz").await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("NOSPACE"), "{ready:?}");
    // Alive, and still scraped: operators need the metrics most now.
    assert_eq!(ops.get("/livez").await.status, 200);
    ops.scrape().await;

    ops.maintenance
        .alarm(alarm(AlarmAction::Deactivate))
        .await
        .expect("disarm NOSPACE");
    let health = ops.get("/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body, r#"{"health":"true"}"#);
    assert_eq!(ops.get("/readyz").await.status, 200);
}
