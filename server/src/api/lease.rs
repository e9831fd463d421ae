//! The Lease service. Grant and revoke are commands; keep-alive and
//! time-to-live read the lessor's in-memory deadlines (no write, no fsync).

use std::sync::Arc;

use rollcall_proto::etcdserverpb::lease_server::Lease;
use rollcall_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::header::HeaderFiller;
use super::shutdown::UntilStopped;
use crate::api::quota_guard::QuotaGuard;
use crate::apply::{Applied, Command};
use crate::error::{Error, Refusal};
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::proposer::Proposer;
use crate::quota::LEASE_GRANT_COST;
use crate::raft::node::RaftNode;

/// Keep-alive responses buffered per stream before the reader is slowed down.
const KEEPALIVE_BUFFER: usize = 256;
/// Renewals of one stream a follower has at the leader at once.
const FORWARDS_IN_FLIGHT: usize = 128;

/// One keep-alive's answer, in the stream's order: ready, or being asked of
/// the leader.
enum Pending {
    Ready(Result<LeaseKeepAliveResponse, Status>),
    Forwarded(tokio::task::JoinHandle<Result<LeaseKeepAliveResponse, Status>>),
}

/// A keep-alive reaching a follower: deadlines live on the leader, so it
/// renews there (or here, if this member has meanwhile become leader).
async fn forward_keep_alive(
    node: Arc<RaftNode>,
    answers: LeaseAnswers,
    req: LeaseKeepAliveRequest,
) -> Result<LeaseKeepAliveResponse, Status> {
    match node
        .on_leader(|mut leader| async move { leader.lease_keep_alive(req).await })
        .await
    {
        Ok(Some(resp)) => Ok(LeaseKeepAliveResponse {
            header: answers.header.header(),
            ..resp.into_inner()
        }),
        Ok(None) => Ok(answers.keep_alive(req.id)),
        Err(e) => Err(Status::from(e)),
    }
}

pub(crate) struct LeaseService {
    /// Turns true when the server stops: open keep-alive streams then end.
    stop: tokio::sync::watch::Receiver<bool>,
    quota: QuotaGuard,
    store: Store,
    proposer: Proposer,
    answers: LeaseAnswers,
    header: HeaderFiller,
    /// Shorter requested TTLs are raised to this (seconds).
    min_ttl: i64,
}

impl LeaseService {
    pub(crate) fn new(
        store: Store,
        proposer: Proposer,
        lessor: Arc<Lessor>,
        min_ttl: i64,
        metrics: Arc<Metrics>,
        quota: QuotaGuard,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let header = HeaderFiller::new(store.clone());
        let answers = LeaseAnswers::new(store.clone(), lessor, metrics.clone());
        Self {
            stop,
            quota,
            store,
            proposer,
            answers,
            header,
            min_ttl,
        }
    }

    /// A positive id no granted lease uses.
    fn free_id(&self) -> i64 {
        let committed = self.store.read_committed();
        loop {
            let id = rand::random::<i64>() & i64::MAX;
            if id != 0 && !committed.leases.contains(id) {
                return id;
            }
        }
    }
}

/// The answers only the member running the lease clock can give (the
/// single member, or a cluster's leader): keep-alive and TimeToLive.
#[derive(Clone)]
pub(crate) struct LeaseAnswers {
    store: Store,
    lessor: Arc<Lessor>,
    metrics: Arc<Metrics>,
    header: HeaderFiller,
}

impl LeaseAnswers {
    pub(crate) fn new(store: Store, lessor: Arc<Lessor>, metrics: Arc<Metrics>) -> Self {
        let header = HeaderFiller::new(store.clone());
        Self {
            store,
            lessor,
            metrics,
            header,
        }
    }

    /// Renews lease `id`; an unknown or expired lease answers TTL 0, as etcd
    /// does.
    pub(crate) fn keep_alive(&self, id: i64) -> LeaseKeepAliveResponse {
        let ttl = self.lessor.renew(id, Instant::now()).unwrap_or(0);
        if ttl > 0 {
            self.metrics.lease_renewed.inc();
        }
        LeaseKeepAliveResponse {
            header: self.header.header(),
            id,
            ttl,
        }
    }

