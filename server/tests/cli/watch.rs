//! `watch` prints events as they arrive, in both formats, until SIGINT.

use serde_json::{Value, json};

use crate::support::{Background, rc, server};

#[tokio::test]
async fn watch_prints_events_as_they_arrive() {
    let s = server().await;
    let ep = s.endpoint();
    // From the next revision on, so a put made while the process starts is
    // not missed.
    let now = rc(&ep, &["get", "/", "-o", "json"]).await.json();
    let next = (now["revision"].as_i64().expect("revision") + 1).to_string();
    let mut watch = Background::spawn(&[
        "watch",
        "/w/",
        "--prefix",
        "--prev-kv",
        "--rev",
        &next,
        "--endpoints",
        &ep,
    ]);
    let put = rc(&ep, &["put", "/w/a", "1", "-o", "json"]).await.json();
    let line = watch.line().await;
    assert_eq!(line, format!("PUT /w/a 1 (revision {})", put["revision"]));
    rc(&ep, &["put", "/w/a", "2"]).await.ok();
    let line = watch.line_where(|l| l.starts_with("PUT /w/a 2")).await;
    assert!(line.ends_with("(was 1)"), "{line}");
    rc(&ep, &["del", "/w/a"]).await.ok();
    let line = watch.line().await;
    assert!(line.starts_with("DELETE /w/a (revision "), "{line}");
    // Keys outside the prefix are not printed.
    rc(&ep, &["put", "/x", "no"]).await.ok();
    rc(&ep, &["put", "/w/b", "yes"]).await.ok();
    assert!(watch.line().await.starts_with("PUT /w/b yes"));

    watch.interrupt();
    let (status, rest) = watch.exit().await;
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn watch_as_json_from_a_revision() {
    let s = server().await;
    let ep = s.endpoint();
    let put = rc(&ep, &["put", "/h/a", "old", "-o", "json"]).await.json();
    let rev = put["revision"].as_i64().expect("revision");
    rc(&ep, &["del", "/h/a"]).await.ok();
    // History from `rev`: the put and the delete, one JSON object per line.
    let mut watch = Background::spawn(&[
        "watch",
        "/h/a",
        "--rev",
        &rev.to_string(),
        "-o",
        "json",
        "--endpoints",
        &ep,
    ]);
    let put: Value = serde_json::from_str(&watch.line().await).expect("JSON line");
    assert_eq!(put["type"], json!("PUT"));
    assert_eq!(put["key"], json!("/h/a"));
    assert_eq!(put["value"], json!("old"));
    assert_eq!(put["revision"], json!(rev));
    let del: Value = serde_json::from_str(&watch.line().await).expect("JSON line");
    assert_eq!(del["type"], json!("DELETE"));
    assert_eq!(del["revision"], json!(rev + 1));
    watch.interrupt();
    assert!(watch.exit().await.0.success());
}

#[tokio::test]
async fn a_compacted_start_revision_ends_the_watch_with_an_error() {
    let s = server().await;
    let ep = s.endpoint();
    for v in ["1", "2", "3"] {
        rc(&ep, &["put", "/c", v]).await.ok();
    }
    let client = rollcall_client::Client::connect([ep.as_str()])
        .await
        .expect("connect");
    client.compact(3, true).await.expect("compact");
    let ran = crate::support::rc(&ep, &["watch", "/c", "--rev", "1"]).await;
    let err = ran.fails_with(1);
    assert!(err.contains("compacted"), "{err}");
}
