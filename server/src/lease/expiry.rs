//! The expiry loop: on every tick, take the leases whose deadline passed (at
//! most a bounded number per tick) and revoke them through the proposer, like
//! any client revoke. Waiting for one batch before taking the next bounds how
//! much revoke work can queue ahead of client writes, so ten thousand leases
//! expiring at once are revoked over a few ticks without stalling the store.
//!
//! The same loop keeps lease checkpoints (etcd's, always on): every
//! checkpoint interval it records the remaining TTL of each lease longer
//! than the interval through the log, and resets the record of a lease
//! renewed since, so that a new leader resumes leases where they were.

use std::sync::Arc;
use std::time::Duration;

use rollcall_proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest};
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
    /// How often remaining TTLs are checkpointed (of leases longer than it).
    pub checkpoint_interval: Duration,
    /// Added to every lease's TTL when this member starts leading: the
    /// election took that long, and clients could not renew meanwhile.
    pub promotion_extension: Duration,
}

/// Most leases in one checkpoint command (etcd's batch size).
const CHECKPOINTS_PER_COMMAND: usize = 1000;

/// Runs until `stop` turns true. Only a member that runs the lease clock
/// (a single member, or a cluster's leader) expires anything; when a member
/// becomes leader, every lease (`granted()`: id, TTL and starting TTL)
/// starts from its checkpointed remaining TTL or its full TTL, plus the
/// promotion extension, so an election never expires healthy services.
pub(crate) async fn run(
    lessor: Arc<Lessor>,
    proposer: Proposer,
    metrics: Arc<Metrics>,
    config: ExpiryConfig,
    granted: impl Fn() -> Vec<(i64, i64, i64)> + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let checkpoint_above = i64::try_from(config.checkpoint_interval.as_secs()).unwrap_or(i64::MAX);
    let mut next_checkpoint = Instant::now() + config.checkpoint_interval;
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
            let resumed = leases.iter().filter(|(_, ttl, from)| from < ttl).count();
            tracing::info!(
                leases = leases.len(),
                from_checkpoints = resumed,
                extension = ?config.promotion_extension,
                "leading: every lease starts again from its checkpoint or its full TTL"
            );
            for (id, ttl, starting) in leases {
                lessor.resume(id, ttl, starting, config.promotion_extension, now);
            }
            next_checkpoint = now + config.checkpoint_interval;
            continue;
        }
        let resets = lessor.take_resets();
        if !resets.is_empty() {
            let cleared: Vec<(i64, i64)> = resets.iter().map(|&id| (id, 0)).collect();
            if !checkpoint(&proposer, &cleared).await {
                // Tried again next tick: a stale remainder must not outlive
                // the renewal that voided it.
                lessor.requeue_resets(resets);
            }
        }
        if Instant::now() >= next_checkpoint {
            next_checkpoint = Instant::now() + config.checkpoint_interval;
            let taken = lessor.checkpoints(Instant::now(), checkpoint_above);
            if !taken.is_empty() {
                tracing::debug!(leases = taken.len(), "checkpointing remaining TTLs");
            }
            // A failure only costs precision: the next interval records
            // every remainder again.
            checkpoint(&proposer, &taken).await;
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

/// Records `(lease, remaining TTL)` pairs through the log (0 resets a
/// record), in commands of at most [`CHECKPOINTS_PER_COMMAND`]; false if a
/// command was not recorded.
async fn checkpoint(proposer: &Proposer, remaining: &[(i64, i64)]) -> bool {
    for chunk in remaining.chunks(CHECKPOINTS_PER_COMMAND) {
        let checkpoints = chunk
            .iter()
            .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect();
        let command = Command::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints });
        if let Err(e) = proposer.propose(command).await {
            tracing::debug!(error = %e, "lease checkpoint not recorded");
            return false;
        }
    }
    true
}
