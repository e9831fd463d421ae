//! `/metrics`: every documented metric is there with its type and labels,
//! and the counters and gauges move by exactly what the client did.

use std::collections::BTreeMap;

use openmetrics_parser::OpenMetricsType;
use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RequestOp, TxnRequest, WatchCancelRequest, WatchCreateRequest, WatchRequest, request_op,
    watch_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::support::{Ops, Scrape, WAIT};

use OpenMetricsType::{Counter, Gauge, Histogram};

const GRPC_CODE_LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
const GRPC_METHOD_LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];

/// Every metric family rollcall documents (issue 7, item 1;
/// `server/src/metrics/mod.rs`), with its OpenMetrics type and label names.
/// Family names: a counter `x` is exposed as `x_total`.
const DOCUMENTED: &[(&str, OpenMetricsType, &[&str])] = &[
    ("etcd_server_has_leader", Gauge, &[]),
    ("etcd_server_leader_changes_seen", Counter, &[]),
    ("etcd_server_proposals_committed", Counter, &[]),
    ("etcd_server_proposals_failed", Counter, &[]),
    ("etcd_server_proposals_pending", Gauge, &[]),
    ("etcd_mvcc_db_total_size_in_bytes", Gauge, &[]),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", Gauge, &[]),
    ("etcd_debugging_mvcc_keys_total", Gauge, &[]),
    ("etcd_mvcc_put", Counter, &[]),
    ("etcd_mvcc_delete", Counter, &[]),
    ("etcd_disk_backend_commit_duration_seconds", Histogram, &[]),
    ("etcd_debugging_mvcc_watcher_total", Gauge, &[]),
    ("etcd_debugging_lease_granted", Counter, &[]),
    ("etcd_debugging_lease_revoked", Counter, &[]),
    ("etcd_debugging_lease_renewed", Counter, &[]),
    ("grpc_server_handled", Counter, GRPC_CODE_LABELS),
    (
        "grpc_server_handling_seconds",
        Histogram,
        GRPC_METHOD_LABELS,
    ),
    ("rollcall_registry_instances", Gauge, &["service", "health"]),
    ("rollcall_lease_expired", Counter, &[]),
    ("rollcall_watch_slow_watchers", Gauge, &[]),
    ("rollcall_group_commit_batch_size", Histogram, &[]),
];

fn kv_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_owned().into(),
            value: value.to_owned().into(),
            ..Default::default()
        })),
    }
}

fn kv_delete(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_owned().into(),
                ..Default::default()
            },
        )),
    }
}

/// What changed between two scrapes.
struct Delta<'a> {
    before: &'a Scrape,
    after: &'a Scrape,
}

