//! The composition root: open the store, start the applier, build the gRPC
//! services, serve the given listeners until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollcall_proto::etcdserverpb::cluster_server::ClusterServer;
use rollcall_proto::etcdserverpb::kv_server::KvServer;
use rollcall_proto::etcdserverpb::lease_server::LeaseServer;
use rollcall_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use rollcall_proto::etcdserverpb::watch_server::WatchServer;
use rollcall_proto::rollcallraftpb::peer_server::PeerServer;
use tokio::net::TcpListener;
use tokio_rustls::TlsConnector;

use crate::api::cluster::ClusterService;
use crate::api::header::HeaderFiller;
use crate::api::kv::KvService;
use crate::api::lease::{LeaseAnswers, LeaseService};
use crate::api::maintenance::MaintenanceService;
use crate::api::oversize::OversizeStatusLayer;
use crate::api::peer::PeerService;
use crate::api::quota_guard::QuotaGuard;
use crate::api::watch::WatchService;
use crate::compactor::{self, Policy, RetentionError};
use crate::config::{GRPC_OVERHEAD_BYTES, ServeConfig};
use crate::error::Error;
use crate::lease::Lessor;
use crate::lease::expiry::{self, ExpiryConfig};
use crate::metrics::grpc::GrpcMetricsLayer;
use crate::metrics::http::HttpState;
use crate::metrics::{self, Metrics};
use crate::net;
use crate::net::tls::{self, TlsError, TlsFiles};
use crate::proposer::Proposer;
use crate::raft::bootstrap::{self, BootstrapError};
use crate::raft::network::MAX_PEER_MESSAGE;
use crate::raft::node::RaftNode;
use crate::settle::Settle;
use crate::state::State;
use crate::watch::WatchHub;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] Error),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the applier stopped: {0}")]
    Applier(String),
    #[error(transparent)]
    Config(#[from] RetentionError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("https:// client URLs need --cert-file and --key-file")]
    TlsWithoutCertificate,
    #[error("https:// peer URLs need --peer-cert-file and --peer-key-file")]
    PeerTlsWithoutCertificate,
    #[error("peer TLS: {0}")]
    PeerTls(String),
    #[error(transparent)]
    Cluster(#[from] BootstrapError),
}

/// How long open RPCs may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The sockets a member serves on, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// gRPC client API, each with whether it speaks TLS.
    pub client: Vec<(TcpListener, bool)>,
    /// HTTP metrics and health.
    pub metrics: Vec<TcpListener>,
    /// Raft traffic from the other members (cluster members only), each
    /// with whether it speaks TLS.
    pub peer: Vec<(TcpListener, bool)>,
}

