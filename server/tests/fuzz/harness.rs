//! An in-process server on a loopback port and a temp data dir, the checks
//! every answer must pass, and the store's state compared across a restart.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::{
    HashKvRequest, LeaseLeasesRequest, LeaseTimeToLiveRequest, RangeRequest, ResponseHeader,
};
use rollcall_server::config::ServeConfig;
use rollcall_server::server::{Listeners, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Any one call; generous for a debug build on a busy machine. Reaching it
/// means the server hung.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in the process (server tasks included: tokio catches
/// them, the hook still runs).
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// One fuzz test at a time, so a panic is the running test's.
pub struct Exclusive {
    _lock: MutexGuard<'static, ()>,
    baseline: usize,
}

impl Exclusive {
    /// Panics since this test started.
    pub fn panics(&self) -> usize {
        panics() - self.baseline
    }
}

pub fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    count_panics();
    let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    Exclusive {
        _lock: lock,
        baseline: panics(),
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeConfig,
}

pub struct Server {
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), rollcall_server::server::ServeError>>,
}

impl Server {
    /// Serves `data_dir` with the defaults of `rollcall serve`, except a
    /// minimum lease TTL of an hour so no lease expires mid-test (the state
    /// before and after a restart is compared).
    pub async fn start(data_dir: &Path) -> Server {
        let dir = data_dir.to_str().unwrap();
        let config =
            Cli::parse_from(["rollcall", "--data-dir", dir, "--min-lease-ttl", "3600"]).serve;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            config,
            Listeners {
                client: vec![(listener, false)],
                metrics: vec![],
                peer: vec![],
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            channel,
            addr,
            stop,
            task,
        }
    }

    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    pub async fn stop(self) {
        drop(self.channel);
        let _ = self.stop.send(());
        within(self.task).await.unwrap().unwrap();
    }
}

/// `future`, or a panic naming the hang.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(CALL_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("no answer within {CALL_TIMEOUT:?}: the server hung"))
}

/// An error answer is acceptable when it is one of etcd's or gRPC's own
/// refusal of an undecodable or oversized message.
pub fn acceptable(status: &Status) -> bool {
    let message = status.message();
    message.starts_with("etcdserver: ")
        || (status.code() == Code::Internal && message.starts_with("failed to decode Protobuf"))
        || (status.code() == Code::ResourceExhausted
            && message.starts_with("grpc: received message larger than max"))
}

thread_local! {
    /// Answers seen by this test's thread: "ok" or the error message.
    static TALLY: std::cell::RefCell<std::collections::BTreeMap<String, usize>> =
        Default::default();
}

pub fn record(answer: String) {
    TALLY.with(|t| *t.borrow_mut().entry(answer).or_default() += 1);
}

/// Prints what this test's thread saw (`--nocapture` shows it) and returns
/// how many successes and how many other answers (errors, refusals).
pub fn report(test: &str) -> (usize, usize) {
    TALLY.with(|t| {
        let tally = t.borrow();
        eprintln!("{test}: {tally:#?}");
        let ok = tally.get("ok").copied().unwrap_or(0);
        (ok, tally.values().sum::<usize>() - ok)
    })
}

/// How many times this test's thread saw `answer`.
pub fn seen(answer: &str) -> usize {
    TALLY.with(|t| t.borrow().get(answer).copied().unwrap_or(0))
}

/// Fails the case on an unacceptable error.
pub fn check_error<T>(answer: &Result<T, Status>) -> Result<(), String> {
    record(match answer {
        Ok(_) => "ok".into(),
        Err(status) => status.message().chars().take(70).collect(),
    });
    match answer {
        Err(status) if !acceptable(status) => Err(format!("unexpected error: {status:?}")),
        _ => Ok(()),
    }
}

/// [`check_error`], and a success must carry a revision no lower than one
/// already seen.
pub fn check<T>(
    answer: &Result<T, Status>,
    header: impl Fn(&T) -> Option<&ResponseHeader>,
    last_revision: &AtomicI64,
) -> Result<(), String> {
    check_error(answer)?;
    let Ok(resp) = answer else {
        return Ok(());
    };
    let Some(header) = header(resp) else {
        return Err("a response without a header".into());
    };
    let before = last_revision.fetch_max(header.revision, Ordering::SeqCst);
    if header.revision < before {
        return Err(format!(
            "revision went back from {before} to {}",
            header.revision
        ));
    }
    Ok(())
}

/// What must survive a restart unchanged.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub revision: i64,
    pub hash: u32,
    pub compact_revision: i64,
    pub kvs: Vec<(Bytes, Bytes, i64, i64, i64, i64)>,
    /// Lease ids with their granted TTL and keys.
    pub leases: Vec<(i64, i64, Vec<Bytes>)>,
}

pub async fn state(server: &Server) -> State {
    let hash = within(
        MaintenanceClient::new(server.channel.clone()).hash_kv(HashKvRequest { revision: 0 }),
    )
    .await
    .unwrap()
    .into_inner();
    let range = within(server.kv().range(RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner();
    let mut lease = server.lease();
    let ids = within(lease.lease_leases(LeaseLeasesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .leases;
    let mut leases = Vec::new();
    for id in ids {
        let ttl = within(lease.lease_time_to_live(LeaseTimeToLiveRequest {
            id: id.id,
            keys: true,
        }))
        .await
        .unwrap()
        .into_inner();
        let mut keys = ttl.keys;
        keys.sort();
        leases.push((id.id, ttl.granted_ttl, keys));
    }
    leases.sort();
    State {
        revision: range.header.unwrap().revision,
        hash: hash.hash,
        compact_revision: hash.compact_revision,
        kvs: range
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    kv.key,
                    kv.value,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.lease,
                )
            })
            .collect(),
        leases,
    }
}

/// Records the state, restarts the server on the same data dir and asserts
/// the second server sees the same.
pub async fn assert_survives_restart(server: Server, data_dir: &Path) {
    let before = state(&server).await;
    server.stop().await;
    let reopened = Server::start(data_dir).await;
    let after = state(&reopened).await;
    assert_eq!(before, after, "the store differs after a restart");
    reopened.stop().await;
}
