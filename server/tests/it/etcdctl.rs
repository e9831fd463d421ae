//! The real `etcdctl` (API v3) against the server: put, get (prefix, rev,
//! limit, sort, keys-only, print-value-only, JSON), del (prefix, prev-kv),
//! the interactive txn fed on stdin, compaction, endpoint status and member
//! list, with their outputs asserted exactly. Each test also runs against a
//! real etcd, which is where the expected outputs come from. (etcdctl 3.4 has
//! no --count-only; count_only is covered through the gRPC client in `kv`.)

use base64::Engine as _;
use rollcall_tests::etcdctl::Etcdctl;
use rollcall_tests::serde_json::Value;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};

use crate::support::start;

backend_tests!(
    put_and_get,
    get_options,
    del_prefix_and_prev_kv,
    interactive_txn,
    compaction,
    endpoint_status,
    member_list,
);

/// Starts the server and an etcdctl for it; None when etcdctl is missing.
async fn setup(backend: &Backend, test: &str) -> Option<(ServerProcess, Etcdctl)> {
    if !require_or_skip(Tool::Etcdctl, test) {
        return None;
    }
    let server = start(backend).await;
    let ctl = Etcdctl::new(server.endpoint());
    Some((server, ctl))
}

async fn ctl_ok(ctl: &Etcdctl, args: &[&str]) -> String {
    ctl.run(args)
        .await
        .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
        .ok()
        .to_owned()
}

async fn ctl_json(ctl: &Etcdctl, args: &[&str]) -> Value {
    ctl.run(args)
        .await
        .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
        .json()
}

/// Standard base64 with padding: etcdctl's JSON encodes keys and values so.
fn b64(data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn base64_matches_known_values() {
    assert_eq!(b64("foo"), "Zm9v");
    assert_eq!(b64("bar2"), "YmFyMg==");
    assert_eq!(b64("foo2"), "Zm9vMg==");
    assert_eq!(b64("b"), "Yg==");
}

async fn put_and_get(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::put_and_get").await else {
        return;
    };
    assert_eq!(ctl_ok(&ctl, &["put", "foo", "bar"]).await, "OK\n");
    assert_eq!(ctl_ok(&ctl, &["get", "foo"]).await, "foo\nbar\n");
    assert_eq!(
        ctl_ok(&ctl, &["put", "--prev-kv", "foo", "bar2"]).await,
        "OK\nfoo\nbar\n"
    );
    assert_eq!(
        ctl_ok(&ctl, &["get", "--print-value-only", "foo"]).await,
        "bar2\n"
    );
    assert_eq!(ctl_ok(&ctl, &["get", "missing"]).await, "");
    let json = ctl_json(&ctl, &["get", "foo", "-w", "json"]).await;
    assert_eq!(json["header"]["revision"], 3);
    assert_eq!(json["count"], 1);
    let kv = &json["kvs"][0];
    assert_eq!(kv["key"], b64("foo"));
    assert_eq!(kv["value"], b64("bar2"));
    assert_eq!(kv["create_revision"], 2);
    assert_eq!(kv["mod_revision"], 3);
    assert_eq!(kv["version"], 2);
    assert!(
        json["header"]["cluster_id"]
            .as_u64()
            .is_some_and(|id| id != 0)
    );
    assert!(
        json["header"]["member_id"]
            .as_u64()
            .is_some_and(|id| id != 0)
    );
}

