//! [`Discovery`]: a live, locally cached view of one service's instances.
//!
//! [`Client::discover`] lists `/services/<service>/` at a revision R, then
//! watches the prefix from R + 1 on a watch session of its own; a background
//! task applies the events to the cache (`cache.rs`) and publishes a
//! [`ServiceSnapshot`] whenever the instance set changes.
//!
//! - A short disconnect is absorbed by the watch session, which resumes
//!   every watcher from the revision after the last one delivered: no change
//!   is lost or repeated.
//! - A watcher ended by compaction (it needed a revision no longer kept) is
//!   replaced: list again at a new R, watch from R + 1.
//! - Liveness: every `heartbeat` the task asks the server for a progress
//!   notification on the watch stream. If nothing arrived on the stream by
//!   the next heartbeat, the registry counts as unreachable: the last known
//!   set is published again with `stale = true` and served as it is, while
//!   the task lists again with backoff (forever). The first listing that
//!   works, followed by a new watcher, publishes a fresh snapshot that
//!   includes every change made meanwhile.
//!
//! [`Discovery::instances`] applies the protection threshold: the passing
//! instances, or all of them when fewer than that share pass.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::registry::RegistryError> {
//! use rollcall_client::Client;
//! use rollcall_client::registry::DiscoveryOptions;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let mut web = client.discover("web", DiscoveryOptions::new()).await?;
//! loop {
//!     for instance in web.instances() {
//!         println!("{} at {}", instance.id, instance.addr);
//!     }
//!     web.changed().await?;
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::cache::{Cache, decode};
use super::{
    DEFAULT_PROTECTION_THRESHOLD, Instance, RegistryError, SERVICES_PREFIX, ServiceSnapshot,
    service_prefix,
};
use crate::backoff::{Backoff, RetryPolicy};
use crate::client::Client;
use crate::error::{ClientError, WatchError};
use crate::header::HasHeader;
use crate::kv::GetOptions;
use crate::watch::{WatchBatch, WatchOptions, WatchSession, Watcher};

/// How a service is discovered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscoveryOptions {
    /// [`Discovery::instances`] returns every instance when fewer than this
    /// share (0.0..=1.0) of them pass.
    pub protection_threshold: f64,
    /// Delays between failed attempts to list again (`max_attempts` is
    /// ignored: discovery never gives up).
    pub retry: RetryPolicy,
    /// How often the watch stream is checked; `None` never checks, so the
    /// set is marked stale only once the watch session gives up.
    pub heartbeat: Option<Duration>,
}

impl DiscoveryOptions {
    /// From 250 ms doubling to 5 s.
    pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(5),
        max_attempts: None,
    };
    /// An unreachable registry is noticed within two heartbeats.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn protection_threshold(mut self, threshold: f64) -> Self {
        self.protection_threshold = threshold;
        self
    }

    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Option<Duration>) -> Self {
        self.heartbeat = heartbeat;
        self
    }
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            protection_threshold: DEFAULT_PROTECTION_THRESHOLD,
            retry: Self::DEFAULT_RETRY,
            heartbeat: Some(Self::DEFAULT_HEARTBEAT),
        }
    }
}

/// A discovered service. Cloning is cheap; the background task runs while
/// any clone or any receiver from [`Discovery::subscribe`] is alive.
#[derive(Debug, Clone)]
pub struct Discovery {
    service: String,
    threshold: f64,
    snapshots: watch::Receiver<ServiceSnapshot>,
    /// Listings made, the first included.
    lists: Arc<AtomicU64>,
}

