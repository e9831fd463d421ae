//! [`Eligible`]: the instances of the latest snapshot that should get
//! traffic, recomputed only when discovery publishes a new instance list.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::registry::{DEFAULT_PROTECTION_THRESHOLD, Instance, ServiceSnapshot};

/// The eligible instances of the latest snapshot of a
/// `watch::Receiver<ServiceSnapshot>`: the passing ones, or all of them when
/// fewer than the protection threshold pass
/// ([`ServiceSnapshot::eligible`]).
#[derive(Debug)]
pub struct Eligible {
    rx: watch::Receiver<ServiceSnapshot>,
    threshold: f64,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// The instance list `eligible` was computed from; holding it keeps its
    /// address from being reused, so pointer identity means "unchanged".
    from: Option<Arc<Vec<Instance>>>,
    eligible: Option<Arc<[Arc<Instance>]>>,
}

impl Eligible {
    /// Reads `rx` with the default protection threshold (50%).
    pub fn new(rx: watch::Receiver<ServiceSnapshot>) -> Self {
        Self {
            rx,
            threshold: DEFAULT_PROTECTION_THRESHOLD,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Sets the protection threshold (0.0..=1.0): when fewer than this share
    /// of the instances pass, all of them are eligible.
    #[must_use]
    pub fn protection_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self.cache = Mutex::new(Cache::default());
        self
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The eligible instances of the latest snapshot, in key order.
    pub fn current(&self) -> Arc<[Arc<Instance>]> {
        let instances = Arc::clone(&self.rx.borrow().instances);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(from), Some(eligible)) = (&cache.from, &cache.eligible)
            && Arc::ptr_eq(from, &instances)
        {
            return Arc::clone(eligible);
        }
        let snapshot = ServiceSnapshot {
            instances: Arc::clone(&instances),
            ..ServiceSnapshot::default()
        };
        let eligible: Arc<[Arc<Instance>]> = snapshot
            .eligible(self.threshold)
            .into_iter()
            .map(Arc::new)
            .collect();
        cache.from = Some(instances);
        cache.eligible = Some(Arc::clone(&eligible));
        eligible
    }

    /// The latest snapshot itself (revision, staleness, every instance).
    pub fn snapshot(&self) -> ServiceSnapshot {
        self.rx.borrow().clone()
    }
}

impl From<watch::Receiver<ServiceSnapshot>> for Eligible {
    fn from(rx: watch::Receiver<ServiceSnapshot>) -> Self {
        Self::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{channel, snapshot};
    use crate::registry::Health::{Critical, Passing};

    #[test]
    fn follows_the_latest_snapshot_and_caches_between_changes() {
        let (tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Passing),
            ("c", "", 1, Critical),
        ]);
        let eligible = Eligible::new(rx);
        let first = eligible.current();
        assert_eq!(
            first.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(
            Arc::ptr_eq(&first, &eligible.current()),
            "unchanged snapshot: cached set"
        );
        tx.send_replace(snapshot(&[("a", "", 1, Passing), ("c", "", 1, Passing)]));
        let second = eligible.current();
        assert_eq!(
            second.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        // Protection threshold: one of three passing is under 50%, so all three.
        tx.send_replace(snapshot(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Critical),
            ("c", "", 1, Critical),
        ]));
        assert_eq!(eligible.current().len(), 3);
        let strict = Eligible::new(tx.subscribe()).protection_threshold(0.0);
        assert_eq!(strict.current().len(), 1);
    }
}
