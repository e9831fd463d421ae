//! Lease deadlines, in memory only: a renewal costs no write and no fsync. The
//! clock is tokio's, so tests drive it with `tokio::time::pause()`.
//!
//! A min-heap orders deadlines; renewals push a new entry and leave the old
//! one to be skipped when popped (its deadline no longer matches), which keeps
//! every operation O(log n).

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
}

#[derive(Debug, Default)]
struct Deadlines {
    by_id: HashMap<i64, Deadline>,
    queue: BinaryHeap<Reverse<(Instant, i64)>>,
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

    /// Starts (or restarts, after a restart of the member) a lease's full TTL.
    pub(crate) fn start(&self, id: i64, ttl: i64, now: Instant) {
        let at = now + ttl_duration(ttl);
        let mut state = self.state();
        state.by_id.insert(
            id,
            Deadline {
                at,
                ttl,
                expiring: false,
            },
        );
        state.queue.push(Reverse((at, id)));
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
