//! Check-quorum: when each other member last answered a peer call, and
//! whether a leader still hears from a quorum of voters.
//!
//! openraft 0.9 keeps a leader that lost every follower leading its term
//! forever (it has no check-quorum step-down, and `trigger().elect()` is
//! ignored on a leader). etcd's leader steps down after an election timeout
//! without a quorum's answers, so that a leader cut off by a partition
//! stops renewing leases and running the lease clock while the majority
//! elects another. [`RaftNode`](super::node::RaftNode) does the same from
//! these records: such a leader reports no leader and serves nothing a
//! leader alone may serve, until a quorum answers again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The last time each member answered any peer call of this one.
#[derive(Debug, Default)]
pub(crate) struct PeerContact {
    last_answer: Mutex<HashMap<u64, Instant>>,
}

impl PeerContact {
    /// `member` answered just now (any answer, a refusal too: the link works).
    pub(crate) fn answered(&self, member: u64) {
        self.lock().insert(member, Instant::now());
    }

    /// Whether `member` answered within `window` before `now`.
    pub(crate) fn answered_within(&self, member: u64, window: Duration, now: Instant) -> bool {
        self.lock()
            .get(&member)
            .is_some_and(|at| now.saturating_duration_since(*at) <= window)
    }

    /// Whether `me` and the voters that answered within `window` form a
    /// majority of `voters`. `me` counts only if it is a voter.
    pub(crate) fn has_quorum(
        &self,
        me: u64,
        voters: impl IntoIterator<Item = u64>,
        window: Duration,
        now: Instant,
    ) -> bool {
        let mut total = 0usize;
        let mut heard = 0usize;
        for voter in voters {
            total += 1;
            if voter == me || self.answered_within(voter, window, now) {
                heard += 1;
            }
        }
        heard * 2 > total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.last_answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(1);

    #[test]
    fn a_lone_voter_is_its_own_quorum() {
        let contact = PeerContact::default();
        assert!(contact.has_quorum(1, [1], WINDOW, Instant::now()));
    }

    #[test]
    fn a_leader_needs_answers_from_a_majority_within_the_window() {
        let contact = PeerContact::default();
        let start = Instant::now();
        assert!(!contact.has_quorum(1, [1, 2, 3], WINDOW, start));
        contact.answered(2);
        let now = Instant::now();
        assert!(contact.has_quorum(1, [1, 2, 3], WINDOW, now));
        // Five voters: itself and one other are not enough.
        assert!(!contact.has_quorum(1, [1, 2, 3, 4, 5], WINDOW, now));
        contact.answered(5);
        assert!(contact.has_quorum(1, [1, 2, 3, 4, 5], WINDOW, now));
        // Answers older than the window no longer count.
        let later = now + WINDOW * 2;
        assert!(!contact.has_quorum(1, [1, 2, 3], WINDOW, later));
    }

    #[test]
    fn answers_of_non_voters_do_not_count() {
        let contact = PeerContact::default();
        contact.answered(4);
        assert!(!contact.has_quorum(1, [1, 2, 3], WINDOW, Instant::now()));
        // A member that is not a voter itself (a learner) counts nobody.
        contact.answered(2);
        assert!(!contact.has_quorum(9, [1, 2, 3], WINDOW, Instant::now()));
    }
}
