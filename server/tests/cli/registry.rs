//! `register` in the background, seen by `services` and `discover`, gone
//! after SIGINT; health checks; `discover --watch` following changes.

use serde_json::{Value, json};

use crate::support::{Background, closed_endpoint, eventually, rc, rows, server};

/// `discover <service> -o json` → the instances array.
async fn instances(ep: &str, service: &str) -> Vec<Value> {
    let doc = rc(ep, &["discover", service, "-o", "json"]).await.json();
    assert_eq!(doc["service"], json!(service));
    assert_eq!(doc["stale"], json!(false));
    doc["instances"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn register_until_interrupted_then_gone() {
    let s = server().await;
    let ep = s.endpoint();
    let mut reg = Background::spawn(&[
        "register",
        "web",
        "10.0.0.7:8080",
        "--id",
        "web-1",
        "--zone",
        "eu-1",
        "--weight",
        "3",
        "--tag",
        "v2",
        "--meta",
        "version=2.3",
        "--ttl",
        "5",
        "--endpoints",
        &ep,
    ]);
    let first = reg.line().await;
    assert!(
        first.starts_with("registered /services/web/web-1 at 10.0.0.7:8080 (lease "),
        "{first}"
    );

    // services: one instance, passing.
    let table = rows(rc(&ep, &["services"]).await.ok());
    assert_eq!(
        table,
        [["SERVICE", "INSTANCES", "PASSING"], ["web", "1", "1"]]
    );
    let doc = rc(&ep, &["services", "-o", "json"]).await.json();
    assert_eq!(
        doc,
        json!({"services": [{"service": "web", "instances": 1, "passing": 1}]})
    );

    // discover: the instance with its fields.
    let table = rows(rc(&ep, &["discover", "web"]).await.ok());
    assert_eq!(
        table,
        [
            ["ID", "ADDR", "ZONE", "WEIGHT", "HEALTH"],
            ["web-1", "10.0.0.7:8080", "eu-1", "3", "passing"]
        ]
    );
    let found = instances(&ep, "web").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], json!("web-1"));
    assert_eq!(found[0]["addr"], json!("10.0.0.7:8080"));
    assert_eq!(found[0]["tags"], json!(["v2"]));
    assert_eq!(found[0]["meta"], json!({"version": "2.3"}));
    assert_eq!(found[0]["health"], json!("passing"));

    // SIGINT: deregistered at once (the lease is revoked, no TTL wait), exit 0.
    reg.interrupt();
    let (status, rest) = reg.exit().await;
    assert!(status.success(), "{status}");
    assert_eq!(rest, ["deregistered /services/web/web-1"]);
    assert!(instances(&ep, "web").await.is_empty());
    let table = rows(rc(&ep, &["services"]).await.ok());
    assert_eq!(table.len(), 1, "only the header: {table:?}");
}

#[tokio::test]
async fn register_as_json_with_a_failing_check() {
    let s = server().await;
    let ep = s.endpoint();
    // Nothing listens there: the TCP check fails and flips it to critical.
    let check = format!("tcp://{}", closed_endpoint());
    let mut reg = Background::spawn(&[
        "register",
        "db",
        "10.0.0.9:5432",
        "--check",
        &check,
        "--check-interval",
        "200ms",
        "--endpoints",
        &ep,
        "-o",
        "json",
    ]);
    let first: Value = serde_json::from_str(&reg.line().await).expect("JSON line");
    assert_eq!(first["event"], json!("registered"));
    assert_eq!(first["key"], json!("/services/db/10.0.0.9:5432"));
    assert!(
        first["lease"].as_str().is_some_and(|l| !l.is_empty()),
        "{first}"
    );
    assert_eq!(first["instance"]["service"], json!("db"));

    let flip = reg.line_where(|l| l.contains("\"event\":\"health\"")).await;
    let flip: Value = serde_json::from_str(&flip).expect("JSON line");
    assert_eq!(flip["health"], json!("critical"));
    let doc = eventually("the critical health is stored", || {
        let ep = ep.clone();
        async move {
            let doc = rc(&ep, &["services", "-o", "json"]).await.json();
            (doc["services"][0]["passing"] == json!(0)).then_some(doc)
        }
    })
    .await;
    assert_eq!(doc["services"][0]["instances"], json!(1));
    let table = rows(rc(&ep, &["discover", "db"]).await.ok());
    assert_eq!(table[1][4], "critical");

    reg.interrupt();
    let (status, rest) = reg.exit().await;
    assert!(status.success(), "{status}");
    let last: Value = serde_json::from_str(rest.last().expect("a last line")).expect("JSON");
    assert_eq!(last["event"], json!("deregistered"));
    assert!(instances(&ep, "db").await.is_empty());
}

#[tokio::test]
async fn discover_watch_reprints_on_change() {
    let s = server().await;
    let ep = s.endpoint();
    let mut watch = Background::spawn(&["discover", "api", "--watch", "--endpoints", &ep]);
    let heading = watch.line().await;
    assert!(heading.starts_with("# api at revision "), "{heading}");
    assert!(!heading.contains("STALE"), "{heading}");
    assert_eq!(watch.line().await.split_whitespace().next(), Some("ID"));

    let mut reg = Background::spawn(&["register", "api", "127.0.0.1:9000", "--endpoints", &ep]);
    reg.line().await;
    let row = watch.line_where(|l| l.starts_with("127.0.0.1:9000")).await;
    assert!(row.ends_with("passing"), "{row}");

    reg.interrupt();
    assert!(reg.exit().await.0.success());
    // The next table is empty: a heading, the header, then a blank line.
    watch
        .line_where(|l| l.starts_with("# api at revision "))
        .await;
    assert_eq!(watch.line().await.split_whitespace().next(), Some("ID"));
    assert_eq!(watch.line().await, "");

    watch.interrupt();
    assert!(watch.exit().await.0.success());
}

#[tokio::test]
async fn discover_watch_as_json_marks_stale_when_the_registry_goes() {
    let mut s = server().await;
    let ep = s.endpoint();
    rc(
        &ep,
        &[
            "put",
            "/services/x/1",
            r#"{"id":"1","service":"x","addr":"h:1"}"#,
        ],
    )
    .await
    .ok();
    let mut watch =
        Background::spawn(&["discover", "x", "--watch", "-o", "json", "--endpoints", &ep]);
    let first: Value = serde_json::from_str(&watch.line().await).expect("JSON line");
    assert_eq!(first["stale"], json!(false));
    assert_eq!(first["instances"][0]["addr"], json!("h:1"));
    s.kill9().expect("kill the registry");
    let stale = watch.line_where(|l| l.contains("\"stale\":true")).await;
    let stale: Value = serde_json::from_str(&stale).expect("JSON line");
    assert_eq!(
        stale["instances"][0]["addr"],
        json!("h:1"),
        "the last known set"
    );
    watch.interrupt();
    assert!(watch.exit().await.0.success());
}

#[tokio::test]
async fn bad_register_arguments_are_usage_errors() {
    let s = server().await;
    let ep = s.endpoint();
    let bad = rc(&ep, &["register", "we/b", "h:1"]).await;
    assert!(bad.fails_with(2).contains("we/b"), "{}", bad.stderr);
    let bad = rc(&ep, &["register", "web", "h:1", "--check", "ftp://h"]).await;
    assert!(bad.fails_with(2).contains("ftp://h"), "{}", bad.stderr);
    let bad = rc(&ep, &["discover", "a/b"]).await;
    assert!(bad.fails_with(2).contains("a/b"), "{}", bad.stderr);
}
