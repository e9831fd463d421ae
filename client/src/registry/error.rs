//! [`RegistryError`]: why registering, probing or discovering failed.
//!
//! A registry call fails because its input breaks the conventions
//! ([`RegistryError::Instance`], [`RegistryError::Probe`]), because the
//! registry refused it or could not be reached ([`RegistryError::Client`]:
//! its `is_unavailable()` tells which), or because the background task that
//! keeps a registration or a discovery cache is gone.

use crate::error::{ClientError, EtcdErrorKind};
use crate::lease::LeaseLost;

use super::InstanceError;
use super::probe::ProbeError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The instance or service name breaks the key conventions, or a value
    /// is not valid registry JSON.
    #[error(transparent)]
    Instance(#[from] InstanceError),

    /// A call to the registry failed.
    #[error(transparent)]
    Client(#[from] ClientError),

    /// The lease the instance was registered under was lost; the
    /// registration registers again under a new one.
    #[error("lease {id:x} lost: {reason}")]
    LeaseLost { id: i64, reason: LeaseLost },

    /// A health probe is misconfigured (for example an unsupported URL).
    #[error(transparent)]
    Probe(#[from] ProbeError),

    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: &'static str,
    },

    /// The background task behind a registration or a discovery has ended
    /// (it was deregistered, or its last handle dropped).
    #[error("the registry task has stopped")]
    Stopped,
}

impl RegistryError {
    /// True when the registry said the lease does not exist (revoked or
    /// expired): registering again under a new lease is the remedy.
    pub fn is_lease_not_found(&self) -> bool {
        match self {
            Self::Client(e) => e.etcd_kind() == Some(EtcdErrorKind::LeaseNotFound),
            Self::LeaseLost { reason, .. } => *reason == LeaseLost::NotFound,
            _ => false,
        }
    }

    /// True when the registry could not be reached (retrying may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Client(e) if e.is_unavailable() || e.is_timeout())
    }
}
