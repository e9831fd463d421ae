//! One whole server (`server::run`) in this process on a loopback port,
//! driven through the generated gRPC clients, with tokio's clock paused so
//! that lease time is virtual: a lease expires after its TTL of virtual
//! time, however long the machine takes, and keep-alives postpone it.
//!
//! How the clock is handled: the clock is paused and, while a [`ClockHold`]
//! is held, does not auto-advance (otherwise every wait for the applier
//! thread or the socket would let it jump to the next timer, i.e. the next
//! lease check). It moves only by `tokio::time::advance`.
//!
//! The applier thread runs inside the runtime's context (`Proposer::start`),
//! so the deadline it gives a newly granted lease is virtual too: a lease
//! granted and never kept alive expires within one lease check of its TTL,
//! even when real time passes before the grant.

use std::time::Duration;

use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
    WatchResponse, watch_request,
};
use rollcall_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use super::fixture::{ClockHold, InProcess, REAL_WAIT, b, real_timeout};

/// The server's lease check interval (`serve_config`).
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

struct Clients {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
}

impl Clients {
    fn new(server: &InProcess) -> Self {
        Self {
            kv: KvClient::new(server.channel.clone()),
            lease: LeaseClient::new(server.channel.clone()),
            watch: WatchClient::new(server.channel.clone()),
        }
    }

    async fn grant(&mut self, ttl: i64) -> i64 {
        let resp = self
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await
            .expect("grant")
            .into_inner();
        assert_eq!(resp.ttl, ttl);
        resp.id
    }

    async fn put(&mut self, key: &str, lease: i64) -> i64 {
        let resp = self
            .kv
            .put(PutRequest {
                key: b(key),
                value: b("v"),
                lease,
                ..Default::default()
            })
            .await
            .expect("put")
            .into_inner();
        resp.header.map_or(0, |h| h.revision)
    }

    /// Whether `key` exists, read after a write so that any revoke the
    /// expiry loop already started is committed before the read: the write
    /// queues behind it on the applier.
    async fn exists_after_sync(&mut self, key: &str) -> (bool, i64) {
        let synced_at = self.put("sync", 0).await;
        let resp = self
            .kv
            .range(RangeRequest {
                key: b(key),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        (resp.count == 1, synced_at)
    }

    async fn ttl(&mut self, id: i64) -> i64 {
        self.lease
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
            .await
            .expect("time to live")
            .into_inner()
            .ttl
    }

    /// A watch stream on `key` from the next revision, once created.
    async fn watch(&mut self, key: &str) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
        let (tx, rx) = mpsc::channel(4);
        tx.send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: b(key),
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("queue create");
        let mut stream = self
            .watch
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch")
            .into_inner();
        let created = next_watch_response(&mut stream).await;
        assert!(created.created, "{created:?}");
        (tx, stream)
    }
}

async fn next_watch_response(stream: &mut Streaming<WatchResponse>) -> WatchResponse {
    real_timeout(REAL_WAIT, stream.message())
        .await
        .expect("watch stream failed")
        .expect("watch stream ended")
}

/// A keep-alive stream: send an id, read the TTL it was renewed for.
struct KeepAlive {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    async fn open(clients: &mut Clients) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let rx = clients
            .lease
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .expect("keep-alive stream")
            .into_inner();
        Self { tx, rx }
    }

    async fn renew(&mut self, id: i64) -> i64 {
        self.tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .expect("send keep-alive");
        real_timeout(REAL_WAIT, self.rx.message())
            .await
            .expect("keep-alive stream failed")
            .expect("keep-alive stream ended")
            .ttl
    }
}

