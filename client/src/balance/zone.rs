//! [`ZonePreference`]: same-zone instances first, any zone when the local
//! zone has none eligible; wraps any other balancer.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Balancer, Picked};
use crate::registry::Instance;

/// Narrows the inner balancer's candidates to the instances in `zone`, and
/// falls back to all candidates when none of them is in `zone`.
#[derive(Debug)]
pub struct ZonePreference<B> {
    inner: B,
    zone: String,
    cache: Mutex<Cache>,
}

/// The local subset of the last full candidate set seen.
#[derive(Debug, Default)]
struct Cache {
    /// Kept alive so pointer identity means "the same set".
    from: Option<Arc<[Arc<Instance>]>>,
    local: Vec<Arc<Instance>>,
}

impl<B: Balancer> ZonePreference<B> {
    /// Prefers instances whose `zone` equals `zone` exactly.
    pub fn new(inner: B, zone: impl Into<String>) -> Self {
        Self {
            inner,
            zone: zone.into(),
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn local(&self, candidates: &[Arc<Instance>]) -> Vec<Arc<Instance>> {
        candidates
            .iter()
            .filter(|i| i.zone == self.zone)
            .cloned()
            .collect()
    }
}

impl<B: Balancer> Balancer for ZonePreference<B> {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        self.inner.candidates()
    }

    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        let local = self.local(candidates);
        if local.is_empty() {
            self.inner.pick_among(candidates)
        } else {
            self.inner.pick_among(&local)
        }
    }

    fn pick(&self) -> Option<Picked> {
        let candidates = self.candidates();
        let local = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if !cache
                .from
                .as_ref()
                .is_some_and(|from| Arc::ptr_eq(from, &candidates))
            {
                cache.local = self.local(&candidates);
                cache.from = Some(Arc::clone(&candidates));
            }
            cache.local.clone()
        };
        if local.is_empty() {
            self.inner.pick_among(&candidates)
        } else {
            self.inner.pick_among(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::balance::test_support::{channel, snapshot};
    use crate::balance::{PowerOfTwoChoices, RoundRobin, WeightedRandom};
    use crate::registry::Health::{Critical, Passing};

    fn picked_ids(balancer: &dyn Balancer, n: usize) -> BTreeSet<String> {
        (0..n)
            .filter_map(|_| balancer.pick())
            .map(|p| p.id.clone())
            .collect()
    }

    #[test]
    fn same_zone_first_then_falls_back_when_it_has_none_eligible() {
        let (tx, rx) = channel(&[
            ("a1", "eu-1", 1, Passing),
            ("a2", "eu-1", 1, Passing),
            ("b1", "us-1", 1, Passing),
            ("b2", "us-1", 1, Passing),
        ]);
        let balancers: Vec<Box<dyn Balancer>> = vec![
            Box::new(ZonePreference::new(RoundRobin::new(rx.clone()), "eu-1")),
            Box::new(ZonePreference::new(
                WeightedRandom::new(rx.clone()).seeded(3),
                "eu-1",
            )),
            Box::new(ZonePreference::new(
                PowerOfTwoChoices::new(rx.clone()).seeded(3),
                "eu-1",
            )),
        ];
        for balancer in &balancers {
            assert_eq!(
                picked_ids(balancer.as_ref(), 1000),
                BTreeSet::from(["a1".into(), "a2".into()])
            );
        }
        // One local instance left passing: all traffic to it.
        tx.send_replace(snapshot(&[
            ("a1", "eu-1", 1, Passing),
            ("a2", "eu-1", 1, Critical),
            ("b1", "us-1", 1, Passing),
            ("b2", "us-1", 1, Passing),
        ]));
        for balancer in &balancers {
            assert_eq!(
                picked_ids(balancer.as_ref(), 1000),
                BTreeSet::from(["a1".into()])
            );
        }
        // No local instance eligible: the other zones.
        tx.send_replace(snapshot(&[
            ("a1", "eu-1", 1, Critical),
            ("a2", "eu-1", 1, Critical),
            ("b1", "us-1", 1, Passing),
            ("b2", "us-1", 1, Passing),
            ("c1", "ap-1", 1, Passing),
        ]));
        for balancer in &balancers {
            let ids = picked_ids(balancer.as_ref(), 1000);
            assert_eq!(ids, BTreeSet::from(["b1".into(), "b2".into(), "c1".into()]));
        }
        // And back when the zone recovers.
        tx.send_replace(snapshot(&[
            ("a1", "eu-1", 1, Passing),
            ("b1", "us-1", 1, Passing),
        ]));
        for balancer in &balancers {
            assert_eq!(
                picked_ids(balancer.as_ref(), 100),
                BTreeSet::from(["a1".into()])
            );
        }
    }

    #[test]
    fn zone_preference_keeps_the_inner_weights() {
        let (_tx, rx) = channel(&[
            ("a1", "eu-1", 1, Passing),
            ("a2", "eu-1", 3, Passing),
            ("b1", "us-1", 100, Passing),
        ]);
        let balancer = ZonePreference::new(WeightedRandom::new(rx).seeded(11), "eu-1");
        let a2 = (0..10_000)
            .filter_map(|_| balancer.pick())
            .filter(|p| p.id == "a2")
            .count();
        assert!(
            (7125..=7875).contains(&a2),
            "a2 got {a2} of 10000, expected 7500 ± 5%"
        );
    }
}
