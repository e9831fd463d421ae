//! `rollcall-client` against a real cluster: given every member, it fails
//! over when the member it talks to is killed (-9). Reads and writes carry
//! on through the others, and a watcher resumes on another member from the
//! revision after its last event, so it sees every write exactly once, in
//! order.

use std::collections::HashSet;
use std::time::Duration;

use rollcall_client::{Client, WatchOptions};
use rollcall_tests::Backend;

use crate::support::{RECOVER, three};

backend_tests!(the_client_fails_over_and_its_watch_resumes_when_its_member_dies);

/// Writes before and after the kill.
const WRITES: usize = 20;

async fn the_client_fails_over_and_its_watch_resumes_when_its_member_dies(backend: Backend) {
    let mut cluster = three(backend).await;
    let endpoints = cluster.endpoints();
    let client = Client::connect(endpoints.clone()).await.unwrap();
    let watching = Client::connect(endpoints.clone()).await.unwrap();
    let session = watching.watch_session();
    let mut watcher = session
        .watch("fo/", WatchOptions::new().prefix())
        .await
        .unwrap();
    for i in 0..WRITES {
        client.put(format!("fo/{i:02}"), "before").await.unwrap();
    }
    // Kill the member the watch stream is on (the first endpoint, which both
    // clients start with).
    let on = endpoints
        .iter()
        .position(|e| *e == watching.endpoint())
        .expect("the watch client is on one of the members");
    cluster.member_mut(on).kill9().unwrap();

    // Writes through the client fail over to a survivor: a refused
    // connection never reached a server, so even a put is sent again.
    let mut retried = HashSet::new();
    for i in WRITES..2 * WRITES {
        let key = format!("fo/{i:02}");
        let deadline = tokio::time::Instant::now() + RECOVER;
        loop {
            match client.put(key.clone(), "after").await {
                Ok(_) => break,
                // During the election a survivor may answer with a timeout;
                // the caller retries, as an application would, and such a
                // put may then have been applied twice.
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "put {key} after the kill: {e}"
                    );
                    retried.insert(key.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_ne!(client.endpoint(), endpoints[on], "still on the dead member");
    let read = client.get("fo/39").await.unwrap();
    assert_eq!(read.kvs.len(), 1);

    // The watcher got every put, in revision order, each once (twice at
    // most for a put the caller had to send again).
    let expected: Vec<String> = (0..2 * WRITES).map(|i| format!("fo/{i:02}")).collect();
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut distinct = HashSet::new();
    while distinct.len() < expected.len() {
        let batch = tokio::time::timeout(RECOVER, watcher.next())
            .await
            .expect("watch events within the recovery bound")
            .expect("the watcher goes on")
            .expect("no watch error");
        for event in &batch.events {
            let key = String::from_utf8_lossy(event.key()).into_owned();
            distinct.insert(key.clone());
            seen.push((key, event.revision()));
        }
    }
    let mut first_seen: Vec<String> = Vec::new();
    for (key, _) in &seen {
        if !first_seen.contains(key) {
            first_seen.push(key.clone());
        }
    }
    assert_eq!(
        first_seen, expected,
        "watch events after failover: {seen:?}"
    );
    for key in &expected {
        let times = seen.iter().filter(|(k, _)| k == key).count();
        let allowed = if retried.contains(key) { 2 } else { 1 };
        assert!(times <= allowed, "{key} delivered {times} times: {seen:?}");
    }
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "revisions out of order: {seen:?}"
    );
    assert!(
        session.reconnects() >= 1,
        "the watch stream never moved off the killed member"
    );
    cluster.member_mut(on).restart().await.unwrap();
}
