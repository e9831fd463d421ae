//! Log compaction behind snapshots: which log entries a member may delete.
//!
//! openraft's own purge keeps a fixed number of entries after the latest
//! snapshot. When a member catches up from a snapshot while writes go on,
//! the leader may snapshot again and delete the entries right after the
//! snapshot being streamed before that member has installed it; the member
//! then needs another snapshot, and under steady writes it never catches
//! up. Here, as etcd does, a member keeps `--experimental-snapshot-catchup-
//! entries` entries after its snapshot, and a leader additionally keeps
//! every entry a member it is in touch with has not yet received (up to a
//! bound, so one slow member cannot grow the log without limit; a member
//! silent for longer than [`SILENT`] does not hold anything back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::quorum::PeerContact;
use super::types::{MemberNode, Raft};

/// How often the purge point is reconsidered.
const INTERVAL: Duration = Duration::from_secs(1);
/// A member that has not answered for this long holds no entries back.
pub(crate) const SILENT: Duration = Duration::from_secs(30);
/// Most entries kept back for lagging members, beyond the catch-up entries.
const MAX_HELD_BACK: u64 = 100_000;

/// The last index that may be deleted, from what `metrics` shows; `None`
/// when nothing new may go.
pub(crate) fn purge_upto(
    metrics: &openraft::RaftMetrics<u64, MemberNode>,
    keep: u64,
    in_touch: impl Fn(u64) -> bool,
) -> Option<u64> {
    let snapshot = metrics.snapshot?.index;
    let mut upto = snapshot.saturating_sub(keep);
    if let Some(replication) = &metrics.replication {
        let floor = upto.saturating_sub(MAX_HELD_BACK);
        for (member, matched) in replication {
            if *member != metrics.id && in_touch(*member) {
                let needed_from = matched.map_or(0, |l| l.index);
                upto = upto.min(needed_from.max(floor));
            }
        }
    }
    let purged = metrics.purged.map_or(0, |l| l.index);
    (upto > purged).then_some(upto)
}

/// Purges what [`purge_upto`] allows, every [`INTERVAL`], until openraft
/// stops.
pub(crate) async fn run(raft: Raft, keep: u64, contact: Arc<PeerContact>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let upto = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            if metrics.running_state.is_err() {
                return;
            }
            let now = Instant::now();
            purge_upto(&metrics, keep, |member| {
                contact.answered_within(member, SILENT, now)
            })
        };
        if let Some(upto) = upto
            && let Err(e) = raft.trigger().purge_log(upto).await
        {
            tracing::debug!(error = %e, "log purge not scheduled");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{CommittedLeaderId, LogId, RaftMetrics};

    use super::*;

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn metrics(snapshot: u64, purged: u64) -> RaftMetrics<u64, MemberNode> {
        let mut m = RaftMetrics::new_initial(1);
        m.snapshot = Some(log_id(snapshot));
        m.purged = (purged > 0).then(|| log_id(purged));
        m
    }

    #[test]
    fn a_follower_keeps_the_catch_up_entries_after_its_snapshot() {
        let m = metrics(10_000, 0);
        assert_eq!(purge_upto(&m, 5_000, |_| true), Some(5_000));
        // Already purged that far: nothing new.
        let m = metrics(10_000, 5_000);
        assert_eq!(purge_upto(&m, 5_000, |_| true), None);
        // No snapshot, nothing to purge behind.
        let mut m = metrics(1, 0);
        m.snapshot = None;
        assert_eq!(purge_upto(&m, 0, |_| true), None);
    }

    #[test]
    fn a_leader_keeps_what_a_member_in_touch_still_needs() {
        let mut m = metrics(10_000, 0);
        let mut replication = BTreeMap::new();
        replication.insert(1, Some(log_id(10_000)));
        replication.insert(2, Some(log_id(9_000)));
        // Receiving a snapshot: nothing matched yet.
        replication.insert(3, None);
        m.replication = Some(replication);
        assert_eq!(purge_upto(&m, 100, |_| true), None, "3 needs everything");
        assert_eq!(purge_upto(&m, 100, |id| id != 3), Some(9_000));
        // A silent member holds nothing back.
        assert_eq!(purge_upto(&m, 100, |_| false), Some(9_900));
    }

    #[test]
    fn a_lagging_member_holds_back_a_bounded_number_of_entries() {
        let mut m = metrics(500_000, 0);
        m.replication = Some(BTreeMap::from([(1, Some(log_id(500_000))), (2, None)]));
        assert_eq!(
            purge_upto(&m, 5_000, |_| true),
            Some(495_000 - MAX_HELD_BACK)
        );
    }
}