    pub(crate) fn time_to_live(&self, req: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let found = {
            let committed = self.store.read_committed();
            committed.leases.get(req.id).map(|entry| {
                let keys = if req.keys {
                    entry.keys.iter().cloned().collect()
                } else {
                    Vec::new()
                };
                (entry.ttl, keys)
            })
        };
        match found {
            Some((granted_ttl, keys)) => {
                let remaining = self
                    .lessor
                    .remaining(req.id, Instant::now())
                    .unwrap_or_default();
                LeaseTimeToLiveResponse {
                    header: self.header.header(),
                    id: req.id,
                    ttl: i64::try_from(remaining.as_secs()).unwrap_or(i64::MAX),
                    granted_ttl,
                    keys,
                }
            }
            // etcd answers an unknown lease with TTL -1 rather than an error.
            None => LeaseTimeToLiveResponse {
                header: self.header.header(),
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        }
    }
}

fn mismatch() -> Status {
    Status::internal("applier answered with the wrong response kind")
}

/// The response stream type tonic's generated trait expects.
type KeepAliveStream = tonic::codegen::BoxStream<LeaseKeepAliveResponse>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        self.quota.admit(LEASE_GRANT_COST).await?;
        if req.ttl > MAX_LEASE_TTL {
            return Err(Error::Refused(Refusal::LeaseTtlTooLarge).into());
        }
        let chosen = req.id == 0;
        // A server-chosen id can collide with a grant in flight: pick again.
        for _ in 0..8 {
            let id = if chosen { self.free_id() } else { req.id };
            let command = Command::LeaseGrant(LeaseGrantRequest {
                ttl: req.ttl.max(self.min_ttl),
                id,
            });
            match self.proposer.propose(command).await {
                Ok(Applied::LeaseGrant(mut resp)) => {
                    self.header.fill(&mut resp.header);
                    return Ok(Response::new(resp));
                }
                Ok(_) => return Err(mismatch()),
                Err(Error::Refused(Refusal::LeaseExists)) if chosen => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Refused(Refusal::LeaseExists).into())
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        match self.proposer.propose(Command::LeaseRevoke(req)).await? {
            Applied::LeaseRevoke(mut resp, _) => {
                self.header.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(mismatch()),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        let answers = self.answers.clone();
        let node = self.proposer.node().cloned();
        // Answers leave in request order; a follower's forwards to the
        // leader overlap (up to FORWARDS_IN_FLIGHT), so one stream is not
        // limited to one peer round trip per renewal.
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(FORWARDS_IN_FLIGHT);
        tokio::spawn(async move {
            while let Some(pending) = pending_rx.recv().await {
                let reply = match pending {
                    Pending::Ready(reply) => reply,
                    Pending::Forwarded(task) => task
                        .await
                        .unwrap_or_else(|_| Err(Status::internal("keep-alive forward failed"))),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(next) = inbound.next().await {
                let pending = match (next, &node) {
                    (Err(status), _) => Pending::Ready(Err(status)),
                    (Ok(req), Some(node)) if !node.is_leader() => Pending::Forwarded(tokio::spawn(
                        forward_keep_alive(node.clone(), answers.clone(), req),
                    )),
                    // A single member, or the leader: deadlines are here.
                    (Ok(req), _) => Pending::Ready(Ok(answers.keep_alive(req.id))),
                };
                if pending_tx.send(pending).await.is_err() {
                    break;
                }
            }
        });
        let responses = UntilStopped::new(ReceiverStream::new(rx), self.stop.clone());
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        if let Some(node) = self.proposer.node() {
            let forwarded = node
                .on_leader(|mut leader| async move { leader.lease_time_to_live(req).await })
                .await?;
            if let Some(resp) = forwarded {
                return Ok(Response::new(LeaseTimeToLiveResponse {
                    header: self.header.header(),
                    ..resp.into_inner()
                }));
            }
        }
        Ok(Response::new(self.answers.time_to_live(&req)))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = {
            let committed = self.store.read_committed();
            committed
                .leases
                .ids()
                .map(|(id, _)| LeaseStatus { id })
                .collect()
        };
        Ok(Response::new(LeaseLeasesResponse {
            header: self.header.header(),
            leases,
        }))
    }
}
