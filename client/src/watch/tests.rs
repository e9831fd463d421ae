//! The session task against in-memory streams on a paused clock: sharing a
//! stream, resuming after a break, giving up, cancel on drop, compaction.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{ResponseHeader, WatchRequest, WatchResponse, watch_request};
use rollcall_proto::mvccpb::event::EventType;
use rollcall_proto::mvccpb::{Event, KeyValue};
use tokio_stream::StreamExt;

use super::session::Config;
use super::{WatchOptions, WatchSession, Watcher};
use crate::backoff::RetryPolicy;
use crate::error::WatchError;
use crate::stream::fake::{self, FakeServer, FakeStream};

type Server = FakeServer<WatchRequest, WatchResponse>;
type Stream = FakeStream<WatchRequest, WatchResponse>;

fn session(retry: RetryPolicy) -> (WatchSession, Server) {
    let (opener, server) = fake::server();
    let session = WatchSession::start(Config {
        opener,
        retry,
        open_timeout: Duration::from_secs(5),
    });
    (session, server)
}

async fn opened(server: &mut Server) -> Stream {
    match server.opened.recv().await {
        Some(stream) => stream,
        None => panic!("no stream opened"),
    }
}

/// The start revision of the next request, which must be a create.
async fn next_create(stream: &mut Stream) -> i64 {
    match stream.requests.next().await.and_then(|r| r.request_union) {
        Some(watch_request::RequestUnion::CreateRequest(c)) => c.start_revision,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

fn send(stream: &Stream, resp: WatchResponse) {
    let _ = stream.responses.send(Ok(resp));
}

fn created(stream: &Stream, watch_id: i64, revision: i64) {
    send(
        stream,
        WatchResponse {
            header: header(revision),
            watch_id,
            created: true,
            ..WatchResponse::default()
        },
    );
}

fn put_at(stream: &Stream, watch_id: i64, revision: i64) {
    send(
        stream,
        WatchResponse {
            header: header(revision),
            watch_id,
            events: vec![Event {
                r#type: EventType::Put as i32,
                kv: Some(KeyValue {
                    key: Bytes::from_static(b"k"),
                    mod_revision: revision,
                    ..KeyValue::default()
                }),
                prev_kv: None,
            }],
            ..WatchResponse::default()
        },
    );
}

async fn next_revision(watcher: &mut Watcher) -> i64 {
    match watcher.next().await {
        Some(Ok(batch)) => batch.last_revision().unwrap_or(-1),
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// Starts a watch of "k" and plays its creation on `stream` as `watch_id`.
async fn watch(
    session: &WatchSession,
    stream: &mut Stream,
    watch_id: i64,
    revision: i64,
) -> Watcher {
    let pending = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    assert_eq!(next_create(stream).await, 0);
    created(stream, watch_id, revision);
    match pending.await {
        Ok(Ok(watcher)) => watcher,
        other => panic!("watch not created: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn resumes_after_a_break_from_the_next_revision() {
    let (session, mut server) = session(RetryPolicy::default());
    let pending = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 0, 10);
    let mut watcher = match pending.await {
        Ok(Ok(w)) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(watcher.created_revision(), 10);
    put_at(&stream, 0, 11);
    put_at(&stream, 0, 12);
    assert_eq!(next_revision(&mut watcher).await, 11);
    assert_eq!(next_revision(&mut watcher).await, 12);

    drop(stream);
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 13);
    created(&stream, 0, 14);
    put_at(&stream, 0, 13);
    put_at(&stream, 0, 14);
    assert_eq!(next_revision(&mut watcher).await, 13);
    assert_eq!(next_revision(&mut watcher).await, 14);
    assert_eq!(session.reconnects(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_watch_from_now_broken_before_any_event_resumes_after_creation() {
    let (session, mut server) = session(RetryPolicy::default());
    let first = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 0, 10);
    let mut watcher = match first.await {
        Ok(Ok(w)) => w,
        other => panic!("{other:?}"),
    };
    drop(stream);
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 11);
    created(&stream, 0, 12);
    put_at(&stream, 0, 11);
    assert_eq!(next_revision(&mut watcher).await, 11);
}

#[tokio::test(start_paused = true)]
async fn watchers_share_one_stream() {
    let (session, mut server) = session(RetryPolicy::default());
    let first = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 0, 5);
    let mut a = match first.await {
        Ok(Ok(w)) => w,
        other => panic!("{other:?}"),
    };
    let mut b = watch(&session, &mut stream, 1, 5).await;
    put_at(&stream, 1, 6);
    put_at(&stream, 0, 7);
    assert_eq!(next_revision(&mut b).await, 6);
    assert_eq!(next_revision(&mut a).await, 7);
    assert_eq!(server.attempts.load(Ordering::SeqCst), 1);

    // Progress on request reaches both.
    assert!(session.request_progress().is_ok());
    match stream.requests.next().await.and_then(|r| r.request_union) {
        Some(watch_request::RequestUnion::ProgressRequest(_)) => {}
        other => panic!("expected a progress request, got {other:?}"),
    }
    send(
        &stream,
        WatchResponse {
            header: header(9),
            watch_id: -1,
            ..WatchResponse::default()
        },
    );
    for w in [&mut a, &mut b] {
        match w.next().await {
            Some(Ok(batch)) => assert!(batch.is_progress() && batch.revision == 9),
            other => panic!("expected progress, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_the_retry_policy() {
    let retry = RetryPolicy {
        max_attempts: Some(2),
        ..RetryPolicy::default()
    };
    let (session, mut server) = session(retry);
    let first = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 0, 5);
    let mut watcher = match first.await {
        Ok(Ok(w)) => w,
        other => panic!("{other:?}"),
    };
    server.fail_opens.store(u32::MAX, Ordering::SeqCst);
    drop(stream);
    match watcher.next().await {
        Some(Err(WatchError::Disconnected { attempts, .. })) => assert_eq!(attempts, 3),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(watcher.next().await.is_none());
    // 1 open + 2 refused retries.
    assert_eq!(server.attempts.load(Ordering::SeqCst), 3);

    // The session is still usable once the server is back.
    server.fail_opens.store(0, Ordering::SeqCst);
    let again = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 0, 6);
    assert!(matches!(again.await, Ok(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_watcher_cancels_it() {
    let (session, mut server) = session(RetryPolicy::default());
    let first = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    created(&stream, 4, 5);
    let watcher = match first.await {
        Ok(Ok(w)) => w,
        other => panic!("{other:?}"),
    };
    drop(watcher);
    match stream.requests.next().await.and_then(|r| r.request_union) {
        Some(watch_request::RequestUnion::CancelRequest(c)) => assert_eq!(c.watch_id, 4),
        other => panic!("expected a cancel, got {other:?}"),
    }
    // With the session handle gone too, the stream closes.
    drop(session);
    assert!(stream.requests.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn compaction_and_refusal_are_errors() {
    let (session, mut server) = session(RetryPolicy::default());
    let refused = tokio::spawn({
        let session = session.clone();
        async move { session.watch("k", WatchOptions::new()).await }
    });
    let mut stream = opened(&mut server).await;
    assert_eq!(next_create(&mut stream).await, 0);
    send(
        &stream,
        WatchResponse {
            header: header(5),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: "mvcc: watcher range is empty".into(),
            ..WatchResponse::default()
        },
    );
    assert!(matches!(
        refused.await,
        Ok(Err(WatchError::Canceled { reason })) if reason == "mvcc: watcher range is empty"
    ));

    let mut watcher = watch(&session, &mut stream, 1, 50).await;
    send(
        &stream,
        WatchResponse {
            header: header(50),
            watch_id: 1,
            canceled: true,
            compact_revision: 40,
            ..WatchResponse::default()
        },
    );
    match watcher.next().await {
        Some(Err(e)) => assert_eq!(e.compact_revision(), Some(40)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watcher.next().await.is_none());
}