impl Client {
    /// Lists the service's instances and keeps the list current (see the
    /// module docs). Fails if the name is invalid or the first listing or
    /// watch fails; after that it never gives up.
    pub async fn discover(
        &self,
        service: &str,
        options: DiscoveryOptions,
    ) -> Result<Discovery, RegistryError> {
        let prefix = service_prefix(service)?;
        if !(0.0..=1.0).contains(&options.protection_threshold) {
            return Err(RegistryError::InvalidOption {
                option: "protection_threshold",
                reason: "a share between 0.0 and 1.0",
            });
        }
        let lists = Arc::new(AtomicU64::new(0));
        let (tx, mut snapshots) = watch::channel(ServiceSnapshot {
            service: service.to_owned(),
            ..ServiceSnapshot::default()
        });
        let mut discoverer = Discoverer {
            client: self.clone(),
            // Bounded reconnects, so an unreachable registry also surfaces
            // when the heartbeat is off.
            session: self.watch_session_with(RetryPolicy::DEFAULT),
            prefix,
            cache: Cache::new(service),
            stale: false,
            tx: Arc::new(tx),
            backoff: Backoff::new(RetryPolicy {
                max_attempts: None,
                ..options.retry
            }),
            rng: SmallRng::from_rng(&mut rand::rng()),
            heartbeat: options.heartbeat,
            lists: Arc::clone(&lists),
        };
        let watcher = discoverer.list_and_watch().await?;
        tokio::spawn(discoverer.run(watcher));
        // The listing is what the caller starts from: `changed` waits for
        // what comes after it.
        snapshots.borrow_and_update();
        Ok(Discovery {
            service: service.to_owned(),
            threshold: options.protection_threshold,
            snapshots,
            lists,
        })
    }

    /// Every service under `/services/` with its instance count and how
    /// many of them pass, sorted by name. Values that are not valid registry
    /// JSON are not counted.
    pub async fn services(&self) -> Result<Vec<(String, usize, usize)>, RegistryError> {
        let listed = self
            .get_with(SERVICES_PREFIX, GetOptions::new().prefix())
            .await?;
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for kv in &listed.kvs {
            match decode(kv) {
                Ok(instance) => {
                    let (total, passing) = counts.entry(instance.service.clone()).or_default();
                    *total += 1;
                    *passing += usize::from(instance.is_passing());
                }
                Err(skip) => tracing::debug!(
                    key = %String::from_utf8_lossy(&kv.key),
                    "services() skips a value: {skip}"
                ),
            }
        }
        Ok(counts
            .into_iter()
            .map(|(service, (total, passing))| (service, total, passing))
            .collect())
    }
}

impl Discovery {
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn protection_threshold(&self) -> f64 {
        self.threshold
    }

    /// The latest snapshot: every instance, passing or not.
    pub fn snapshot(&self) -> ServiceSnapshot {
        self.snapshots.borrow().clone()
    }

    /// The instances to send traffic to: the passing ones, or all of them
    /// when fewer than the protection threshold pass.
    pub fn instances(&self) -> Vec<Instance> {
        self.snapshots.borrow().eligible(self.threshold)
    }

    /// True while the registry is unreachable and the set may be out of date.
    pub fn is_stale(&self) -> bool {
        self.snapshots.borrow().stale
    }

