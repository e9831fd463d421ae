//! `watch/hub.rs`: watchers created and canceled, committed events fanned out
//! in revision order without duplicates, catch-up from history joining the
//! live stream with no gap or duplicate, slow consumers turned into victims
//! that still receive everything, progress notifications, and compacted
//! start revisions. Writes go through the real applier ([`Node`]).

use std::time::Duration;

use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc::error::TryRecvError;

use super::fixture::{
    Node, REAL_WAIT, Watch, b, compact, delete, key_range, real_timeout, watch_spec,
};
use crate::watch::{StreamMsg, WatchSpec};

fn prefix(p: &str) -> crate::mvcc::KeyRange {
    let end = crate::watch::index::prefix_end(p.as_bytes());
    crate::mvcc::KeyRange::new(&b(p), &bytes::Bytes::from(end))
}

async fn created(watch: &mut Watch) -> i64 {
    match watch.next().await {
        StreamMsg::Created { rev, .. } => rev,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn revisions(events: &[(i64, Event)]) -> Vec<i64> {
    events.iter().map(|(rev, _)| *rev).collect()
}

fn assert_nothing_queued(watch: &mut Watch) {
    match watch.rx.try_recv() {
        // Disconnected: the hub dropped the watcher's sender (canceled).
        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        other => panic!("expected nothing queued, got {other:?}"),
    }
}

fn event(kind: EventType, key: &str, rev: i64) -> Event {
    Event {
        r#type: kind as i32,
        kv: Some(KeyValue {
            key: b(key),
            mod_revision: rev,
            ..Default::default()
        }),
        prev_kv: None,
    }
}

/// Waits, in bounded real time, until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    real_timeout(REAL_WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(cond(), "{what}");
}

#[tokio::test]
async fn created_comes_first_and_names_the_revision_the_watcher_starts_after() {
    let node = Node::start();
    node.put("a", "1").await;
    let mut watch = node.watch(watch_spec(prefix("a"), 0), 8).await;
    assert_eq!(created(&mut watch).await, 2);
    assert_nothing_queued(&mut watch);
}

#[tokio::test]
async fn a_watcher_receives_the_events_of_its_range_only_in_revision_order() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(prefix("/s/"), 0), 8).await;
    created(&mut watch).await;
    node.put("/s/a", "1").await; // 2
    node.put("/t/a", "1").await; // 3
    node.put("/s/b", "1").await; // 4
    node.propose(delete("/s/a", "")).await.expect("delete"); // 5
    let events = watch.events_until(5).await;
    assert_eq!(revisions(&events), vec![2, 4, 5]);
    assert_eq!(events[2].1.r#type, EventType::Delete as i32);
    assert_nothing_queued(&mut watch);
}

#[tokio::test]
async fn a_canceled_watcher_receives_nothing_more_and_cancels_once() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(key_range("k", ""), 0), 8).await;
    created(&mut watch).await;
    assert!(node.hub.cancel(watch.key));
    assert!(!node.hub.cancel(watch.key));
    // The applier publishes before it answers: nothing can still be coming.
    node.put("k", "1").await;
    assert_nothing_queued(&mut watch);
}

#[tokio::test]
async fn closing_a_stream_removes_its_watchers_only() {
    let node = Node::start();
    let on = |stream| WatchSpec {
        stream,
        ..watch_spec(key_range("k", ""), 0)
    };
    let mut closed_a = node.watch(on(5), 8).await;
    let mut closed_b = node.watch(on(5), 8).await;
    let mut open = node.watch(on(6), 8).await;
    for w in [&mut closed_a, &mut closed_b, &mut open] {
        created(w).await;
    }
    node.hub.close_stream(5);
    node.put("k", "1").await;
    assert_nothing_queued(&mut closed_a);
    assert_nothing_queued(&mut closed_b);
    assert_eq!(revisions(&open.events_until(2).await), vec![2]);
    assert!(!node.hub.cancel(closed_a.key));
    assert!(node.hub.cancel(open.key));
}

#[tokio::test]
async fn a_published_batch_travels_in_one_message_and_given_revisions_are_not_repeated() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(prefix("k"), 0), 8).await;
    created(&mut watch).await;
    let put = EventType::Put;
    node.hub.publish(
        &[
            (2, vec![event(put, "k1", 2)]),
            (
                3,
                vec![event(put, "k2", 3), event(put, "x", 3), event(put, "k3", 3)],
            ),
        ],
        3,
    );
    // Revision 3 again (a duplicate) and a new revision 4.
    node.hub.publish(
        &[
            (3, vec![event(put, "k3", 3)]),
            (4, vec![event(put, "k4", 4)]),
        ],
        4,
    );
    let keys_of = |msg: StreamMsg| match msg {
        StreamMsg::Events { rev, events, .. } => (
            rev,
            events
                .iter()
                .filter_map(|e| {
                    e.kv.as_ref()
                        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                })
                .collect::<Vec<_>>(),
        ),
        other => panic!("expected events, got {other:?}"),
    };
    assert_eq!(
        keys_of(watch.next().await),
        (3, vec!["k1".into(), "k2".into(), "k3".into()])
    );
    assert_eq!(keys_of(watch.next().await), (4, vec!["k4".into()]));
    assert_nothing_queued(&mut watch);
}

