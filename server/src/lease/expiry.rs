//! The expiry loop: on every tick, take the leases whose deadline passed (at
//! most a bounded number per tick) and revoke them through the proposer, like
//! any client revoke. Waiting for one batch before taking the next bounds how
//! much revoke work can queue ahead of client writes, so ten thousand leases
//! expiring at once are revoked over a few ticks without stalling the store.

use std::sync::Arc;
use std::time::Duration;

use rollcall_proto::etcdserverpb::LeaseRevokeRequest;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Lessor;
use crate::apply::Command;
use crate::error::{Error, Refusal};
use crate::metrics::Metrics;
use crate::proposer::Proposer;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpiryConfig {
    /// How often deadlines are checked.
    pub check_interval: Duration,
    /// Most leases revoked per tick.
    pub max_revokes_per_tick: usize,
}

/// Runs until `stop` turns true. Only a member that runs the lease clock
/// (a single member, or a cluster's leader) expires anything; when a member
/// becomes leader, every lease (`granted()`: id and TTL) starts a full TTL
/// from then, so an election never expires healthy services.
pub(crate) async fn run(
    lessor: Arc<Lessor>,
    proposer: Proposer,
    metrics: Arc<Metrics>,
    config: ExpiryConfig,
    granted: impl Fn() -> Vec<(i64, i64)> + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(config.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A single member's leases got their fresh TTL at start-up already.
    let mut leading = proposer.node().is_none();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if !proposer.leads() {
            leading = false;
            continue;
        }
        if !leading {
            leading = true;
            let now = Instant::now();
            let leases = granted();
            tracing::info!(
                leases = leases.len(),
                "leading: every lease starts a full TTL"
            );
            for (id, ttl) in leases {
                lessor.start(id, ttl, now);
            }
            continue;
        }
        let expired = lessor.take_expired(Instant::now(), config.max_revokes_per_tick);
        if expired.is_empty() {
            continue;
        }
        tracing::debug!(count = expired.len(), "revoking expired leases");
        let mut revokes = JoinSet::new();
        for id in expired {
            let proposer = proposer.clone();
            revokes.spawn(async move {
                let result = proposer
                    .propose(Command::LeaseRevoke(LeaseRevokeRequest { id }))
                    .await;
                (id, result)
            });
        }
        while let Some(joined) = revokes.join_next().await {
            match joined {
                // The applier forgets revoked leases itself.
                Ok((_, Ok(_))) => {
                    metrics.lease_expired.inc();
                }
                // Revoked by a client meanwhile.
                Ok((id, Err(Error::Refused(Refusal::LeaseNotFound)))) => lessor.forget(id),
                Ok((id, Err(Error::Stopped))) => {
                    lessor.retry(id);
                    return;
                }
                Ok((id, Err(e))) => {
                    tracing::warn!(lease = id, error = %e, "revoking an expired lease failed; will retry");
                    lessor.retry(id);
                }
                Err(e) => tracing::error!(error = %e, "lease revoke task failed"),
            }
        }
    }
}
