//! [`PowerOfTwoChoices`]: two random candidates, the one with fewer requests
//! in flight wins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::Rng;
use rand::rngs::StdRng;

use super::{Balancer, Eligible, InFlight, Picked};
use crate::registry::Instance;

/// Power of two choices (Mitzenmacher): samples two distinct candidates and
/// sends to the one with fewer requests in flight through this balancer.
/// The returned [`Picked`] holds an [`InFlight`] guard; the count drops when
/// it is dropped, so hold it for the duration of the request.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    eligible: Eligible,
    rng: Mutex<StdRng>,
    /// In-flight counters by instance id.
    loads: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

impl PowerOfTwoChoices {
    pub fn new(eligible: impl Into<Eligible>) -> Self {
        Self {
            eligible: eligible.into(),
            rng: Mutex::new(super::rng(None)),
            loads: Mutex::new(HashMap::new()),
        }
    }

    /// A reproducible sequence of samples (for tests and simulations).
    #[must_use]
    pub fn seeded(mut self, seed: u64) -> Self {
        self.rng = Mutex::new(super::rng(Some(seed)));
        self
    }

    /// Requests in flight on instance `id` through this balancer.
    pub fn in_flight(&self, id: &str) -> usize {
        let loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        loads.get(id).map_or(0, |c| c.load(Ordering::Acquire))
    }

    fn counter(loads: &mut HashMap<String, Arc<AtomicUsize>>, id: &str) -> Arc<AtomicUsize> {
        if let Some(counter) = loads.get(id) {
            return Arc::clone(counter);
        }
        let counter = Arc::new(AtomicUsize::new(0));
        loads.insert(id.to_string(), Arc::clone(&counter));
        counter
    }
}

impl Balancer for PowerOfTwoChoices {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        self.eligible.current()
    }

    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        let (first, second) = match candidates.len() {
            0 => return None,
            1 => (0, None),
            n => {
                let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
                let a = rng.random_range(0..n);
                let b = rng.random_range(0..n - 1);
                (a, Some(if b >= a { b + 1 } else { b }))
            }
        };
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget instances that left the set and have nothing in flight.
        if loads.len() > 2 * candidates.len() + 16 {
            loads.retain(|id, c| {
                c.load(Ordering::Acquire) > 0 || candidates.iter().any(|i| &i.id == id)
            });
        }
        let mut chosen = first;
        let mut counter = Self::counter(&mut loads, &candidates[first].id);
        if let Some(second) = second {
            let other = Self::counter(&mut loads, &candidates[second].id);
            if other.load(Ordering::Acquire) < counter.load(Ordering::Acquire) {
                chosen = second;
                counter = other;
            }
        }
        let guard = InFlight::start(counter);
        Some(Picked::counted(Arc::clone(&candidates[chosen]), guard))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::balance::test_support::channel;
    use crate::registry::Health::Passing;

    #[test]
    fn prefers_the_less_loaded_and_releases_on_drop() {
        let (_tx, rx) = channel(&[("a", "", 1, Passing), ("b", "", 1, Passing)]);
        let balancer = PowerOfTwoChoices::new(rx).seeded(1);
        // Hold 5 requests on whichever instance the first picks go to: with
        // two candidates both are always sampled, so load alternates evenly.
        let held: Vec<Picked> = (0..10).filter_map(|_| balancer.pick()).collect();
        assert_eq!((balancer.in_flight("a"), balancer.in_flight("b")), (5, 5));
        // Release every request on "a": the next picks all go to "a" until it
        // catches up with "b".
        let (on_a, on_b): (Vec<Picked>, Vec<Picked>) = held.into_iter().partition(|p| p.id == "a");
        drop(on_a);
        assert_eq!(balancer.in_flight("a"), 0);
        let next: Vec<Picked> = (0..5).filter_map(|_| balancer.pick()).collect();
        assert!(
            next.iter().all(|p| p.id == "a"),
            "less loaded instance preferred"
        );
        assert_eq!(
            next.last().and_then(|p| p.in_flight()).map(InFlight::count),
            Some(5)
        );
        drop((next, on_b));
        assert_eq!((balancer.in_flight("a"), balancer.in_flight("b")), (0, 0));
    }

    #[test]
    fn a_slow_instance_gets_less_traffic() {
        // Four instances; "slow" never completes its requests (their guards
        // are kept), the others complete at once. Once "slow" has a request
        // in flight it loses every comparison (the two samples are distinct),
        // so it is picked exactly once and the rest is shared evenly.
        let (_tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Passing),
            ("c", "", 1, Passing),
            ("slow", "", 1, Passing),
        ]);
        let balancer = PowerOfTwoChoices::new(rx).seeded(7);
        let mut kept = Vec::new();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..10_000 {
            if let Some(p) = balancer.pick() {
                *counts.entry(p.id.clone()).or_default() += 1;
                if p.id == "slow" {
                    kept.push(p);
                }
            }
        }
        assert_eq!(counts.get("slow").copied(), Some(1), "{counts:?}");
        for id in ["a", "b", "c"] {
            let n = counts.get(id).copied().unwrap_or(0);
            assert!(
                (3000..=3670).contains(&n),
                "{id}: {n} of 10000 ({counts:?})"
            );
        }
        assert_eq!(balancer.in_flight("slow"), 1);
    }

    #[test]
    fn single_and_empty_sets() {
        let (tx, rx) = channel(&[("only", "", 1, Passing)]);
        let balancer = PowerOfTwoChoices::new(rx);
        let picked = balancer.pick().map(|p| p.id.clone());
        assert_eq!(picked.as_deref(), Some("only"));
        tx.send_replace(crate::balance::test_support::snapshot(&[]));
        assert!(balancer.pick().is_none());
    }
}
