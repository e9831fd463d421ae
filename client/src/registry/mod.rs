//! Service discovery on top of the KV, lease and watch APIs: the data
//! conventions ([`instance`]), registering an instance and keeping it
//! registered, and discovering a service's live instances.

pub mod instance;
pub mod snapshot;

pub use instance::{
    Health, Instance, InstanceError, SERVICES_PREFIX, instance_key, parse_key, service_prefix,
};
pub use snapshot::{DEFAULT_PROTECTION_THRESHOLD, ServiceSnapshot};

mod cache;
pub mod discovery;
pub mod error;
mod guard;
mod http;
pub mod probe;
pub mod registration;

pub use discovery::{Discovery, DiscoveryOptions};
pub use error::RegistryError;
pub use probe::{CheckFailure, HealthProbe, ProbeError, ProbeFuture};
pub use registration::{Registration, RegistrationOptions, RegistrationState};
