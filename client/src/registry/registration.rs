//! [`Registration`]: an instance registered under a lease and kept there.
//!
//! [`Client::register`] grants a lease (TTL 10 s by default), puts the
//! instance's key with it and hands the lease to a [`LeaseKeeper`] (renewal
//! every TTL/3). A background task then keeps the instance registered:
//!
//! - When the keeper reports the lease lost, the task registers again. A
//!   lease the keeper merely lost contact with ([`LeaseLost::Expired`]: a
//!   registry restart or a partition) may still exist, since rollcall gives
//!   every lease a fresh TTL after a restart, so it is tried first: if the
//!   registry still has it, the instance keeps its lease. Otherwise (or after
//!   [`LeaseLost::NotFound`]: revoked, or expired on the server) a new lease
//!   is granted. The key is put again either way. Failed attempts back off
//!   exponentially with jitter and never give up.
//! - The task watches the instance's own key from the revision of its put.
//!   A delete it did not make (it has not deregistered, and the lease still
//!   lives: an operator's `etcdctl del`, a buggy script) would silently drop
//!   the instance from discovery, so the same value is put back under the
//!   same lease, with a warning in the log. If the lease is gone too, that
//!   put fails and the lost-lease path above applies.
//! - With a [`HealthProbe`], every flip of its result rewrites the value
//!   (`"health":"passing"|"critical"`) under the same lease.
//! - [`Registration::deregister`] revokes the lease (the key goes with it, in
//!   one revision). Dropping the handle does the same in the background,
//!   best effort.
//!
//! State changes are published through [`Registration::subscribe`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_client::registry::RegistryError> {
//! use rollcall_client::Client;
//! use rollcall_client::registry::{HealthProbe, Instance, RegistrationOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let instance = Instance::new("web", "web-1", "10.0.0.7:8080");
//! let options = RegistrationOptions::new().probe(HealthProbe::http("http://10.0.0.7:8080/health")?);
//! let registration = client.register(instance, options).await?;
//! // ... serve ...
//! registration.deregister().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use super::guard::KeyGuard;
use super::probe::{ProbeStatus, RunningProbe};
use super::{Health, HealthProbe, Instance, RegistryError};
use crate::backoff::{Backoff, RetryPolicy};
use crate::client::Client;
use crate::error::{ClientError, EtcdErrorKind};
use crate::header::HasHeader;
use crate::kv::PutOptions;
use crate::lease::{KeepAliveOptions, LeaseKeeper, LeaseLost};

/// How an instance is registered and kept registered.
#[derive(Debug, Clone)]
pub struct RegistrationOptions {
    /// The lease's TTL in seconds; the instance disappears this long after
    /// its process stops renewing. The registry may raise it to its minimum.
    pub ttl: i64,
    /// Delays between failed attempts to register again (`max_attempts` is
    /// ignored: a registration never gives up).
    pub retry: RetryPolicy,
    /// How the lease is renewed.
    pub keep_alive: KeepAliveOptions,
    /// A health probe whose result is written into the value.
    pub probe: Option<HealthProbe>,
}

impl RegistrationOptions {
    pub const DEFAULT_TTL: i64 = 10;
    /// From 250 ms doubling to 5 s.
    pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(5),
        max_attempts: None,
    };

    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.ttl = seconds;
        self
    }

    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    #[must_use]
    pub fn keep_alive(mut self, keep_alive: KeepAliveOptions) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    #[must_use]
    pub fn probe(mut self, probe: HealthProbe) -> Self {
        self.probe = Some(probe);
        self
    }
}

impl Default for RegistrationOptions {
    fn default() -> Self {
        Self {
            ttl: Self::DEFAULT_TTL,
            retry: Self::DEFAULT_RETRY,
            keep_alive: KeepAliveOptions::default(),
            probe: None,
        }
    }
}

/// What a registration's task knows, published on every change.
#[derive(Debug, Clone)]
pub struct RegistrationState {
    /// The key is in the registry under a live lease, as far as the task
    /// knows (false between losing a lease and registering again).
    pub registered: bool,
    /// The lease the key was last put with.
    pub lease_id: Option<i64>,
    /// The health last written (or about to be written) into the value.
    pub health: Health,
    /// The revision of the last put of the value.
    pub revision: i64,
    /// Times the instance was registered again after losing its lease.
    pub reregistrations: u64,
    /// Times the key was put back after someone else deleted it while its
    /// lease lived.
    pub restorations: u64,
    /// The last failure: a lost lease, a failed attempt or write. It stays
    /// after a recovery, as history.
    pub last_error: Option<Arc<RegistryError>>,
    /// Why the probe's latest check failed, if it did.
    pub probe_failure: Option<String>,
}