#[tokio::test]
async fn no_put_and_no_delete_filters_drop_those_events() {
    let node = Node::start();
    let mut no_put = node
        .watch(
            WatchSpec {
                no_put: true,
                ..watch_spec(key_range("k", ""), 0)
            },
            8,
        )
        .await;
    let mut no_delete = node
        .watch(
            WatchSpec {
                no_delete: true,
                ..watch_spec(key_range("k", ""), 0)
            },
            8,
        )
        .await;
    created(&mut no_put).await;
    created(&mut no_delete).await;
    node.put("k", "1").await; // 2
    node.propose(delete("k", "")).await.expect("delete"); // 3
    node.put("k", "2").await; // 4
    assert_eq!(revisions(&no_put.events_until(3).await), vec![3]);
    assert_eq!(revisions(&no_delete.events_until(4).await), vec![2, 4]);
    node.put("k", "3").await; // 5
    assert_nothing_queued(&mut no_put);
}

#[tokio::test]
async fn a_watcher_starting_in_the_future_receives_events_from_that_revision() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(key_range("k", ""), 4), 8).await;
    created(&mut watch).await;
    for v in ["1", "2", "3", "4"] {
        node.put("k", v).await; // 2..=5
    }
    assert_eq!(revisions(&watch.events_until(5).await), vec![4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_from_history_catches_up_and_joins_live_with_no_gap_or_duplicate() {
    let node = std::sync::Arc::new(Node::start());
    // More history than one catch-up step reads.
    let head = node.put_many("old/", 2500).await;
    let mut watch = node.watch(watch_spec(key_range("\0", "\0"), 2), 64).await;
    assert_eq!(created(&mut watch).await, head);
    // Live writes while the watcher is still reading history.
    let writer = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut newest = 0;
            for i in 0..300 {
                newest = node.put(&format!("new/{i}"), "v").await;
            }
            newest
        })
    };
    let first = watch.events_until(head).await;
    let newest = writer.await.expect("writer");
    assert_eq!(newest, head + 300);
    let rest = if revisions(&first).last() == Some(&newest) {
        Vec::new()
    } else {
        watch.events_until(newest).await
    };
    let all: Vec<i64> = revisions(&first)
        .into_iter()
        .chain(revisions(&rest))
        .collect();
    // Every revision exactly once. (On a loaded machine the 64-message
    // stream may also fill and send the watcher back to history as a slow
    // consumer; it must deliver the same.)
    assert_eq!(all, (2..=newest).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_slow_consumer_becomes_a_victim_and_still_receives_everything() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(prefix("k"), 0), 2).await;
    // Created and the first event fill the stream; the next delivery finds
    // it full, and the watcher falls back to history.
    for i in 0..20 {
        node.put(&format!("k{i}"), "v").await; // 2..=21
    }
    assert_eq!(node.metrics.slow_watchers.get(), 1);
    let progress = node.hub.progress_of(0);
    assert!(
        matches!(progress, StreamMsg::Progress { rev, .. } if rev < 21),
        "a victim's stream must not claim progress it has not delivered: {progress:?}"
    );
    created(&mut watch).await;
    let events = watch.events_until(21).await;
    assert_eq!(revisions(&events), (2..=21).collect::<Vec<_>>());
    eventually("the victim rejoins the live watchers", || {
        node.metrics.slow_watchers.get() == 0
    })
    .await;
    node.put("k-live", "v").await;
    assert_eq!(revisions(&watch.events_until(22).await), vec![22]);
    assert_nothing_queued(&mut watch);
}

#[tokio::test]
async fn progress_is_notified_to_idle_synced_watchers_that_asked_for_it() {
    let node = Node::start();
    let mut asked = node
        .watch(
            WatchSpec {
                progress_notify: true,
                ..watch_spec(key_range("k", ""), 0)
            },
            8,
        )
        .await;
    let mut not_asked = node.watch(watch_spec(key_range("k", ""), 0), 8).await;
    created(&mut asked).await;
    created(&mut not_asked).await;
    node.put("other", "v").await; // 2: not in the range
    node.hub.notify_progress();
    assert!(matches!(
        asked.next().await,
        StreamMsg::Progress { rev: 2, .. }
    ));
    assert_nothing_queued(&mut not_asked);

    // A watcher that just received events skips one round.
    node.put("k", "v").await; // 3
    assert_eq!(revisions(&asked.events_until(3).await), vec![3]);
    node.hub.notify_progress();
    assert_nothing_queued(&mut asked);
    node.hub.notify_progress();
    assert!(matches!(
        asked.next().await,
        StreamMsg::Progress { rev: 3, .. }
    ));
}

#[tokio::test]
async fn progress_of_a_stream_of_synced_watchers_is_the_published_revision() {
    let node = Node::start();
    let mut watch = node.watch(watch_spec(key_range("k", ""), 0), 8).await;
    created(&mut watch).await;
    node.put("x", "v").await;
    node.put("y", "v").await;
    assert!(matches!(
        node.hub.progress_of(0),
        StreamMsg::Progress {
            watch_id: -1,
            rev: 3
        }
    ));
}

