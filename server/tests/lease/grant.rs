//! LeaseGrant and LeaseLeases: server-chosen ids are positive and distinct,
//! client-chosen ids are kept, a duplicate id is refused, TTLs above etcd's
//! maximum are refused and TTLs below the minimum (2 s by default, for etcd
//! and rollcall alike) are raised to it. A grant writes no key, so it does
//! not bump the store revision.

use rollcall_tests::Backend;
use tonic::Code;

use crate::support::{Client, LEASE_EXISTS, MAX_TTL, TTL_TOO_LARGE, assert_status, rev, start};

backend_tests!(
    grant_server_chosen_id,
    grant_client_chosen_id,
    grant_negative_client_id,
    grant_duplicate_id,
    grant_ttl_too_large,
    grant_ttl_below_minimum_is_raised,
    leases_lists_exactly_the_granted,
);

async fn grant_server_chosen_id(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let before = c.revision().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let resp = c.grant(30, 0).await;
        assert!(resp.id > 0, "a server-chosen id is positive: {resp:?}");
        assert_eq!(resp.ttl, 30);
        assert_eq!(resp.error, "");
        assert_eq!(
            rev(resp.header.as_ref()),
            before,
            "a grant does not bump the revision"
        );
        ids.push(resp.id);
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "server-chosen ids repeat: {ids:?}"
    );
    assert_eq!(c.lease_ids().await, distinct);
    assert_eq!(c.revision().await, before);
    for id in ids {
        let ttl = c.time_to_live(id, false).await;
        assert_eq!((ttl.id, ttl.granted_ttl), (id, 30));
    }
}

async fn grant_client_chosen_id(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    for (id, ttl) in [(1, 10), (12_345, 60), (i64::MAX, 3600)] {
        let resp = c.grant(ttl, id).await;
        assert_eq!((resp.id, resp.ttl), (id, ttl), "{resp:?}");
        let got = c.time_to_live(id, false).await;
        assert_eq!((got.id, got.granted_ttl), (id, ttl), "{got:?}");
    }
    assert_eq!(c.lease_ids().await, vec![1, 12_345, i64::MAX]);
}

/// etcd only picks positive ids itself but takes a negative one a client
/// chooses.
async fn grant_negative_client_id(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let resp = c.grant(30, -7).await;
    assert_eq!((resp.id, resp.ttl), (-7, 30));
    let put_rev = c.put("neg/k", "v", -7).await;
    assert_eq!(c.get_kv("neg/k").await.map(|kv| kv.lease), Some(-7));
    let revoked = c.revoke(-7).await;
    assert_eq!(rev(revoked.header.as_ref()), put_rev + 1);
    assert_eq!(c.get_kv("neg/k").await, None);
}

async fn grant_duplicate_id(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.grant(10, 777).await;
    let before = c.revision().await;
    assert_status(
        c.try_grant(20, 777).await,
        Code::FailedPrecondition,
        LEASE_EXISTS,
    );
    // Same TTL: still a duplicate.
    assert_status(
        c.try_grant(10, 777).await,
        Code::FailedPrecondition,
        LEASE_EXISTS,
    );
    let ttl = c.time_to_live(777, false).await;
    assert_eq!(ttl.granted_ttl, 10, "the refused grant changed nothing");
    assert_eq!(c.lease_ids().await, vec![777]);
    assert_eq!(c.revision().await, before);
    // Once revoked, the id can be granted again.
    c.revoke(777).await;
    let again = c.grant(20, 777).await;
    assert_eq!((again.id, again.ttl), (777, 20));
}

async fn grant_ttl_too_large(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    assert_status(
        c.try_grant(MAX_TTL + 1, 0).await,
        Code::OutOfRange,
        TTL_TOO_LARGE,
    );
    assert_status(
        c.try_grant(i64::MAX, 55).await,
        Code::OutOfRange,
        TTL_TOO_LARGE,
    );
    assert_eq!(c.lease_ids().await, Vec::<i64>::new(), "nothing granted");
    // The maximum itself is allowed.
    let max = c.grant(MAX_TTL, 56).await;
    assert_eq!((max.id, max.ttl), (56, MAX_TTL));
    let ttl = c.time_to_live(56, false).await;
    assert_eq!(ttl.granted_ttl, MAX_TTL);
    assert!(
        ttl.ttl > MAX_TTL - 60 && ttl.ttl <= MAX_TTL,
        "remaining TTL of the longest lease: {ttl:?}"
    );
    let mut ka = c.keep_alive();
    let renewed = ka.once(56).await;
    assert_eq!((renewed.id, renewed.ttl), (56, MAX_TTL));
    // Too large and duplicate at once: the TTL is checked first.
    assert_status(
        c.try_grant(MAX_TTL + 1, 56).await,
        Code::OutOfRange,
        TTL_TOO_LARGE,
    );
}

/// With default settings both etcd (1.5 x election timeout, rounded up) and
/// rollcall (`--min-lease-ttl 2`) raise shorter TTLs to 2 s.
async fn grant_ttl_below_minimum_is_raised(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    for (asked, id) in [(1, 101), (0, 102), (-5, 103)] {
        let resp = c.grant(asked, id).await;
        assert_eq!(resp.ttl, 2, "TTL {asked} raised to the minimum: {resp:?}");
        let ttl = c.time_to_live(id, false).await;
        assert_eq!(ttl.granted_ttl, 2, "{ttl:?}");
        assert!((0..=2).contains(&ttl.ttl), "{ttl:?}");
        let mut ka = c.keep_alive();
        assert_eq!(ka.once(id).await.ttl, 2);
    }
    for asked in [2, 3] {
        assert_eq!(c.grant(asked, 0).await.ttl, asked, "not raised");
    }
}

async fn leases_lists_exactly_the_granted(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let empty = c.try_leases().await.expect("LeaseLeases");
    assert!(empty.leases.is_empty(), "{empty:?}");
    assert_eq!(rev(empty.header.as_ref()), c.revision().await);

    let mut granted = vec![5, 6, 1_000_000];
    for id in &granted {
        c.grant(60, *id).await;
    }
    granted.push(c.grant(60, 0).await.id);
    granted.push(c.grant(60, 0).await.id);
    granted.sort_unstable();
    assert_eq!(c.lease_ids().await, granted);

    c.revoke(6).await;
    granted.retain(|id| *id != 6);
    assert_eq!(c.lease_ids().await, granted);
    // A refused grant adds nothing.
    let _ = c.try_grant(60, 5).await;
    assert_eq!(c.lease_ids().await, granted);
}
