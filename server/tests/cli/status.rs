//! `status`, and what every command does when the registry cannot be
//! reached: a non-zero exit and a message naming the endpoints tried.

use serde_json::json;

use crate::support::{closed_endpoint, rc, rows, run, server};

#[tokio::test]
async fn status_as_table_and_json() {
    let s = server().await;
    let ep = s.endpoint();
    rc(&ep, &["put", "/a", "1"]).await.ok();
    let table = rows(rc(&ep, &["status"]).await.ok());
    assert_eq!(
        table[0],
        [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB_SIZE",
            "REVISION",
            "LEADER",
            "IS_LEADER",
            "RAFT_TERM",
            "RAFT_INDEX"
        ]
    );
    assert_eq!(table.len(), 2, "{table:?}");
    assert_eq!(table[1][0], ep);
    assert_eq!(table[1][2], "3.4.23");
    // DB_SIZE is two cells ("20 kB"); the revision follows.
    assert_eq!(table[1][5], "2", "revision after one put: {table:?}");
    assert_eq!(table[1][7], "true", "a single member leads: {table:?}");

    let doc = rc(&ep, &["status", "-o", "json"]).await.json();
    let me = &doc["endpoints"][0];
    assert_eq!(me["endpoint"], json!(ep));
    assert_eq!(me["version"], json!("3.4.23"));
    assert_eq!(me["revision"], json!(2));
    assert_eq!(me["is_leader"], json!(true));
    assert!(me["db_size"].as_i64().is_some_and(|n| n > 0), "{me}");
    assert!(me["raft_index"].as_u64().is_some(), "{me}");
}

#[tokio::test]
async fn status_reports_each_endpoint_and_fails_if_one_is_down() {
    let s = server().await;
    let ep = s.endpoint();
    let dead = closed_endpoint();
    let both = format!("{ep},{dead}");
    let ran = run(&["status", "--endpoints", &both]).await;
    let err = ran.fails_with(3);
    assert!(err.contains(&dead), "{err}");
    let table = rows(&ran.stdout);
    assert_eq!(
        table.len(),
        2,
        "the live endpoint is still shown: {table:?}"
    );
    assert_eq!(table[1][0], ep);

    let ran = run(&["status", "--endpoints", &both, "-o", "json"]).await;
    ran.fails_with(3);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(doc["endpoints"][0]["endpoint"], json!(ep));
    assert_eq!(
        doc["endpoints"][1]["endpoint"],
        json!(format!("http://{dead}"))
    );
    assert!(doc["endpoints"][1]["error"].is_string(), "{doc}");
}

#[tokio::test]
async fn an_unreachable_registry_is_a_clear_error() {
    let dead = closed_endpoint();
    let other = closed_endpoint();
    let both = format!("{dead},{other}");
    for args in [
        vec!["get", "/k"],
        vec!["put", "/k", "v"],
        vec!["del", "/k"],
        vec!["lease", "grant", "10"],
        vec!["services"],
        vec!["discover", "web"],
        vec!["register", "web", "h:1"],
        vec!["watch", "/k"],
        vec!["status"],
    ] {
        let mut all = args.clone();
        all.extend(["--endpoints", &both, "--timeout", "2s"]);
        let ran = run(&all).await;
        let err = ran.fails_with(3);
        assert!(
            err.starts_with("rollcall: cannot reach the registry"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&dead) && err.contains(&other),
            "{args:?}: {err}"
        );
        assert!(err.contains("refused"), "{args:?}: {err}");
        assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
    }
}

#[tokio::test]
async fn endpoints_come_from_the_environment() {
    let s = server().await;
    let ep = s.endpoint();
    let env = [("ROLLCALL_ENDPOINTS", ep.as_str())];
    let put = crate::support::run_with_env(&["put", "/env", "yes"], &env).await;
    assert_eq!(put.ok(), "OK\n");
    // --endpoints wins over the environment.
    let dead = closed_endpoint();
    let env = [("ROLLCALL_ENDPOINTS", dead.as_str())];
    let got =
        crate::support::run_with_env(&["get", "/env", "--endpoints", &ep, "-o", "json"], &env)
            .await
            .json();
    assert_eq!(got["kvs"][0]["value"], json!("yes"));
    let failed = crate::support::run_with_env(&["get", "/env"], &env).await;
    assert!(failed.fails_with(3).contains(&dead), "{}", failed.stderr);
}
