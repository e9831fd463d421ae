//! What discovery knows about one service at a moment: every instance (in
//! key order), the revision it reflects, and whether it may be out of date
//! because the registry is unreachable. Balancers and `tower` adapters read
//! snapshots; discovery publishes them through a `tokio::sync::watch`.

use std::sync::Arc;

use super::Instance;

/// Nacos' and Consul's default: when fewer than half the instances pass,
/// send traffic to all of them rather than overload the few.
pub const DEFAULT_PROTECTION_THRESHOLD: f64 = 0.5;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSnapshot {
    pub service: String,
    /// Every registered instance, passing or not, in key order.
    pub instances: Arc<Vec<Instance>>,
    /// The registry revision this snapshot reflects.
    pub revision: i64,
    /// True while the registry cannot be reached: this is the last known set.
    pub stale: bool,
}

impl ServiceSnapshot {
    /// The instances to send traffic to: the passing ones, or all of them
    /// when fewer than `threshold` (0.0..=1.0) of the instances pass.
    pub fn eligible(&self, threshold: f64) -> Vec<Instance> {
        let passing: Vec<Instance> = self
            .instances
            .iter()
            .filter(|i| i.is_passing())
            .cloned()
            .collect();
        let total = self.instances.len();
        #[allow(clippy::cast_precision_loss)]
        let enough = passing.len() as f64 >= threshold * total as f64;
        if total > 0 && (passing.is_empty() || !enough) {
            return self.instances.as_ref().clone();
        }
        passing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Health;

    fn snapshot(healths: &[Health]) -> ServiceSnapshot {
        let instances = healths
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut instance = Instance::new("s", format!("i{i}"), format!("h:{i}"));
                instance.health = *h;
                instance
            })
            .collect();
        ServiceSnapshot {
            service: "s".into(),
            instances: Arc::new(instances),
            revision: 1,
            stale: false,
        }
    }

    #[test]
    fn protection_threshold_returns_all_when_too_few_pass() {
        use Health::{Critical, Passing};
        assert_eq!(
            snapshot(&[Passing, Passing, Critical]).eligible(0.5).len(),
            2
        );
        assert_eq!(
            snapshot(&[Passing, Critical, Critical]).eligible(0.5).len(),
            3
        );
        assert_eq!(snapshot(&[Critical, Critical]).eligible(0.0).len(), 2);
        assert_eq!(
            snapshot(&[Passing, Critical, Critical]).eligible(0.0).len(),
            1
        );
        assert!(snapshot(&[]).eligible(0.5).is_empty());
    }
}
