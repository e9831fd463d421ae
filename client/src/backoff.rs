//! Reconnect delays: [`RetryPolicy`] (exponential backoff with jitter and a
//! bound on consecutive failed attempts) and the `Backoff` state that walks
//! it. The watch session and the lease keeper both use it.

use std::time::Duration;

use rand::Rng;

/// How a broken stream is re-established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay ceiling of the first retry.
    pub initial_backoff: Duration,
    /// The ceiling doubles per consecutive failure up to this.
    pub max_backoff: Duration,
    /// Consecutive failed attempts after which the caller is told the stream
    /// is lost; `None` retries forever. A response received resets the count.
    pub max_attempts: Option<u32>,
}

impl RetryPolicy {
    /// 100 ms doubling to 5 s, 10 attempts: a stream is given up after about
    /// half a minute without a server.
    pub const DEFAULT: Self = Self {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
        max_attempts: Some(10),
    };

    /// The delay ceiling before retry number `attempt` (0-based):
    /// `initial × 2^attempt`, at most `max_backoff`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Consecutive failures so far under a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// Counts one more failure and returns how long to wait before the next
    /// attempt: between half the ceiling and the ceiling ("equal jitter", so
    /// clients that lost the same server do not come back in lockstep), or
    /// `None` once the policy's attempts are spent.
    pub(crate) fn fail(&mut self, rng: &mut impl Rng) -> Option<Duration> {
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.failures > max)
        {
            return None;
        }
        let ceiling = self.policy.ceiling(attempt);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        Some(half + Duration::from_micros(rng.random_range(0..=spread)))
    }

    /// Consecutive failures counted since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts from the initial delay again.
    pub(crate) fn succeed(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let p = RetryPolicy::DEFAULT;
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(5), Duration::from_millis(3200));
        assert_eq!(p.ceiling(6), Duration::from_secs(5));
        assert_eq!(p.ceiling(40), Duration::from_secs(5));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn delays_stay_within_half_and_full_ceiling() {
        let mut rng = SmallRng::seed_from_u64(7);
        let policy = RetryPolicy {
            max_attempts: None,
            ..RetryPolicy::DEFAULT
        };
        let mut b = Backoff::new(policy);
        for attempt in 0..50 {
            let delay = b.fail(&mut rng);
            let ceiling = policy.ceiling(attempt);
            assert!(
                delay.is_some_and(|d| d >= ceiling / 2 && d <= ceiling),
                "attempt {attempt}: {delay:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn attempts_are_bounded_and_reset_by_success() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut b = Backoff::new(RetryPolicy {
            max_attempts: Some(3),
            ..RetryPolicy::DEFAULT
        });
        assert!(b.fail(&mut rng).is_some());
        assert!(b.fail(&mut rng).is_some());
        assert!(b.fail(&mut rng).is_some());
        assert_eq!(b.fail(&mut rng), None);
        assert_eq!(b.failures(), 4);
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert!(
            b.fail(&mut rng)
                .is_some_and(|d| d <= Duration::from_millis(100))
        );
    }
}