/// Serves clients on `listeners` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish and waits for the applier.
pub async fn run(
    config: ServeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Listeners {
        client: listeners,
        metrics: metrics_listeners,
        peer: peer_listeners,
    } = listeners;
    let compaction = Policy::parse(
        config.auto_compaction_mode,
        &config.auto_compaction_retention,
    )?;
    let acceptor = if listeners.iter().any(|(_, tls)| *tls) {
        let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
            return Err(ServeError::TlsWithoutCertificate);
        };
        Some(tls::acceptor(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            trusted_ca: config.trusted_ca_file.clone(),
            client_cert_auth: config.client_cert_auth,
        })?)
    } else {
        None
    };
    let peer_acceptor = if peer_listeners.iter().any(|(_, tls)| *tls) {
        let (Some(cert), Some(key)) = (&config.peer_cert_file, &config.peer_key_file) else {
            return Err(ServeError::PeerTlsWithoutCertificate);
        };
        Some(tls::acceptor(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            trusted_ca: config.peer_trusted_ca_file.clone(),
            client_cert_auth: config.peer_client_cert_auth,
        })?)
    } else {
        None
    };
    let peer_connector = peer_connector(&config)?;
    let (mut store, state) = State::open(&config.data_dir, config.backend_cache_bytes)?;
    let client_urls: Vec<String> = if config.advertise_client_urls.is_empty() {
        listeners
            .iter()
            .filter_map(|(l, tls)| Some((l.local_addr().ok()?, *tls)))
            .map(|(a, tls)| format!("{}://{a}", if tls { "https" } else { "http" }))
            .collect()
    } else {
        config.advertise_client_urls.clone()
    };
    let plan = bootstrap::plan(
        &config,
        client_urls.clone(),
        &config.data_dir,
        store.identity.member_id,
    )?;
    if let Some(identity) = plan.as_ref().and_then(|p| p.identity) {
        store.set_identity(identity)?;
    }
    let metrics = Arc::new(Metrics::new());
    {
        let snapshot = store.snapshot();
        let live = snapshot.index.live_count(snapshot.rev);
        metrics
            .keys_total
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }
    tracing::info!(
        data_dir = %config.data_dir.display(),
        revision = store.current_rev(),
        cluster_id = format_args!("{:x}", store.identity.cluster_id),
        member_id = format_args!("{:x}", store.identity.member_id),
        "store opened"
    );
    // Every lease starts again now, from its checkpointed remaining TTL or
    // its full TTL (as etcd's lessor recovers): an outage never expires
    // healthy services, and a long lease is not renewed by restarts.
    let lessor = Arc::new(Lessor::default());
    {
        let now = tokio::time::Instant::now();
        let committed = store.read_committed();
        for (id, ttl, starting) in committed.leases.starting_ttls() {
            lessor.resume(id, ttl, starting, Duration::ZERO, now);
        }
    }
    let hub = WatchHub::new(
        store.clone(),
        store.current_rev(),
        tokio::runtime::Handle::current(),
        config.max_watchers,
        metrics.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (proposer, applier, node) = match plan.clone() {
        None => {
            let (proposer, applier) = Proposer::start(
                store.clone(),
                state,
                lessor.clone(),
                hub.clone(),
                metrics.clone(),
            );
            (proposer, Some(applier), None)
        }
        Some(plan) => {
            let settle = Settle {
                store: store.clone(),
                lessor: lessor.clone(),
                hub: hub.clone(),
                metrics: metrics.clone(),
            };
            tracing::info!(
                name = %plan.node.name,
                member_id = format_args!("{:x}", plan.node.id),
                peer_urls = ?plan.me.peer_urls,
                "starting as a cluster member"
            );
            let node = RaftNode::start(plan.node.clone(), state, settle, peer_connector).await?;
            tokio::spawn(node.clone().publish_self(plan.me.clone(), stop_rx.clone()));
            tokio::spawn(follow_raft(
                node.clone(),
                store.clone(),
                metrics.clone(),
                stop_rx.clone(),
            ));
            (
                Proposer::replicated(node.clone(), store.clone(), &metrics),
                None,
                Some(node),
            )
        }
    };

    let expiry = tokio::spawn(expiry::run(
        lessor.clone(),
        proposer.clone(),
        metrics.clone(),
        ExpiryConfig {
            check_interval: Duration::from_millis(config.lease_check_interval_ms.max(1)),
            max_revokes_per_tick: config.lease_revoke_batch.max(1),
            checkpoint_interval: Duration::from_millis(config.lease_checkpoint_interval_ms.max(1)),
            promotion_extension: Duration::from_millis(config.election_timeout),
        },
        {
            let store = store.clone();
            move || store.read_committed().leases.starting_ttls().collect()
        },
        stop_rx.clone(),
    ));

    let max_message = config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let quota = QuotaGuard::new(store.clone(), proposer.clone(), config.quota_backend_bytes);
    let quota_bytes_in_force = quota.quota_bytes();
    let kv = KvServer::new(KvService::new(
        store.clone(),
        proposer.clone(),
        quota.clone(),
        config.max_request_bytes,
        config.max_txn_ops,
    ))
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(usize::MAX);
    let maintenance =
        MaintenanceServer::new(MaintenanceService::new(store.clone(), proposer.clone()));
    let lease_answers = LeaseAnswers::new(store.clone(), lessor.clone(), metrics.clone());
    let lease = LeaseServer::new(LeaseService::new(
        store.clone(),
        proposer.clone(),
        lessor,
        config.min_lease_ttl,
        metrics.clone(),
        quota,
        stop_rx.clone(),
    ));
    let cluster = ClusterServer::new(ClusterService::new(
        HeaderFiller::new(store.clone()),
        config.name.clone(),
        client_urls,
        proposer.clone(),
    ));

    let compactor = tokio::spawn(compactor::run(
        compaction,
        Duration::from_millis(config.auto_compaction_interval_ms),
        store.clone(),
        proposer.clone(),
        stop_rx.clone(),
    ));
    let progress = tokio::spawn(notify_progress(
        hub.clone(),
        Duration::from_millis(config.watch_progress_notify_interval_ms.max(1)),
        stop_rx.clone(),
    ));
    let watch = WatchServer::new(WatchService::new(
        hub,
        store.clone(),
        config.watch_stream_buffer,
        config.max_request_bytes,
        stop_rx.clone(),
    ))
    .max_decoding_message_size(max_message);
    let mut servers = tokio::task::JoinSet::new();
    for (listener, tls) in listeners {
        let addr = listener.local_addr().ok();
        let mut stop = stop_rx.clone();
        let router = tonic::transport::Server::builder()
            .layer(GrpcMetricsLayer::new(metrics.clone()))
            .layer(OversizeStatusLayer)
            .add_service(kv.clone())
            .add_service(maintenance.clone())
            .add_service(lease.clone())
            .add_service(watch.clone())
            .add_service(cluster.clone());
        tracing::info!(address = ?addr, "ready to serve client requests");
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        match (&acceptor, tls) {
            (Some(acceptor), true) => {
                let incoming = net::incoming::incoming_tls(listener, acceptor.clone());
                servers.spawn(router.serve_with_incoming_shutdown(incoming, stopped));
            }
            _ => {
                let incoming = net::incoming::incoming(listener);
                servers.spawn(router.serve_with_incoming_shutdown(incoming, stopped));
            }
        }
    }

    if let Some(node) = &node {
        let peer = PeerServer::new(PeerService::new(node.clone(), lease_answers))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        for (listener, tls) in peer_listeners {
            tracing::info!(address = ?listener.local_addr().ok(), tls, "serving the other members");
            let mut stop = stop_rx.clone();
            let router = tonic::transport::Server::builder().add_service(peer.clone());
            let stopped = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            match (&peer_acceptor, tls) {
                (Some(acceptor), true) => {
                    let incoming = net::incoming::incoming_tls(listener, acceptor.clone());
                    servers.spawn(router.serve_with_incoming_shutdown(incoming, stopped));
                }
                _ => {
                    let incoming = net::incoming::incoming(listener);
                    servers.spawn(router.serve_with_incoming_shutdown(incoming, stopped));
                }
            }
        }
    }

    let http_state = Arc::new(HttpState {
        metrics,
        quota_bytes: quota_bytes_in_force,
        store: store.clone(),
        proposer: proposer.clone(),
    });
    let mut http_servers = tokio::task::JoinSet::new();
    for listener in metrics_listeners {
        tracing::info!(address = ?listener.local_addr().ok(), "serving /metrics and /health");
        http_servers.spawn(metrics::http::serve(
            listener,
            http_state.clone(),
            stop_rx.clone(),
        ));
    }
    drop(http_state);

    tokio::pin!(shutdown);
    let served = tokio::select! {
        () = &mut shutdown => {
            tracing::info!("shutting down");
            None
        }
        Some(result) = servers.join_next() => Some(result),
    };
    let _ = stop_tx.send(true);
    // Streams end on the stop signal; anything still open after the grace
    // period (a client not reading its trailers) is cut off.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
        servers.abort_all();
        while servers.join_next().await.is_some() {}
    }
    while http_servers.join_next().await.is_some() {}
    let _ = expiry.await;
    let _ = progress.await;
    let _ = compactor.await;
    // Dropping the last proposer ends the applier after its current batch.
    drop((kv, maintenance, cluster, lease, watch, proposer));
    if let Some(node) = node {
        node.shutdown().await;
    }
    if let Some(applier) = applier {
        let applied = tokio::task::spawn_blocking(move || applier.join())
            .await
            .map_err(|e| ServeError::Applier(e.to_string()))?;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServeError::Store(e)),
            Err(_) => return Err(ServeError::Applier("panicked".into())),
        }
    }
    match served {
        Some(Ok(Err(e))) => Err(e.into()),
        Some(Err(e)) => Err(ServeError::Applier(e.to_string())),
        _ => Ok(()),
    }
}

