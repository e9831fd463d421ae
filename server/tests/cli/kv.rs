//! `put`, `get` and `del` through the binary, in both output formats.

use serde_json::json;

use crate::support::{rc, rows, server};

#[tokio::test]
async fn put_get_del_round_trip_as_tables() {
    let s = server().await;
    let ep = s.endpoint();
    assert_eq!(rc(&ep, &["put", "/app/a", "hello"]).await.ok(), "OK\n");
    let got = rc(&ep, &["get", "/app/a"]).await;
    let table = rows(got.ok());
    assert_eq!(table[0], ["KEY", "VALUE", "MOD_REV", "VERSION", "LEASE"]);
    assert_eq!(table.len(), 2, "{table:?}");
    assert_eq!(table[1][..2], ["/app/a", "hello"]);
    assert_eq!(table[1][3..], ["1", "-"]);

    // --prev-kv shows what the put replaced.
    let put = rc(&ep, &["put", "/app/a", "again", "--prev-kv"]).await;
    let out = put.ok();
    assert!(out.starts_with("OK\n"), "{out}");
    assert!(out.contains("/app/a") && out.contains("hello"), "{out}");

    let del = rc(&ep, &["del", "/app/a", "--prev-kv"]).await;
    let out = rows(del.ok());
    assert_eq!(out[0], ["1"], "deleted count first: {out:?}");
    assert_eq!(out[2][..2], ["/app/a", "again"]);

    // Gone: a header and no rows; deleting again deletes nothing.
    assert_eq!(rows(rc(&ep, &["get", "/app/a"]).await.ok()).len(), 1);
    assert_eq!(rc(&ep, &["del", "/app/a"]).await.ok(), "0\n");
}

#[tokio::test]
async fn put_get_del_round_trip_as_json() {
    let s = server().await;
    let ep = s.endpoint();
    let put = rc(&ep, &["put", "/j/k", "v1", "-o", "json"]).await.json();
    let rev = put["revision"].as_i64().expect("revision");
    assert!(rev > 1, "{put}");
    assert_eq!(put["prev_kv"], json!(null));

    let got = rc(&ep, &["get", "/j/k", "--output", "json"]).await.json();
    assert_eq!(got["count"], json!(1));
    assert_eq!(got["more"], json!(false));
    let kv = &got["kvs"][0];
    assert_eq!(kv["key"], json!("/j/k"));
    assert_eq!(kv["value"], json!("v1"));
    assert_eq!(kv["mod_revision"], json!(rev));
    assert_eq!(kv["create_revision"], json!(rev));
    assert_eq!(kv["version"], json!(1));
    assert_eq!(kv["lease"], json!(null));

    let put = rc(&ep, &["put", "/j/k", "v2", "--prev-kv", "-o", "json"])
        .await
        .json();
    assert_eq!(put["prev_kv"]["value"], json!("v1"));

    let del = rc(&ep, &["del", "/j/k", "--prev-kv", "-o", "json"])
        .await
        .json();
    assert_eq!(del["deleted"], json!(1));
    assert_eq!(del["prev_kvs"][0]["value"], json!("v2"));
    let got = rc(&ep, &["get", "/j/k", "-o", "json"]).await.json();
    assert_eq!(got["count"], json!(0));
    assert_eq!(got["kvs"], json!([]));
}

