//! Lease deadlines, in memory only: a renewal costs no write and no fsync. The
//! clock is tokio's, so tests drive it with `tokio::time::pause()`.
//!
//! A min-heap orders deadlines; renewals push a new entry and leave the old
//! one to be skipped when popped (its deadline no longer matches), which keeps
//! every operation O(log n).
//!
//! Checkpoints: [`Lessor::checkpoints`] reads the remaining TTLs the leader
//! records through the log, so that a new leader resumes a lease from there
//! ([`Lessor::resume`]) rather than from its full TTL. A lease renewed after
//! its remaining TTL was recorded is queued for a reset
//! ([`Lessor::take_resets`]), since a new leader would otherwise start it
//! from the stale, shorter remainder.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    ttl: i64,
    /// Handed to the expiry loop; not offered again unless its revoke fails.
    expiring: bool,
    /// A remaining TTL below the full one is on record for it (checkpointed,
    /// or it was resumed from one): a renewal must reset that record.
    checkpointed: bool,
}

#[derive(Debug, Default)]
struct Deadlines {
    by_id: HashMap<i64, Deadline>,
    queue: BinaryHeap<Reverse<(Instant, i64)>>,
    /// Renewed leases whose recorded remaining TTL must be reset.
    resets: Vec<i64>,
}

impl Deadlines {
    /// Renewals leave their old heap entry behind; once stale entries
    /// outnumber live leases, rebuild the heap so a client renewing in a
    /// tight loop cannot grow memory for a whole TTL.
    fn shed_stale_entries(&mut self) {
        if self.queue.len() <= 2 * self.by_id.len() + 1024 {
            return;
        }
        self.queue = self
            .by_id
            .iter()
            .filter(|(_, d)| !d.expiring)
            .map(|(id, d)| Reverse((d.at, *id)))
            .collect();
    }
}

#[derive(Debug, Default)]
pub(crate) struct Lessor {
    state: Mutex<Deadlines>,
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

impl Lessor {
    fn state(&self) -> MutexGuard<'_, Deadlines> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a lease's full TTL (a grant).
    pub(crate) fn start(&self, id: i64, ttl: i64, now: Instant) {
        self.resume(id, ttl, ttl, Duration::ZERO, now);
    }

    /// Starts a lease's clock on a member taking it over (start-up, a new
    /// leader): from `starting_ttl` (its checkpointed remaining TTL, or the
    /// full `ttl`) plus `extension`, which covers the election.
    pub(crate) fn resume(
        &self,
        id: i64,
        ttl: i64,
        starting_ttl: i64,
        extension: Duration,
        now: Instant,
    ) {
        let at = now + ttl_duration(starting_ttl) + extension;
        let mut state = self.state();
        state.by_id.insert(
            id,
            Deadline {
                at,
                ttl,
                expiring: false,
                checkpointed: starting_ttl < ttl,
            },
        );
        state.queue.push(Reverse((at, id)));
    }

    /// The remaining TTL (whole seconds, rounded up) of every lease whose
    /// TTL exceeds `min_ttl` seconds and that is not expiring, to record in
    /// the log; each is then marked for a reset on its next renewal.
    pub(crate) fn checkpoints(&self, now: Instant, min_ttl: i64) -> Vec<(i64, i64)> {
        let mut state = self.state();
        let mut taken = Vec::new();
        for (id, deadline) in &mut state.by_id {
            if deadline.expiring || deadline.ttl <= min_ttl {
                continue;
            }
            let left = deadline.at.saturating_duration_since(now);
            let secs = i64::try_from(left.as_secs()).unwrap_or(i64::MAX);
            let remaining = (secs + i64::from(left.subsec_nanos() > 0)).max(1);
            deadline.checkpointed = true;
            taken.push((*id, remaining.min(deadline.ttl)));
        }
        taken.sort_unstable();
        taken
    }

    /// Leases renewed since a remaining TTL was recorded for them.
    pub(crate) fn take_resets(&self) -> Vec<i64> {
        std::mem::take(&mut self.state().resets)
    }

    /// Gives back resets whose recording failed, to be taken again.
    pub(crate) fn requeue_resets(&self, ids: Vec<i64>) {
        self.state().resets.extend(ids);
    }

    /// Renews a lease for its full TTL; `None` when it is unknown or already
    /// expired (an expired lease is as good as revoked).
    pub(crate) fn renew(&self, id: i64, now: Instant) -> Option<i64> {
        let mut state = self.state();
        let deadline = state.by_id.get_mut(&id)?;
        if deadline.at <= now {
            return None;
        }
        deadline.at = now + ttl_duration(deadline.ttl);
        let (at, ttl) = (deadline.at, deadline.ttl);
        if std::mem::take(&mut deadline.checkpointed) {
            state.resets.push(id);
        }
        state.queue.push(Reverse((at, id)));
        state.shed_stale_entries();
        Some(ttl)
    }