/// Answers a deregistration.
type Reply = oneshot::Sender<Result<(), RegistryError>>;

enum Command {
    SetHealth(Health),
    Deregister(Reply),
}

/// A registered instance, kept registered by a background task until
/// [`Registration::deregister`] or drop.
#[derive(Debug)]
pub struct Registration {
    key: String,
    instance: Instance,
    state: watch::Receiver<RegistrationState>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Client {
    /// Registers `instance` under a new lease and keeps it registered (see
    /// the module docs). Fails if the names break the key conventions or
    /// the first registration fails; after that it never gives up.
    pub async fn register(
        &self,
        instance: Instance,
        options: RegistrationOptions,
    ) -> Result<Registration, RegistryError> {
        let key = instance.key()?;
        if options.ttl < 1 {
            return Err(RegistryError::InvalidOption {
                option: "ttl",
                reason: "a lease TTL is at least one second",
            });
        }
        let (state_tx, state) = watch::channel(RegistrationState {
            registered: false,
            lease_id: None,
            health: instance.health,
            revision: 0,
            reregistrations: 0,
            restorations: 0,
            last_error: None,
            probe_failure: None,
        });
        let mut registrar = Registrar {
            client: self.clone(),
            key: key.clone(),
            instance: instance.clone(),
            ttl: options.ttl,
            keep_alive: options.keep_alive,
            lease: None,
            keeper: None,
            guard: None,
            backoff: Backoff::new(RetryPolicy {
                max_attempts: None,
                ..options.retry
            }),
            rng: SmallRng::from_rng(&mut rand::rng()),
            state: state_tx,
        };
        if let Err(e) = registrar.establish().await {
            // Best effort: do not leave the lease (and maybe the key) behind.
            let _ = registrar.revoke().await;
            return Err(e);
        }
        registrar.registered(false);
        let probe = options.probe.map(|p| p.spawn(instance.health));
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(registrar.run(rx, probe));
        Ok(Registration {
            key,
            instance,
            state,
            commands,
        })
    }
}

impl Registration {
    /// The instance's key, `/services/<service>/<id>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The instance as registered, with its current health.
    pub fn instance(&self) -> Instance {
        let mut instance = self.instance.clone();
        instance.health = self.state.borrow().health;
        instance
    }

    /// The lease the key was last put with.
    pub fn lease_id(&self) -> Option<i64> {
        self.state.borrow().lease_id
    }

    /// A snapshot of the task's state.
    pub fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change. It reports closed once the
    /// registration has ended.
    pub fn subscribe(&self) -> watch::Receiver<RegistrationState> {
        self.state.clone()
    }

    /// Writes `health` into the value now (for example `Critical` to drain
    /// before a shutdown). A running probe overrides it at its next flip.
    pub fn set_health(&self, health: Health) -> Result<(), RegistryError> {
        self.commands
            .send(Command::SetHealth(health))
            .map_err(|_| RegistryError::Stopped)
    }

    /// Stops renewing and revokes the lease, removing the key at once.
    pub async fn deregister(self) -> Result<(), RegistryError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Deregister(reply))
            .map_err(|_| RegistryError::Stopped)?;
        answer.await.map_err(|_| RegistryError::Stopped)?
    }
}

/// Why serving a registered instance stopped.
enum Exit {
    /// The lease is gone or may be: register again.
    Lost(RegistryError),
    /// Deregister (with whom to answer) or every handle dropped (`None`).
    Stop(Option<Reply>),
}

/// What woke the task.
enum Wake {
    Lost(LeaseLost),
    Command(Option<Command>),
    Probe(ProbeStatus),
    Retry,
    Attempted(Result<(), RegistryError>),
    /// The key was deleted at this revision.
    Deleted(i64),
}

/// The background task's state.
struct Registrar {
    client: Client,
    key: String,
    /// The value to write, with the current health.
    instance: Instance,
    ttl: i64,
    keep_alive: KeepAliveOptions,
    /// The lease last granted or kept; it may be dead. Set as soon as it is
    /// granted, so an attempt cut short still leaves it to revoke or reuse.
    lease: Option<i64>,
    keeper: Option<LeaseKeeper>,
    /// Watches the key for deletes; started with the task.
    guard: Option<KeyGuard>,
    backoff: Backoff,
    rng: SmallRng,
    state: watch::Sender<RegistrationState>,
}