async fn get_options(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::get_options").await else {
        return;
    };
    // revisions: s/1=c @2, s/2=a @3, s/3=b @4, s/1=d @5, t=x @6
    for (k, v) in [
        ("s/1", "c"),
        ("s/2", "a"),
        ("s/3", "b"),
        ("s/1", "d"),
        ("t", "x"),
    ] {
        assert_eq!(ctl_ok(&ctl, &["put", k, v]).await, "OK\n");
    }
    assert_eq!(
        ctl_ok(&ctl, &["get", "--prefix", "s/"]).await,
        "s/1\nd\ns/2\na\ns/3\nb\n"
    );
    assert_eq!(
        ctl_ok(&ctl, &["get", "--prefix", "s/", "--rev=4"]).await,
        "s/1\nc\ns/2\na\ns/3\nb\n"
    );
    assert_eq!(ctl_ok(&ctl, &["get", "s/1", "--rev=2"]).await, "s/1\nc\n");
    assert_eq!(
        ctl_ok(&ctl, &["get", "--prefix", "s/", "--limit=2"]).await,
        "s/1\nd\ns/2\na\n"
    );
    assert_eq!(
        ctl_ok(
            &ctl,
            &["get", "--prefix", "s/", "--sort-by=VALUE", "--order=ASCEND"]
        )
        .await,
        "s/2\na\ns/3\nb\ns/1\nd\n"
    );
    assert_eq!(
        ctl_ok(
            &ctl,
            &[
                "get",
                "--prefix",
                "s/",
                "--sort-by=MODIFY",
                "--order=DESCEND"
            ]
        )
        .await,
        "s/1\nd\ns/3\nb\ns/2\na\n"
    );
    assert_eq!(
        ctl_ok(
            &ctl,
            &[
                "get",
                "--prefix",
                "s/",
                "--sort-by=CREATE",
                "--order=DESCEND",
                "--limit=1"
            ]
        )
        .await,
        "s/3\nb\n"
    );
    assert_eq!(
        ctl_ok(&ctl, &["get", "--prefix", "s/", "--keys-only"]).await,
        "s/1\n\ns/2\n\ns/3\n\n"
    );
    assert_eq!(
        ctl_ok(&ctl, &["get", "--from-key", "s/2", "--print-value-only"]).await,
        "a\nb\nx\n"
    );
    // `get KEY END` is the range [KEY, END).
    assert_eq!(
        ctl_ok(&ctl, &["get", "s/1", "s/3"]).await,
        "s/1\nd\ns/2\na\n"
    );
    let json = ctl_json(
        &ctl,
        &[
            "get",
            "--prefix",
            "s/",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--limit=2",
            "-w",
            "json",
        ],
    )
    .await;
    assert_eq!(json["more"], true);
    assert_eq!(json["count"], 3);
    assert_eq!(json["header"]["revision"], 6);
    let kvs = json["kvs"].as_array().expect("kvs");
    assert_eq!(kvs.len(), 2);
    assert_eq!(kvs[0]["key"], b64("s/1"));
    assert_eq!(kvs[0]["version"], 2);
    assert_eq!(kvs[1]["key"], b64("s/2"), "ties keep key order");
}

async fn del_prefix_and_prev_kv(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::del_prefix_and_prev_kv").await else {
        return;
    };
    for (k, v) in [("p/1", "x"), ("p/2", "y"), ("q", "z"), ("r", "w")] {
        ctl_ok(&ctl, &["put", k, v]).await;
    }
    assert_eq!(ctl_ok(&ctl, &["del", "--prefix", "p/"]).await, "2\n");
    assert_eq!(ctl_ok(&ctl, &["del", "--prev-kv", "q"]).await, "1\nq\nz\n");
    assert_eq!(ctl_ok(&ctl, &["del", "nothing"]).await, "0\n");
    assert_eq!(
        ctl_ok(&ctl, &["del", "--prev-kv", "--prefix", "p/"]).await,
        "0\n"
    );
    assert_eq!(ctl_ok(&ctl, &["get", "--from-key", ""]).await, "r\nw\n");
    // Deletes that deleted something wrote revisions 6 and 7; the others none.
    let json = ctl_json(&ctl, &["get", "r", "-w", "json"]).await;
    assert_eq!(json["header"]["revision"], 7);
}

async fn interactive_txn(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::interactive_txn").await else {
        return;
    };
    ctl_ok(&ctl, &["put", "a", "1"]).await; // rev 2
    ctl_ok(&ctl, &["put", "foo", "x"]).await; // rev 3
    ctl_ok(&ctl, &["put", "foo", "y"]).await; // rev 4
    // Compares, blank line, success ops, blank line, failure ops, blank line.
    let success = ctl
        .run_with_stdin(
            &["txn"],
            "value(\"a\") = \"1\"\nversion(\"foo\") > \"1\"\n\nput t1 ok\nget a\n\nput t2 fail\n\n",
        )
        .await
        .expect("etcdctl txn");
    assert_eq!(success.ok(), "SUCCESS\n\nOK\n\na\n1\n");
    let failure = ctl
        .run_with_stdin(
            &["txn"],
            "value(\"a\") = \"2\"\n\nput t1 again\n\nput t2 fail\nget t1\ndel nothing\n\n",
        )
        .await
        .expect("etcdctl txn");
    assert_eq!(failure.ok(), "FAILURE\n\nOK\n\nt1\nok\n\n0\n");
    let no_compares = ctl
        .run_with_stdin(&["txn"], "\nput t3 x\n\n\n")
        .await
        .expect("etcdctl txn");
    assert_eq!(no_compares.ok(), "SUCCESS\n\nOK\n");
    let revs = ctl
        .run_with_stdin(
            &["txn"],
            "create(\"t1\") = \"5\"\nmod(\"t2\") = \"6\"\nmod(\"zz\") < \"1\"\n\ndel t1\n\n\n",
        )
        .await
        .expect("etcdctl txn");
    assert_eq!(revs.ok(), "SUCCESS\n\n1\n");
    assert_eq!(
        ctl_ok(&ctl, &["get", "--prefix", "t"]).await,
        "t2\nfail\nt3\nx\n"
    );
    let json = ctl
        .run_with_stdin(&["txn", "-w", "json"], "\nput j 1\nget j\n\n\n")
        .await
        .expect("etcdctl txn -w json")
        .json();
    assert_eq!(json["header"]["revision"], 9);
    assert_eq!(json["succeeded"], true);
    let range = &json["responses"][1]["Response"]["ResponseRange"];
    assert_eq!(range["kvs"][0]["key"], b64("j"));
    assert_eq!(range["kvs"][0]["mod_revision"], 9);
    assert_eq!(range["count"], 1);
}