    /// Time left before the lease expires (zero once expired).
    pub(crate) fn remaining(&self, id: i64, now: Instant) -> Option<Duration> {
        self.state()
            .by_id
            .get(&id)
            .map(|d| d.at.saturating_duration_since(now))
    }

    /// Forgets a lease (revoked).
    pub(crate) fn forget(&self, id: i64) {
        self.state().by_id.remove(&id);
    }

    /// Up to `max` leases whose deadline has passed, oldest first. They are
    /// marked so the next call does not return them again while their revoke
    /// is in flight; [`Lessor::retry`] offers one again.
    pub(crate) fn take_expired(&self, now: Instant, max: usize) -> Vec<i64> {
        let mut state = self.state();
        let mut expired = Vec::new();
        while expired.len() < max {
            let Some(&Reverse((at, id))) = state.queue.peek() else {
                break;
            };
            if at > now {
                break;
            }
            state.queue.pop();
            if let Some(deadline) = state.by_id.get_mut(&id)
                && deadline.at == at
                && !deadline.expiring
            {
                deadline.expiring = true;
                expired.push(id);
            }
        }
        expired
    }

    /// Puts an expired lease whose revoke did not happen back in line.
    pub(crate) fn retry(&self, id: i64) {
        let mut state = self.state();
        if let Some(deadline) = state.by_id.get_mut(&id) {
            deadline.expiring = false;
            let at = deadline.at;
            state.queue.push(Reverse((at, id)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_in_deadline_order_and_renewal_postpones() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        lessor.start(1, 5, t0);
        lessor.start(2, 3, t0);
        lessor.start(3, 10, t0);
        assert!(lessor.take_expired(t0, 10).is_empty());

        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(lessor.renew(2, Instant::now()), Some(3)); // now due at t0+5

        tokio::time::advance(Duration::from_secs(4)).await; // t0+6
        let now = Instant::now();
        assert_eq!(lessor.take_expired(now, 10), vec![1, 2]);
        // Handed out once only, and no longer renewable.
        assert!(lessor.take_expired(now, 10).is_empty());
        assert_eq!(lessor.renew(1, now), None);
        assert_eq!(lessor.remaining(3, now), Some(Duration::from_secs(4)));

        lessor.retry(2);
        assert_eq!(lessor.take_expired(now, 10), vec![2]);
        lessor.forget(2);
        lessor.retry(2);
        assert!(lessor.take_expired(now, 10).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_do_not_grow_the_heap_without_bound() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        lessor.start(1, 600, t0);
        lessor.start(2, 600, t0);
        for _ in 0..100_000 {
            assert_eq!(lessor.renew(1, Instant::now()), Some(600));
        }
        assert!(lessor.state().queue.len() <= 2 * 2 + 1024 + 1);
        tokio::time::advance(Duration::from_secs(601)).await;
        let mut expired = lessor.take_expired(Instant::now(), 10);
        expired.sort_unstable();
        assert_eq!(expired, vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn checkpoints_record_long_leases_and_a_renewal_resets_them() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        lessor.start(1, 600, t0);
        lessor.start(2, 5, t0);
        // Resumed from a checkpoint of 100 s, with a 2 s extension.
        lessor.resume(3, 600, 100, Duration::from_secs(2), t0);
        assert_eq!(lessor.remaining(3, t0), Some(Duration::from_secs(102)));
        tokio::time::advance(Duration::from_millis(10_500)).await;
        let now = Instant::now();
        // Only TTLs above the interval's 300 s; rounded up.
        assert_eq!(lessor.checkpoints(now, 300), vec![(1, 590), (3, 92)]);
        assert!(lessor.take_resets().is_empty());
        lessor.renew(2, now);
        lessor.renew(3, now);
        lessor.renew(3, now);
        assert_eq!(lessor.take_resets(), vec![3], "once, and only for 3");
        lessor.renew(1, now);
        assert_eq!(lessor.take_resets(), vec![1]);
        assert!(lessor.take_resets().is_empty());
        lessor.requeue_resets(vec![1]);
        assert_eq!(lessor.take_resets(), vec![1], "a failed reset comes back");
    }

    #[tokio::test(start_paused = true)]
    async fn take_expired_is_bounded() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        for id in 1..=100 {
            lessor.start(id, 1, t0);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        let now = Instant::now();
        assert_eq!(lessor.take_expired(now, 30).len(), 30);
        assert_eq!(lessor.take_expired(now, 100).len(), 70);
        assert_eq!(lessor.state().by_id.len(), 100);
        assert!(lessor.state().queue.is_empty());
    }
}
