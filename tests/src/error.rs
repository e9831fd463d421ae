//! [`HarnessError`]: everything that can go wrong while starting, probing or
//! stopping a server process or running a tool. Each variant carries what a
//! developer needs to see in a failed test (the command, the log tail).

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// An error of the harness itself (not of the server under test).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server process exited while the harness waited for it to be ready.
    #[error("{program} exited with {status} before it was ready; log {log}:\n{log_tail}")]
    ExitedEarly {
        /// The program that was started.
        program: PathBuf,
        /// Its exit status.
        status: ExitStatus,
        /// Path of its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The server did not answer Maintenance.Status with a leader in time.
    #[error(
        "{program} was not ready after {waited:?} (last error: {last_error}); log {log}:\n{log_tail}"
    )]
    NotReady {
        /// The program that was started.
        program: PathBuf,
        /// How long the harness waited.
        waited: Duration,
        /// The last probe error seen.
        last_error: String,
        /// Path of its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The endpoint URL could not be turned into a gRPC channel.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The process did not exit within the deadline after a signal.
    #[error("{program} did not exit within {waited:?} after {signal}")]
    DidNotExit {
        /// The program.
        program: PathBuf,
        /// The signal sent.
        signal: &'static str,
        /// How long the harness waited.
        waited: Duration,
    },
    /// A tool run by the harness did not finish within its deadline.
    #[error("`{command}` did not finish within {waited:?}")]
    ToolTimeout {
        /// The command line.
        command: String,
        /// How long the harness waited.
        waited: Duration,
    },
    /// No server process is running (it was killed and not restarted).
    #[error("the server process is not running")]
    NotRunning,
    /// Setting up the test's network hosts failed (`ip` refused).
    #[error("network setup: {0}")]
    Setup(String),
}

impl HarnessError {
    /// Wraps an I/O error with what the harness was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