/// Moves the paused clock to `at` and lets the timers that fired run.
async fn advance_to(at: Instant) {
    let now = Instant::now();
    if at > now {
        tokio::time::advance(at - now).await;
    }
    // The lease check wakes on its own tick; give it a turn to take what
    // expired and hand it to the applier.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_after_its_ttl_of_virtual_time_from_the_last_keep_alive() {
    let hold = ClockHold::new();
    let server = InProcess::start().await;
    let mut clients = Clients::new(&server);
    let id = clients.grant(5).await;
    let mut keep_alive = KeepAlive::open(&mut clients).await;
    assert_eq!(keep_alive.renew(id).await, 5);
    let renewed = Instant::now();
    clients.put("svc/a", id).await;
    let (_watch_tx, mut events) = clients.watch("svc/a").await;

    advance_to(renewed + Duration::from_millis(4900)).await;
    let (alive, _) = clients.exists_after_sync("svc/a").await;
    assert!(alive, "expired 100 ms before its TTL");

    assert_eq!(keep_alive.renew(id).await, 5);
    let renewed = Instant::now();
    // Past the TTL counted from the grant, short of it from the keep-alive.
    advance_to(renewed + Duration::from_millis(4900)).await;
    let (alive, last_sync) = clients.exists_after_sync("svc/a").await;
    assert!(alive, "the keep-alive did not postpone the expiry");
    assert!(clients.ttl(id).await >= 0);

    advance_to(renewed + Duration::from_secs(5) + CHECK_INTERVAL).await;
    let resp = next_watch_response(&mut events).await;
    let deleted: Vec<_> = resp
        .events
        .iter()
        .map(|e| (e.r#type, e.kv.as_ref().map(|kv| kv.key.clone())))
        .collect();
    assert_eq!(deleted, vec![(EventType::Delete as i32, Some(b("svc/a")))]);
    // The watcher saw nothing before this DELETE, and the DELETE came after
    // the last check that found the key alive.
    let delete_rev = resp.events[0].kv.as_ref().map_or(0, |kv| kv.mod_revision);
    assert!(delete_rev > last_sync, "{delete_rev} <= {last_sync}");
    let (alive, _) = clients.exists_after_sync("svc/a").await;
    assert!(!alive);
    assert_eq!(clients.ttl(id).await, -1, "an expired lease is revoked");
    assert_eq!(
        keep_alive.renew(id).await,
        0,
        "an expired lease cannot be renewed"
    );

    drop((keep_alive, clients, _watch_tx, events));
    hold.release().await;
    server.stop().await.expect("clean shutdown");
}

/// Grants a lease of `ttl` seconds with one key, then advances the paused
/// clock in check-interval steps until the key is gone. Returns the virtual
/// time from the grant to the expiry and the real time that elapsed before
/// the grant was answered (bounding how late, in virtual terms, the
/// applier's real-clock deadline can be; see the module doc).
/// `real_delay` of real time is spent before the grant, so the real and the
/// paused clock disagree by at least that much.
async fn expire_without_keep_alives(ttl: u64, real_delay: Duration) -> (Duration, Duration) {
    let started = std::time::Instant::now();
    let hold = ClockHold::new();
    let server = InProcess::start().await;
    let mut clients = Clients::new(&server);
    // Not a synchronisation: it only makes real time pass while the paused
    // clock stands still.
    std::thread::sleep(real_delay);
    let granted = Instant::now();
    let id = clients.grant(i64::try_from(ttl).expect("ttl")).await;
    let lateness = started.elapsed();
    clients.put("svc/b", id).await;
    let ttl = Duration::from_secs(ttl);

    advance_to(granted + ttl - CHECK_INTERVAL).await;
    let (alive, _) = clients.exists_after_sync("svc/b").await;
    assert!(alive, "expired before its TTL");

    let limit = granted + ttl + lateness + 3 * CHECK_INTERVAL;
    let mut gone_at = None;
    while Instant::now() < limit {
        advance_to(Instant::now() + CHECK_INTERVAL).await;
        if !clients.exists_after_sync("svc/b").await.0 {
            gone_at = Some(Instant::now() - granted);
            break;
        }
    }
    let gone_at = gone_at.unwrap_or_else(|| panic!("still alive at {:?}", limit - granted));

    drop(clients);
    hold.release().await;
    server.stop().await.expect("clean shutdown");
    (gone_at, lateness)
}

#[tokio::test(start_paused = true)]
async fn a_lease_without_keep_alives_expires_after_its_ttl_of_virtual_time() {
    let (gone_at, _) = expire_without_keep_alives(3, Duration::ZERO).await;
    assert!(
        gone_at >= Duration::from_secs(3),
        "expired after {gone_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_without_keep_alives_expires_within_one_check_of_its_ttl() {
    let (gone_at, lateness) = expire_without_keep_alives(3, Duration::from_millis(500)).await;
    assert!(
        gone_at <= Duration::from_secs(3) + CHECK_INTERVAL,
        "expired after {gone_at:?} of virtual time ({lateness:?} of real time before the grant)"
    );
}

#[tokio::test(start_paused = true)]
async fn revoking_a_lease_deletes_all_its_keys_in_one_revision_seen_by_a_watcher() {
    let hold = ClockHold::new();
    let server = InProcess::start().await;
    let mut clients = Clients::new(&server);
    let id = clients.grant(60).await;
    for key in ["svc/x/2", "svc/x/1", "svc/x/3"] {
        clients.put(key, id).await;
    }
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b("svc/x/"),
                range_end: b("svc/x0"),
                ..Default::default()
            },
        )),
    })
    .await
    .expect("queue create");
    let mut events = clients
        .watch
        .watch(ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    assert!(next_watch_response(&mut events).await.created);

    let revoked = clients
        .lease
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .expect("revoke")
        .into_inner()
        .header
        .map_or(0, |h| h.revision);
    let resp = next_watch_response(&mut events).await;
    let got: Vec<_> = resp
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.clone().unwrap_or_default();
            (
                e.r#type,
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .collect();
    let del = EventType::Delete as i32;
    assert_eq!(
        got,
        vec![
            (del, "svc/x/1".into(), revoked),
            (del, "svc/x/2".into(), revoked),
            (del, "svc/x/3".into(), revoked),
        ]
    );

    drop((clients, tx, events));
    hold.release().await;
    server.stop().await.expect("clean shutdown");
}
