//! [`WeightedRandom`]: a random instance, each with probability proportional
//! to its `weight`.

use std::sync::{Arc, Mutex, PoisonError};

use rand::Rng;
use rand::rngs::StdRng;

use super::{Balancer, Eligible, Picked};
use crate::registry::Instance;

/// Picks instance *i* with probability `weight_i / Σ weight`. Weight 0 gets
/// no traffic unless every candidate has weight 0; then the choice is uniform.
#[derive(Debug)]
pub struct WeightedRandom {
    eligible: Eligible,
    rng: Mutex<StdRng>,
}

impl WeightedRandom {
    pub fn new(eligible: impl Into<Eligible>) -> Self {
        Self {
            eligible: eligible.into(),
            rng: Mutex::new(super::rng(None)),
        }
    }

    /// A reproducible sequence of choices (for tests and simulations).
    #[must_use]
    pub fn seeded(mut self, seed: u64) -> Self {
        self.rng = Mutex::new(super::rng(Some(seed)));
        self
    }
}

impl Balancer for WeightedRandom {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        self.eligible.current()
    }

    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        if candidates.is_empty() {
            return None;
        }
        let total: u64 = candidates.iter().map(|i| u64::from(i.weight)).sum();
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        if total == 0 {
            let index = rng.random_range(0..candidates.len());
            return Some(Picked::new(Arc::clone(&candidates[index])));
        }
        let mut ticket = rng.random_range(0..total);
        drop(rng);
        for instance in candidates {
            let weight = u64::from(instance.weight);
            if ticket < weight {
                return Some(Picked::new(Arc::clone(instance)));
            }
            ticket -= weight;
        }
        // Unreachable: the tickets cover exactly the weights.
        candidates.last().map(|i| Picked::new(Arc::clone(i)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::balance::test_support::channel;
    use crate::registry::Health::{Critical, Passing};

    fn shares(balancer: &WeightedRandom, picks: u32) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..picks {
            if let Some(p) = balancer.pick() {
                *counts.entry(p.id.clone()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|(id, n)| (id, f64::from(n) / f64::from(picks)))
            .collect()
    }

    #[test]
    fn picks_follow_the_weights_within_five_percent() {
        let (_tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 2, Passing),
            ("c", "", 3, Passing),
            ("d", "", 4, Passing),
            ("e", "", 9, Critical),
        ]);
        for seed in [1, 2, 3, 42, 4242] {
            let balancer = WeightedRandom::new(rx.clone()).seeded(seed);
            // 100,000 picks: the lightest share (10%) then has a standard deviation
            // of 0.95% of itself, so ±5% is more than 5 sigma for any seed.
            let shares = shares(&balancer, 100_000);
            assert!(
                !shares.contains_key("e"),
                "critical instance picked (seed {seed})"
            );
            for (id, weight) in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)] {
                let expected = weight / 10.0;
                let got = shares.get(id).copied().unwrap_or(0.0);
                assert!(
                    (got - expected).abs() <= 0.05 * expected,
                    "seed {seed}: {id} got {got:.4}, expected {expected:.4} ± 5%"
                );
            }
        }
    }

    #[test]
    fn same_seed_same_choices_and_zero_weights() {
        let (_tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 0, Passing),
            ("c", "", 1, Passing),
        ]);
        let run = |seed| {
            let balancer = WeightedRandom::new(rx.clone()).seeded(seed);
            (0..200)
                .filter_map(|_| balancer.pick())
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert!(
            !run(7).iter().any(|id| id == "b"),
            "weight 0 gets no traffic"
        );
        let (_tx, rx) = channel(&[("a", "", 0, Passing), ("b", "", 0, Passing)]);
        let all_zero = shares(&WeightedRandom::new(rx).seeded(9), 10_000);
        assert_eq!(all_zero.len(), 2, "all weights 0: uniform");
        assert!(all_zero.values().all(|s| (s - 0.5).abs() < 0.025));
    }
}
