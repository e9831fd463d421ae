//! `lease grant|ttl|keepalive|list|revoke`, `put --lease`, and the errors
//! etcd gives for unknown leases.

use serde_json::json;

use crate::support::{rc, rows, server};

/// The hex id of `lease <id> granted with TTL(<n>s)`.
fn granted_id(line: &str) -> String {
    let rest = line
        .strip_prefix("lease ")
        .unwrap_or_else(|| panic!("{line}"));
    let (id, tail) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
    assert!(tail.starts_with("granted with TTL("), "{line}");
    assert!(i64::from_str_radix(id, 16).is_ok(), "not hex: {line}");
    id.to_owned()
}

#[tokio::test]
async fn grant_ttl_keepalive_list_revoke() {
    let s = server().await;
    let ep = s.endpoint();
    let grant = rc(&ep, &["lease", "grant", "60"]).await;
    let line = grant.ok().trim_end().to_owned();
    assert!(line.ends_with("granted with TTL(60s)"), "{line}");
    let id = granted_id(&line);

    rc(&ep, &["put", "/leased/a", "1", "--lease", &id])
        .await
        .ok();
    let got = rc(&ep, &["get", "/leased/a"]).await;
    assert_eq!(
        rows(got.ok())[1][4],
        id,
        "the LEASE column shows the hex id"
    );

    let ttl = rc(&ep, &["lease", "ttl", &id, "--keys"]).await;
    let out = ttl.ok().trim_end().to_owned();
    assert!(
        out.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{out}"
    );
    assert!(out.ends_with("attached keys([/leased/a])"), "{out}");
    let ttl = rc(&ep, &["lease", "ttl", &id, "--keys", "-o", "json"])
        .await
        .json();
    assert_eq!(ttl["id"], json!(id));
    assert_eq!(ttl["granted_ttl"], json!(60));
    assert!(
        ttl["ttl"].as_i64().is_some_and(|t| t > 50 && t <= 60),
        "{ttl}"
    );
    assert_eq!(ttl["keys"], json!(["/leased/a"]));

    let renewed = rc(&ep, &["lease", "keepalive", &id, "--once"]).await;
    assert_eq!(
        renewed.ok(),
        format!("lease {id} keepalived with TTL(60)\n")
    );

    let list = rows(rc(&ep, &["lease", "list"]).await.ok());
    assert_eq!(list, [["ID".to_owned()], [id.clone()]]);
    let list = rc(&ep, &["lease", "list", "-o", "json"]).await.json();
    assert_eq!(list["leases"], json!([id]));

    // 0x-prefixed and upper-case ids are accepted too.
    let upper = format!("0x{}", id.to_uppercase());
    assert_eq!(
        rc(&ep, &["lease", "revoke", &upper]).await.ok(),
        format!("lease {id} revoked\n")
    );
    let got = rc(&ep, &["get", "/leased/a", "-o", "json"]).await.json();
    assert_eq!(got["count"], json!(0), "revoking deleted the attached key");
    let ttl = rc(&ep, &["lease", "ttl", &id]).await;
    assert_eq!(ttl.ok(), format!("lease {id} already expired\n"));
    assert_eq!(rows(rc(&ep, &["lease", "list"]).await.ok()).len(), 1);
}

#[tokio::test]
async fn grant_as_json() {
    let s = server().await;
    let ep = s.endpoint();
    let grant = rc(&ep, &["lease", "grant", "30", "-o", "json"])
        .await
        .json();
    assert_eq!(grant["ttl"], json!(30));
    let id = grant["id"].as_str().expect("hex id").to_owned();
    let revoked = rc(&ep, &["lease", "revoke", &id, "-o", "json"])
        .await
        .json();
    assert_eq!(revoked["revoked"], json!(true));
    assert_eq!(revoked["id"], json!(id));
}

#[tokio::test]
async fn keepalive_runs_until_interrupted() {
    let s = server().await;
    let ep = s.endpoint();
    // The registry's minimum TTL (2 s) renews every ~0.7 s.
    let grant = rc(&ep, &["lease", "grant", "2"]).await;
    let id = granted_id(grant.ok().trim_end());
    let mut keep =
        crate::support::Background::spawn(&["lease", "keepalive", &id, "--endpoints", &ep]);
    for _ in 0..3 {
        let line = keep.line().await;
        assert_eq!(line, format!("lease {id} keepalived with TTL(2)"));
    }
    keep.interrupt();
    let (status, _) = keep.exit().await;
    assert!(status.success(), "{status}");
    // It outlived several TTLs thanks to the renewals.
    let ttl = rc(&ep, &["lease", "ttl", &id, "-o", "json"]).await.json();
    assert!(ttl["ttl"].as_i64().is_some_and(|t| t >= 0), "{ttl}");
}

#[tokio::test]
async fn unknown_leases_are_refused_with_etcds_message() {
    let s = server().await;
    let ep = s.endpoint();
    let put = rc(&ep, &["put", "/k", "v", "--lease", "1234abcd"]).await;
    let err = put.fails_with(1);
    assert!(
        err.contains("etcdserver: requested lease not found"),
        "{err}"
    );
    assert!(put.stdout.is_empty(), "{}", put.stdout);

    let revoke = rc(&ep, &["lease", "revoke", "1234abcd"]).await;
    assert!(
        revoke
            .fails_with(1)
            .contains("etcdserver: requested lease not found")
    );
    let keep = rc(&ep, &["lease", "keepalive", "1234abcd"]).await;
    assert!(
        keep.fails_with(1)
            .contains("etcdserver: requested lease not found")
    );

    // Not hex: a usage error before anything is sent.
    let bad = rc(&ep, &["lease", "revoke", "xyz"]).await;
    assert!(bad.fails_with(2).contains("xyz"), "{}", bad.stderr);
}