impl Delta<'_> {
    fn of(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.after.value(family, labels) - self.before.value(family, labels)
    }

    fn sum_of(&self, family: &str) -> f64 {
        self.after.histogram_sum(family, &[]) - self.before.histogram_sum(family, &[])
    }

    fn grpc(&self, method: &str, code: &str) -> f64 {
        self.of(
            "grpc_server_handled",
            &[("grpc_method", method), ("grpc_code", code)],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_exported_with_its_type_and_labels() {
    let mut ops = Ops::start().await;
    let response = ops.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        response.body.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF"
    );

    let scrape = ops.populated_scrape().await;
    let mut problems = Vec::new();
    for (name, kind, labels) in DOCUMENTED {
        let Some(family) = scrape.family(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if family.family_type != *kind {
            problems.push(format!(
                "{name}: type {} instead of {kind}",
                family.family_type
            ));
        }
        if family.help.trim().is_empty() {
            problems.push(format!("{name}: no HELP"));
        }
        let mut got: Vec<&str> = family
            .get_label_names()
            .iter()
            .map(String::as_str)
            .collect();
        let mut want = labels.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            problems.push(format!("{name}: labels {got:?} instead of {want:?}"));
        }
        if family.iter_samples().next().is_none() {
            problems.push(format!("{name}: no sample"));
        }
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\n/metrics:\n{}",
        scrape.text
    );

    // Values that hold on any fresh single member.
    assert_eq!(scrape.value("etcd_server_has_leader", &[]), 1.0);
    assert_eq!(scrape.value("etcd_server_leader_changes_seen", &[]), 0.0);
    assert!(scrape.value("etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0);
    assert!(
        scrape.value("etcd_mvcc_db_total_size_in_use_in_bytes", &[])
            <= scrape.value("etcd_mvcc_db_total_size_in_bytes", &[])
    );
    // The harness's readiness probe is a Maintenance.Status call.
    assert!(
        scrape.value(
            "grpc_server_handled",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", "etcdserverpb.Maintenance"),
                ("grpc_method", "Status"),
                ("grpc_code", "OK"),
            ],
        ) >= 1.0,
        "{}",
        scrape.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_what_the_client_did() {
    let mut ops = Ops::start().await;
    let keys_at_start = ops.live_keys().await;
    let before = ops.scrape().await;
    assert_eq!(
        before.value("etcd_debugging_mvcc_keys_total", &[]),
        keys_at_start as f64
    );

    // 4 Put RPCs: 3 new keys and 1 overwrite.
    for (key, value) in [("k/a", "1"), ("k/b", "1"), ("k/c", "1"), ("k/a", "2")] {
        ops.put(key, value).await;
    }
    // 1 Txn: puts k/d and k/e, deletes k/b (one revision, three events).
    ops.kv
        .txn(TxnRequest {
            success: vec![kv_put("k/d", "1"), kv_put("k/e", "1"), kv_delete("k/b")],
            ..Default::default()
        })
        .await
        .expect("txn");
    // 1 DeleteRange over [k/c, k/e): deletes k/c and k/d.
    let deleted = ops
        .kv
        .delete_range(DeleteRangeRequest {
            key: "k/c".to_owned().into(),
            range_end: "k/e".to_owned().into(),
            ..Default::default()
        })
        .await
        .expect("delete range")
        .into_inner()
        .deleted;
    assert_eq!(deleted, 2);
    // 1 Put refused before it is proposed: an empty key.
    let refused = ops
        .kv
        .put(PutRequest {
            key: Vec::new().into(),
            value: "x".to_owned().into(),
            ..Default::default()
        })
        .await
        .expect_err("a put without a key is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    // 2 LeaseGrants; a Put attached to the first; a LeaseRevoke deletes it.
    let mut leases = Vec::new();
    for _ in 0..2 {
        leases.push(
            ops.lease
                .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
                .await
                .expect("lease grant")
                .into_inner()
                .id,
        );
    }
    ops.put_with_lease("k/leased", "1", leases[0]).await;
    ops.lease
        .lease_revoke(LeaseRevokeRequest { id: leases[0] })
        .await
        .expect("lease revoke");

    let after = ops.scrape().await;
    let d = Delta {
        before: &before,
        after: &after,
    };
    // Keys put: 4 Puts + 2 in the txn + 1 leased.
    assert_eq!(d.of("etcd_mvcc_put", &[]), 7.0, "{}", after.text);
    // Keys deleted: 1 in the txn + 2 by the range + 1 by the revoke.
    assert_eq!(d.of("etcd_mvcc_delete", &[]), 4.0, "{}", after.text);
    // Created a b c d e leased, deleted b c d leased: a and e remain.
    assert_eq!(d.of("etcd_debugging_mvcc_keys_total", &[]), 2.0);
    let live = ops.live_keys().await;
    assert_eq!(live, keys_at_start + 2);
    assert_eq!(
        after.value("etcd_debugging_mvcc_keys_total", &[]),
        live as f64
    );

    assert_eq!(d.grpc("Put", "OK"), 5.0, "{}", after.text);
    assert_eq!(d.grpc("Put", "InvalidArgument"), 1.0, "{}", after.text);
    assert_eq!(d.grpc("Txn", "OK"), 1.0);
    assert_eq!(d.grpc("DeleteRange", "OK"), 1.0);
    assert_eq!(d.grpc("LeaseGrant", "OK"), 2.0);
    assert_eq!(d.grpc("LeaseRevoke", "OK"), 1.0);
    // The count-only Range before the first scrape.
    assert_eq!(d.grpc("Range", "OK"), 0.0);
    assert_eq!(
        after.value(
            "grpc_server_handled",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", "etcdserverpb.KV"),
                ("grpc_method", "Put"),
                ("grpc_code", "InvalidArgument"),
            ],
        ),
        1.0
    );
    // Latency is observed once per RPC, failed ones included.
    assert_eq!(
        d.of("grpc_server_handling_seconds", &[("grpc_method", "Put")]),
        6.0
    );
    assert_eq!(
        d.of("grpc_server_handling_seconds", &[("grpc_method", "Txn")]),
        1.0
    );

    assert_eq!(d.of("etcd_debugging_lease_granted", &[]), 2.0);
    assert_eq!(d.of("etcd_debugging_lease_revoked", &[]), 1.0);
    assert_eq!(d.of("rollcall_lease_expired", &[]), 0.0);

    // Proposals: 5 Puts + 1 Txn + 1 DeleteRange + 2 grants + 1 revoke; the
    // empty-key Put was refused before it was proposed.
    assert_eq!(d.of("etcd_server_proposals_committed", &[]), 10.0);
    assert_eq!(d.of("etcd_server_proposals_failed", &[]), 0.0);
    // Group commit: every proposal lands in exactly one batch, and there is
    // one redb commit per batch.
    assert_eq!(d.sum_of("rollcall_group_commit_batch_size"), 10.0);
    let batches = d.of("rollcall_group_commit_batch_size", &[]);
    assert!((1.0..=10.0).contains(&batches), "{batches} batches");
    assert_eq!(
        d.of("etcd_disk_backend_commit_duration_seconds", &[]),
        batches
    );
    assert!(d.sum_of("etcd_disk_backend_commit_duration_seconds") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_instances_are_counted_by_service_and_health() {
    let mut ops = Ops::start().await;
    let web = |health: &str| format!(r#"{{"id":"x","service":"web","health":"{health}"}}"#);
    ops.put("/services/web/1", &web("passing")).await;
    ops.put("/services/web/2", &web("passing")).await;
    ops.put("/services/web/3", &web("critical")).await;
    ops.put("/services/api/1", r#"{"health":"passing"}"#).await;
    ops.put("/services/api/2", "not json").await;
    ops.put("/services/api/3", r#"{"id":"3"}"#).await;
    // Not instances: outside /services/, or no instance id.
    ops.put("/other/web/1", &web("passing")).await;
    ops.put("/services/lonely", &web("passing")).await;

    let counts = |scrape: &Scrape| -> BTreeMap<(String, String), f64> {
        scrape
            .label_sets("rollcall_registry_instances")
            .into_iter()
            .map(|labels| {
                let service = labels["service"].clone();
                let health = labels["health"].clone();
                let value = scrape.value(
                    "rollcall_registry_instances",
                    &[("service", &service), ("health", &health)],
                );
                ((service, health), value)
            })
            .collect()
    };
    let pair = |s: &str, h: &str, n: f64| ((s.to_owned(), h.to_owned()), n);

    let scrape = ops.scrape().await;
    assert_eq!(
        counts(&scrape),
        BTreeMap::from([
            pair("web", "passing", 2.0),
            pair("web", "critical", 1.0),
            pair("api", "passing", 1.0),
            pair("api", "unknown", 2.0),
        ]),
        "{}",
        scrape.text
    );

    // Health flips: the critical series disappears rather than staying at 0.
    ops.put("/services/web/3", &web("passing")).await;
    ops.kv
        .delete_range(DeleteRangeRequest {
            key: "/services/api/".to_owned().into(),
            range_end: "/services/api0".to_owned().into(),
            ..Default::default()
        })
        .await
        .expect("delete api instances");
    let scrape = ops.scrape().await;
    assert_eq!(
        counts(&scrape),
        BTreeMap::from([pair("web", "passing", 3.0)]),
        "{}",
        scrape.text
    );
}

fn create_watch(key: &str) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.to_owned().into(),
                ..Default::default()
            },
        )),
    }
}

/// Opens a watch stream and creates one watcher per key on it; returns the
/// request sender, the response stream and the watch ids.
async fn open_watchers(
    ops: &Ops,
    keys: &[&str],
) -> (
    mpsc::Sender<WatchRequest>,
    tonic::Streaming<rollcall_proto::etcdserverpb::WatchResponse>,
    Vec<i64>,
) {
    let (tx, rx) = mpsc::channel(16);
    let mut stream = ops
        .watch
        .clone()
        .watch(ReceiverStream::new(rx))
        .await
        .expect("open a watch stream")
        .into_inner();
    let mut ids = Vec::new();
    for key in keys {
        tx.send(create_watch(key)).await.expect("send create");
        let created = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("watch created in time")
            .expect("watch stream")
            .expect("a response");
        assert!(created.created, "{created:?}");
        ids.push(created.watch_id);
    }
    (tx, stream, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_gauge_follows_watch_streams() {
    let mut ops = Ops::start().await;
    let before = ops.scrape().await;
    assert_eq!(before.value("etcd_debugging_mvcc_watcher_total", &[]), 0.0);

    let (tx, stream, ids) = open_watchers(&ops, &["w/1", "w/2"]).await;
    // A write refreshes the gauge even when no watcher matches it. (Without
    // one the gauge lags: see watcher_gauge_rises_as_soon_as_a_watch_is_created.)
    ops.put("unwatched", "x").await;
    ops.scrape_until("2 watchers", |s| {
        s.value("etcd_debugging_mvcc_watcher_total", &[]) == 2.0
    })
    .await;

    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: ids[0] },
        )),
    })
    .await
    .expect("send cancel");
    ops.scrape_until("1 watcher after a cancel", |s| {
        s.value("etcd_debugging_mvcc_watcher_total", &[]) == 1.0
    })
    .await;

    // Closing the stream removes its watchers and completes the Watch RPC.
    drop(tx);
    drop(stream);
    let after = ops
        .scrape_until("no watcher after the stream closed", |s| {
            s.value("etcd_debugging_mvcc_watcher_total", &[]) == 0.0
                && s.value("grpc_server_handled", &[("grpc_method", "Watch")]) >= 1.0
        })
        .await;
    assert_eq!(after.value("rollcall_watch_slow_watchers", &[]), 0.0);
    let watch_calls = after.label_sets("grpc_server_handled");
    let watch = watch_calls
        .iter()
        .find(|l| l["grpc_method"] == "Watch")
        .expect("a Watch series");
    assert_eq!(watch["grpc_type"], "bidi_stream");
    assert_eq!(watch["grpc_service"], "etcdserverpb.Watch");
}

/// Issue 7: "a watch raises the watcher gauge", with no write after it (an
/// idle registry with many watchers must not show 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_gauge_rises_as_soon_as_a_watch_is_created() {
    let ops = Ops::start().await;
    let (_tx, _stream, _ids) = open_watchers(&ops, &["w/1"]).await;
    ops.scrape_until("1 watcher, with no write after its creation", |s| {
        s.value("etcd_debugging_mvcc_watcher_total", &[]) == 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_renewal_and_expiry_are_counted() {
    let mut ops = Ops::start().await;
    let before = ops.scrape().await;

    // Renew once through LeaseKeepAlive.
    let kept = ops
        .lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id;
    let (tx, rx) = mpsc::channel(4);
    let mut replies = ops
        .lease
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .expect("open keep-alive")
        .into_inner();
    tx.send(LeaseKeepAliveRequest { id: kept })
        .await
        .expect("send keep-alive");
    let reply = tokio::time::timeout(WAIT, replies.message())
        .await
        .expect("keep-alive answered in time")
        .expect("keep-alive stream")
        .expect("a reply");
    assert_eq!(reply.id, kept);
    assert!(reply.ttl > 0);
    ops.scrape_until("one renewal", |s| {
        s.value("etcd_debugging_lease_renewed", &[])
            - before.value("etcd_debugging_lease_renewed", &[])
            == 1.0
    })
    .await;
    drop(tx);

    // An instance registered on a 2 s lease that nobody keeps alive.
    let short = ops
        .lease
        .lease_grant(LeaseGrantRequest { ttl: 2, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id;
    ops.put_with_lease("/services/web/ephemeral", r#"{"health":"passing"}"#, short)
        .await;
    let registered = ops.scrape().await;
    assert_eq!(
        registered.value(
            "rollcall_registry_instances",
            &[("service", "web"), ("health", "passing")]
        ),
        1.0
    );

    let after = ops
        .scrape_until("the 2 s lease to expire", |s| {
            s.value("rollcall_lease_expired", &[]) - before.value("rollcall_lease_expired", &[])
                == 1.0
        })
        .await;
    let d = Delta {
        before: &registered,
        after: &after,
    };
    // An expiry is a revoke (as etcd counts it) that deletes the instance.
    assert_eq!(d.of("etcd_debugging_lease_revoked", &[]), 1.0);
    assert_eq!(d.of("etcd_mvcc_delete", &[]), 1.0);
    assert_eq!(d.of("etcd_debugging_mvcc_keys_total", &[]), -1.0);
    assert_eq!(
        after.value("rollcall_registry_instances", &[("service", "web")]),
        0.0,
        "{}",
        after.text
    );
    assert_eq!(ops.live_keys().await, 0);
    // Granted: the kept lease and the short one.
    assert_eq!(
        after.value("etcd_debugging_lease_granted", &[])
            - before.value("etcd_debugging_lease_granted", &[]),
        2.0
    );
}
