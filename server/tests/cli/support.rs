//! Helpers of the CLI suite: a registry process, running the `rollcall`
//! binary once ([`run`]) or in the background ([`Background`]: lines of its
//! stdout as they come, SIGINT), and bounded polling. Processes and waits
//! are the harness's.
//!
//! Every command runs with `ROLLCALL_ENDPOINTS` removed from its
//! environment, so only the `--endpoints` a test passes count.

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use rollcall_tests::process::Proc;
pub use rollcall_tests::process::Ran;
use rollcall_tests::{Backend, ServerProcess};

/// Bound on any single wait in this suite.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rollcall")
}

/// A `rollcall serve` process on free ports.
pub async fn server() -> ServerProcess {
    Backend::Rollcall(binary().into())
        .start()
        .await
        .unwrap_or_else(|e| panic!("start rollcall: {e}"))
}

/// `127.0.0.1:PORT` of a port nothing listens on.
pub fn closed_endpoint() -> String {
    let port = rollcall_tests::ports::free_port().expect("free port");
    format!("127.0.0.1:{port}")
}

/// Runs `rollcall <args>` to completion (bounded by [`WAIT`]).
pub async fn run(args: &[&str]) -> Ran {
    run_with_env(args, &[]).await
}

/// [`run`] with extra environment variables.
pub async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args)
        .env_remove("ROLLCALL_ENDPOINTS")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied());
    rollcall_tests::process::run(cmd, WAIT).await
}

/// Runs `rollcall <args> --endpoints <endpoint>`.
pub async fn rc(endpoint: &str, args: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--endpoints", endpoint]);
    run(&all).await
}

/// A long-running command (`register`, `watch`, `discover --watch`): its
/// stdout line by line, SIGINT, and its exit. Killed when dropped.
pub struct Background(Proc);

impl Background {
    pub fn spawn(args: &[&str]) -> Self {
        let mut cmd = std::process::Command::new(binary());
        cmd.args(args)
            .env_remove("ROLLCALL_ENDPOINTS")
            .env("NO_COLOR", "1");
        let name = format!("rollcall {args:?}");
        Self(Proc::spawn(&name, cmd).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The next line of stdout, within [`WAIT`].
    pub async fn line(&mut self) -> String {
        match self.0.next_line(WAIT).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{} closed stdout\n{}", self.0.name, self.0.output()),
            Err(e) => panic!("{e}"),
        }
    }

    /// Lines until one satisfies `want` (which is returned), within [`WAIT`].
    pub async fn line_where(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no matching line",
                self.0.name
            );
            let line = self.line().await;
            if want(&line) {
                return line;
            }
        }
    }

    /// Sends SIGINT.
    pub fn interrupt(&self) {
        self.0.signal("INT").expect("kill -INT");
    }

    /// Waits (bounded) for the exit; returns its status and the rest of stdout.
    pub async fn exit(mut self) -> (ExitStatus, Vec<String>) {
        let status = self
            .0
            .wait_exit(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rest = self.0.rest(WAIT).await.unwrap_or_else(|e| panic!("{e}"));
        (status, rest)
    }
}

/// Polls `check` every 50 ms until it returns `Some`, within [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    rollcall_tests::wait::eventually(what, WAIT, check).await
}

/// The rows of a table (header first), split on runs of spaces.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
