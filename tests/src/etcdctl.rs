//! Runs `etcdctl` with `ETCDCTL_API=3` against one endpoint, optionally with
//! text on its standard input (for the interactive `etcdctl txn`), under a
//! deadline so a hung tool fails the test instead of hanging it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::HarnessError;

/// How long one etcdctl invocation may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What one etcdctl run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// The standard output, after asserting the run succeeded.
    ///
    /// # Panics
    /// If etcdctl exited with a non-zero status.
    #[must_use]
    pub fn ok(&self) -> &str {
        assert!(
            self.success,
            "`{}` failed:\nstdout: {}\nstderr: {}",
            self.command, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// The standard output parsed as JSON, after asserting success.
    ///
    /// # Panics
    /// If etcdctl failed or its output is not JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        match serde_json::from_str(out) {
            Ok(v) => v,
            Err(e) => panic!("`{}` printed no JSON ({e}): {out}", self.command),
        }
    }
}

/// An etcdctl bound to one endpoint.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    endpoint: String,
}

impl Etcdctl {
    /// etcdctl talking to `endpoint` (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
        }
    }

    /// Runs `etcdctl --endpoints E <args>`.
    pub async fn run(&self, args: &[&str]) -> Result<Output, HarnessError> {
        self.run_with_stdin(args, "").await
    }

    /// Runs `etcdctl --endpoints E <args>` with `stdin` on its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Result<Output, HarnessError> {
        let command = format!("etcdctl --endpoints {} {}", self.endpoint, args.join(" "));
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--dial-timeout=5s")
            .arg("--command-timeout=10s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn `{command}`"), e))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .await
                .map_err(|e| HarnessError::io(format!("write stdin of `{command}`"), e))?;
            // Dropping closes stdin, so interactive commands see end of input.
        }
        let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| HarnessError::ToolTimeout {
                command: command.clone(),
                waited: TIMEOUT,
            })?
            .map_err(|e| HarnessError::io(format!("wait for `{command}`"), e))?;
        Ok(Output {
            command,
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