#[tokio::test]
async fn get_prefix_ranges_and_options() {
    let s = server().await;
    let ep = s.endpoint();
    for (k, v) in [("/p/a", "1"), ("/p/b", "2"), ("/p/c", "3"), ("/q/a", "4")] {
        rc(&ep, &["put", k, v]).await.ok();
    }
    let prefix = rows(rc(&ep, &["get", "/p/", "--prefix"]).await.ok());
    let keys: Vec<&str> = prefix[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/b", "/p/c"]);

    // A range end, from-key, limit with `more`, descending sort.
    let range = rows(rc(&ep, &["get", "/p/a", "/p/c"]).await.ok());
    assert_eq!(range.len(), 3, "{range:?}");
    let from = rc(&ep, &["get", "/p/c", "--from-key", "-o", "json"])
        .await
        .json();
    assert_eq!(from["count"], json!(2));
    let limited = rc(
        &ep,
        &["get", "/p/", "--prefix", "--limit", "2", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(limited["kvs"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        (limited["count"].clone(), limited["more"].clone()),
        (json!(3), json!(true))
    );
    let table = rc(&ep, &["get", "/p/", "--prefix", "--limit", "2"]).await;
    assert!(table.ok().contains("2 of 3 keys shown"), "{}", table.stdout);
    let desc = rc(
        &ep,
        &[
            "get", "/p/", "--prefix", "--sort", "key", "--order", "desc", "-o", "json",
        ],
    )
    .await
    .json();
    assert_eq!(desc["kvs"][0]["key"], json!("/p/c"));

    // Keys only, count only, and a read at an older revision.
    let keys_only = rows(
        rc(&ep, &["get", "/p/", "--prefix", "--keys-only"])
            .await
            .ok(),
    );
    assert_eq!(keys_only[0], ["KEY", "MOD_REV", "VERSION", "LEASE"]);
    let count = rows(
        rc(&ep, &["get", "/", "--prefix", "--count-only"])
            .await
            .ok(),
    );
    assert_eq!(count, [["COUNT"], ["4"]]);
    let first = rc(&ep, &["get", "/p/a", "-o", "json"]).await.json();
    let rev = first["kvs"][0]["mod_revision"].as_i64().expect("revision");
    rc(&ep, &["put", "/p/a", "changed"]).await.ok();
    let old = rc(
        &ep,
        &["get", "/p/a", "--rev", &rev.to_string(), "-o", "json"],
    )
    .await
    .json();
    assert_eq!(old["kvs"][0]["value"], json!("1"));

    // del --prefix removes the three, not /q/a.
    assert_eq!(rc(&ep, &["del", "/p/", "--prefix"]).await.ok(), "3\n");
    let rest = rc(&ep, &["get", "/", "--prefix", "-o", "json"])
        .await
        .json();
    assert_eq!(rest["kvs"][0]["key"], json!("/q/a"));
    assert_eq!(rest["count"], json!(1));
}

#[tokio::test]
async fn values_that_are_not_text_survive_as_base64_and_escapes() {
    let s = server().await;
    let ep = s.endpoint();
    rc(&ep, &["put", "/t/nl", "line1\nline2"]).await.ok();
    let table = rc(&ep, &["get", "/t/nl"]).await;
    assert!(table.ok().contains("line1\\nline2"), "{}", table.stdout);
    let got = rc(&ep, &["get", "/t/nl", "-o", "json"]).await.json();
    assert_eq!(got["kvs"][0]["value"], json!("line1\nline2"));
    // A value starting with '-' is a value, not a flag.
    rc(&ep, &["put", "/t/neg", "-5"]).await.ok();
    let got = rc(&ep, &["get", "/t/neg", "-o", "json"]).await.json();
    assert_eq!(got["kvs"][0]["value"], json!("-5"));
    // Bytes that are not UTF-8 (written through the library): base64 in
    // JSON, replacement characters in a table.
    let client = rollcall_client::Client::connect([ep.as_str()])
        .await
        .expect("connect");
    client
        .put("/t/bin", vec![0xff_u8, 0x00, 0x41])
        .await
        .expect("put bytes");
    let got = rc(&ep, &["get", "/t/bin", "-o", "json"]).await.json();
    assert_eq!(got["kvs"][0]["value_base64"], json!("/wBB"));
    assert_eq!(got["kvs"][0].get("value"), None);
    let table = rc(&ep, &["get", "/t/bin"]).await;
    assert!(table.ok().contains("\\u{0}A"), "{}", table.stdout);
}
