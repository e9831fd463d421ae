//! The registry's data conventions, shared by every language (README,
//! "Service registry conventions"):
//!
//! * an instance lives at `/services/<service>/<instance-id>`, attached to
//!   the instance's lease, so it disappears when the instance stops renewing;
//! * its value is a JSON object with a schema version:
//!   `{"schema":1,"id","service","addr","zone","weight","tags","meta","health"}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where every service's instances live.
pub const SERVICES_PREFIX: &str = "/services/";
/// The value schema this library writes; readers accept any value with the
/// fields they need and ignore unknown ones.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether an instance should receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Passing,
    Critical,
}

/// One registered instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Value schema version (`SCHEMA_VERSION` when written by this library).
    #[serde(default = "schema_version")]
    pub schema: u32,
    /// Unique within the service.
    pub id: String,
    pub service: String,
    /// Where to reach it: `host:port` or a URL.
    pub addr: String,
    /// Failure domain, for zone-preferring balancers.
    #[serde(default)]
    pub zone: String,
    /// Relative share of traffic for weighted balancers (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default)]
    pub health: Health,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{0:?} is not a valid {1}: it must be non-empty and contain no '/'")]
    InvalidName(String, &'static str),
    #[error("instance value is not valid JSON for the registry schema: {0}")]
    Decode(#[from] serde_json::Error),
}

impl Instance {
    /// A passing instance with weight 1 and no zone, tags or meta.
    pub fn new(service: impl Into<String>, id: impl Into<String>, addr: impl Into<String>) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            id: id.into(),
            service: service.into(),
            addr: addr.into(),
            zone: String::new(),
            weight: 1,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            health: Health::Passing,
        }
    }

    /// The key this instance is stored under.
    pub fn key(&self) -> Result<String, InstanceError> {
        instance_key(&self.service, &self.id)
    }

    pub fn to_json(&self) -> String {
        // Serializing this struct (strings, numbers, maps) cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(value: &[u8]) -> Result<Self, InstanceError> {
        Ok(serde_json::from_slice(value)?)
    }

    pub fn is_passing(&self) -> bool {
        self.health == Health::Passing
    }
}

fn check_name(name: &str, what: &'static str) -> Result<(), InstanceError> {
    if name.is_empty() || name.contains('/') {
        return Err(InstanceError::InvalidName(name.to_string(), what));
    }
    Ok(())
}

/// `/services/<service>/`: the prefix holding a service's instances.
pub fn service_prefix(service: &str) -> Result<String, InstanceError> {
    check_name(service, "service name")?;
    Ok(format!("{SERVICES_PREFIX}{service}/"))
}

/// `/services/<service>/<id>`.
pub fn instance_key(service: &str, id: &str) -> Result<String, InstanceError> {
    check_name(id, "instance id")?;
    Ok(format!("{}{id}", service_prefix(service)?))
}

/// The service and instance id of a registry key, if it is one.
pub fn parse_key(key: &[u8]) -> Option<(&str, &str)> {
    let rest = std::str::from_utf8(key)
        .ok()?
        .strip_prefix(SERVICES_PREFIX)?;
    let (service, id) = rest.split_once('/')?;
    (!service.is_empty() && !id.is_empty() && !id.contains('/')).then_some((service, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_json_follow_the_convention() -> Result<(), InstanceError> {
        let mut web = Instance::new("web", "web-1", "10.0.0.7:8080");
        web.zone = "eu-1".into();
        web.meta.insert("version".into(), "2".into());
        assert_eq!(web.key()?, "/services/web/web-1");
        assert_eq!(parse_key(b"/services/web/web-1"), Some(("web", "web-1")));
        assert_eq!(parse_key(b"/services/web/"), None);
        assert_eq!(parse_key(b"/other/web/1"), None);
        let json = web.to_json();
        assert!(json.contains(r#""health":"passing""#) && json.contains(r#""schema":1"#));
        assert_eq!(Instance::from_json(json.as_bytes())?, web);
        // Other languages may write only the essentials.
        let minimal = Instance::from_json(br#"{"id":"a","service":"s","addr":"h:1"}"#)?;
        assert_eq!((minimal.weight, minimal.health), (1, Health::Passing));
        assert!(service_prefix("a/b").is_err() && instance_key("s", "").is_err());
        Ok(())
    }
}
