//! Health probes: a [`HealthProbe`] says how to check an instance (a
//! closure, an HTTP GET, a TCP connect, or the standard gRPC health check
//! `grpc.health.v1.Health/Check`) and how often; a background task runs it
//! and turns results into `passing`/`critical` with hysteresis.
//!
//! - HTTP: any 2xx answer passes (`http.rs` sends the one GET it needs).
//! - TCP: the connection is accepted.
//! - gRPC: `Check` answers `SERVING` for the service (`""` means the whole
//!   server, as in the gRPC health protocol).
//! - Each check is bounded by `timeout`; a check that runs out of time fails.
//! - Health flips to `critical` after `failures_before_critical` failed
//!   checks in a row, and back to `passing` after `successes_before_passing`
//!   passed checks in a row (both 1 by default: every result counts).
//!
//! [`Registration`](super::Registration) runs the probe and rewrites the
//! instance's value under its lease when health flips.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::Health;
use super::http::{GetError, HttpTarget};

/// What a closure probe returns: resolves to whether the instance is healthy.
pub type ProbeFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

type ProbeFn = Arc<dyn Fn() -> ProbeFuture + Send + Sync>;

/// A probe that cannot be built from what was given.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "unsupported health check {0:?}: expected http://host[:port][/path], tcp://host:port or grpc://host:port[/service]"
    )]
    UnsupportedCheck(String),
    #[error("invalid HTTP check URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("invalid gRPC health endpoint {endpoint:?}: {source}")]
    InvalidEndpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// No HTTP status came back: the answer was not HTTP, or the
    /// connection closed before the status line.
    #[error("bad HTTP response: {0}")]
    BadResponse(String),
    #[error("gRPC health status {0}")]
    NotServing(&'static str),
    #[error("gRPC health check failed: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("the probe closure reported unhealthy")]
    Unhealthy,
}

#[derive(Clone)]
enum Check {
    Closure(ProbeFn),
    Http(HttpTarget),
    Tcp(String),
    Grpc {
        endpoint: Box<Endpoint>,
        service: String,
    },
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closure(_) => f.write_str("Closure"),
            Self::Http(t) => f.debug_tuple("Http").field(t).finish(),
            Self::Tcp(addr) => f.debug_tuple("Tcp").field(addr).finish(),
            Self::Grpc { endpoint, service } => f
                .debug_struct("Grpc")
                .field("endpoint", endpoint.uri())
                .field("service", service)
                .finish(),
        }
    }
}

/// How to check an instance's health, how often, and how many results in a
/// row flip it.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    check: Check,
    /// Time between the starts of two checks (the first runs at once).
    pub interval: Duration,
    /// Bound on one check; a check that takes longer fails.
    pub timeout: Duration,
    /// Failed checks in a row that turn a passing instance critical (≥ 1).
    pub failures_before_critical: u32,
    /// Passed checks in a row that turn a critical instance passing (≥ 1).
    pub successes_before_passing: u32,
}