    /// A receiver that sees every published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<ServiceSnapshot> {
        self.snapshots.clone()
    }

    /// Waits until a snapshot newer than the last one seen through this
    /// handle is published (the instance set or the staleness changed; the
    /// first listing counts as seen) and returns the latest.
    pub async fn changed(&mut self) -> Result<ServiceSnapshot, RegistryError> {
        self.snapshots
            .changed()
            .await
            .map_err(|_| RegistryError::Stopped)?;
        Ok(self.snapshots.borrow_and_update().clone())
    }

    /// How many times the service was listed again after the first listing
    /// (after a compaction or an unreachable registry).
    pub fn relists(&self) -> u64 {
        self.lists.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// The interval's next tick; never resolves without one.
async fn tick(interval: Option<&mut Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Why a watcher was given up.
enum Broken {
    /// It needed a compacted revision: list again, the set is still fresh.
    Compacted,
    /// The registry is unreachable (or refused the watch): list again, and
    /// serve the set as stale meanwhile.
    Lost(String),
}

/// The background task's state.
struct Discoverer {
    client: Client,
    session: WatchSession,
    prefix: String,
    cache: Cache,
    stale: bool,
    /// Shared with the loop so it can wait for every receiver to be gone
    /// while the rest of the state is borrowed.
    tx: Arc<watch::Sender<ServiceSnapshot>>,
    backoff: Backoff,
    rng: SmallRng,
    heartbeat: Option<Duration>,
    lists: Arc<AtomicU64>,
}

impl Discoverer {
    async fn run(mut self, mut watcher: Watcher) {
        let tx = Arc::clone(&self.tx);
        loop {
            let broken = tokio::select! {
                broken = self.follow(&mut watcher) => broken,
                () = tx.closed() => return,
            };
            drop(watcher);
            match broken {
                Broken::Compacted => {
                    tracing::info!(prefix = %self.prefix, "discovery's watch was compacted; listing again");
                }
                Broken::Lost(reason) => {
                    tracing::warn!(prefix = %self.prefix, "registry unreachable ({reason}); serving the last known set as stale");
                    self.stale = true;
                    self.publish(true);
                }
            }
            watcher = tokio::select! {
                watcher = self.resync() => watcher,
                () = tx.closed() => return,
            };
        }
    }

    /// Applies the watcher's batches until it breaks or the heartbeat goes
    /// unanswered.
    async fn follow(&mut self, watcher: &mut Watcher) -> Broken {
        let mut heartbeat = self.heartbeat.map(|period| {
            let period = period.max(Duration::from_millis(1));
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        // Whether anything came over the stream since the last request.
        let mut heard = true;
        loop {
            tokio::select! {
                batch = watcher.next() => match batch {
                    Some(Ok(batch)) => {
                        heard = true;
                        self.apply(&batch);
                    }
                    Some(Err(WatchError::Compacted { .. })) => return Broken::Compacted,
                    Some(Err(e)) => return Broken::Lost(e.to_string()),
                    None => return Broken::Lost(WatchError::Closed.to_string()),
                },
                () = tick(heartbeat.as_mut()) => {
                    if !heard {
                        return Broken::Lost(format!(
                            "nothing on the watch stream for {:?}",
                            self.heartbeat.unwrap_or_default()
                        ));
                    }
                    heard = false;
                    if self.session.request_progress().is_err() {
                        return Broken::Lost(WatchError::Closed.to_string());
                    }
                }
            }
        }
    }

    fn apply(&mut self, batch: &WatchBatch) {
        let mut changed = false;
        for event in &batch.events {
            changed |= self.cache.apply(event);
        }
        if changed {
            self.publish(true);
        } else if !batch.is_progress() {
            // Nothing visible changed: move the revision along quietly.
            let revision = self.cache.revision();
            self.tx.send_if_modified(|current| {
                current.revision = revision;
                false
            });
        }
    }

    /// Lists again and watches from there, with backoff, until it works.
    async fn resync(&mut self) -> Watcher {
        loop {
            match self.list_and_watch().await {
                Ok(watcher) => {
                    self.backoff.succeed();
                    return watcher;
                }
                Err(e) => {
                    if !self.stale {
                        self.stale = true;
                        self.publish(true);
                    }
                    let delay = self.backoff.fail(&mut self.rng).unwrap_or_default();
                    tracing::debug!(prefix = %self.prefix, "listing failed ({e}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Lists the prefix at R, creates a watcher from R + 1, then publishes
    /// the listing as a fresh snapshot.
    async fn list_and_watch(&mut self) -> Result<Watcher, RegistryError> {
        let listed = self
            .client
            .get_with(&self.prefix, GetOptions::new().prefix())
            .await?;
        let revision = listed.revision();
        let options = WatchOptions::new().prefix().start_revision(revision + 1);
        let timeout = self.client.options().request_timeout;
        let watcher =
            match tokio::time::timeout(timeout, self.session.watch(&self.prefix, options)).await {
                Ok(watcher) => watcher.map_err(ClientError::from)?,
                Err(_elapsed) => return Err(ClientError::Timeout(timeout).into()),
            };
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.cache.reset(&listed.kvs, revision);
        self.stale = false;
        self.publish(true);
        Ok(watcher)
    }

    /// Publishes the cache; subscribers are woken only when `notify` and the
    /// instances or the staleness differ from what they have.
    fn publish(&self, notify: bool) {
        let next = self.cache.snapshot(self.stale);
        self.tx.send_if_modified(|current| {
            let differs = current.stale != next.stale || current.instances != next.instances;
            *current = next;
            notify && differs
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_be_shared_across_tasks() {
        send_sync::<Discovery>();
        send_sync::<super::super::Registration>();
        send_sync::<super::super::HealthProbe>();
        send_sync::<RegistryError>();
    }

    #[test]
    fn default_options() {
        let o = DiscoveryOptions::default();
        assert_eq!(o.protection_threshold, DEFAULT_PROTECTION_THRESHOLD);
        assert_eq!(o.heartbeat, Some(Duration::from_secs(2)));
        assert_eq!(o.retry.max_attempts, None);
    }
}
