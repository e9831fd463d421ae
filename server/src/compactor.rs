//! Auto-compaction, as etcd's `--auto-compaction-mode` and
//! `--auto-compaction-retention`:
//!
//! * `periodic`: keep history for a duration. The retention is `1h`, `30m`,
//!   `90s`, ... or a bare number of hours. Every tenth of the retention the
//!   current revision is sampled; history older than the newest sample that is
//!   at least one retention old is compacted.
//! * `revision`: keep the newest N revisions; checked every
//!   `--auto-compaction-interval-ms` (etcd checks every 5 minutes).
//!
//! Compactions go through the proposer like a client's.

use std::collections::VecDeque;
use std::time::Duration;

use rollcall_proto::etcdserverpb::CompactionRequest;
use tokio::time::Instant;

use crate::apply::Command;
use crate::error::{Error, Refusal};
use crate::mvcc::Store;
use crate::proposer::Proposer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Periodic,
    Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Off,
    Periodic(Duration),
    Revision(i64),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid --auto-compaction-retention {0:?} for this mode")]
pub struct RetentionError(String);

impl Policy {
    pub(crate) fn parse(mode: Mode, retention: &str) -> Result<Self, RetentionError> {
        let bad = || RetentionError(retention.to_string());
        let text = retention.trim();
        if text.is_empty() || text == "0" {
            return Ok(Self::Off);
        }
        match mode {
            Mode::Revision => {
                let n: i64 = text.parse().map_err(|_| bad())?;
                Ok(if n > 0 { Self::Revision(n) } else { Self::Off })
            }
            Mode::Periodic => {
                let duration = if let Ok(hours) = text.parse::<u64>() {
                    Duration::from_secs(hours * 3600)
                } else {
                    let (number, unit) = text.split_at(
                        text.find(|c: char| c.is_ascii_alphabetic())
                            .ok_or_else(bad)?,
                    );
                    let n: f64 = number.parse().map_err(|_| bad())?;
                    let seconds = match unit {
                        "h" => n * 3600.0,
                        "m" => n * 60.0,
                        "s" => n,
                        "ms" => n / 1000.0,
                        _ => return Err(bad()),
                    };
                    Duration::try_from_secs_f64(seconds).map_err(|_| bad())?
                };
                Ok(if duration.is_zero() {
                    Self::Off
                } else {
                    Self::Periodic(duration)
                })
            }
        }
    }
}

/// The revision to compact to in periodic mode: the newest sample at least
/// `retention` old. Samples older than that one are dropped.
fn periodic_target(
    samples: &mut VecDeque<(Instant, i64)>,
    now: Instant,
    retention: Duration,
) -> Option<i64> {
    let cutoff = now.checked_sub(retention)?;
    let mut target = None;
    while let Some(&(at, rev)) = samples.front() {
        if at > cutoff {
            break;
        }
        target = Some(rev);
        samples.pop_front();
    }
    if let Some(rev) = target {
        // Keep it as the floor for the next round.
        samples.push_front((cutoff, rev));
    }
    target
}

/// Runs the policy until `stop` turns true.
pub(crate) async fn run(
    policy: Policy,
    revision_interval: Duration,
    store: Store,
    proposer: Proposer,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = match policy {
        Policy::Off => return,
        Policy::Periodic(retention) => (retention / 10).max(Duration::from_millis(100)),
        Policy::Revision(_) => revision_interval.max(Duration::from_millis(10)),
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = VecDeque::new();
    let mut compacted = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let now = Instant::now();
        let current = store.current_rev();
        let target = match policy {
            Policy::Off => None,
            Policy::Periodic(retention) => {
                samples.push_back((now, current));
                periodic_target(&mut samples, now, retention)
            }
            Policy::Revision(keep) => Some(current - keep),
        };
        let Some(target) = target.filter(|t| *t > compacted && *t > 0) else {
            continue;
        };
        // One member compacts for the cluster, as in etcd: the leader.
        if !proposer.leads() {
            continue;
        }
        let request = CompactionRequest {
            revision: target,
            physical: true,
        };
        match proposer.propose(Command::Compact(request)).await {
            Ok(_) => {
                tracing::info!(revision = target, "auto-compacted");
                compacted = target;
            }
            // Someone compacted further already.
            Err(Error::Refused(Refusal::Compacted)) => compacted = target,
            Err(Error::Stopped) => return,
            Err(e) => tracing::warn!(revision = target, error = %e, "auto-compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_retentions() {
        assert_eq!(Policy::parse(Mode::Periodic, "0").ok(), Some(Policy::Off));
        assert_eq!(
            Policy::parse(Mode::Periodic, "1").ok(),
            Some(Policy::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            Policy::parse(Mode::Periodic, "30m").ok(),
            Some(Policy::Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(
            Policy::parse(Mode::Periodic, "1.5h").ok(),
            Some(Policy::Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(
            Policy::parse(Mode::Revision, "1000").ok(),
            Some(Policy::Revision(1000))
        );
        assert!(Policy::parse(Mode::Revision, "1h").is_err());
        assert!(Policy::parse(Mode::Periodic, "5x").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_compacts_to_the_revision_one_retention_ago() {
        let retention = Duration::from_secs(10);
        let mut samples = VecDeque::new();
        let t0 = Instant::now();
        for (second, rev) in [(0, 5), (1, 8), (2, 12), (3, 20)] {
            samples.push_back((t0 + Duration::from_secs(second), rev));
        }
        assert_eq!(
            periodic_target(&mut samples, t0 + Duration::from_secs(5), retention),
            None
        );
        assert_eq!(
            periodic_target(&mut samples, t0 + Duration::from_secs(11), retention),
            Some(8)
        );
        assert_eq!(
            periodic_target(&mut samples, t0 + Duration::from_secs(11), retention),
            Some(8)
        );
        assert_eq!(
            periodic_target(&mut samples, t0 + Duration::from_secs(13), retention),
            Some(20)
        );
    }
}