impl HealthProbe {
    /// Every 5 s, each check bounded by 2 s, flipping on the first result.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    fn new(check: Check) -> Self {
        Self {
            check,
            interval: Self::DEFAULT_INTERVAL,
            timeout: Self::DEFAULT_TIMEOUT,
            failures_before_critical: 1,
            successes_before_passing: 1,
        }
    }

    /// Calls `check` on every round: `true` passes.
    pub fn closure<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self::new(Check::Closure(Arc::new(move || {
            Box::pin(check()) as ProbeFuture
        })))
    }

    /// `GET url` (plain `http://host[:port][/path]`); a 2xx status passes.
    pub fn http(url: &str) -> Result<Self, ProbeError> {
        let target = HttpTarget::parse(url).map_err(|reason| ProbeError::InvalidUrl {
            url: url.to_owned(),
            reason,
        })?;
        Ok(Self::new(Check::Http(target)))
    }

    /// A TCP connection to `addr` (`host:port`) is accepted.
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self::new(Check::Tcp(addr.into()))
    }

    /// `grpc.health.v1.Health/Check` for `service` (`""`: the whole server)
    /// at `addr` (`host:port` or `http://host:port`) answers `SERVING`.
    pub fn grpc(addr: &str, service: impl Into<String>) -> Result<Self, ProbeError> {
        let uri = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let endpoint =
            Endpoint::from_shared(uri).map_err(|source| ProbeError::InvalidEndpoint {
                endpoint: addr.to_owned(),
                source,
            })?;
        Ok(Self::new(Check::Grpc {
            endpoint: Box::new(endpoint),
            service: service.into(),
        }))
    }

    /// A probe from a check URL as the CLI takes it: `http://…` (HTTP GET),
    /// `tcp://host:port`, or `grpc://host:port[/service]`.
    pub fn parse(check: &str) -> Result<Self, ProbeError> {
        if check.starts_with("http://") {
            Self::http(check)
        } else if let Some(addr) = check.strip_prefix("tcp://") {
            if addr.is_empty() || addr.contains('/') {
                return Err(ProbeError::UnsupportedCheck(check.to_owned()));
            }
            Ok(Self::tcp(addr))
        } else if let Some(rest) = check.strip_prefix("grpc://") {
            let (addr, service) = rest.split_once('/').unwrap_or((rest, ""));
            if addr.is_empty() {
                return Err(ProbeError::UnsupportedCheck(check.to_owned()));
            }
            Self::grpc(addr, service)
        } else {
            Err(ProbeError::UnsupportedCheck(check.to_owned()))
        }
    }

    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    #[must_use]
    pub fn failures_before_critical(mut self, n: u32) -> Self {
        self.failures_before_critical = n;
        self
    }

    #[must_use]
    pub fn successes_before_passing(mut self, n: u32) -> Self {
        self.successes_before_passing = n;
        self
    }

    /// Runs one check now, bounded by the timeout.
    pub async fn check(&self) -> Result<(), CheckFailure> {
        Prober::new(self.clone()).check().await
    }

    /// Starts checking in the background from `initial` health; the
    /// receiver sees every flip. Checking stops when the handle is dropped.
    pub(crate) fn spawn(self, initial: Health) -> RunningProbe {
        let (tx, rx) = watch::channel(ProbeStatus {
            health: initial,
            last_failure: None,
            checks: 0,
        });
        let task = tokio::spawn(run(Prober::new(self), initial, tx));
        RunningProbe { status: rx, task }
    }
}

/// What the probe's task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    /// Health after the thresholds.
    pub health: Health,
    /// Why the latest check failed; `None` once one passes.
    pub last_failure: Option<String>,
    /// Checks run so far.
    pub checks: u64,
}

/// A probe running in the background; dropping it stops the checks.
#[derive(Debug)]
pub(crate) struct RunningProbe {
    pub(crate) status: watch::Receiver<ProbeStatus>,
    task: JoinHandle<()>,
}

impl Drop for RunningProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A probe and the connection it reuses between checks (gRPC).
struct Prober {
    probe: HealthProbe,
    channel: Option<Channel>,
}

impl Prober {
    fn new(probe: HealthProbe) -> Self {
        Self {
            probe,
            channel: None,
        }
    }

    async fn check(&mut self) -> Result<(), CheckFailure> {
        let timeout = self.probe.timeout;
        match tokio::time::timeout(timeout, self.check_unbounded()).await {
            Ok(result) => result,
            Err(_elapsed) => Err(CheckFailure::Timeout(timeout)),
        }
    }

    async fn check_unbounded(&mut self) -> Result<(), CheckFailure> {
        match &self.probe.check {
            Check::Closure(f) => f().await.then_some(()).ok_or(CheckFailure::Unhealthy),
            Check::Http(target) => match target.get_status().await.map_err(|e| match e {
                GetError::Connect(e) => CheckFailure::Io(e),
                other => CheckFailure::BadResponse(other.to_string()),
            })? {
                200..=299 => Ok(()),
                status => Err(CheckFailure::HttpStatus(status)),
            },
            Check::Tcp(addr) => {
                tokio::net::TcpStream::connect(addr.as_str()).await?;
                Ok(())
            }
            Check::Grpc { endpoint, service } => {
                // Connects on first use and reconnects by itself afterwards.
                let channel = self
                    .channel
                    .get_or_insert_with(|| endpoint.as_ref().clone().connect_lazy())
                    .clone();
                let request = HealthCheckRequest {
                    service: service.clone(),
                };
                let answer = HealthClient::new(channel).check(request).await?;
                match ServingStatus::try_from(answer.into_inner().status) {
                    Ok(ServingStatus::Serving) => Ok(()),
                    Ok(other) => Err(CheckFailure::NotServing(other.as_str_name())),
                    Err(_) => Err(CheckFailure::NotServing("unrecognised")),
                }
            }
        }
    }
}

