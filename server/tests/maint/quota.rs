//! The backend quota and the NOSPACE alarm, checked against etcd too: the
//! write that would pass `--quota-backend-bytes` fails with etcd's exact
//! error and raises NOSPACE for this member; while the alarm is active every
//! write that adds data is refused and reads, deletes, read-only and
//! delete-only txns, compaction, lease revoke and defragmentation work;
//! compact + defrag + disarm bring writes back with nothing lost. Also the
//! Alarm API on its own and the alarm across a restart.

use rollcall_proto::etcdserverpb::alarm_request::AlarmAction;
use rollcall_proto::etcdserverpb::{
    AlarmMember, AlarmType, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
    response_op,
};
use tonic::Status;

use crate::support::{
    Client, Kind, Member, assert_no_space, b, blob, del_req, get_req, http_get, keys, prefix_end,
    put_req, rev,
};

backend_tests!(
    quota_exceeded_then_recovered,
    alarm_api_activate_get_deactivate,
    alarm_survives_restart,
);

/// A quota both etcd (bbolt) and rollcall (redb) reach in a few dozen puts.
pub const QUOTA: &str = "3000000";
/// Size of each value written to fill the quota.
pub const BIG: usize = 50_000;

/// Puts `BIG`-byte values under `prefix` until one is refused; returns the
/// acknowledged keys with their revisions and the refusal.
pub async fn fill(c: &mut Client, prefix: &str) -> (Vec<(String, i64)>, Status) {
    let value = blob(BIG);
    let mut acked = Vec::new();
    for i in 0..400 {
        let key = format!("{prefix}{i:04}");
        match c.try_put(put_req(&key, &value)).await {
            Ok(r) => acked.push((key, rev(r.header.as_ref()))),
            Err(e) => return (acked, e),
        }
    }
    panic!("400 puts of {BIG} bytes all fit in a quota of {QUOTA} bytes");
}

fn nospace(member_id: u64) -> AlarmMember {
    AlarmMember {
        member_id,
        alarm: AlarmType::Nospace as i32,
    }
}

fn status_error(member_id: u64) -> String {
    format!("memberID:{member_id} alarm:NOSPACE ")
}

fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn txn(success: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    }
}

/// `/health`: (HTTP status, parsed JSON body).
async fn health(m: &Member) -> (u16, serde_json::Value) {
    let (code, body) = http_get(m.health_port(), "/health").await;
    let json = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("/health body is not JSON ({e}): {body:?}"));
    (code, json)
}

