//! Keys and leases: a put with a lease attaches the key, a put without one or
//! with another lease detaches it (ignore_lease keeps it), a delete detaches
//! it; LeaseRevoke deletes exactly the attached keys, all in ONE revision,
//! which is the revoke's header revision and what watchers see; unknown
//! leases are etcd's NotFound error for revoke and put (txn puts too).

use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use rollcall_tests::Backend;
use tonic::Code;

use crate::support::{
    Client, LEASE_NOT_FOUND, assert_status, b, deletes, distinct, prefix_end, put_req, rev,
    sorted_keys, start,
};

backend_tests!(
    revoke_deletes_attached_keys_in_one_revision,
    revoke_without_keys_keeps_the_revision,
    revoke_unknown_lease,
    put_with_unknown_lease,
    put_without_lease_detaches,
    put_with_another_lease_moves_the_key,
    ignore_lease_keeps_the_lease,
    delete_detaches,
    txn_put_attaches_and_txn_delete_detaches,
);

fn txn_put(key: &str, value: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, value, lease))),
    }
}

async fn revoke_deletes_attached_keys_in_one_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 1).await.id;
    let other = c.grant(60, 2).await.id;
    let leased = ["svc/a", "svc/b", "svc/c", "svc/d", "svc/e"];
    let first = c.put("svc/plain", "p", 0).await;
    for key in leased {
        c.put(key, "v", lease).await;
    }
    c.put("svc/other", "o", other).await;
    let before = c.revision().await;
    let mut watcher = c.watch_prefix("svc/", first + 1).await;

    let ttl = c.time_to_live(lease, true).await;
    assert_eq!(sorted_keys(&ttl.keys), leased);

    let revoked = c.revoke(lease).await;
    let at = rev(revoked.header.as_ref());
    assert_eq!(at, before + 1, "a revoke with keys is one new revision");
    assert_eq!(c.revision().await, at);
    assert_eq!(c.keys_at("svc/", 0).await, ["svc/other", "svc/plain"]);
    // One step: all five there just before, none at the revoke's revision.
    let mut all = leased.to_vec();
    all.extend(["svc/other", "svc/plain"]);
    all.sort_unstable();
    assert_eq!(c.keys_at("svc/", at - 1).await, all);

    let responses = watcher
        .until_deletes(leased.len(), crate::support::STREAM_WAIT)
        .await;
    let deleted = deletes(&responses);
    assert_eq!(
        deleted.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        leased,
        "one DELETE per attached key, in key order: {responses:?}"
    );
    assert_eq!(
        distinct(deleted.iter().map(|(_, r)| *r)),
        distinct([at]),
        "all deletes at the revoke's revision"
    );
    let with_deletes = responses
        .iter()
        .filter(|r| r.events.iter().any(crate::support::is_delete))
        .count();
    assert_eq!(
        with_deletes, 1,
        "one revision's events come in one watch response: {responses:?}"
    );

    let gone = c.time_to_live(lease, true).await;
    assert_eq!((gone.id, gone.ttl, gone.granted_ttl), (lease, -1, 0));
    assert!(gone.keys.is_empty());
    assert_eq!(c.lease_ids().await, vec![other]);
    assert_status(c.try_revoke(lease).await, Code::NotFound, LEASE_NOT_FOUND);
}

async fn revoke_without_keys_keeps_the_revision(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("x", "1", 0).await;
    let lease = c.grant(60, 0).await.id;
    let before = c.revision().await;
    let revoked = c.revoke(lease).await;
    assert_eq!(rev(revoked.header.as_ref()), before);
    assert_eq!(c.revision().await, before);

    // A lease whose only key was deleted has no keys left either.
    let lease = c.grant(60, 0).await.id;
    c.put("y", "1", lease).await;
    c.delete("y").await;
    let before = c.revision().await;
    let revoked = c.revoke(lease).await;
    assert_eq!(rev(revoked.header.as_ref()), before);
}

async fn revoke_unknown_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let before = c.revision().await;
    for id in [424_242, 0, -1, i64::MAX] {
        assert_status(c.try_revoke(id).await, Code::NotFound, LEASE_NOT_FOUND);
    }
    assert_eq!(c.revision().await, before);
}

