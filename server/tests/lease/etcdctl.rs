//! The real `etcdctl` (API v3) lease commands against the server, outputs
//! asserted: `lease grant`, `put --lease`, `lease timetolive [--keys]`,
//! `lease list`, `lease keep-alive --once`, `lease revoke`, in text and JSON,
//! and the failures for a lease that is gone. Each test also runs against a
//! real etcd, which is where the expected outputs come from.

use rollcall_tests::etcdctl::{Etcdctl, Output};
use rollcall_tests::serde_json::Value;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};

use crate::support::start;

backend_tests!(lease_lifecycle, lease_json_output, lease_errors);

async fn setup(backend: &Backend, test: &str) -> Option<(ServerProcess, Etcdctl)> {
    if !require_or_skip(Tool::Etcdctl, test) {
        return None;
    }
    let server = start(backend).await;
    let ctl = Etcdctl::new(server.endpoint());
    Some((server, ctl))
}

async fn run(ctl: &Etcdctl, args: &[&str]) -> Output {
    ctl.run(args)
        .await
        .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
}

async fn ok(ctl: &Etcdctl, args: &[&str]) -> String {
    run(ctl, args).await.ok().to_owned()
}

/// Parses `lease <hex> granted with TTL(<n>s)`: the id in hex.
fn granted_id(out: &str, ttl: i64) -> String {
    let words: Vec<&str> = out.split_whitespace().collect();
    let expected_tail = [
        "granted".to_owned(),
        "with".to_owned(),
        format!("TTL({ttl}s)"),
    ];
    assert!(
        words.len() == 5 && words[0] == "lease" && words[2..] == expected_tail,
        "unexpected grant output: {out:?}"
    );
    let id = words[1];
    assert!(
        i64::from_str_radix(id, 16).is_ok_and(|v| v > 0),
        "lease id {id:?} is a positive hex int64"
    );
    id.to_owned()
}

async fn lease_lifecycle(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::lease_lifecycle").await else {
        return;
    };
    let id = granted_id(&ok(&ctl, &["lease", "grant", "60"]).await, 60);
    let lease_flag = format!("--lease={id}");
    assert_eq!(ok(&ctl, &["put", &lease_flag, "k", "v"]).await, "OK\n");
    assert_eq!(ok(&ctl, &["put", &lease_flag, "k2", "v2"]).await, "OK\n");

    let ttl = ok(&ctl, &["lease", "timetolive", &id, "--keys"]).await;
    let prefix = format!("lease {id} granted with TTL(60s), remaining(");
    let rest = ttl
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("timetolive --keys: {ttl:?}"));
    let (remaining, keys) = rest.split_once("s), attached keys(").expect("keys part");
    let remaining: i64 = remaining.parse().expect("remaining seconds");
    assert!((55..=60).contains(&remaining), "{ttl:?}");
    // etcd lists the keys in map order.
    assert!(
        keys == "[k k2])\n" || keys == "[k2 k])\n",
        "attached keys: {ttl:?}"
    );
    let plain = ok(&ctl, &["lease", "timetolive", &id]).await;
    assert!(
        plain.starts_with(&prefix) && plain.ends_with("s)\n") && !plain.contains("attached"),
        "timetolive without --keys: {plain:?}"
    );

    assert_eq!(
        ok(&ctl, &["lease", "list"]).await,
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        ok(&ctl, &["lease", "keep-alive", "--once", &id]).await,
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert_eq!(
        ok(&ctl, &["lease", "revoke", &id]).await,
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(&ctl, &["get", "k"]).await, "");
    assert_eq!(ok(&ctl, &["get", "k2"]).await, "");
    assert_eq!(ok(&ctl, &["lease", "list"]).await, "found 0 leases\n");
    // timetolive of a gone lease (TTL -1) says so, and is no error.
    assert_eq!(
        ok(&ctl, &["lease", "timetolive", &id]).await,
        format!("lease {id} already expired\n")
    );

    // A TTL below the minimum is raised; a list shows every lease.
    let short = granted_id(&ok(&ctl, &["lease", "grant", "1"]).await, 2);
    let long = granted_id(&ok(&ctl, &["lease", "grant", "600"]).await, 600);
    let list = ok(&ctl, &["lease", "list"]).await;
    let mut lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.first(), Some(&"found 2 leases"), "{list:?}");
    lines.remove(0);
    lines.sort_unstable();
    let mut expected = vec![short.as_str(), long.as_str()];
    expected.sort_unstable();
    assert_eq!(lines, expected);
}

async fn lease_json_output(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::lease_json_output").await else {
        return;
    };
    let grant = run(&ctl, &["lease", "grant", "90", "-w", "json"])
        .await
        .json();
    let id = grant["ID"].as_i64().expect("ID");
    assert!(id > 0);
    assert_eq!(grant["TTL"], Value::from(90));
    assert_eq!(grant["Error"], Value::from(""));
    let revision = grant["revision"].as_i64().expect("revision");
    let hex = format!("{id:x}");
    ok(&ctl, &["put", &format!("--lease={hex}"), "jk", "v"]).await;

    let ttl = run(&ctl, &["lease", "timetolive", &hex, "--keys", "-w", "json"])
        .await
        .json();
    assert_eq!(ttl["id"].as_i64(), Some(id));
    assert_eq!(ttl["granted-ttl"], Value::from(90));
    assert!(
        ttl["ttl"].as_i64().is_some_and(|t| (85..=90).contains(&t)),
        "{ttl}"
    );
    // base64("jk")
    assert_eq!(ttl["keys"], Value::from(vec!["ams="]));
    assert_eq!(ttl["revision"].as_i64(), Some(revision + 1));

    let list = run(&ctl, &["lease", "list", "-w", "json"]).await.json();
    assert_eq!(
        list["leases"],
        rollcall_tests::serde_json::json!([{ "id": id }])
    );

    let ka = run(&ctl, &["lease", "keep-alive", "--once", &hex, "-w", "json"])
        .await
        .json();
    assert_eq!(ka["ID"].as_i64(), Some(id));
    assert_eq!(ka["TTL"], Value::from(90));

    let put = run(&ctl, &["get", "jk", "-w", "json"]).await.json();
    assert_eq!(put["kvs"][0]["lease"].as_i64(), Some(id));
}

async fn lease_errors(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::lease_errors").await else {
        return;
    };
    let missing = "1234abcd";
    let put = run(&ctl, &["put", &format!("--lease={missing}"), "x", "y"]).await;
    assert!(!put.success);
    assert!(
        put.stderr
            .contains("Error: etcdserver: requested lease not found"),
        "{put:?}"
    );
    let revoke = run(&ctl, &["lease", "revoke", missing]).await;
    assert!(!revoke.success);
    assert!(
        revoke
            .stderr
            .contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{revoke:?}"
    );
    let keep = run(&ctl, &["lease", "keep-alive", "--once", missing]).await;
    assert!(!keep.success);
    assert!(
        keep.stderr
            .contains("Error: etcdserver: requested lease not found"),
        "{keep:?}"
    );
    assert_eq!(ok(&ctl, &["get", "x"]).await, "");
}
