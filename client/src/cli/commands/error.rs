//! [`CliError`]: why a client command failed, worded for a person at a
//! terminal, and the exit code each kind of failure gives.
//!
//! | code | meaning |
//! | --- | --- |
//! | 1 | the registry refused the request (etcd's message is printed), or a watch, lease or registration ended |
//! | 2 | the arguments are unusable (clap's own usage errors also exit 2) |
//! | 3 | no endpoint could be reached, or none answered in time |

use std::error::Error as _;

use crate::endpoint::connect_failures;
use crate::error::{ClientError, WatchError};
use crate::lease::LeaseLost;
use crate::registry::RegistryError;

/// Exit code of a refused request or a failed command.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of unusable arguments.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the registry could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No endpoint accepted a connection, or the connection broke.
    #[error("cannot reach the registry (tried {}): {detail}", .tried.join(", "))]
    Unreachable {
        /// Every endpoint given, as typed.
        tried: Vec<String>,
        /// What failed, per endpoint where known.
        detail: String,
    },

    /// No answer within `--timeout`.
    #[error("no answer within {timeout:?} from {}; the request may or may not have been applied", .tried.join(", "))]
    Timeout {
        timeout: std::time::Duration,
        tried: Vec<String>,
    },

    /// The registry answered with an error: etcd's message, as sent.
    #[error("{message}")]
    Refused { code: tonic::Code, message: String },

    /// An argument is unusable.
    #[error("{0}")]
    Usage(String),

    /// A watch ended (compaction, canceled by the server).
    #[error("{0}")]
    Watch(WatchError),

    /// A kept-alive lease was lost.
    #[error("lease {id:016x} lost: {reason}")]
    LeaseLost { id: i64, reason: LeaseLost },

    /// A registration or discovery failed in a way not covered above.
    #[error("{0}")]
    Registry(RegistryError),

    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// Maps a client error; `endpoints` are the ones the command was given,
    /// named when none could be reached.
    pub fn client(error: ClientError, endpoints: &[String]) -> Self {
        let tried = endpoints.to_vec();
        match error {
            ClientError::Unreachable { failures } => Self::Unreachable {
                tried,
                detail: failures
                    .iter()
                    .map(|f| match connect_failures(&f.error) {
                        Some(dialled) => dialled.to_string(),
                        None => f.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            ClientError::Timeout(timeout) => Self::Timeout { timeout, tried },
            ClientError::Server(e) if e.code != tonic::Code::Unavailable => Self::Refused {
                code: e.code,
                message: e.message,
            },
            ClientError::Watch(WatchError::Disconnected { attempts, source }) => {
                Self::Unreachable {
                    tried,
                    detail: format!("watch stream lost after {attempts} attempts: {source}"),
                }
            }
            ClientError::Watch(e) => Self::Watch(e),
            e @ (ClientError::NoEndpoints
            | ClientError::InvalidEndpoint { .. }
            | ClientError::InvalidOption { .. }
            | ClientError::Tls(_)) => Self::Usage(e.to_string()),
            // No endpoint accepted a connection: each is named with its error.
            ClientError::Transport(status)
                if status.source().and_then(connect_failures).is_some() =>
            {
                Self::Unreachable {
                    tried,
                    detail: status
                        .source()
                        .and_then(connect_failures)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                }
            }
            // A broken connection, or the server said it cannot serve now.
            e @ (ClientError::Transport(_) | ClientError::Server(_)) => Self::Unreachable {
                tried,
                detail: e.to_string(),
            },
        }
    }

    /// Maps a registry error, as [`CliError::client`] for the calls inside.
    pub fn registry(error: RegistryError, endpoints: &[String]) -> Self {
        match error {
            RegistryError::Client(e) => Self::client(e, endpoints),
            e @ (RegistryError::Instance(_)
            | RegistryError::Probe(_)
            | RegistryError::InvalidOption { .. }) => Self::Usage(e.to_string()),
            RegistryError::LeaseLost { id, reason } => Self::LeaseLost { id, reason },
            e @ RegistryError::Stopped => Self::Registry(e),
        }
    }

    /// Maps the error that ended a watcher.
    pub fn watch(error: WatchError, endpoints: &[String]) -> Self {
        Self::client(ClientError::Watch(error), endpoints)
    }

    /// The process exit code for this error (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => EXIT_UNREACHABLE,
            Self::Usage(_) => EXIT_USAGE,
            Self::Refused { .. }
            | Self::Watch(_)
            | Self::LeaseLost { .. }
            | Self::Registry(_)
            | Self::Io(_) => EXIT_FAILED,
        }
    }
}
