//! Real processes for the walkthrough test: the `rollcall` binary (located
//! next to this test's own target directory), and the example binaries,
//! each with its stdout captured line by line with the time each line
//! arrived. Every process is killed (SIGKILL) and reaped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The `rollcall` server binary of this workspace's build.
///
/// `cargo test --workspace` builds every binary of the workspace before
/// running tests, so it is in the same target directory as this test
/// (`target/debug/deps/<test>` → `target/debug/rollcall`).
pub fn rollcall_binary() -> TestResult<PathBuf> {
    let name = format!("rollcall{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join(&name));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(&name),
    );
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(format!(
        "the rollcall binary is not built (looked at {candidates:?}); \
         run `cargo build -p rollcall-server` first (`cargo test --workspace` builds it)"
    )
    .into())
}

/// One line of a process's stdout and when the test received it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// A child process with captured output; SIGKILLed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<Line>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String]) -> TestResult<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", program.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for text in BufReader::new(out).lines().map_while(Result::ok) {
                    lock(&lines).push(Line {
                        at: Instant::now(),
                        text,
                    });
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for text in BufReader::new(err).lines().map_while(Result::ok) {
                    lock(&stderr).push(text);
                }
            });
        }
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            lines,
            stderr,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<Line> {
        lock(&self.lines).clone()
    }

    /// Stdout and stderr so far, for failure messages.
    pub fn output(&self) -> String {
        let out: Vec<String> = self.lines().into_iter().map(|l| l.text).collect();
        let tail = |v: &[String]| v[v.len().saturating_sub(30)..].join("\n");
        format!(
            "--- {} stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.name,
            tail(&out),
            tail(&lock(&self.stderr))
        )
    }

    /// Waits (bounded) until a stdout line satisfies `matches`; fails early
    /// if the process exits.
    pub async fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> TestResult<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| matches(&l.text)) {
                return Ok(line);
            }
            if let Some(status) = self.try_wait()? {
                return Err(format!(
                    "{} exited ({status}) before {what}\n{}",
                    self.name,
                    self.output()
                )
                .into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: no {what} within {timeout:?}\n{}",
                    self.name,
                    self.output()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn try_wait(&mut self) -> TestResult<Option<ExitStatus>> {
        match &mut self.child {
            Some(child) => Ok(child.try_wait()?),
            None => Err(format!("{} was already reaped", self.name).into()),
        }
    }

    /// Sends `signal` (`INT`, `TERM`, `USR1`, ...) with the `kill` program.
    pub fn signal(&self, signal: &str) -> TestResult {
        let pid = self
            .pid()
            .ok_or_else(|| format!("{} is not running", self.name))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            return Err(
                format!("kill -{signal} {pid} ({}) exited with {status}", self.name).into(),
            );
        }
        Ok(())
    }

    /// SIGKILL: a crash, no chance to deregister.
    pub fn kill9(&mut self) -> TestResult {
        if let Some(child) = &mut self.child {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> TestResult<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.output()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
