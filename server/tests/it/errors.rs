//! Errors: exactly etcd 3.4's gRPC status code and message for each invalid
//! request (clients match on them), and after each error nothing changed.

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{Compare, PutRequest, RangeRequest};
use rollcall_tests::{Backend, ServerConfig};
use tonic::Code;

use crate::support::{
    Client, Cmp, all_req, assert_status, b, cmp_value, del_prefix_req, del_req, get_req, op_del,
    op_get, op_put, op_txn, put_req, txn_req,
};

backend_tests!(
    empty_key,
    ignore_value_errors,
    ignore_lease_errors,
    lease_not_found,
    too_many_txn_ops_default,
    too_many_txn_ops_configured,
    duplicate_keys_in_txn,
    request_too_large,
    request_too_large_default_limit,
);

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const VALUE_PROVIDED: &str = "etcdserver: value is provided";
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const TOO_LARGE: &str = "etcdserver: request is too large";

/// The whole store and its revision, to show an error changed nothing.
async fn snapshot(c: &mut Client) -> (i64, Vec<rollcall_proto::mvccpb::KeyValue>) {
    (c.revision().await, c.all().await)
}

async fn seeded(
    backend: &Backend,
    config: ServerConfig,
) -> (rollcall_tests::ServerProcess, Client) {
    let server = backend
        .start_with(config)
        .await
        .unwrap_or_else(|e| panic!("start {}: {e}", backend.name()));
    let mut c = Client::connect(&server).await;
    c.put("a", "1").await;
    c.put("b", "2").await;
    (server, c)
}

