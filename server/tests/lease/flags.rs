//! rollcall's own lease flags (no etcd counterpart, so rollcall only):
//! `--min-lease-ttl` raises shorter TTLs to it (and allows 1 s leases when
//! set to 1), `--lease-check-interval-ms` and `--lease-revoke-batch` change
//! how expiry is driven but not what it does.

use std::time::{Duration, Instant};

use crate::support::{Client, deletes, distinct, start_flagged};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_lease_ttl_flag_raises_short_ttls() {
    let server = start_flagged(&["--min-lease-ttl", "5"]).await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.grant(2, 0).await.ttl, 5);
    assert_eq!(c.grant(4, 0).await.ttl, 5);
    assert_eq!(c.grant(6, 0).await.ttl, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_leases_with_min_ttl_one() {
    let server = start_flagged(&["--min-lease-ttl", "1", "--lease-check-interval-ms", "50"]).await;
    let mut c = Client::connect(&server).await;
    let start_rev = c.revision().await;
    let mut watcher = c.watch_prefix("one/", start_rev + 1).await;
    let granted_at = Instant::now();
    let lease = c.grant(1, 0).await;
    assert_eq!(lease.ttl, 1);
    c.put("one/a", "v", lease.id).await;
    c.put("one/b", "v", lease.id).await;
    let responses = watcher.until_deletes(2, Duration::from_secs(10)).await;
    let elapsed = granted_at.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(5),
        "a 1 s lease expired after {elapsed:?}"
    );
    assert_eq!(
        distinct(deletes(&responses).iter().map(|(_, r)| *r)).len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_batch_of_one_still_expires_everything() {
    const N: usize = 30;
    let server = start_flagged(&[
        "--lease-revoke-batch",
        "1",
        "--lease-check-interval-ms",
        "20",
    ])
    .await;
    let mut c = Client::connect(&server).await;
    let start_rev = c.revision().await;
    let mut watcher = c.watch_prefix("b/", start_rev + 1).await;
    for i in 0..N {
        let lease = c.grant(2, 0).await.id;
        c.put(&format!("b/{i:02}"), "v", lease).await;
    }
    let responses = watcher.until_deletes(N, Duration::from_secs(15)).await;
    assert_eq!(
        distinct(deletes(&responses).iter().map(|(_, r)| *r)).len(),
        N
    );
    assert!(c.lease_ids().await.is_empty());
}
