//! [`Picked`]: the instance a balancer chose, and for load-aware strategies
//! the [`InFlight`] guard that counts the request until it is dropped.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::registry::Instance;

/// One request's choice. Dereferences to the [`Instance`]; keep it alive
/// until the request completes, since for [`PowerOfTwoChoices`] it counts
/// as one request in flight on the instance until dropped.
///
/// [`PowerOfTwoChoices`]: super::PowerOfTwoChoices
#[derive(Debug)]
pub struct Picked {
    instance: Arc<Instance>,
    in_flight: Option<InFlight>,
}

impl Picked {
    pub(crate) fn new(instance: Arc<Instance>) -> Self {
        Self {
            instance,
            in_flight: None,
        }
    }

    pub(crate) fn counted(instance: Arc<Instance>, in_flight: InFlight) -> Self {
        Self {
            instance,
            in_flight: Some(in_flight),
        }
    }

    /// The chosen instance.
    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// The in-flight guard, for strategies that count requests.
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// Splits the choice into the instance and its in-flight guard (drop the
    /// guard when the request completes).
    pub fn into_parts(self) -> (Arc<Instance>, Option<InFlight>) {
        (self.instance, self.in_flight)
    }
}

impl Deref for Picked {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        &self.instance
    }
}

/// One request in flight on an instance: incremented when picked,
/// decremented when dropped.
#[derive(Debug)]
pub struct InFlight {
    counter: Arc<AtomicUsize>,
}

impl InFlight {
    pub(crate) fn start(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self { counter }
    }

    /// Requests now in flight on the instance, this one included.
    pub fn count(&self) -> usize {
        self.counter.load(Ordering::Acquire)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}