#[tokio::test]
async fn progress_while_a_watcher_catches_up_from_the_first_revision_is_revision_1() {
    let node = Node::start();
    node.put("k", "v").await; // 2
    node.put("k", "w").await; // 3
    // Created from revision 1 with room for nothing but its created
    // response: its catch-up cannot deliver yet. Revision 1 holds no event,
    // so it is the one revision the stream can answer with (0 would read as
    // an unset header revision, filled in with the current one).
    let mut watch = node.watch(watch_spec(key_range("k", ""), 1), 1).await;
    assert!(
        matches!(node.hub.progress_of(0), StreamMsg::Progress { rev: 1, .. }),
        "a progress answer must not promise revisions the watcher has not had"
    );
    created(&mut watch).await;
    assert_eq!(revisions(&watch.events_until(3).await), vec![2, 3]);
    eventually("the watcher is synced", || {
        matches!(node.hub.progress_of(0), StreamMsg::Progress { rev: 3, .. })
    })
    .await;
}

#[tokio::test]
async fn a_watcher_starting_below_the_compact_revision_is_canceled_with_it() {
    let node = Node::start();
    for v in ["1", "2", "3", "4"] {
        node.put("k", v).await; // 2..=5
    }
    node.propose(compact(4)).await.expect("compact");
    let mut watch = node.watch(watch_spec(key_range("k", ""), 3), 8).await;
    created(&mut watch).await;
    match watch.next().await {
        StreamMsg::Canceled { compact_rev, .. } => assert_eq!(compact_rev, 4),
        other => panic!("expected Canceled, got {other:?}"),
    }
    assert!(!node.hub.cancel(watch.key));
}

#[tokio::test]
async fn a_watcher_starting_at_the_compact_revision_replays_from_it() {
    let node = Node::start();
    for v in ["1", "2", "3", "4"] {
        node.put("k", v).await; // 2..=5
    }
    node.propose(compact(4)).await.expect("compact");
    let mut watch = node.watch(watch_spec(key_range("k", ""), 4), 8).await;
    created(&mut watch).await;
    assert_eq!(revisions(&watch.events_until(5).await), vec![4, 5]);
}

#[tokio::test]
async fn a_watcher_starting_at_the_compact_revision_sees_its_deletes() {
    // etcd 3.4 loses these (etcd-io/etcd#18089); rollcall keeps every record
    // of the compact revision.
    let node = Node::start();
    node.put("k", "1").await; // 2
    node.put("j", "1").await; // 3
    node.propose(delete("k", "")).await.expect("delete"); // 4
    node.propose(compact(4)).await.expect("compact");
    let mut watch = node.watch(watch_spec(key_range("\0", "\0"), 4), 8).await;
    created(&mut watch).await;
    let events = watch.events_until(4).await;
    assert_eq!(revisions(&events), vec![4]);
    assert_eq!(events[0].1.r#type, EventType::Delete as i32);
    assert_eq!(
        events[0].1.kv.as_ref().map(|kv| kv.key.clone()),
        Some(b("k"))
    );
}

#[tokio::test]
async fn the_events_of_one_revision_read_from_history_travel_in_one_message() {
    let node = Node::start();
    node.propose(super::fixture::txn(
        rollcall_proto::etcdserverpb::TxnRequest {
            success: vec![
                super::fixture::op_put("t/a", "1"),
                super::fixture::op_put("t/b", "1"),
                super::fixture::op_put("t/c", "1"),
            ],
            ..Default::default()
        },
    ))
    .await
    .expect("txn"); // 2
    let mut watch = node.watch(watch_spec(prefix("t/"), 2), 8).await;
    created(&mut watch).await;
    match watch.next().await {
        StreamMsg::Events { events, .. } => {
            let keys: Vec<_> = events
                .iter()
                .filter_map(|e| e.kv.as_ref().map(|kv| (kv.key.clone(), kv.mod_revision)))
                .collect();
            assert_eq!(keys, vec![(b("t/a"), 2), (b("t/b"), 2), (b("t/c"), 2)]);
        }
        other => panic!("expected events, got {other:?}"),
    }
}

#[tokio::test]
async fn watchers_beyond_the_limit_are_refused_until_one_is_canceled() {
    let node = Node::with_max_watchers(2);
    let first = node.watch(watch_spec(key_range("a", ""), 0), 8).await;
    let _second = node.watch(watch_spec(key_range("b", ""), 0), 8).await;
    let refused = node.try_watch(watch_spec(key_range("c", ""), 0), 8).await;
    assert!(matches!(
        refused,
        Err(crate::watch::hub::CreateError::TooMany(2))
    ));
    assert!(node.hub.cancel(first.key));
    assert!(
        node.try_watch(watch_spec(key_range("c", ""), 0), 8)
            .await
            .is_ok()
    );
    assert_eq!(node.metrics.watchers.get(), 2);
}