fn lease_not_found(e: &ClientError) -> bool {
    e.etcd_kind() == Some(EtcdErrorKind::LeaseNotFound)
}

/// The probe's next change; never resolves without a probe.
async fn probe_changed(probe: &mut Option<RunningProbe>) -> ProbeStatus {
    if let Some(p) = probe
        && p.status.changed().await.is_ok()
    {
        return p.status.borrow_and_update().clone();
    }
    std::future::pending().await
}

/// The next delete the guard saw; never resolves without a guard.
async fn key_deleted(guard: &mut Option<KeyGuard>) -> i64 {
    match guard {
        Some(guard) => guard.deleted().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never resolves for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Registrar {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut probe: Option<RunningProbe>,
    ) {
        let from = self.state.borrow().revision;
        self.guard = Some(KeyGuard::spawn(self.client.clone(), self.key.clone(), from));
        let stop = loop {
            match self.serve(&mut commands, &mut probe).await {
                Exit::Stop(reply) => break reply,
                Exit::Lost(error) => self.lost(error),
            }
            if let Some(stop) = self.reregister(&mut commands, &mut probe).await {
                break stop;
            }
        };
        drop(probe);
        // Before the revoke, whose delete is ours.
        self.guard = None;
        let result = self.revoke().await;
        if let Some(reply) = stop {
            let _ = reply.send(result);
        }
    }

    /// Registered: keeps the value current until the lease is lost or the
    /// registration is stopped.
    async fn serve(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        probe: &mut Option<RunningProbe>,
    ) -> Exit {
        // A health write that failed, to retry then.
        let mut retry_write: Option<Instant> = None;
        loop {
            let Some(keeper) = &self.keeper else {
                return Exit::Lost(RegistryError::Stopped);
            };
            let lease = keeper.id();
            let wake = tokio::select! {
                lost = keeper.lost() => Wake::Lost(lost),
                command = commands.recv() => Wake::Command(command),
                status = probe_changed(probe) => Wake::Probe(status),
                () = sleep_until_some(retry_write) => Wake::Retry,
                revision = key_deleted(&mut self.guard) => Wake::Deleted(revision),
            };
            let restoring = matches!(wake, Wake::Deleted(_));
            let write = match wake {
                Wake::Lost(reason) => {
                    if reason == LeaseLost::NotFound {
                        self.lease = None;
                    }
                    return Exit::Lost(RegistryError::LeaseLost { id: lease, reason });
                }
                Wake::Command(None) => return Exit::Stop(None),
                Wake::Command(Some(Command::Deregister(reply))) => return Exit::Stop(Some(reply)),
                Wake::Command(Some(Command::SetHealth(health))) => self.set_health(health),
                Wake::Probe(status) => self.probed(status),
                Wake::Deleted(revision) => self.deleted(lease, revision),
                Wake::Retry | Wake::Attempted(_) => true,
            };
            if !write {
                continue;
            }
            retry_write = None;
            match self.put(lease).await {
                Ok(()) => {
                    self.backoff.succeed();
                    if restoring {
                        self.state.send_modify(|s| s.restorations += 1);
                    }
                }
                // Found out by a write (a restoring put races the keeper when
                // a revoke deletes the key): the same loss the keeper reports.
                Err(e) if e.is_lease_not_found() => {
                    return Exit::Lost(RegistryError::LeaseLost {
                        id: lease,
                        reason: LeaseLost::NotFound,
                    });
                }
                Err(e) => {
                    let delay = self.backoff.fail(&mut self.rng).unwrap_or_default();
                    retry_write = Some(Instant::now() + delay);
                    self.record_error(e);
                }
            }
        }
    }

    /// Not registered: attempts to register again, with backoff, until it
    /// works (`None`) or the registration is stopped.
    async fn reregister(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        probe: &mut Option<RunningProbe>,
    ) -> Option<Option<Reply>> {
        let mut next_attempt = Instant::now();
        loop {
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                status = probe_changed(probe) => Wake::Probe(status),
                result = async {
                    sleep_until(next_attempt).await;
                    self.establish().await
                } => Wake::Attempted(result),
            };
            match wake {
                Wake::Command(None) => return Some(None),
                Wake::Command(Some(Command::Deregister(reply))) => return Some(Some(reply)),
                Wake::Command(Some(Command::SetHealth(health))) => {
                    self.set_health(health);
                }
                Wake::Probe(status) => {
                    self.probed(status);
                }
                Wake::Attempted(Ok(())) => {
                    self.backoff.succeed();
                    self.registered(true);
                    return None;
                }
                Wake::Attempted(Err(e)) => {
                    let delay = self.backoff.fail(&mut self.rng).unwrap_or_default();
                    next_attempt = Instant::now() + delay;
                    self.record_error(e);
                }
                // Re-registering puts the key anyway.
                Wake::Lost(_) | Wake::Retry | Wake::Deleted(_) => {}
            }
        }
    }

    /// Gets a live lease, puts the value with it and keeps it alive: the
    /// lease already held if the registry still has it, else a new one.
    async fn establish(&mut self) -> Result<(), RegistryError> {
        self.keeper = None;
        if let Some(id) = self.lease {
            match self.client.keep_alive_with(id, self.keep_alive).await {
                Ok(keeper) => {
                    self.keeper = Some(keeper);
                    return self.put(id).await;
                }
                Err(e) if lease_not_found(&e) => self.lease = None,
                Err(e) => return Err(e.into()),
            }
        }
        let granted = self.client.grant(self.ttl).await?;
        self.lease = Some(granted.id);
        self.put(granted.id).await?;
        self.keeper = Some(
            self.client
                .keep_alive_with(granted.id, self.keep_alive)
                .await?,
        );
        Ok(())
    }

    /// Puts the value under `lease`. A lease the registry no longer has is
    /// forgotten, so the next attempt grants a new one.
    async fn put(&mut self, lease: i64) -> Result<(), RegistryError> {
        let options = PutOptions::new().lease(lease);
        match self
            .client
            .put_with(&self.key, self.instance.to_json(), options)
            .await
        {
            Ok(response) => {
                let revision = response.revision();
                let health = self.instance.health;
                self.state.send_modify(|s| {
                    s.revision = revision;
                    s.health = health;
                    s.lease_id = Some(lease);
                });
                Ok(())
            }
            Err(e) => {
                if lease_not_found(&e) {
                    self.lease = None;
                    self.keeper = None;
                }
                Err(e.into())
            }
        }
    }

    /// Takes a delete of the key seen at `revision`; true if the value must
    /// be put back. A delete older than the latest put is already undone.
    fn deleted(&mut self, lease: i64, revision: i64) -> bool {
        let last_put = self.state.borrow().revision;
        if revision <= last_put {
            return false;
        }
        tracing::warn!(
            key = %self.key,
            lease = format_args!("{lease:016x}"),
            revision,
            "instance key deleted while its lease lives; putting it back"
        );
        true
    }

    /// Takes a new health; true if the value must be written.
    fn set_health(&mut self, health: Health) -> bool {
        let changed = self.instance.health != health;
        self.instance.health = health;
        self.state.send_if_modified(|s| {
            let changed = s.health != health;
            s.health = health;
            changed
        });
        changed
    }

    /// Takes a probe report; true if the value must be written.
    fn probed(&mut self, status: ProbeStatus) -> bool {
        self.state.send_if_modified(|s| {
            let changed = s.probe_failure != status.last_failure;
            s.probe_failure.clone_from(&status.last_failure);
            changed
        });
        self.set_health(status.health)
    }

    fn registered(&mut self, again: bool) {
        let lease = self.lease;
        self.state.send_modify(|s| {
            s.registered = true;
            s.lease_id = lease;
            if again {
                s.reregistrations += 1;
            }
        });
    }

    fn lost(&mut self, error: RegistryError) {
        self.keeper = None;
        self.state.send_modify(|s| {
            s.registered = false;
            s.last_error = Some(Arc::new(error));
        });
    }

    fn record_error(&mut self, error: RegistryError) {
        self.state
            .send_modify(|s| s.last_error = Some(Arc::new(error)));
    }

    /// Stops renewing and revokes the lease; a lease already gone is fine.
    async fn revoke(&mut self) -> Result<(), RegistryError> {
        self.keeper = None;
        self.state.send_modify(|s| s.registered = false);
        let Some(id) = self.lease.take() else {
            return Ok(());
        };
        match self.client.revoke(id).await {
            Ok(_) => Ok(()),
            Err(e) if lease_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