/// Consecutive results turned into health, with the probe's thresholds.
#[derive(Debug, Clone)]
pub(crate) struct Hysteresis {
    health: Health,
    failures: u32,
    successes: u32,
    failures_before_critical: u32,
    successes_before_passing: u32,
}

impl Hysteresis {
    pub(crate) fn new(initial: Health, probe: &HealthProbe) -> Self {
        Self {
            health: initial,
            failures: 0,
            successes: 0,
            failures_before_critical: probe.failures_before_critical.max(1),
            successes_before_passing: probe.successes_before_passing.max(1),
        }
    }

    /// Counts one result; returns the new health when it flips.
    pub(crate) fn record(&mut self, passed: bool) -> Option<Health> {
        if passed {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.health == Health::Critical && self.successes >= self.successes_before_passing {
                self.health = Health::Passing;
                return Some(Health::Passing);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.health == Health::Passing && self.failures >= self.failures_before_critical {
                self.health = Health::Critical;
                return Some(Health::Critical);
            }
        }
        None
    }
}

async fn run(mut prober: Prober, initial: Health, status: watch::Sender<ProbeStatus>) {
    let mut hysteresis = Hysteresis::new(initial, &prober.probe);
    let mut ticks = tokio::time::interval(prober.probe.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = prober.check().await;
        let flipped = hysteresis.record(result.is_ok());
        let failure = result.err().map(|e| e.to_string());
        status.send_if_modified(|s| {
            s.checks += 1;
            let changed = flipped.is_some() || s.last_failure != failure;
            if let Some(health) = flipped {
                s.health = health;
            }
            s.last_failure = failure;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn thresholds_need_results_in_a_row() {
        let probe = HealthProbe::tcp("h:1")
            .failures_before_critical(3)
            .successes_before_passing(2);
        let mut h = Hysteresis::new(Health::Passing, &probe);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None); // the run of failures is broken
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(Health::Critical));
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(Health::Passing));
        assert_eq!(h.record(true), None);

        let mut every = Hysteresis::new(
            Health::Critical,
            &HealthProbe::tcp("h:1").failures_before_critical(0),
        );
        assert_eq!(every.record(true), Some(Health::Passing));
        assert_eq!(every.record(false), Some(Health::Critical));
    }

    #[test]
    fn check_urls_parse() {
        assert!(matches!(
            HealthProbe::parse("http://h:1/x").map(|p| p.check),
            Ok(Check::Http(_))
        ));
        assert!(
            matches!(HealthProbe::parse("tcp://h:1").map(|p| p.check), Ok(Check::Tcp(a)) if a == "h:1")
        );
        assert!(matches!(
            HealthProbe::parse("grpc://h:1/pkg.Svc").map(|p| p.check),
            Ok(Check::Grpc { service, .. }) if service == "pkg.Svc"
        ));
        assert!(matches!(
            HealthProbe::parse("grpc://h:1").map(|p| p.check),
            Ok(Check::Grpc { service, .. }) if service.is_empty()
        ));
        for bad in ["https://h/", "tcp://", "udp://h:1", "h:1", "grpc:///svc"] {
            assert!(HealthProbe::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_running_probe_reports_flips_and_reasons() {
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&healthy);
        let probe = HealthProbe::closure(move || {
            let ok = flag.load(Ordering::SeqCst);
            async move { ok }
        })
        .interval(Duration::from_secs(1));
        let mut running = probe.spawn(Health::Passing);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Two passing checks ran: no flip, so no notification.
        assert!(!running.status.has_changed().unwrap_or(true));
        assert_eq!(running.status.borrow().checks, 2);
        healthy.store(false, Ordering::SeqCst);
        let status = running
            .status
            .wait_for(|s| s.health == Health::Critical)
            .await
            .map(|s| s.clone());
        let status = status.unwrap_or_else(|e| panic!("probe stopped: {e}"));
        assert_eq!(
            status.last_failure.as_deref(),
            Some("the probe closure reported unhealthy")
        );
        healthy.store(true, Ordering::SeqCst);
        let status = running
            .status
            .wait_for(|s| s.health == Health::Passing)
            .await
            .map(|s| s.clone());
        assert!(status.is_ok_and(|s| s.last_failure.is_none() && s.checks == 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_check_times_out() {
        let probe = HealthProbe::closure(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            true
        })
        .timeout(Duration::from_millis(200));
        assert!(
            matches!(probe.check().await, Err(CheckFailure::Timeout(t)) if t == Duration::from_millis(200))
        );
    }
}