async fn compaction(backend: Backend) {
    let Some((_server, ctl)) = setup(&backend, "etcdctl::compaction").await else {
        return;
    };
    for v in ["1", "2", "3", "4"] {
        ctl_ok(&ctl, &["put", "c", v]).await; // revs 2..=5
    }
    assert_eq!(
        ctl_ok(&ctl, &["compaction", "4"]).await,
        "compacted revision 4\n"
    );
    assert_eq!(ctl_ok(&ctl, &["get", "c", "--rev=4"]).await, "c\n3\n");
    let old = ctl
        .run(&["get", "c", "--rev=3"])
        .await
        .expect("etcdctl get");
    assert!(!old.success, "reading a compacted revision fails: {old:?}");
    assert!(
        old.stderr
            .contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{old:?}"
    );
    let again = ctl
        .run(&["compaction", "4"])
        .await
        .expect("etcdctl compaction");
    assert!(!again.success, "compacting twice fails: {again:?}");
    assert!(
        again
            .stderr
            .contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{again:?}"
    );
    let future = ctl
        .run(&["compaction", "99"])
        .await
        .expect("etcdctl compaction");
    assert!(!future.success);
    assert!(
        future
            .stderr
            .contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{future:?}"
    );
    assert_eq!(
        ctl_ok(&ctl, &["compaction", "--physical", "5"]).await,
        "compacted revision 5\n"
    );
    assert_eq!(ctl_ok(&ctl, &["get", "c"]).await, "c\n4\n");
}

async fn endpoint_status(backend: Backend) {
    let Some((server, ctl)) = setup(&backend, "etcdctl::endpoint_status").await else {
        return;
    };
    ctl_ok(&ctl, &["put", "a", "1"]).await;
    let json = ctl_json(&ctl, &["endpoint", "status", "-w", "json"]).await;
    let entries = json.as_array().expect("a list of endpoints");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["Endpoint"], server.endpoint());
    let status = &entries[0]["Status"];
    let member = status["header"]["member_id"].as_u64().expect("member_id");
    assert_ne!(member, 0);
    assert_eq!(status["leader"].as_u64(), Some(member));
    assert_eq!(status["header"]["revision"], 2);
    assert!(
        status["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.4")),
        "{status}"
    );
    assert!(status["dbSize"].as_i64().is_some_and(|n| n > 0), "{status}");
    assert!(
        status["raftTerm"].as_u64().is_some_and(|n| n >= 1),
        "{status}"
    );
    // Table form: endpoint, id, version, db size, is leader, is learner, ...
    let line = ctl_ok(&ctl, &["endpoint", "status"]).await;
    let fields: Vec<&str> = line.trim_end().split(", ").collect();
    assert_eq!(fields[0], server.endpoint(), "{line}");
    assert_eq!(fields[1], format!("{member:x}"), "{line}");
    assert!(fields[2].starts_with("3.4"), "{line}");
    assert_eq!(fields[4], "true", "is leader: {line}");
    assert_eq!(fields[5], "false", "is learner: {line}");
    let health = ctl
        .run(&["endpoint", "health"])
        .await
        .expect("etcdctl endpoint health");
    assert!(health.success, "{health:?}");
}

async fn member_list(backend: Backend) {
    let Some((server, ctl)) = setup(&backend, "etcdctl::member_list").await else {
        return;
    };
    let json = ctl_json(&ctl, &["member", "list", "-w", "json"]).await;
    let member = json["header"]["member_id"].as_u64().expect("member_id");
    let members = json["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{json}");
    assert_eq!(members[0]["ID"].as_u64(), Some(member));
    assert_eq!(members[0]["name"], "test");
    assert_eq!(
        members[0]["clientURLs"],
        Value::from(vec![server.endpoint()])
    );
    // Table form: id, status, name, peer urls, client urls, is learner.
    let line = ctl_ok(&ctl, &["member", "list"]).await;
    let fields: Vec<&str> = line.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 6, "{line}");
    assert_eq!(fields[0], format!("{member:x}"), "{line}");
    assert_eq!(fields[1], "started", "{line}");
    assert_eq!(fields[2], "test", "{line}");
    assert_eq!(fields[4], server.endpoint(), "{line}");
    assert_eq!(fields[5], "false", "{line}");
}
