//! Txn: compares on value, version, create_revision, mod_revision and lease
//! with every result operator, success and failure branches, nested txns, one
//! revision per txn, and reads inside a txn seeing its own earlier writes.

use rollcall_proto::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, TxnRequest};
use rollcall_tests::Backend;

use crate::support::{
    Client, Cmp, all_req, as_delete, as_put, as_range, as_txn, b, cmp_create, cmp_lease, cmp_mod,
    cmp_value, cmp_version, del_req, keys, kv, op_del, op_get, op_put, op_range, op_txn,
    prefix_req, rev, start, txn_req,
};

backend_tests!(
    compare_value,
    compare_version,
    compare_create_revision,
    compare_mod_revision,
    compare_lease,
    compare_missing_key,
    compare_over_a_range,
    all_compares_must_hold,
    success_and_failure_branches,
    txn_is_one_revision,
    read_only_txn_keeps_revision,
    empty_txn_succeeds,
    range_sees_own_earlier_put,
    nested_txns,
    nested_compare_sees_state_before_the_txn,
    prev_kv_inside_txn,
);

/// Runs one txn per (compare, expected outcome) with a marker put in each
/// branch, and checks which branch ran.
async fn check_compares(c: &mut Client, cases: Vec<(Compare, bool)>) {
    for (compare, want) in cases {
        let shown = format!("{compare:?}");
        let before = c.revision().await;
        let r = c
            .txn(txn_req(
                vec![compare],
                vec![op_put("marker", "success")],
                vec![op_put("marker", "failure")],
            ))
            .await;
        assert_eq!(r.succeeded, want, "compare {shown}");
        assert_eq!(rev(&r.header), before + 1);
        let marker = c.get_kv("marker").await.expect("marker written");
        let branch = if want { "success" } else { "failure" };
        assert_eq!(marker.value, b(branch), "compare {shown}");
    }
}

async fn compare_value(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("k", "m").await;
    check_compares(
        &mut c,
        vec![
            (cmp_value("k", Cmp::Equal, "m"), true),
            (cmp_value("k", Cmp::Equal, "n"), false),
            (cmp_value("k", Cmp::Equal, ""), false),
            (cmp_value("k", Cmp::NotEqual, "n"), true),
            (cmp_value("k", Cmp::NotEqual, "m"), false),
            (cmp_value("k", Cmp::Greater, "a"), true),
            (cmp_value("k", Cmp::Greater, "m"), false),
            (cmp_value("k", Cmp::Greater, "ma"), false),
            (cmp_value("k", Cmp::Greater, "z"), false),
            (cmp_value("k", Cmp::Less, "z"), true),
            (cmp_value("k", Cmp::Less, "ma"), true),
            (cmp_value("k", Cmp::Less, "m"), false),
            (cmp_value("k", Cmp::Less, "a"), false),
        ],
    )
    .await;
}

async fn compare_version(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("k", "1").await;
    c.put("k", "2").await;
    // version 2
    check_compares(
        &mut c,
        vec![
            (cmp_version("k", Cmp::Equal, 2), true),
            (cmp_version("k", Cmp::Equal, 1), false),
            (cmp_version("k", Cmp::NotEqual, 1), true),
            (cmp_version("k", Cmp::NotEqual, 2), false),
            (cmp_version("k", Cmp::Greater, 1), true),
            (cmp_version("k", Cmp::Greater, 2), false),
            (cmp_version("k", Cmp::Less, 3), true),
            (cmp_version("k", Cmp::Less, 2), false),
        ],
    )
    .await;
}

async fn compare_create_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let created = c.put_rev("k", "1").await;
    c.put("k", "2").await;
    check_compares(
        &mut c,
        vec![
            (cmp_create("k", Cmp::Equal, created), true),
            (cmp_create("k", Cmp::Equal, created + 1), false),
            (cmp_create("k", Cmp::NotEqual, created + 1), true),
            (cmp_create("k", Cmp::NotEqual, created), false),
            (cmp_create("k", Cmp::Greater, created - 1), true),
            (cmp_create("k", Cmp::Greater, created), false),
            (cmp_create("k", Cmp::Less, created + 1), true),
            (cmp_create("k", Cmp::Less, created), false),
        ],
    )
    .await;
}

