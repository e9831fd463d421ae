//! [`LeaseKeeper`]: keeps one lease alive from a background task.
//!
//! The task holds one LeaseKeepAlive stream. It renews every TTL/3 after the
//! last answer (etcd clientv3's rhythm), sends again if a renewal is not
//! answered within `resend_after`, and re-opens the stream with backoff when
//! it breaks. It knows the lease lives at least until the send time of the
//! last answered renewal plus the TTL that answer granted: its *deadline*.
//!
//! The lease is *lost* when the server answers TTL 0 (revoked, or expired on
//! the server: [`LeaseLost::NotFound`]) or when the deadline passes without
//! an answered renewal ([`LeaseLost::Expired`]: the server may have let it
//! go). Either way the keeper stops, and whoever registered under the lease
//! must register again under a new one. Dropping the keeper stops renewing
//! (the lease then expires on its own; revoke it for an immediate removal).
//!
//! All timing uses `tokio::time`, so the tests below play it on a paused
//! clock against in-memory streams.

use std::collections::VecDeque;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rollcall_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::lease_not_found;
use crate::backoff::{Backoff, RetryPolicy};
use crate::error::ClientError;
use crate::stream::{Opener, Responses};

/// How a [`LeaseKeeper`] renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveOptions {
    /// Delays between attempts to re-open a broken stream. `max_attempts` is
    /// ignored: the keeper tries until the lease's deadline passes.
    pub retry: RetryPolicy,
    /// A renewal not answered within this long is sent again.
    pub resend_after: Duration,
}

impl KeepAliveOptions {
    /// Reconnects from 100 ms doubling to 2 s; resends after 500 ms (as
    /// clientv3's keep-alive loop).
    pub const DEFAULT: Self = Self {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_attempts: None,
        },
        resend_after: Duration::from_millis(500),
    };
}

impl Default for KeepAliveOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a kept lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    /// The server answered TTL 0: it no longer has the lease (revoked, or
    /// expired there).
    #[error("the server no longer has the lease (revoked or expired)")]
    NotFound,
    /// No renewal was answered before the lease's deadline (server
    /// unreachable or too slow); the server may have expired it.
    #[error("no renewal was answered before the lease's deadline")]
    Expired,
    /// The keeper's task is gone (the keeper was dropped, or the task panicked).
    #[error("the keeper stopped")]
    Stopped,
}

/// What a keeper knows about its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperState {
    /// The TTL (seconds) the last answered renewal granted.
    pub ttl: i64,
    /// When the last answered renewal was sent.
    pub renewed_at: Instant,
    /// The lease lives at least until then: `renewed_at + ttl`.
    pub deadline: Instant,
    /// Answered renewals, the first (in `keep_alive`) included.
    pub renewals: u64,
    /// Times the stream was re-opened after breaking.
    pub reconnects: u64,
    /// Set once, when the lease is lost; the keeper has stopped then.
    pub lost: Option<LeaseLost>,
}

/// The wait after an answered renewal before the next: a third of the TTL
/// (at least one second of TTL is assumed).
pub fn renew_interval(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1)) / 3
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl.max(0)).unwrap_or(0))
}