async fn put_with_unknown_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("k", "old", 0).await;
    let before = c.revision().await;
    assert_status(
        c.try_put(put_req("k", "new", 999)).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_status(
        c.try_put(put_req("fresh", "v", 999)).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    // In a txn too, and nothing of the txn applies.
    let txn = TxnRequest {
        compare: vec![],
        success: vec![txn_put("t1", "v", 0), txn_put("t2", "v", 999)],
        failure: vec![],
    };
    assert_status(c.try_txn(txn).await, Code::NotFound, LEASE_NOT_FOUND);
    // A revoked lease is as unknown.
    let lease = c.grant(60, 0).await.id;
    c.revoke(lease).await;
    assert_status(
        c.try_put(put_req("k", "new", lease)).await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(c.revision().await, before, "refused puts write nothing");
    assert_eq!(c.get_kv("k").await.map(|kv| kv.value), Some(b("old")));
    assert_eq!(c.get_kv("fresh").await, None);
    assert_eq!(c.get_kv("t1").await, None);
}

async fn put_without_lease_detaches(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    c.put("k", "v1", lease).await;
    c.put("j", "v1", lease).await;
    assert_eq!(c.get_kv("k").await.map(|kv| kv.lease), Some(lease));
    c.put("k", "v2", 0).await;
    assert_eq!(c.get_kv("k").await.map(|kv| kv.lease), Some(0));
    let ttl = c.time_to_live(lease, true).await;
    assert_eq!(sorted_keys(&ttl.keys), ["j"]);
    let revoked = c.revoke(lease).await;
    let kept = c.get_kv("k").await.expect("a detached key survives revoke");
    assert_eq!(kept.value, b("v2"));
    assert!(kept.mod_revision < rev(revoked.header.as_ref()));
    assert_eq!(c.get_kv("j").await, None);
}

async fn put_with_another_lease_moves_the_key(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let l1 = c.grant(60, 11).await.id;
    let l2 = c.grant(60, 12).await.id;
    c.put("k", "v1", l1).await;
    c.put("k", "v2", l2).await;
    assert_eq!(c.get_kv("k").await.map(|kv| kv.lease), Some(l2));
    assert!(c.time_to_live(l1, true).await.keys.is_empty());
    assert_eq!(sorted_keys(&c.time_to_live(l2, true).await.keys), ["k"]);
    let before = c.revision().await;
    c.revoke(l1).await;
    assert_eq!(c.revision().await, before, "l1 has no key left");
    assert!(c.get_kv("k").await.is_some());
    let revoked = c.revoke(l2).await;
    assert_eq!(rev(revoked.header.as_ref()), before + 1);
    assert_eq!(c.get_kv("k").await, None);
}

async fn ignore_lease_keeps_the_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    c.put("k", "v1", lease).await;
    c.try_put(PutRequest {
        key: b("k"),
        value: b("v2"),
        ignore_lease: true,
        ..PutRequest::default()
    })
    .await
    .expect("put with ignore_lease");
    let kv = c.get_kv("k").await.expect("k");
    assert_eq!((kv.value, kv.lease), (b("v2"), lease));
    assert_eq!(sorted_keys(&c.time_to_live(lease, true).await.keys), ["k"]);
    c.revoke(lease).await;
    assert_eq!(c.get_kv("k").await, None);
}

async fn delete_detaches(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    for key in ["d/a", "d/b", "d/c", "e"] {
        c.put(key, "v", lease).await;
    }
    c.delete("e").await;
    assert_eq!(
        sorted_keys(&c.time_to_live(lease, true).await.keys),
        ["d/a", "d/b", "d/c"]
    );
    // A range delete detaches every key it deletes.
    c.try_delete(DeleteRangeRequest {
        key: b("d/a"),
        range_end: b("d/c"),
        ..DeleteRangeRequest::default()
    })
    .await
    .expect("delete d/a..d/c");
    assert_eq!(
        sorted_keys(&c.time_to_live(lease, true).await.keys),
        ["d/c"]
    );
    // Re-created without the lease, the keys stay after the revoke.
    c.put("e", "again", 0).await;
    c.put("d/a", "again", 0).await;
    let revoked = c.revoke(lease).await;
    assert_eq!(c.get_kv("d/c").await, None);
    assert_eq!(c.get_kv("e").await.map(|kv| kv.value), Some(b("again")));
    assert_eq!(c.get_kv("d/a").await.map(|kv| kv.value), Some(b("again")));
    assert_eq!(rev(revoked.header.as_ref()), c.revision().await);
}

async fn txn_put_attaches_and_txn_delete_detaches(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            txn_put("t/a", "v", lease),
            txn_put("t/b", "v", lease),
            txn_put("t/c", "v", 0),
        ],
        failure: vec![],
    };
    let put_rev = rev(c.try_txn(txn).await.expect("txn").header.as_ref());
    assert_eq!(
        sorted_keys(&c.time_to_live(lease, true).await.keys),
        ["t/a", "t/b"]
    );
    let txn = TxnRequest {
        compare: vec![],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b("t/a"),
                    range_end: prefix_end("t/a"),
                    ..DeleteRangeRequest::default()
                },
            )),
        }],
        failure: vec![],
    };
    c.try_txn(txn).await.expect("txn delete");
    assert_eq!(
        sorted_keys(&c.time_to_live(lease, true).await.keys),
        ["t/b"]
    );
    let revoked = c.revoke(lease).await;
    assert_eq!(rev(revoked.header.as_ref()), put_rev + 2);
    assert_eq!(c.keys_at("t/", 0).await, ["t/c"]);
}
