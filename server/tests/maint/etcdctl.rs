//! The real etcdctl against a member during and after a NOSPACE alarm:
//! `alarm list`, `put` (refused), `endpoint status` (errors), `del`,
//! `compact`, `defrag`, `alarm disarm`, `endpoint health` and
//! `endpoint hashkv`, with their outputs asserted exactly where etcdctl
//! prints something fixed. Checked against etcd too.

use rollcall_tests::Tool;
use rollcall_tests::etcdctl::Etcdctl;

use crate::quota::{QUOTA, fill};
use crate::support::{Kind, Member, NO_SPACE, have};

backend_tests!(etcdctl_alarm_list_disarm_and_defrag);

async fn etcdctl_alarm_list_disarm_and_defrag(kind: Kind) {
    if !have(
        Tool::Etcdctl,
        "etcdctl::etcdctl_alarm_list_disarm_and_defrag",
    ) {
        return;
    }
    let m = Member::start(kind, &["--quota-backend-bytes", QUOTA]).await;
    let ctl = Etcdctl::new(m.endpoint());
    let mut c = m.client().await;
    let me = c.member_id().await;
    let alarm_line = format!("memberID:{me} alarm:NOSPACE \n");

    assert_eq!(ctl.run(&["alarm", "list"]).await.unwrap().ok(), "");
    let (acked, _) = fill(&mut c, "big/").await;

    assert_eq!(ctl.run(&["alarm", "list"]).await.unwrap().ok(), alarm_line);
    let put = ctl.run(&["put", "x", "y"]).await.unwrap();
    assert!(!put.success, "{put:?}");
    assert!(put.stderr.contains(NO_SPACE), "{put:?}");
    let status = ctl
        .run(&["endpoint", "status", "-w", "json"])
        .await
        .unwrap()
        .json();
    assert_eq!(
        status[0]["Status"]["errors"],
        serde_json::json!([alarm_line.trim_end_matches('\n')]),
        "{status}"
    );
    let get = ctl
        .run(&["get", "big/", "--prefix", "--keys-only", "-w", "json"])
        .await
        .unwrap()
        .json();
    // A put that timed out on the client may still have been applied, so the
    // store holds at least every acknowledged key.
    let count = get["count"].as_u64().unwrap();
    assert!(count >= acked.len() as u64, "{get} < {}", acked.len());

    let deleted = ctl.run(&["del", "big/", "--prefix"]).await.unwrap();
    assert_eq!(deleted.ok(), format!("{count}\n"));
    let revision = c.revision().await;
    let compacted = ctl.run(&["compact", &revision.to_string()]).await.unwrap();
    assert_eq!(compacted.ok(), format!("compacted revision {revision}\n"));
    let defrag = ctl.run(&["defrag"]).await.unwrap();
    assert_eq!(
        defrag.ok(),
        format!("Finished defragmenting etcd member[{}]\n", m.endpoint())
    );
    // Still armed until disarmed.
    assert_eq!(ctl.run(&["alarm", "list"]).await.unwrap().ok(), alarm_line);
    let disarm = ctl.run(&["alarm", "disarm"]).await.unwrap();
    assert_eq!(disarm.ok(), alarm_line, "disarm prints what it disarmed");
    assert_eq!(ctl.run(&["alarm", "list"]).await.unwrap().ok(), "");
    assert_eq!(ctl.run(&["put", "x", "y"]).await.unwrap().ok(), "OK\n");

    let health = ctl.run(&["endpoint", "health"]).await.unwrap();
    assert!(
        health.success && format!("{}{}", health.stdout, health.stderr).contains("is healthy"),
        "{health:?}"
    );
    let hashkv = ctl
        .run(&["endpoint", "hashkv", "-w", "json"])
        .await
        .unwrap()
        .json();
    assert_eq!(
        hashkv[0]["HashKV"]["compact_revision"],
        serde_json::json!(revision),
        "{hashkv}"
    );
    let status = ctl
        .run(&["endpoint", "status", "-w", "json"])
        .await
        .unwrap()
        .json();
    assert!(status[0]["Status"]["errors"].is_null(), "{status}");
}