/// Keeps one lease alive until it is lost or the keeper is dropped. Made by
/// [`Client::keep_alive`](crate::Client::keep_alive).
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    state: watch::Receiver<KeeperState>,
    task: JoinHandle<()>,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaseKeeper {
    /// Opens a stream, renews once (failing if that fails or the lease is
    /// unknown), then hands the stream to the background task.
    pub(crate) async fn start(
        opener: Opener<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
        id: i64,
        options: KeepAliveOptions,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let (requests, rx) = mpsc::unbounded_channel();
        let sent = Instant::now();
        let _ = requests.send(LeaseKeepAliveRequest { id });
        let first = async {
            let mut responses = opener(UnboundedReceiverStream::new(rx)).await?;
            loop {
                match responses.next().await {
                    Some(Ok(resp)) if resp.id == id => return Ok((resp, responses)),
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Err(ClientError::from(status)),
                    None => {
                        return Err(ClientError::Transport(tonic::Status::unavailable(
                            "keep-alive stream closed before answering",
                        )));
                    }
                }
            }
        };
        let (resp, responses) = match tokio::time::timeout(timeout, first).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ClientError::Timeout(timeout)),
        };
        if resp.ttl <= 0 {
            return Err(lease_not_found());
        }
        let state = KeeperState {
            ttl: resp.ttl,
            renewed_at: sent,
            deadline: sent + ttl_duration(resp.ttl),
            renewals: 1,
            reconnects: 0,
            lost: None,
        };
        let (state_tx, state_rx) = watch::channel(state);
        let renewer = Renewer {
            opener,
            id,
            options,
            backoff: Backoff::new(options.retry),
            rng: SmallRng::from_rng(&mut rand::rng()),
            state: state_tx,
            next_send: Instant::now() + renew_interval(resp.ttl),
            in_flight: VecDeque::new(),
        };
        let task = tokio::spawn(renewer.run(Link {
            requests,
            responses,
        }));
        Ok(Self {
            id,
            state: state_rx,
            task,
        })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL (seconds) granted by the last answered renewal.
    pub fn ttl(&self) -> i64 {
        self.state.borrow().ttl
    }

    /// The lease lives at least until then.
    pub fn deadline(&self) -> Instant {
        self.state.borrow().deadline
    }

    /// A snapshot of what the keeper knows.
    pub fn state(&self) -> KeeperState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change (each renewal, the loss).
    pub fn subscribe(&self) -> watch::Receiver<KeeperState> {
        self.state.clone()
    }

    /// Whether the lease has been lost (the keeper has stopped).
    pub fn is_lost(&self) -> bool {
        self.state.borrow().lost.is_some()
    }

    /// Resolves when the lease is lost, with the reason.
    pub async fn lost(&self) -> LeaseLost {
        let mut state = self.state.clone();
        match state.wait_for(|s| s.lost.is_some()).await {
            Ok(s) => s.lost.unwrap_or(LeaseLost::Stopped),
            Err(_closed) => LeaseLost::Stopped,
        }
    }
}

/// One open keep-alive stream.
struct Link {
    requests: mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    responses: Responses<LeaseKeepAliveResponse>,
}

/// The background task's state.
struct Renewer {
    opener: Opener<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
    id: i64,
    options: KeepAliveOptions,
    backoff: Backoff,
    rng: SmallRng,
    state: watch::Sender<KeeperState>,
    /// When to send the next renewal.
    next_send: Instant,
    /// Send times of the renewals not answered yet, oldest first (the server
    /// answers a stream's renewals in order).
    in_flight: VecDeque<Instant>,
}

impl Renewer {
    fn deadline(&self) -> Instant {
        self.state.borrow().deadline
    }

    async fn run(mut self, link: Link) {
        let mut link = Some(link);
        let lost = loop {
            let step = match link.take() {
                Some(open) => self.serve(open).await,
                None => self.reconnect().await.map(|open| link = Some(open)),
            };
            if let Err(lost) = step {
                break lost;
            }
        };
        self.state.send_modify(|s| s.lost = Some(lost));
    }

