//! LeaseKeepAlive (one bidirectional stream renewing many leases, answers in
//! request order carrying the id and the granted TTL; an unknown lease
//! answers TTL 0 and the stream goes on) and LeaseTimeToLive (remaining TTL
//! not above the granted one, the granted TTL, the attached keys when asked,
//! TTL -1 for an unknown lease rather than an error).

use std::time::Duration;

use rollcall_tests::Backend;

use crate::support::{Client, rev, sorted_keys, start};

backend_tests!(
    keepalive_many_leases_on_one_stream,
    keepalive_unknown_lease_answers_ttl_zero,
    keepalive_on_several_streams,
    time_to_live_reports_ttls_and_keys,
    time_to_live_unknown_lease,
);

const LEASES: i64 = 100;

async fn keepalive_many_leases_on_one_stream(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    // Distinct TTLs so an answer carrying another lease's TTL shows.
    let mut leases = Vec::new();
    for i in 0..LEASES {
        let ttl = 30 + i;
        let id = c.grant(ttl, 0).await.id;
        leases.push((id, ttl));
    }
    let mut ka = c.keep_alive();
    for round in 0..3 {
        for (id, _) in &leases {
            ka.send(*id).await;
        }
        for (id, ttl) in &leases {
            let resp = ka.recv().await;
            assert_eq!(
                (resp.id, resp.ttl),
                (*id, *ttl),
                "round {round}: answers come in request order with the granted TTL"
            );
            assert!(resp.header.is_some_and(|h| h.revision > 0), "{resp:?}");
        }
    }
    // Renewed: every lease is back near its full TTL.
    for (id, ttl) in leases.iter().step_by(10) {
        let got = c.time_to_live(*id, false).await;
        assert_eq!(got.granted_ttl, *ttl);
        assert!(got.ttl >= ttl - 3 && got.ttl <= *ttl, "{got:?}");
    }
}

async fn keepalive_unknown_lease_answers_ttl_zero(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let mut ka = c.keep_alive();
    let unknown = ka.once(987_654).await;
    assert_eq!((unknown.id, unknown.ttl), (987_654, 0), "{unknown:?}");
    assert_eq!(rev(unknown.header.as_ref()), c.revision().await);

    // The stream goes on after an unknown lease.
    let lease = c.grant(40, 0).await.id;
    let ok = ka.once(lease).await;
    assert_eq!((ok.id, ok.ttl), (lease, 40));

    // A revoked lease is unknown.
    c.revoke(lease).await;
    let revoked = ka.once(lease).await;
    assert_eq!((revoked.id, revoked.ttl), (lease, 0));
    // And a lease with id 0.
    let zero = ka.once(0).await;
    assert_eq!((zero.id, zero.ttl), (0, 0));
}

async fn keepalive_on_several_streams(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let a = c.grant(20, 0).await.id;
    let b = c.grant(25, 0).await.id;
    let mut s1 = c.keep_alive();
    let mut s2 = c.keep_alive();
    // Interleaved on two streams, each answers its own requests.
    s1.send(a).await;
    s2.send(b).await;
    s1.send(b).await;
    s2.send(a).await;
    let r1: Vec<(i64, i64)> = vec![s1.recv().await, s1.recv().await]
        .into_iter()
        .map(|r| (r.id, r.ttl))
        .collect();
    let r2: Vec<(i64, i64)> = vec![s2.recv().await, s2.recv().await]
        .into_iter()
        .map(|r| (r.id, r.ttl))
        .collect();
    assert_eq!(r1, [(a, 20), (b, 25)]);
    assert_eq!(r2, [(b, 25), (a, 20)]);
    // Closing one stream does not disturb the other.
    drop(s1);
    assert_eq!(s2.once(a).await.ttl, 20);
}

async fn time_to_live_reports_ttls_and_keys(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    let lease = c.grant(60, 0).await.id;
    for key in ["svc/c", "svc/a", "svc/b"] {
        c.put(key, "v", lease).await;
    }
    let with_keys = c.time_to_live(lease, true).await;
    assert_eq!(with_keys.id, lease);
    assert_eq!(with_keys.granted_ttl, 60);
    assert!(
        (57..=60).contains(&with_keys.ttl),
        "remaining TTL just after the grant: {with_keys:?}"
    );
    assert_eq!(sorted_keys(&with_keys.keys), ["svc/a", "svc/b", "svc/c"]);
    assert_eq!(rev(with_keys.header.as_ref()), c.revision().await);

    let without = c.time_to_live(lease, false).await;
    assert!(without.keys.is_empty(), "keys only when asked: {without:?}");
    assert_eq!(without.granted_ttl, 60);

    // Time passes: the remaining TTL goes down, in whole seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = c.time_to_live(lease, false).await;
    assert!(
        later.ttl <= 58 && later.ttl >= 50,
        "remaining TTL 2.1 s after the grant: {later:?}"
    );
    // A renewal brings it back to the full TTL.
    let mut ka = c.keep_alive();
    assert_eq!(ka.once(lease).await.ttl, 60);
    let renewed = c.time_to_live(lease, false).await;
    assert!((58..=60).contains(&renewed.ttl), "{renewed:?}");
}

async fn time_to_live_unknown_lease(backend: Backend) {
    let server = start(&backend).await;
    let mut c = Client::connect(&server).await;
    c.put("x", "1", 0).await;
    for id in [31_337, 0] {
        let resp = c
            .try_time_to_live(id, true)
            .await
            .expect("an unknown lease is no error for TimeToLive");
        assert_eq!(
            (resp.id, resp.ttl, resp.granted_ttl),
            (id, -1, 0),
            "{resp:?}"
        );
        assert!(resp.keys.is_empty());
        assert_eq!(rev(resp.header.as_ref()), c.revision().await);
    }
    let lease = c.grant(60, 0).await.id;
    c.revoke(lease).await;
    let revoked = c.time_to_live(lease, false).await;
    assert_eq!((revoked.ttl, revoked.granted_ttl), (-1, 0));
}
