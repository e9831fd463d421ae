//! Client processes a test drives (the `rollcall` CLI, the examples): run
//! one to completion under a deadline ([`run`]), or keep one in the
//! background ([`Proc`]: its stdout lines as they arrive, with the time each
//! arrived, signals, bounded waits). A background process is SIGKILLed and
//! reaped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{HarnessError, signal};

/// What one run of a command did.
#[derive(Debug)]
pub struct Ran {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Whether it exited with 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Its exit code (None when a signal ended it).
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit 0 and returns stdout.
    ///
    /// # Panics
    /// When it failed.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.success(),
            "`{}`: exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.code(),
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON document on one line.
    ///
    /// # Panics
    /// When it failed or printed something else.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        assert_eq!(out.lines().count(), 1, "one JSON line expected:\n{out}");
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// Asserts a failure with `code` and returns stderr.
    ///
    /// # Panics
    /// When it exited otherwise.
    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.code(),
            Some(code),
            "`{}`\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.stdout,
            self.stderr
        );
        &self.stderr
    }
}

/// Runs `cmd` to completion, at most `timeout` (then it is killed).
///
/// # Panics
/// When it cannot be spawned or does not finish in time.
pub async fn run(mut cmd: tokio::process::Command, timeout: Duration) -> Ran {
    let std = cmd.as_std();
    let command = std::iter::once(std.get_program())
        .chain(std.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{command}` did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("run `{command}`: {e}"));
    Ran {
        command,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One line of a process's stdout and when the test received it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

#[derive(Default)]
struct Captured {
    lines: Vec<Line>,
    stderr: Vec<String>,
    stdout_closed: bool,
}

/// A background process with captured output; SIGKILLed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    captured: Arc<Mutex<Captured>>,
    /// Lines already handed out by [`Proc::next_line`].
    cursor: usize,
}

fn lock(c: &Mutex<Captured>) -> MutexGuard<'_, Captured> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(what: String) -> HarnessError {
    HarnessError::io(what, std::io::Error::other("test process"))
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout and stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Self, HarnessError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {name}"), e))?;
        let captured = Arc::new(Mutex::new(Captured::default()));
        if let Some(out) = child.stdout.take() {
            let captured = Arc::clone(&captured);
            std::thread::spawn(move || {
                for text in BufReader::new(out).lines().map_while(Result::ok) {
                    let at = Instant::now();
                    lock(&captured).lines.push(Line { at, text });
                }
                lock(&captured).stdout_closed = true;
            });
        }
        if let Some(err) = child.stderr.take() {
            let captured = Arc::clone(&captured);
            std::thread::spawn(move || {
                for text in BufReader::new(err).lines().map_while(Result::ok) {
                    lock(&captured).stderr.push(text);
                }
            });
        }
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            captured,
            cursor: 0,
        })
    }

    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every stdout line so far.
    #[must_use]
    pub fn lines(&self) -> Vec<Line> {
        lock(&self.captured).lines.clone()
    }

    /// Stdout and stderr so far (their tails), for failure messages.
    #[must_use]
    pub fn output(&self) -> String {
        let c = lock(&self.captured);
        let out: Vec<String> = c.lines.iter().map(|l| l.text.clone()).collect();
        let tail = |v: &[String]| v[v.len().saturating_sub(30)..].join("\n");
        format!(
            "--- {} stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.name,
            tail(&out),
            tail(&c.stderr)
        )
    }

    /// Waits (bounded) until a stdout line satisfies `matches`; fails early
    /// if the process exits.
    pub async fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<Line, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| matches(&l.text)) {
                return Ok(line);
            }
            if let Some(status) = self.try_wait()? {
                let output = self.output();
                return Err(failed(format!(
                    "{} exited ({status}) before {what}\n{output}",
                    self.name
                )));
            }
            if Instant::now() >= deadline {
                let output = self.output();
                return Err(failed(format!(
                    "{}: no {what} within {timeout:?}\n{output}",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The next stdout line not handed out yet, waiting at most `timeout`;
    /// `None` once stdout is closed and every line was handed out.
    pub async fn next_line(&mut self, timeout: Duration) -> Result<Option<String>, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let c = lock(&self.captured);
                if let Some(line) = c.lines.get(self.cursor) {
                    self.cursor += 1;
                    return Ok(Some(line.text.clone()));
                }
                if c.stdout_closed {
                    return Ok(None);
                }
            }
            if Instant::now() >= deadline {
                let output = self.output();
                return Err(failed(format!(
                    "{}: no line within {timeout:?}\n{output}",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The stdout lines not handed out yet, after stdout closed (bounded).
    pub async fn rest(&mut self, timeout: Duration) -> Result<Vec<String>, HarnessError> {
        let mut rest = Vec::new();
        while let Some(line) = self.next_line(timeout).await? {
            rest.push(line);
        }
        Ok(rest)
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        match &mut self.child {
            Some(child) => child
                .try_wait()
                .map_err(|e| HarnessError::io(format!("wait for {}", self.name), e)),
            None => Err(failed(format!("{} was already reaped", self.name))),
        }
    }

    /// Sends `sig` (`INT`, `TERM`, `USR1`, ...).
    pub fn signal(&self, sig: &str) -> Result<(), HarnessError> {
        let pid = self
            .pid()
            .ok_or_else(|| failed(format!("{} is not running", self.name)))?;
        signal::send(pid, sig)
    }

    /// SIGKILL: a crash, no chance to clean up.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            child
                .wait()
                .map_err(|e| HarnessError::io(format!("wait for {}", self.name), e))?;
        }
        Ok(())
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let output = self.output();
                return Err(failed(format!(
                    "{} did not exit within {timeout:?}\n{output}",
                    self.name
                )));
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