    /// Renews over `link` until it breaks (`Ok`) or the lease is lost.
    async fn serve(&mut self, link: Link) -> Result<(), LeaseLost> {
        let Link {
            requests,
            mut responses,
        } = link;
        loop {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                () = sleep_until(deadline) => return Err(LeaseLost::Expired),
                next = responses.next() => match next {
                    Some(Ok(resp)) => self.answered(&resp)?,
                    Some(Err(_)) | None => return Ok(()),
                },
                () = sleep_until(self.next_send) => {
                    let now = Instant::now();
                    if requests.send(LeaseKeepAliveRequest { id: self.id }).is_err() {
                        return Ok(());
                    }
                    self.in_flight.push_back(now);
                    self.next_send = now + self.options.resend_after;
                }
            }
        }
    }

    fn answered(&mut self, resp: &LeaseKeepAliveResponse) -> Result<(), LeaseLost> {
        if resp.id != self.id {
            return Ok(());
        }
        let now = Instant::now();
        let sent = self.in_flight.pop_front().unwrap_or(now);
        if resp.ttl <= 0 {
            return Err(LeaseLost::NotFound);
        }
        self.backoff.succeed();
        let ttl = resp.ttl;
        self.state.send_modify(|s| {
            s.ttl = ttl;
            s.renewed_at = sent;
            s.deadline = s.deadline.max(sent + ttl_duration(ttl));
            s.renewals += 1;
        });
        self.next_send = now + renew_interval(ttl);
        Ok(())
    }

    /// Waits out the backoff and opens a new stream with a renewal queued;
    /// gives up when the deadline passes first.
    async fn reconnect(&mut self) -> Result<Link, LeaseLost> {
        self.in_flight.clear();
        loop {
            let deadline = self.deadline();
            let delay = self
                .backoff
                .fail(&mut self.rng)
                .unwrap_or(self.options.retry.max_backoff);
            sleep_until((Instant::now() + delay).min(deadline)).await;
            if Instant::now() >= deadline {
                return Err(LeaseLost::Expired);
            }
            let (requests, rx) = mpsc::unbounded_channel();
            let now = Instant::now();
            let _ = requests.send(LeaseKeepAliveRequest { id: self.id });
            self.in_flight.clear();
            self.in_flight.push_back(now);
            self.next_send = now + self.options.resend_after;
            let opening = (self.opener)(UnboundedReceiverStream::new(rx));
            match tokio::time::timeout_at(deadline, opening).await {
                Ok(Ok(responses)) => {
                    self.state.send_modify(|s| s.reconnects += 1);
                    return Ok(Link {
                        requests,
                        responses,
                    });
                }
                Ok(Err(_status)) => {}
                Err(_elapsed) => return Err(LeaseLost::Expired),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::error::EtcdErrorKind;
    use crate::stream::fake::{self, FakeServer, FakeStream};

    type Server = FakeServer<LeaseKeepAliveRequest, LeaseKeepAliveResponse>;
    type Stream = FakeStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn answer(stream: &Stream, id: i64, ttl: i64) {
        let _ = stream.responses.send(Ok(LeaseKeepAliveResponse {
            header: None,
            id,
            ttl,
        }));
    }

    async fn next_request(stream: &mut Stream) -> Option<i64> {
        stream.requests.next().await.map(|r| r.id)
    }

    async fn opened(server: &mut Server) -> Stream {
        match server.opened.recv().await {
            Some(stream) => stream,
            None => panic!("the keeper never opened a stream"),
        }
    }

    /// Starts a keeper for lease 7 whose first renewal is answered with `ttl`.
    async fn started(ttl: i64) -> (LeaseKeeper, Server, Stream) {
        let (opener, mut server) = fake::server();
        let start = tokio::spawn(LeaseKeeper::start(
            opener,
            7,
            KeepAliveOptions::default(),
            TIMEOUT,
        ));
        let mut stream = opened(&mut server).await;
        assert_eq!(next_request(&mut stream).await, Some(7));
        answer(&stream, 7, ttl);
        let keeper = match start.await {
            Ok(Ok(keeper)) => keeper,
            other => panic!("keeper did not start: {other:?}"),
        };
        (keeper, server, stream)
    }

    #[test]
    fn interval_is_a_third_of_the_ttl() {
        assert_eq!(renew_interval(9), Duration::from_secs(3));
        assert_eq!(renew_interval(10), Duration::from_nanos(3_333_333_333));
        assert_eq!(renew_interval(1), Duration::from_secs(1) / 3);
        assert_eq!(renew_interval(0), Duration::from_secs(1) / 3);
        assert_eq!(renew_interval(-5), Duration::from_secs(1) / 3);
    }

    #[tokio::test(start_paused = true)]
    async fn renews_every_third_of_the_ttl() {
        let (keeper, _server, mut stream) = started(9).await;
        let t0 = Instant::now();
        assert_eq!(keeper.ttl(), 9);
        assert_eq!(keeper.deadline(), t0 + Duration::from_secs(9));
        for round in 1..=4u32 {
            assert_eq!(next_request(&mut stream).await, Some(7));
            assert_eq!(Instant::now() - t0, Duration::from_secs(3) * round);
            answer(&stream, 7, 9);
        }
        // Let the keeper take the last answer.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let state = keeper.state();
        assert_eq!(state.renewals, 5);
        assert_eq!(state.deadline, t0 + Duration::from_secs(12 + 9));
        assert!(!keeper.is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_zero_means_not_found() {
        let (keeper, _server, mut stream) = started(6).await;
        assert_eq!(next_request(&mut stream).await, Some(7));
        answer(&stream, 7, 0);
        assert_eq!(keeper.lost().await, LeaseLost::NotFound);
        assert!(keeper.is_lost());
        // The keeper stopped: its request stream ends.
        assert_eq!(next_request(&mut stream).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_renewals_are_resent_until_the_deadline() {
        let (keeper, _server, mut stream) = started(3).await;
        let t0 = Instant::now();
        let mut sent_at = Vec::new();
        let lost = tokio::select! {
            lost = keeper.lost() => lost,
            () = async {
                while next_request(&mut stream).await.is_some() {
                    sent_at.push(Instant::now() - t0);
                }
                std::future::pending::<()>().await;
            } => unreachable!(),
        };
        assert_eq!(lost, LeaseLost::Expired);
        assert_eq!(Instant::now() - t0, Duration::from_secs(3));
        let ms: Vec<u128> = sent_at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1000, 1500, 2000, 2500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_stream_is_reopened() {
        let (keeper, mut server, stream) = started(9).await;
        let t0 = Instant::now();
        drop(stream);
        let mut second = opened(&mut server).await;
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_millis(50) && waited <= Duration::from_millis(100),
            "reopened after {waited:?}"
        );
        assert_eq!(next_request(&mut second).await, Some(7));
        answer(&second, 7, 9);
        assert_eq!(next_request(&mut second).await, Some(7));
        let state = keeper.state();
        assert_eq!(state.reconnects, 1);
        assert_eq!(state.renewals, 2);
        assert!(state.deadline >= t0 + Duration::from_secs(9));
        assert!(!keeper.is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_reconnects_end_at_the_deadline() {
        let (keeper, server, stream) = started(2).await;
        let t0 = Instant::now();
        server.fail_opens.store(u32::MAX, Ordering::SeqCst);
        drop(stream);
        assert_eq!(keeper.lost().await, LeaseLost::Expired);
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        assert!(server.attempts.load(Ordering::SeqCst) >= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_keeper_stops_renewing() {
        let (keeper, _server, mut stream) = started(9).await;
        let mut states = keeper.subscribe();
        drop(keeper);
        assert_eq!(next_request(&mut stream).await, None);
        assert!(states.changed().await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_lease_fails_to_start() {
        let (opener, mut server) = fake::server();
        let start = tokio::spawn(LeaseKeeper::start(
            opener.clone(),
            9,
            KeepAliveOptions::default(),
            TIMEOUT,
        ));
        let mut stream = opened(&mut server).await;
        assert_eq!(next_request(&mut stream).await, Some(9));
        answer(&stream, 9, 0);
        match start.await {
            Ok(Err(e)) => assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::LeaseNotFound)),
            other => panic!("started: {other:?}"),
        }
        let once =
            tokio::spawn(async move { super::super::keep_alive_once(&opener, 9, TIMEOUT).await });
        let stream = opened(&mut server).await;
        answer(&stream, 9, 0);
        match once.await {
            Ok(Err(e)) => assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::LeaseNotFound)),
            other => panic!("keep_alive_once: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_times_the_start_out() {
        let (opener, mut server) = fake::server();
        let start = tokio::spawn(LeaseKeeper::start(
            opener,
            9,
            KeepAliveOptions::default(),
            TIMEOUT,
        ));
        let _stream = opened(&mut server).await;
        match start.await {
            Ok(Err(ClientError::Timeout(t))) => assert_eq!(t, TIMEOUT),
            other => panic!("started: {other:?}"),
        }
    }
}