async fn compare_mod_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("k", "1").await;
    let modified = c.put_rev("k", "2").await;
    // The marker puts below do not touch k, so its mod revision stays.
    check_compares(
        &mut c,
        vec![
            (cmp_mod("k", Cmp::Equal, modified), true),
            (cmp_mod("k", Cmp::Equal, modified - 1), false),
            (cmp_mod("k", Cmp::NotEqual, modified - 1), true),
            (cmp_mod("k", Cmp::NotEqual, modified), false),
            (cmp_mod("k", Cmp::Greater, modified - 1), true),
            (cmp_mod("k", Cmp::Greater, modified), false),
            (cmp_mod("k", Cmp::Less, modified + 1), true),
            (cmp_mod("k", Cmp::Less, modified), false),
        ],
    )
    .await;
}

async fn compare_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("k", "1").await;
    // No lease attached: lease 0.
    check_compares(
        &mut c,
        vec![
            (cmp_lease("k", Cmp::Equal, 0), true),
            (cmp_lease("k", Cmp::Equal, 7), false),
            (cmp_lease("k", Cmp::NotEqual, 7), true),
            (cmp_lease("k", Cmp::NotEqual, 0), false),
            (cmp_lease("k", Cmp::Greater, -1), true),
            (cmp_lease("k", Cmp::Greater, 0), false),
            (cmp_lease("k", Cmp::Less, 1), true),
            (cmp_lease("k", Cmp::Less, 0), false),
        ],
    )
    .await;
}

async fn compare_missing_key(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    // A missing key compares as version 0, create 0, mod 0, lease 0 — but
    // every value compare on it fails, whatever the operator.
    check_compares(
        &mut c,
        vec![
            (cmp_version("gone", Cmp::Equal, 0), true),
            (cmp_version("gone", Cmp::Greater, 0), false),
            (cmp_create("gone", Cmp::Equal, 0), true),
            (cmp_mod("gone", Cmp::Equal, 0), true),
            (cmp_mod("gone", Cmp::Less, 1), true),
            (cmp_lease("gone", Cmp::Equal, 0), true),
            (cmp_value("gone", Cmp::Equal, ""), false),
            (cmp_value("gone", Cmp::NotEqual, "x"), false),
            (cmp_value("gone", Cmp::Greater, ""), false),
            (cmp_value("gone", Cmp::Less, "z"), false),
        ],
    )
    .await;
    // The classic create-if-absent.
    let created = c
        .txn(txn_req(
            vec![cmp_create("lock", Cmp::Equal, 0)],
            vec![op_put("lock", "me")],
            vec![op_get("lock")],
        ))
        .await;
    assert!(created.succeeded);
    let again = c
        .txn(txn_req(
            vec![cmp_create("lock", Cmp::Equal, 0)],
            vec![op_put("lock", "other")],
            vec![op_get("lock")],
        ))
        .await;
    assert!(!again.succeeded);
    let held = as_range(&again.responses[0]);
    assert_eq!(held.kvs[0].value, b("me"));
}

async fn compare_over_a_range(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("r/a", "1").await;
    c.put("r/b", "1").await;
    c.put("r/b", "2").await;
    let ranged = |mut compare: Compare| {
        compare.range_end = b("r0");
        compare
    };
    check_compares(
        &mut c,
        vec![
            // Holds only if it holds for every key in the range.
            (ranged(cmp_version("r/", Cmp::Greater, 0)), true),
            (ranged(cmp_version("r/", Cmp::Equal, 1)), false),
            (ranged(cmp_version("r/", Cmp::Less, 3)), true),
            (ranged(cmp_value("r/", Cmp::NotEqual, "3")), true),
            (ranged(cmp_value("r/", Cmp::Equal, "1")), false),
        ],
    )
    .await;
}

