//! [`RoundRobin`]: each eligible instance in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, Eligible, Picked};
use crate::registry::Instance;

/// Cycles through the candidates in key order. When the set changes the
/// cycle continues from the same position in the new set.
#[derive(Debug)]
pub struct RoundRobin {
    eligible: Eligible,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(eligible: impl Into<Eligible>) -> Self {
        Self {
            eligible: eligible.into(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Balancer for RoundRobin {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        self.eligible.current()
    }

    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        if candidates.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(Picked::new(Arc::clone(
            &candidates[turn % candidates.len()],
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::balance::test_support::{channel, snapshot};
    use crate::registry::Health::{Critical, Passing};

    #[test]
    fn visits_every_eligible_instance_equally() {
        let (tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 5, Passing),
            ("c", "", 1, Passing),
        ]);
        let balancer = RoundRobin::new(rx);
        let order: Vec<String> = (0..6)
            .filter_map(|_| balancer.pick())
            .map(|p| p.id.clone())
            .collect();
        assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
        // A critical instance leaves the rotation.
        tx.send_replace(snapshot(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Critical),
            ("c", "", 1, Passing),
        ]));
        let mut counts = BTreeMap::new();
        for _ in 0..1000 {
            if let Some(p) = balancer.pick() {
                *counts.entry(p.id.clone()).or_insert(0) += 1;
            }
        }
        assert_eq!(
            counts,
            BTreeMap::from([("a".to_string(), 500), ("c".to_string(), 500)])
        );
        tx.send_replace(snapshot(&[]));
        assert!(balancer.pick().is_none());
    }
}
