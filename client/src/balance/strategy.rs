//! [`Strategy`]: a balancing strategy chosen by name (command lines, config).

use std::fmt;
use std::str::FromStr;

use super::{Balancer, Eligible, PowerOfTwoChoices, RoundRobin, WeightedRandom, ZonePreference};

/// The strategies of this module, by name: `round-robin`, `weighted-random`
/// (or `weighted`), `p2c` (or `power-of-two-choices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    RoundRobin,
    WeightedRandom,
    PowerOfTwoChoices,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown balancing strategy {0:?}: expected round-robin, weighted-random or p2c")]
pub struct UnknownStrategy(pub String);

impl Strategy {
    pub const ALL: [Strategy; 3] = [
        Strategy::RoundRobin,
        Strategy::WeightedRandom,
        Strategy::PowerOfTwoChoices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::WeightedRandom => "weighted-random",
            Strategy::PowerOfTwoChoices => "p2c",
        }
    }

    /// A balancer of this strategy over `eligible`, preferring `zone` when
    /// one is given.
    pub fn build(self, eligible: impl Into<Eligible>, zone: Option<&str>) -> Box<dyn Balancer> {
        let eligible = eligible.into();
        match (self, zone) {
            (Strategy::RoundRobin, None) => Box::new(RoundRobin::new(eligible)),
            (Strategy::RoundRobin, Some(z)) => {
                Box::new(ZonePreference::new(RoundRobin::new(eligible), z))
            }
            (Strategy::WeightedRandom, None) => Box::new(WeightedRandom::new(eligible)),
            (Strategy::WeightedRandom, Some(z)) => {
                Box::new(ZonePreference::new(WeightedRandom::new(eligible), z))
            }
            (Strategy::PowerOfTwoChoices, None) => Box::new(PowerOfTwoChoices::new(eligible)),
            (Strategy::PowerOfTwoChoices, Some(z)) => {
                Box::new(ZonePreference::new(PowerOfTwoChoices::new(eligible), z))
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "round-robin" | "roundrobin" | "rr" => Ok(Strategy::RoundRobin),
            "weighted-random" | "weighted" | "random" => Ok(Strategy::WeightedRandom),
            "p2c" | "power-of-two-choices" | "least-loaded" => Ok(Strategy::PowerOfTwoChoices),
            _ => Err(UnknownStrategy(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::channel;
    use crate::registry::Health::Passing;

    #[test]
    fn names_round_trip_and_build_works() -> Result<(), UnknownStrategy> {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>()?, strategy);
        }
        assert!("fastest".parse::<Strategy>().is_err());
        let (_tx, rx) = channel(&[("a", "z", 1, Passing), ("b", "y", 1, Passing)]);
        for strategy in Strategy::ALL {
            let balancer = strategy.build(rx.clone(), Some("y"));
            assert_eq!(balancer.pick().map(|p| p.id.clone()).as_deref(), Some("b"));
        }
        Ok(())
    }
}