async fn all_compares_must_hold(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("a", "1").await;
    c.put("b", "2").await;
    check_compares(
        &mut c,
        vec![
            (cmp_value("a", Cmp::Equal, "1"), true),
            (cmp_value("b", Cmp::Equal, "2"), true),
        ],
    )
    .await;
    let both = c
        .txn(txn_req(
            vec![
                cmp_value("a", Cmp::Equal, "1"),
                cmp_value("b", Cmp::Equal, "2"),
            ],
            vec![],
            vec![],
        ))
        .await;
    assert!(both.succeeded);
    let one_fails = c
        .txn(txn_req(
            vec![
                cmp_value("a", Cmp::Equal, "1"),
                cmp_value("b", Cmp::Equal, "x"),
            ],
            vec![],
            vec![],
        ))
        .await;
    assert!(!one_fails.succeeded);
}

async fn success_and_failure_branches(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("x", "1").await;
    let ok = c
        .txn(txn_req(
            vec![cmp_value("x", Cmp::Equal, "1")],
            vec![op_put("y", "from-success"), op_get("x")],
            vec![op_put("z", "from-failure")],
        ))
        .await;
    assert!(ok.succeeded);
    assert_eq!(ok.responses.len(), 2);
    assert_eq!(as_put(&ok.responses[0]).prev_kv, None);
    assert_eq!(
        as_range(&ok.responses[1]).kvs,
        vec![kv("x", "1", r0, r0, 1)]
    );
    assert_eq!(c.get_kv("z").await, None);
    let failed = c
        .txn(txn_req(
            vec![cmp_value("x", Cmp::Equal, "2")],
            vec![op_put("y", "again")],
            vec![op_put("z", "from-failure"), op_del(del_req("y"))],
        ))
        .await;
    assert!(!failed.succeeded);
    assert_eq!(failed.responses.len(), 2);
    assert_eq!(as_delete(&failed.responses[1]).deleted, 1);
    assert_eq!(keys(&c.all().await), ["x", "z"]);
}

async fn txn_is_one_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("old", "1").await;
    let r = c
        .txn(txn_req(
            vec![],
            vec![
                op_put("t/1", "a"),
                op_put("t/2", "b"),
                op_del(del_req("old")),
                op_put("t/3", "c"),
            ],
            vec![],
        ))
        .await;
    assert!(r.succeeded, "no compares: success");
    let r1 = rev(&r.header);
    assert_eq!(r1, r0 + 1, "all ops of a txn share one revision");
    let got = c.range(prefix_req("t/")).await;
    assert_eq!(
        got.kvs,
        vec![
            kv("t/1", "a", r1, r1, 1),
            kv("t/2", "b", r1, r1, 1),
            kv("t/3", "c", r1, r1, 1)
        ]
    );
    assert_eq!(c.get_kv("old").await, None);
    // A txn whose only write deletes nothing writes no revision.
    let r = c
        .txn(txn_req(
            vec![],
            vec![op_del(del_req("nothing-here"))],
            vec![],
        ))
        .await;
    assert_eq!(rev(&r.header), r1);
    assert_eq!(c.revision().await, r1);
}

async fn read_only_txn_keeps_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("a", "1").await;
    let r = c
        .txn(txn_req(
            vec![cmp_version("a", Cmp::Equal, 1)],
            vec![op_get("a"), op_range(all_req())],
            vec![],
        ))
        .await;
    assert!(r.succeeded);
    assert_eq!(rev(&r.header), r0);
    assert_eq!(c.revision().await, r0);
}

async fn empty_txn_succeeds(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("a", "1").await;
    let r = c.txn(TxnRequest::default()).await;
    assert!(r.succeeded);
    assert!(r.responses.is_empty());
    assert_eq!(rev(&r.header), r0);
}

async fn range_sees_own_earlier_put(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("gone", "soon").await;
    let r = c
        .txn(txn_req(
            vec![],
            vec![
                op_get("n"),
                op_put("n", "1"),
                op_get("n"),
                op_del(del_req("gone")),
                op_get("gone"),
                op_range(all_req()),
            ],
            vec![],
        ))
        .await;
    let r1 = rev(&r.header);
    assert_eq!(r1, r0 + 1);
    assert!(as_range(&r.responses[0]).kvs.is_empty(), "before the put");
    assert_eq!(as_range(&r.responses[2]).kvs, vec![kv("n", "1", r1, r1, 1)]);
    assert!(as_range(&r.responses[4]).kvs.is_empty(), "after the delete");
    assert_eq!(keys(&as_range(&r.responses[5]).kvs), ["n"]);
}

