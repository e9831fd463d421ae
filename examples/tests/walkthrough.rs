//! The README walkthrough, end to end with real processes: a `rollcall`
//! server, three `echo-server` instances and two `echo-caller`s (one through
//! the balanced tonic channel, one with the p2c balancer). Requests must be
//! spread over the live instances; after an instance is killed (-9), marked
//! NOT_SERVING, or stopped with Ctrl-C, no request may fail once a bounded
//! convergence time has passed, and the instance must get no more traffic.
//!
//! Every wait is bounded, every port is a free loopback port, and every
//! process is killed when the test ends, also on failure.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rollcall_tests::{Backend, ServerProcess, ports};
use support::{Line, Proc, TestResult, rollcall_binary};

/// Registration TTL of the instances: a crashed one lingers this long.
const TTL_SECS: u64 = 3;
/// Pause between a caller's requests.
const INTERVAL_MS: u64 = 20;
/// Bound on one request.
const REQUEST_TIMEOUT_MS: u64 = 1000;
/// After a kill -9: the TTL, plus lease expiry, watch delivery and a request
/// timeout in flight.
const CRASH_CONVERGENCE: Duration = Duration::from_secs(TTL_SECS + 5);
/// After a deregistration or a health flip (probe every 300 ms).
const QUICK_CONVERGENCE: Duration = Duration::from_secs(4);
/// How many requests each phase observes after converging.
const OBSERVED: usize = 100;
const STARTUP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Answered(String),
    Failed(String),
}

/// The request lines of a caller's output: `#n ok <id> ...` / `#n failed: ...`.
fn outcomes(lines: &[Line]) -> Vec<(Instant, Outcome)> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = line.text.strip_prefix('#')?;
            let (_, rest) = rest.split_once(' ')?;
            if let Some(ok) = rest.strip_prefix("ok ") {
                let id = ok.split_whitespace().next()?.to_string();
                Some((line.at, Outcome::Answered(id)))
            } else {
                rest.strip_prefix("failed: ")
                    .map(|e| (line.at, Outcome::Failed(e.to_string())))
            }
        })
        .collect()
}

struct Walkthrough {
    // Declared first: dropped (killed) before the server.
    callers: Vec<Proc>,
    instances: BTreeMap<String, Proc>,
    server: ServerProcess,
    echo_server: PathBuf,
}

impl Walkthrough {
    async fn start() -> TestResult<Self> {
        let server = Backend::Rollcall(rollcall_binary()?).start().await?;
        let mut walkthrough = Self {
            callers: Vec::new(),
            instances: BTreeMap::new(),
            server,
            echo_server: PathBuf::from(env!("CARGO_BIN_EXE_echo-server")),
        };
        for id in ["echo-1", "echo-2", "echo-3"] {
            walkthrough.start_instance(id).await?;
        }
        Ok(walkthrough)
    }

    async fn start_instance(&mut self, id: &str) -> TestResult {
        let port = ports::free_port()?;
        let args = [
            "--endpoints",
            &self.server.endpoint(),
            "--id",
            id,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ttl",
            &TTL_SECS.to_string(),
            "--probe-interval-ms",
            "300",
        ]
        .map(String::from);
        let mut instance = support::spawn(id, &self.echo_server, &args)?;
        instance
            .wait_for_line("registration", STARTUP, |l| l.contains("registered as"))
            .await?;
        self.instances.insert(id.to_string(), instance);
        Ok(())
    }

    fn start_caller(&mut self, balancer: &str, retries: u32, count: u64) -> TestResult {
        let args = [
            "--endpoints",
            &self.server.endpoint(),
            "--balancer",
            balancer,
            "--count",
            &count.to_string(),
            "--interval-ms",
            &INTERVAL_MS.to_string(),
            "--timeout-ms",
            &REQUEST_TIMEOUT_MS.to_string(),
            "--retries",
            &retries.to_string(),
        ]
        .map(String::from);
        let program = Path::new(env!("CARGO_BIN_EXE_echo-caller"));
        self.callers.push(support::spawn(
            &format!("caller ({balancer}, {retries} retries)"),
            program,
            &args,
        )?);
        Ok(())
    }

