//! Endpoint failover with two `rollcall` processes: kill the first, and
//! unary calls, re-opened streams and the CLI carry on against the second.
//! (Two independent registries, not a cluster: what matters here is where
//! the calls go, not the data.)

use std::time::Duration;

use rollcall_client::{Client, ConnectOptions, LeaseLost, WatchOptions};
use serde_json::json;

use crate::support::{Background, WAIT, closed_endpoint, eventually, rc, run, server};

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn unary_calls_and_streams_fail_over_to_the_second_endpoint() {
    let mut a = server().await;
    let b = server().await;
    // B's history runs ahead of A's, so the watch resumed there (from the
    // revision after A's last) finds its next event.
    let on_b = Client::connect([b.endpoint()]).await.expect("connect to b");
    for i in 0..10 {
        on_b.put(format!("/filler/{i}"), "x")
            .await
            .expect("put on b");
    }

    let client = Client::connect_with([a.endpoint(), b.endpoint()], options())
        .await
        .expect("connect");
    assert_eq!(client.endpoint(), a.endpoint());
    client.put("/who", "a").await.expect("put on a");
    let lease = client.grant(60).await.expect("grant on a").id;
    let keeper = client.keep_alive(lease).await.expect("keep alive on a");
    let mut watcher = client
        .watch("/moved", WatchOptions::new())
        .await
        .expect("watch on a");

    a.kill9().expect("kill a");

    // A read: the dead connection is dropped and the call lands on B.
    let got = client.get("/who").await.expect("get fails over");
    assert!(got.kvs.is_empty(), "B never had /who: {got:?}");
    assert_eq!(client.endpoint(), b.endpoint());
    // A write, now that B is current.
    client.put("/who", "b").await.expect("put on b");
    let seen = on_b.get("/who").await.expect("get on b");
    assert_eq!(seen.kvs[0].value, "b".as_bytes());

    // The keep-alive stream re-opened on B, which does not know the lease:
    // lost as "not found" (an answer from B), long before its 60 s TTL.
    let lost = tokio::time::timeout(WAIT, keeper.lost())
        .await
        .expect("keeper answered");
    assert_eq!(lost, LeaseLost::NotFound);

    // The watch stream re-opened on B too.
    client.put("/moved", "here").await.expect("put on b");
    let batch = tokio::time::timeout(WAIT, watcher.next())
        .await
        .expect("an event within the bound")
        .expect("watcher open")
        .expect("no watch error");
    assert_eq!(batch.events[0].value(), "here".as_bytes());
}

#[tokio::test]
async fn a_dead_first_endpoint_is_skipped() {
    let b = server().await;
    let dead = closed_endpoint();
    let client = Client::connect_with([dead.clone(), b.endpoint()], options())
        .await
        .expect("connect skips the dead endpoint");
    assert_eq!(client.endpoint(), b.endpoint());

    let both = format!("{dead},{}", b.endpoint());
    assert_eq!(
        run(&["put", "/k", "v", "--endpoints", &both]).await.ok(),
        "OK\n"
    );
    let got = run(&["get", "/k", "--endpoints", &both, "-o", "json"])
        .await
        .json();
    assert_eq!(got["kvs"][0]["value"], json!("v"));
}

#[tokio::test]
async fn the_cli_fails_over_after_the_first_registry_dies() {
    let mut a = server().await;
    let b = server().await;
    let both = format!("{},{}", a.endpoint(), b.endpoint());
    assert_eq!(
        run(&["put", "/k", "on-a", "--endpoints", &both]).await.ok(),
        "OK\n"
    );
    let mut reg = Background::spawn(&[
        "register",
        "web",
        "h:1",
        "--ttl",
        "60",
        "--endpoints",
        &both,
    ]);
    assert!(reg.line().await.starts_with("registered /services/web/h:1"));
    assert_eq!(
        rc(&a.endpoint(), &["services", "-o", "json"]).await.json()["services"][0]["instances"],
        json!(1)
    );

    a.kill9().expect("kill a");
    assert_eq!(
        run(&["put", "/k", "on-b", "--endpoints", &both]).await.ok(),
        "OK\n"
    );
    let got = rc(&b.endpoint(), &["get", "/k", "-o", "json"]).await.json();
    assert_eq!(got["kvs"][0]["value"], json!("on-b"));

    // The registration notices, registers again on B, and says so.
    reg.line_where(|l| l.starts_with("registered /services/web/h:1 again"))
        .await;
    let b_ep = b.endpoint();
    eventually("the instance registered on b", || {
        let ep = b_ep.clone();
        async move {
            let doc = rc(&ep, &["discover", "web", "-o", "json"]).await.json();
            (doc["instances"].as_array().map(Vec::len) == Some(1)).then_some(())
        }
    })
    .await;
    reg.interrupt();
    assert!(reg.exit().await.0.success());
    let doc = rc(&b.endpoint(), &["discover", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(doc["instances"], json!([]), "deregistered from b");
}
