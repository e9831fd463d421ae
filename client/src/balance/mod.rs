//! Load balancing over a discovered service: pick one of the instances that
//! a [`ServiceSnapshot`](crate::registry::ServiceSnapshot) says should get
//! traffic (its [`eligible`](crate::registry::ServiceSnapshot::eligible)
//! instances under a protection threshold), always reading the latest
//! snapshot from the `tokio::sync::watch::Receiver` discovery publishes to.
//!
//! ```no_run
//! # fn demo(rx: tokio::sync::watch::Receiver<rollcall_client::registry::ServiceSnapshot>) {
//! use rollcall_client::balance::{Balancer, Eligible, PowerOfTwoChoices, ZonePreference};
//!
//! let balancer = ZonePreference::new(PowerOfTwoChoices::new(Eligible::new(rx)), "eu-1");
//! if let Some(picked) = balancer.pick() {
//!     println!("sending to {} at {}", picked.id, picked.addr);
//!     // `picked` counts as one request in flight on that instance until dropped.
//! }
//! # }
//! ```
//!
//! Layout:
//! - `eligible.rs`: [`Eligible`], the cached eligible set of the latest snapshot;
//! - `picked.rs`: [`Picked`] and the [`InFlight`] guard;
//! - `round_robin.rs`, `weighted.rs`, `p2c.rs`: the strategies;
//! - `zone.rs`: [`ZonePreference`], a wrapper over any balancer;
//! - `strategy.rs`: [`Strategy`], choosing a strategy by name;
//! - `discover.rs`: [`discover()`], the set as a `tower::discover::Discover`;
//! - `channel.rs`: [`balanced_channel`], a tonic `Channel` fed by it.

mod channel;
mod discover;
mod eligible;
mod p2c;
mod picked;
mod round_robin;
mod strategy;
mod weighted;
mod zone;

use std::sync::Arc;

use crate::registry::Instance;

pub use channel::{BalanceError, balanced_channel, endpoint};
pub use discover::{DiscoverStream, discover};
pub use eligible::Eligible;
pub use p2c::PowerOfTwoChoices;
pub use picked::{InFlight, Picked};
pub use round_robin::RoundRobin;
pub use strategy::{Strategy, UnknownStrategy};
pub use weighted::WeightedRandom;
pub use zone::ZonePreference;

/// Chooses the instance the next request goes to.
///
/// A balancer reads its candidates from the latest snapshot ([`candidates`])
/// and chooses among them ([`pick_among`]); the split lets wrappers such as
/// [`ZonePreference`] narrow the candidates and still use the inner strategy.
///
/// [`candidates`]: Balancer::candidates
/// [`pick_among`]: Balancer::pick_among
pub trait Balancer: Send + Sync {
    /// The instances this balancer currently chooses among: the eligible
    /// instances of the latest snapshot.
    fn candidates(&self) -> Arc<[Arc<Instance>]>;

    /// Chooses one of `candidates` (any subset of [`Balancer::candidates`]);
    /// `None` when it is empty.
    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked>;

    /// Chooses among the latest eligible instances; `None` when there is none.
    fn pick(&self) -> Option<Picked> {
        self.pick_among(&self.candidates())
    }
}

impl<B: Balancer + ?Sized> Balancer for Box<B> {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        (**self).candidates()
    }
    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        (**self).pick_among(candidates)
    }
    fn pick(&self) -> Option<Picked> {
        (**self).pick()
    }
}

impl<B: Balancer + ?Sized> Balancer for Arc<B> {
    fn candidates(&self) -> Arc<[Arc<Instance>]> {
        (**self).candidates()
    }
    fn pick_among(&self, candidates: &[Arc<Instance>]) -> Option<Picked> {
        (**self).pick_among(candidates)
    }
    fn pick(&self) -> Option<Picked> {
        (**self).pick()
    }
}

/// The random source of the randomized strategies: seeded for reproducible
/// tests, from the OS otherwise.
fn rng(seed: Option<u64>) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    match seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_os_rng(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Snapshots for the balancer tests.

    use std::sync::Arc;

    use tokio::sync::watch;

    use crate::registry::{Health, Instance, ServiceSnapshot};

    /// `(id, zone, weight, health)` rows.
    pub fn snapshot(rows: &[(&str, &str, u32, Health)]) -> ServiceSnapshot {
        let instances = rows
            .iter()
            .map(|(id, zone, weight, health)| {
                let mut instance = Instance::new("svc", *id, format!("127.0.0.1:1{id}"));
                instance.zone = (*zone).to_string();
                instance.weight = *weight;
                instance.health = *health;
                instance
            })
            .collect();
        ServiceSnapshot {
            service: "svc".into(),
            instances: Arc::new(instances),
            revision: 1,
            stale: false,
        }
    }

    pub fn channel(
        rows: &[(&str, &str, u32, Health)],
    ) -> (
        watch::Sender<ServiceSnapshot>,
        watch::Receiver<ServiceSnapshot>,
    ) {
        watch::channel(snapshot(rows))
    }
}