async fn nested_txns(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("a", "1").await;
    let inner = |v: &str| {
        txn_req(
            vec![cmp_value("a", Cmp::Equal, v)],
            vec![op_put("inner", "success"), op_get("a")],
            vec![op_put("inner", "failure")],
        )
    };
    let r = c
        .txn(txn_req(
            vec![cmp_version("a", Cmp::Equal, 1)],
            vec![op_txn(inner("1")), op_put("outer", "success")],
            vec![op_txn(inner("1"))],
        ))
        .await;
    assert!(r.succeeded);
    let r1 = rev(&r.header);
    assert_eq!(r1, r0 + 1);
    let nested = as_txn(&r.responses[0]);
    assert!(nested.succeeded);
    assert_eq!(nested.responses.len(), 2);
    assert_eq!(
        as_range(&nested.responses[1]).kvs,
        vec![kv("a", "1", r0, r0, 1)]
    );
    assert_eq!(
        c.get_kv("inner").await,
        Some(kv("inner", "success", r1, r1, 1))
    );
    assert_eq!(
        c.get_kv("outer").await,
        Some(kv("outer", "success", r1, r1, 1))
    );
    // The failure branch can nest too, and a nested failure branch runs.
    let r = c
        .txn(txn_req(
            vec![cmp_version("a", Cmp::Equal, 5)],
            vec![],
            vec![op_txn(inner("no"))],
        ))
        .await;
    assert!(!r.succeeded);
    assert!(!as_txn(&r.responses[0]).succeeded);
    let r2 = rev(&r.header);
    assert_eq!(
        c.get_kv("inner").await,
        Some(kv("inner", "failure", r1, r2, 2))
    );
    // Three levels.
    let deep = txn_req(
        vec![],
        vec![op_txn(txn_req(
            vec![],
            vec![op_txn(txn_req(vec![], vec![op_put("deep", "3")], vec![]))],
            vec![],
        ))],
        vec![],
    );
    let r = c.txn(deep).await;
    let r3 = rev(&r.header);
    let level2 = as_txn(&r.responses[0]);
    let level3 = as_txn(&level2.responses[0]);
    assert!(level3.succeeded);
    assert_eq!(c.get_kv("deep").await, Some(kv("deep", "3", r3, r3, 1)));
}

async fn nested_compare_sees_state_before_the_txn(backend: Backend) {
    // etcd evaluates every compare, nested ones included, on the state before
    // the txn, then applies the chosen ops.
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("a", "1").await;
    let r = c
        .txn(txn_req(
            vec![],
            vec![
                op_put("a", "2"),
                op_txn(txn_req(
                    vec![cmp_value("a", Cmp::Equal, "1")],
                    vec![op_put("seen", "old")],
                    vec![op_put("seen", "new")],
                )),
            ],
            vec![],
        ))
        .await;
    assert!(as_txn(&r.responses[1]).succeeded);
    assert_eq!(c.get_kv("seen").await.expect("seen").value, b("old"));
}

async fn prev_kv_inside_txn(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let r0 = c.put_rev("p", "1").await;
    let r1 = c.put_rev("q", "1").await;
    let r = c
        .txn(txn_req(
            vec![],
            vec![
                rollcall_proto::etcdserverpb::RequestOp {
                    request: Some(
                        rollcall_proto::etcdserverpb::request_op::Request::RequestPut(PutRequest {
                            key: b("p"),
                            value: b("2"),
                            prev_kv: true,
                            ..PutRequest::default()
                        }),
                    ),
                },
                op_del(DeleteRangeRequest {
                    key: b("q"),
                    prev_kv: true,
                    ..DeleteRangeRequest::default()
                }),
            ],
            vec![],
        ))
        .await;
    assert_eq!(
        as_put(&r.responses[0]).prev_kv,
        Some(kv("p", "1", r0, r0, 1))
    );
    assert_eq!(
        as_delete(&r.responses[1]).prev_kvs,
        vec![kv("q", "1", r1, r1, 1)]
    );
}
