//! Helpers of the CLI suite: a registry process, running the `rollcall`
//! binary once ([`run`]) or in the background ([`Background`]: lines of its
//! stdout as they come, SIGINT), and bounded polling.
//!
//! Every command runs with `ROLLCALL_ENDPOINTS` removed from its
//! environment, so only the `--endpoints` a test passes count.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rollcall_tests::{Backend, ServerProcess};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

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

/// What one run of the binary did.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.ok();
        assert_eq!(out.lines().count(), 1, "one JSON line expected:\n{out}");
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// Asserts a failure with `code` and returns stderr.
    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stderr
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("ROLLCALL_ENDPOINTS")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `rollcall <args>` to completion (bounded by [`WAIT`]).
pub async fn run(args: &[&str]) -> Ran {
    run_with_env(args, &[]).await
}

/// [`run`] with extra environment variables.
pub async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("rollcall {args:?} did not finish within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("run rollcall {args:?}: {e}"));
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `rollcall <args> --endpoints <endpoint>`.
pub async fn rc(endpoint: &str, args: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--endpoints", endpoint]);
    run(&all).await
}

/// A long-running command (`register`, `watch`, `discover --watch`): its
/// stdout line by line, SIGINT, and its exit. Killed when dropped.
pub struct Background {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    args: Vec<String>,
}

impl Background {
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn rollcall {args:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The next line of stdout, within [`WAIT`].
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let stderr = self.stderr().await;
                panic!("rollcall {:?} closed stdout; stderr:\n{stderr}", self.args)
            }
            Ok(Err(e)) => panic!("read rollcall {:?}: {e}", self.args),
            Err(_) => panic!("rollcall {:?}: no line within {WAIT:?}", self.args),
        }
    }

    /// Lines until one satisfies `want` (which is returned), within [`WAIT`].
    pub async fn line_where(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "rollcall {:?}: no matching line",
                self.args
            );
            let line = self.line().await;
            if want(&line) {
                return line;
            }
        }
    }

    /// Sends SIGINT (through the `kill` program: no unsafe FFI here).
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .arg("-INT")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {pid}: {status}");
    }

    /// Waits (bounded) for the exit; returns its status and the rest of stdout.
    pub async fn exit(mut self) -> (ExitStatus, Vec<String>) {
        let mut rest = Vec::new();
        let read_rest = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                rest.push(line);
            }
        };
        tokio::time::timeout(WAIT, read_rest)
            .await
            .unwrap_or_else(|_| panic!("rollcall {:?} kept stdout open", self.args));
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("rollcall {:?} did not exit", self.args))
            .expect("wait for rollcall");
        (status, rest)
    }

    async fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ =
                tokio::time::timeout(Duration::from_secs(2), err.read_to_string(&mut text)).await;
        }
        text
    }
}

/// Polls `check` every 50 ms until it returns `Some`, within [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows of a table (header first), split on runs of spaces.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