async fn empty_key(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    let before = snapshot(&mut c).await;
    assert_status(
        c.try_put(put_req("", "v")).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_range(get_req("")).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_range(RangeRequest {
            range_end: b("z"),
            ..get_req("")
        })
        .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_delete(del_req("")).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_txn(txn_req(
            vec![],
            vec![op_put("ok", "1"), op_put("", "v")],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_txn(txn_req(vec![], vec![], vec![op_get("")])).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_txn(txn_req(
            vec![],
            vec![op_txn(txn_req(vec![], vec![op_del(del_req(""))], vec![]))],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.try_txn(txn_req(
            vec![Compare {
                key: Bytes::new(),
                ..cmp_value("x", Cmp::Equal, "1")
            }],
            vec![op_put("ok", "1")],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_eq!(snapshot(&mut c).await, before);
}

async fn ignore_value_errors(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    let before = snapshot(&mut c).await;
    assert_status(
        c.try_put(PutRequest {
            ignore_value: true,
            ..put_req("a", "new value")
        })
        .await,
        Code::InvalidArgument,
        VALUE_PROVIDED,
    );
    assert_status(
        c.try_put(PutRequest {
            ignore_value: true,
            ..put_req("missing", "")
        })
        .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    // The same inside a txn, on the branch that runs.
    let ignore_missing = || {
        op_put_req(PutRequest {
            ignore_value: true,
            ..put_req("missing", "")
        })
    };
    assert_status(
        c.try_txn(txn_req(
            vec![],
            vec![op_put("c", "3"), ignore_missing()],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    assert_eq!(snapshot(&mut c).await, before);
    // On the branch that does not run, it is not looked at.
    let r = c
        .try_txn(txn_req(
            vec![],
            vec![op_put("c", "3")],
            vec![ignore_missing()],
        ))
        .await
        .expect("txn whose failure branch would fail");
    assert!(r.succeeded);
}

fn op_put_req(req: PutRequest) -> rollcall_proto::etcdserverpb::RequestOp {
    rollcall_proto::etcdserverpb::RequestOp {
        request: Some(rollcall_proto::etcdserverpb::request_op::Request::RequestPut(req)),
    }
}

async fn ignore_lease_errors(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    let before = snapshot(&mut c).await;
    assert_status(
        c.try_put(PutRequest {
            ignore_lease: true,
            lease: 12345,
            ..put_req("a", "x")
        })
        .await,
        Code::InvalidArgument,
        LEASE_PROVIDED,
    );
    assert_status(
        c.try_put(PutRequest {
            ignore_lease: true,
            ..put_req("missing", "x")
        })
        .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    assert_eq!(snapshot(&mut c).await, before);
}

async fn lease_not_found(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    let before = snapshot(&mut c).await;
    assert_status(
        c.try_put(PutRequest {
            lease: 0x1234_5678,
            ..put_req("a", "x")
        })
        .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_status(
        c.try_put(PutRequest {
            lease: 99,
            ..put_req("new", "x")
        })
        .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_status(
        c.try_txn(txn_req(
            vec![],
            vec![
                op_put("c", "3"),
                op_put_req(PutRequest {
                    lease: 99,
                    ..put_req("d", "x")
                }),
            ],
            vec![],
        ))
        .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(snapshot(&mut c).await, before);
}

fn puts(n: usize) -> Vec<rollcall_proto::etcdserverpb::RequestOp> {
    (0..n).map(|i| op_put(&format!("op/{i:04}"), "v")).collect()
}

fn compares(n: usize) -> Vec<Compare> {
    (0..n)
        .map(|i| cmp_value(&format!("op/{i:04}"), Cmp::NotEqual, "never"))
        .collect()
}

async fn check_op_limit(c: &mut Client, max: usize) {
    let before = snapshot(c).await;
    for req in [
        txn_req(vec![], puts(max + 1), vec![]),
        txn_req(vec![], vec![], puts(max + 1)),
        txn_req(compares(max + 1), vec![], vec![]),
    ] {
        assert_status(c.try_txn(req).await, Code::InvalidArgument, TOO_MANY_OPS);
    }
    assert_eq!(snapshot(c).await, before);
    // Exactly the limit in every part is fine.
    let r = c
        .try_txn(txn_req(vec![], puts(max), puts(max)))
        .await
        .expect("txn at the op limit");
    assert!(r.succeeded);
    assert_eq!(r.responses.len(), max);
    let r = c
        .try_txn(txn_req(compares(max), vec![], vec![]))
        .await
        .expect("compares at the op limit");
    assert!(r.succeeded, "every op/NNNN now exists with value v");
}

async fn too_many_txn_ops_default(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    check_op_limit(&mut c, 128).await;
}

async fn too_many_txn_ops_configured(backend: Backend) {
    let config = ServerConfig {
        max_txn_ops: Some(4),
        ..ServerConfig::default()
    };
    let (_server, mut c) = seeded(&backend, config).await;
    check_op_limit(&mut c, 4).await;
    // Nested txns count separately, each against the limit.
    let nested = txn_req(
        vec![],
        vec![op_txn(txn_req(vec![], puts(5), vec![]))],
        vec![],
    );
    assert_status(c.try_txn(nested).await, Code::InvalidArgument, TOO_MANY_OPS);
}

async fn duplicate_keys_in_txn(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    let before = snapshot(&mut c).await;
    let dup = |success, failure| txn_req(vec![], success, failure);
    for (what, req) in [
        (
            "two puts",
            dup(vec![op_put("x", "1"), op_put("x", "2")], vec![]),
        ),
        (
            "two puts in the failure branch",
            dup(vec![], vec![op_put("x", "1"), op_put("x", "2")]),
        ),
        (
            "put then delete",
            dup(vec![op_put("x", "1"), op_del(del_req("x"))], vec![]),
        ),
        (
            "delete then put",
            dup(vec![op_del(del_req("x")), op_put("x", "1")], vec![]),
        ),
        (
            "put inside a deleted range",
            dup(
                vec![op_del(del_prefix_req("p/")), op_put("p/1", "1")],
                vec![],
            ),
        ),
        (
            "put in a nested txn and outside",
            dup(
                vec![
                    op_put("x", "1"),
                    op_txn(txn_req(vec![], vec![op_put("x", "2")], vec![])),
                ],
                vec![],
            ),
        ),
    ] {
        assert_status(c.try_txn(req).await, Code::InvalidArgument, DUPLICATE_KEY);
        assert_eq!(snapshot(&mut c).await, before, "{what}");
    }
    // Not duplicates: the same key in success and failure, two deletes of the
    // same key, a read of a written key, a put in each of the nested branches.
    for (what, req) in [
        (
            "success and failure",
            dup(vec![op_put("x", "1")], vec![op_put("x", "2")]),
        ),
        (
            "two deletes",
            dup(
                vec![op_del(del_req("a")), op_del(del_prefix_req("a"))],
                vec![],
            ),
        ),
        (
            "put and get",
            dup(vec![op_put("x", "1"), op_get("x")], vec![]),
        ),
        (
            "nested success and failure",
            dup(
                vec![op_txn(txn_req(
                    vec![],
                    vec![op_put("y", "1")],
                    vec![op_put("y", "2")],
                ))],
                vec![],
            ),
        ),
    ] {
        c.try_txn(req)
            .await
            .unwrap_or_else(|e| panic!("{what} is not a duplicate: {e:?}"));
    }
}

async fn check_too_large(c: &mut Client, limit: usize) {
    let before = snapshot(c).await;
    // Over --max-request-bytes but within the gRPC message limit
    // (max-request-bytes + 512 KiB): the server's own check.
    let over = limit + 64 * 1024;
    assert_status(
        c.try_put(put_req("big", &"x".repeat(over))).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    assert_status(
        c.try_txn(txn_req(
            vec![],
            vec![
                op_put("big1", &"x".repeat(over / 2)),
                op_put("big2", &"y".repeat(over / 2)),
            ],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    // Over the gRPC message limit: rejected by the transport.
    let huge = limit + 512 * 1024 + 64 * 1024;
    let err = c
        .try_put(put_req("huge", &"x".repeat(huge)))
        .await
        .expect_err("a put over the gRPC message limit fails");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(snapshot(c).await, before);
    // Just under the limit is accepted.
    c.try_put(put_req("fits", &"x".repeat(limit - 1024)))
        .await
        .expect("a put under --max-request-bytes");
}

async fn request_too_large(backend: Backend) {
    let limit = 64 * 1024;
    let config = ServerConfig {
        max_request_bytes: Some(limit as u64),
        ..ServerConfig::default()
    };
    let (_server, mut c) = seeded(&backend, config).await;
    check_too_large(&mut c, limit).await;
}

async fn request_too_large_default_limit(backend: Backend) {
    let (_server, mut c) = seeded(&backend, ServerConfig::default()).await;
    check_too_large(&mut c, 1536 * 1024).await;
    let r = c.range(all_req()).await;
    assert_eq!(r.count, 3, "a, b and fits");
}