    fn instance(&mut self, id: &str) -> TestResult<&mut Proc> {
        self.instances
            .get_mut(id)
            .ok_or_else(|| format!("no instance {id}").into())
    }

    fn context(&self) -> String {
        let mut text = String::new();
        for proc in self.callers.iter().chain(self.instances.values()) {
            text.push_str(&proc.output());
            text.push('\n');
        }
        text.push_str(&format!(
            "--- rollcall log (tail) ---\n{}",
            self.server.log_tail(20)
        ));
        text
    }

    /// Waits until every caller has at least `n` outcomes after `since`, and
    /// returns them per caller. Fails if a caller exits first.
    async fn observe(
        &mut self,
        since: Instant,
        n: usize,
        timeout: Duration,
    ) -> TestResult<Vec<Vec<Outcome>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen: Vec<Vec<Outcome>> = self
                .callers
                .iter()
                .map(|c| {
                    outcomes(&c.lines())
                        .into_iter()
                        .filter(|(at, _)| *at >= since)
                        .map(|(_, o)| o)
                        .collect()
                })
                .collect();
            if seen.iter().all(|o: &Vec<Outcome>| o.len() >= n) {
                return Ok(seen);
            }
            let mut exited = None;
            for caller in &mut self.callers {
                if let Some(status) = caller.try_wait()? {
                    exited = Some(format!("{} exited early ({status})", caller.name));
                }
            }
            if let Some(exited) = exited {
                return Err(format!("{exited}\n{}", self.context()).into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "callers did not see {n} requests within {timeout:?}\n{}",
                    self.context()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits out `convergence` after `event`, then checks that the next
    /// requests of every caller all succeed and are answered exactly by
    /// `expected` (each of them at least `min_share` of the time).
    async fn assert_routed_to(
        &mut self,
        phase: &str,
        event: Instant,
        convergence: Duration,
        expected: &[&str],
        min_share: f64,
    ) -> TestResult {
        // Lines that arrive after this were sent after `event + convergence`.
        let settled = event + convergence + Duration::from_millis(REQUEST_TIMEOUT_MS);
        tokio::time::sleep(settled.saturating_duration_since(Instant::now())).await;
        let observed = self
            .observe(settled, OBSERVED, Duration::from_secs(20))
            .await?;
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_string()).collect();
        for (caller, outcomes) in self.callers.iter().zip(&observed) {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            let mut failures = Vec::new();
            for outcome in outcomes {
                match outcome {
                    Outcome::Answered(id) => *counts.entry(id.clone()).or_default() += 1,
                    Outcome::Failed(e) => failures.push(e.clone()),
                }
            }
            let context = || {
                format!(
                    "{phase}, {}: {counts:?}, failures {failures:?}\n{}",
                    caller.name,
                    self.context()
                )
            };
            if !failures.is_empty() {
                return Err(format!("requests failed after convergence: {}", context()).into());
            }
            let answered: BTreeSet<String> = counts.keys().cloned().collect();
            if answered != expected {
                return Err(format!(
                    "answered by {answered:?}, expected {expected:?}: {}",
                    context()
                )
                .into());
            }
            #[allow(clippy::cast_precision_loss)]
            let total = outcomes.len() as f64;
            for (id, n) in &counts {
                #[allow(clippy::cast_precision_loss)]
                let share = *n as f64 / total;
                if share < min_share {
                    return Err(format!(
                        "{id} got {share:.2} of the requests, below {min_share}: {}",
                        context()
                    )
                    .into());
                }
            }
            eprintln!("{phase}: {} -> {counts:?}", caller.name);
        }
        Ok(())
    }

    /// Failed requests of each caller in `[from, to)`: when each was
    /// reported and its error.
    fn failures_between(&self, from: Instant, to: Instant) -> Vec<Vec<(Instant, String)>> {
        self.callers
            .iter()
            .map(|c| {
                outcomes(&c.lines())
                    .into_iter()
                    .filter(|(at, _)| *at >= from && *at < to)
                    .filter_map(|(at, o)| match o {
                        Outcome::Failed(e) => Some((at, e)),
                        Outcome::Answered(_) => None,
                    })
                    .collect()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_route_around_killed_failing_and_stopped_instances() -> TestResult {
    let mut walk = Walkthrough::start().await?;
    // Bounded: at most 5000 × 20 ms each; the test ends well before.
    walk.start_caller("channel", 0, 5000)?;
    walk.start_caller("p2c", 2, 5000)?;

    // 1. Spread over all three: 1/3 each expected; at least 15% of 100 (4 σ below).
    let start = Instant::now();
    walk.observe(start, 1, STARTUP).await?;
    walk.assert_routed_to(
        "three instances",
        Instant::now(),
        Duration::ZERO,
        &["echo-1", "echo-2", "echo-3"],
        0.15,
    )
    .await?;

    // 2. A crash: no deregistration, the instance lingers until its lease
    //    expires; afterwards nothing fails and it gets nothing.
    let crash = Instant::now();
    walk.instance("echo-2")?.kill9()?;
    walk.assert_routed_to(
        "after kill -9 echo-2",
        crash,
        CRASH_CONVERGENCE,
        &["echo-1", "echo-3"],
        0.3,
    )
    .await?;
    let crash_failures = walk.failures_between(crash, crash + CRASH_CONVERGENCE);
    eprintln!("requests failed while echo-2's lease ran out (channel, p2c): {crash_failures:?}");
    // p2c retries a refused connection on an instance it has not tried yet,
    // so nothing sent after the kill fails. The one request it may have had
    // in flight on echo-2 at the kill can fail (it may have been processed,
    // so it is not retried); it is reported within a request timeout.
    let in_flight_at_kill = |(at, error): &(Instant, String)| {
        error.contains("echo-2") && *at < crash + Duration::from_millis(REQUEST_TIMEOUT_MS)
    };
    let p2c = &crash_failures[1];
    if p2c.len() > 1 || !p2c.iter().all(in_flight_at_kill) {
        return Err(format!(
            "the retrying p2c caller failed requests: {}",
            walk.context()
        )
        .into());
    }

    // 3. Health: echo-3 reports NOT_SERVING, its probe marks it critical and
    //    discovery stops returning it (1 of 2 passing meets the 50% threshold).
    let unhealthy = Instant::now();
    walk.instance("echo-3")?.signal("USR1")?;
    walk.instance("echo-3")?
        .wait_for_line("NOT_SERVING", Duration::from_secs(5), |l| {
            l.contains("NOT_SERVING")
        })
        .await?;
    walk.assert_routed_to(
        "echo-3 NOT_SERVING",
        unhealthy,
        QUICK_CONVERGENCE,
        &["echo-1"],
        1.0,
    )
    .await?;
    let healthy = Instant::now();
    walk.instance("echo-3")?.signal("USR1")?;
    walk.assert_routed_to(
        "echo-3 SERVING again",
        healthy,
        QUICK_CONVERGENCE,
        &["echo-1", "echo-3"],
        0.3,
    )
    .await?;

    // 4. Ctrl-C: echo-1 deregisters before exiting, so the callers drop it at once.
    let stop = Instant::now();
    walk.instance("echo-1")?.signal("INT")?;
    let status = walk
        .instance("echo-1")?
        .wait_exit(Duration::from_secs(10))
        .await?;
    if !status.success() {
        return Err(format!(
            "echo-1 exited with {status} after Ctrl-C\n{}",
            walk.context()
        )
        .into());
    }
    walk.instance("echo-1")?
        .wait_for_line("deregistration", Duration::from_secs(1), |l| {
            l.contains("deregistered")
        })
        .await?;
    walk.assert_routed_to(
        "after Ctrl-C on echo-1",
        stop,
        QUICK_CONVERGENCE,
        &["echo-3"],
        1.0,
    )
    .await?;
    Ok(())
}