async fn quota_exceeded_then_recovered(kind: Kind) {
    let m = Member::start(kind, &["--quota-backend-bytes", QUOTA]).await;
    let mut c = m.client().await;
    let me = c.member_id().await;
    assert!(c.alarms().await.is_empty());
    assert_eq!(
        health(&m).await,
        (200, serde_json::json!({"health": "true"}))
    );

    // Data written before the quota is reached, some of it on a lease.
    c.put("keep/a", "1").await;
    c.put("keep/b", "2").await;
    let lease = 0x7a11;
    c.try_grant(600, lease).await.expect("grant");
    c.try_put(PutRequest {
        key: b("leased"),
        value: b("v"),
        lease,
        ..PutRequest::default()
    })
    .await
    .expect("leased put");

    let (acked, refused) = fill(&mut c, "big/").await;
    assert!(
        acked.len() >= 10,
        "only {} puts fit in {QUOTA} bytes",
        acked.len()
    );
    assert_no_space(Err::<(), _>(refused));
    let at_refusal = c.revision().await;
    assert_eq!(
        at_refusal,
        acked.last().unwrap().1,
        "the refused put wrote nothing"
    );

    // The alarm: listed for this member (the Status header's id), by GET of
    // every type and of NOSPACE, none of another type; in Status.errors; and
    // /health is false.
    assert_eq!(c.alarms().await, vec![nospace(me)]);
    let by_type = c
        .try_alarm(AlarmAction::Get, 0, AlarmType::Nospace)
        .await
        .unwrap();
    assert_eq!(by_type.alarms, vec![nospace(me)]);
    let corrupt = c
        .try_alarm(AlarmAction::Get, 0, AlarmType::Corrupt)
        .await
        .unwrap();
    assert!(corrupt.alarms.is_empty(), "{corrupt:?}");
    assert_eq!(c.status().await.errors, vec![status_error(me)]);
    let (code, body) = health(&m).await;
    assert_eq!(
        (code, &body["health"]),
        (503, &serde_json::json!("false")),
        "{body}"
    );
    if kind == Kind::Rollcall {
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("NOSPACE"),
            "/health gives no reason: {body}"
        );
    }

    // Every write that adds data is refused, however small.
    assert_no_space(c.try_put(put_req("tiny", "t")).await);
    assert_no_space(c.try_put(put_req("keep/a", "overwrite")).await);
    let put_txn = txn(vec![op(request_op::Request::RequestPut(put_req("t", "t")))]);
    assert_no_space(c.try_txn(put_txn).await);
    assert_no_space(c.try_grant(600, 0).await);
    assert_no_space(c.try_grant(600, 0x7a12).await);
    assert_eq!(
        c.revision().await,
        at_refusal,
        "refused writes wrote nothing"
    );

    // Reads work, now and at an old revision.
    for (key, r) in &acked {
        let kv = c.get(key).await.unwrap_or_else(|| panic!("{key} is lost"));
        assert_eq!((kv.mod_revision, kv.value.len()), (*r, BIG), "{key}");
    }
    let (_, old) = c.all_at(acked[0].1).await;
    assert_eq!(keys(&old), ["big/0000", "keep/a", "keep/b", "leased"]);
    // A read-only txn and a delete-only txn work.
    let read = c
        .try_txn(txn(vec![op(request_op::Request::RequestRange(get_req(
            "keep/a",
        )))]))
        .await
        .expect("read-only txn during NOSPACE");
    match &read.responses[0].response {
        Some(response_op::Response::ResponseRange(r)) => {
            assert_eq!(r.kvs[0].value, b("1"));
        }
        other => panic!("{other:?}"),
    }
    let deleted = c
        .try_txn(txn(vec![op(request_op::Request::RequestDeleteRange(
            del_req("keep/b"),
        ))]))
        .await
        .expect("delete-only txn during NOSPACE");
    assert!(deleted.succeeded);
    // Lease revoke works and deletes the lease's key.
    c.try_revoke(lease).await.expect("revoke during NOSPACE");
    assert_eq!(c.get("leased").await, None);
    // Deletes work.
    let gone = c
        .try_delete(DeleteRangeRequest {
            key: b("big/"),
            range_end: prefix_end("big/"),
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete during NOSPACE");
    assert_eq!(gone.deleted, i64::try_from(acked.len()).unwrap());
    // Compaction works.
    let now = c.revision().await;
    c.compact(now).await;
    assert_no_space(c.try_put(put_req("tiny", "t")).await);

    // Disarming without defragmenting: the quota is still enforced against
    // the file as it is (redb may have trimmed some of its free tail; etcd's
    // bbolt file keeps its size), so filling again is refused again and
    // raises the alarm again.
    let disarmed = c
        .try_alarm(AlarmAction::Deactivate, me, AlarmType::Nospace)
        .await
        .unwrap();
    assert_eq!(disarmed.alarms, vec![nospace(me)]);
    assert!(c.alarms().await.is_empty());
    let (again, refused) = fill(&mut c, "again/").await;
    assert_no_space(Err::<(), _>(refused));
    assert_eq!(c.alarms().await, vec![nospace(me)], "raised again");
    let gone = c
        .try_delete(DeleteRangeRequest {
            key: b("again/"),
            range_end: prefix_end("again/"),
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete during NOSPACE");
    assert_eq!(gone.deleted, i64::try_from(again.len()).unwrap());
    if !again.is_empty() {
        let now = c.revision().await;
        c.compact(now).await;
    }
    let size = c.status().await.db_size;

    // Defragmentation works during the alarm and shrinks the file, but does
    // not disarm it.
    c.try_defragment().await.expect("defragment during NOSPACE");
    let after = c.status().await.db_size;
    assert!(after < size / 2, "defragment left {after} of {size} bytes");
    assert_no_space(c.try_put(put_req("tiny", "t")).await);
    assert_eq!(c.alarms().await, vec![nospace(me)]);

    // Disarm: the alarm is gone everywhere and writes resume.
    let disarmed = c
        .try_alarm(AlarmAction::Deactivate, me, AlarmType::Nospace)
        .await
        .unwrap();
    assert_eq!(disarmed.alarms, vec![nospace(me)]);
    assert!(c.alarms().await.is_empty());
    assert!(c.status().await.errors.is_empty());
    assert_eq!(
        health(&m).await,
        (200, serde_json::json!({"health": "true"}))
    );
    c.put("after", &blob(BIG)).await;
    c.put("tiny", "t").await;
    let put_txn = txn(vec![op(request_op::Request::RequestPut(put_req("t", "t")))]);
    c.try_txn(put_txn).await.expect("txn put after disarm");
    c.try_grant(600, 0x7a13).await.expect("grant after disarm");

    // Nothing was lost or resurrected.
    let (_, all) = c.all_at(0).await;
    assert_eq!(keys(&all), ["after", "keep/a", "t", "tiny"]);
    assert_eq!(c.get("keep/a").await.unwrap().value, b("1"));
}

async fn alarm_api_activate_get_deactivate(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    let me = c.member_id().await;
    c.put("k", "v").await;

    for _ in 0..2 {
        // Activating twice answers with the alarm both times.
        let resp = c
            .try_alarm(AlarmAction::Activate, me, AlarmType::Nospace)
            .await
            .expect("ACTIVATE");
        assert_eq!(resp.alarms, vec![nospace(me)]);
    }
    assert_eq!(c.alarms().await, vec![nospace(me)]);
    let corrupt = c
        .try_alarm(AlarmAction::Get, 0, AlarmType::Corrupt)
        .await
        .unwrap();
    assert!(corrupt.alarms.is_empty());
    assert_eq!(c.status().await.errors, vec![status_error(me)]);
    // Raised by hand, far below the quota, it refuses writes all the same.
    assert_no_space(c.try_put(put_req("k", "w")).await);
    assert_no_space(c.try_grant(60, 0).await);
    assert_eq!(c.get("k").await.unwrap().value, b("v"));

    let resp = c
        .try_alarm(AlarmAction::Deactivate, me, AlarmType::Nospace)
        .await
        .expect("DEACTIVATE");
    assert_eq!(resp.alarms, vec![nospace(me)]);
    // Disarming what is not active answers with no alarm.
    let resp = c
        .try_alarm(AlarmAction::Deactivate, me, AlarmType::Nospace)
        .await
        .expect("second DEACTIVATE");
    assert!(resp.alarms.is_empty(), "{resp:?}");
    assert!(c.alarms().await.is_empty());
    assert!(c.status().await.errors.is_empty());
    c.put("k", "w").await;
}

async fn alarm_survives_restart(kind: Kind) {
    let mut m = Member::start(kind, &["--quota-backend-bytes", QUOTA]).await;
    let mut c = m.client().await;
    let me = c.member_id().await;
    let (acked, refused) = fill(&mut c, "big/").await;
    assert_no_space(Err::<(), _>(refused));
    assert_eq!(c.alarms().await, vec![nospace(me)]);

    m.restart().await;
    let mut c = m.client().await;
    assert_eq!(c.member_id().await, me);
    assert_eq!(
        c.alarms().await,
        vec![nospace(me)],
        "the alarm is persisted"
    );
    assert_eq!(c.status().await.errors, vec![status_error(me)]);
    assert_no_space(c.try_put(put_req("tiny", "t")).await);
    let (last, _) = acked.last().unwrap();
    assert_eq!(c.get(last).await.unwrap().value.len(), BIG);

    // Recover, and the recovery is persisted too.
    let gone = c
        .try_delete(DeleteRangeRequest {
            key: b("big/"),
            range_end: prefix_end("big/"),
            ..DeleteRangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(gone.deleted, i64::try_from(acked.len()).unwrap());
    let now = c.revision().await;
    c.compact(now).await;
    c.try_defragment().await.expect("defragment");
    c.try_alarm(AlarmAction::Deactivate, me, AlarmType::Nospace)
        .await
        .unwrap();
    m.restart().await;
    let mut c = m.client().await;
    assert!(c.alarms().await.is_empty(), "the disarm is persisted");
    c.put("tiny", "t").await;
}