/// The TLS this member calls https:// peer URLs with: the other members'
/// CA, and its own peer certificate for peers that require one. `None`
/// without `--peer-trusted-ca-file` (https:// peers then cannot be called).
fn peer_connector(config: &ServeConfig) -> Result<Option<TlsConnector>, ServeError> {
    let Some(ca) = &config.peer_trusted_ca_file else {
        return Ok(None);
    };
    let identity = match (&config.peer_cert_file, &config.peer_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => None,
    };
    let tls = rollcall_client::ClientTls {
        ca: ca.clone(),
        identity,
    };
    tls.connector()
        .map(Some)
        .map_err(|e| ServeError::PeerTls(e.to_string()))
}

/// Keeps what depends on the raft position current: the term in response
/// headers, `etcd_server_has_leader` and `etcd_server_leader_changes_seen`,
/// and a log line per leader change. Woken by openraft and every heartbeat
/// interval: a leader losing or regaining its quorum's answers (see
/// `RaftNode::leader`) changes no raft metric.
async fn follow_raft(
    node: Arc<RaftNode>,
    store: crate::mvcc::Store,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut raft = node.raft.metrics();
    let mut tick = tokio::time::interval(node.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_leader = None;
    loop {
        let term = raft.borrow_and_update().current_term;
        let leader = node.leader();
        store.set_raft_term(term);
        metrics.has_leader.set(i64::from(leader.is_some()));
        if leader != last_leader {
            match leader {
                Some(id) => {
                    metrics.leader_changes.inc();
                    tracing::info!(term, leader = format_args!("{id:x}"), "leader elected");
                }
                None if last_leader == Some(node.id()) => tracing::warn!(
                    term,
                    "no answer from a quorum within the election timeout: no longer acting as leader"
                ),
                None => tracing::warn!(term, "no leader"),
            }
            last_leader = leader;
        }
        tokio::select! {
            changed = raft.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Sends periodic progress notifications until `stop` turns true.
async fn notify_progress(
    hub: Arc<WatchHub>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => hub.notify_progress(),
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
