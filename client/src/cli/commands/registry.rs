//! The service registry commands, over `registry/`:
//!
//! - `register <service> <addr>` registers an instance under a lease and
//!   stays in the foreground keeping it registered (renewing, registering
//!   again after a lost lease, writing health probe flips) until SIGINT or
//!   SIGTERM, then deregisters (revokes the lease) and exits 0. It prints one
//!   line per change: registered, health, lost, registered again,
//!   deregistered.
//! - `services`: `SERVICE INSTANCES PASSING`.
//! - `discover <service>`: `ID ADDR ZONE WEIGHT HEALTH`, every instance
//!   (passing or not); with `--watch` the table is printed again on every
//!   change under a `# <service> at revision N` line, which says `STALE`
//!   while the registry is unreachable and the set is the last one known.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::output::{Table, emit, json_line, lease_hex, line};
use super::signal::Shutdown;
use super::{CliError, GlobalArgs};
use crate::header::HasHeader;
use crate::kv::GetOptions;
use crate::registry::{
    DiscoveryOptions, Health, HealthProbe, Instance, RegistrationOptions, RegistrationState,
    ServiceSnapshot, parse_key, service_prefix,
};

/// `rollcall register <service> <addr>`.
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// Service name (no `/`).
    pub service: String,
    /// Where the instance is reached: `host:port` or a URL.
    pub addr: String,
    /// Instance id, unique within the service (default: the address, with
    /// any `/` replaced by `_`).
    #[arg(long)]
    pub id: Option<String>,
    /// Lease TTL in seconds: the instance disappears this long after this
    /// process stops renewing.
    #[arg(long, default_value_t = RegistrationOptions::DEFAULT_TTL)]
    pub ttl: i64,
    /// Failure domain, for zone-preferring callers.
    #[arg(long, default_value = "")]
    pub zone: String,
    /// Relative share of traffic.
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Metadata `key=value` (repeatable).
    #[arg(long = "meta", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Health check: `http://host:port/path` (2xx passes), `tcp://host:port`
    /// (connect) or `grpc://host:port[/service]` (grpc.health.v1).
    #[arg(long)]
    pub check: Option<String>,
    /// Time between health checks.
    #[arg(long, value_parser = super::parse_duration, default_value = "5s", requires = "check")]
    pub check_interval: Duration,
    /// Bound on one health check.
    #[arg(long, value_parser = super::parse_duration, default_value = "2s", requires = "check")]
    pub check_timeout: Duration,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `rollcall services`.
#[derive(Debug, Clone, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `rollcall discover <service>`.
#[derive(Debug, Clone, Args)]
pub struct DiscoverArgs {
    pub service: String,
    /// Keep running and print the instances again on every change.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Parses `key=value`.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

impl RegisterArgs {
    /// The instance these arguments describe.
    pub fn instance(&self) -> Instance {
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| self.addr.replace('/', "_"));
        let mut instance = Instance::new(self.service.as_str(), id, self.addr.as_str());
        instance.zone.clone_from(&self.zone);
        instance.weight = self.weight;
        instance.tags.clone_from(&self.tags);
        instance.meta = self.meta.iter().cloned().collect::<BTreeMap<_, _>>();
        instance
    }

    /// The registration options, with the probe parsed.
    pub fn options(&self) -> Result<RegistrationOptions, CliError> {
        let mut options = RegistrationOptions::new().ttl(self.ttl);
        if let Some(check) = &self.check {
            let probe = HealthProbe::parse(check)
                .map_err(|e| CliError::Usage(format!("--check {check}: {e}")))?
                .interval(self.check_interval)
                .timeout(self.check_timeout);
            options = options.probe(probe);
        }
        Ok(options)
    }
}

fn health_name(health: Health) -> &'static str {
    match health {
        Health::Passing => "passing",
        Health::Critical => "critical",
    }
}

/// Prints one registration event: a sentence, or a JSON line.
fn registration_event(
    global: &GlobalArgs,
    event: &str,
    key: &str,
    state: &RegistrationState,
    sentence: String,
) -> Result<(), CliError> {
    if global.json() {
        json_line(&json!({
            "event": event,
            "key": key,
            "lease": state.lease_id.map(lease_hex),
            "health": health_name(state.health),
            "revision": state.revision,
            "error": state.last_error.as_ref().map(ToString::to_string),
            "probe_failure": state.probe_failure,
        }))
    } else {
        line(sentence)
    }
}

/// Prints what changed between two states of a registration.
fn report_change(
    global: &GlobalArgs,
    key: &str,
    before: &RegistrationState,
    now: &RegistrationState,
) -> Result<(), CliError> {
    let lease = |s: &RegistrationState| s.lease_id.map_or_else(|| "-".to_owned(), lease_hex);
    if before.registered && !now.registered {
        let why = now
            .last_error
            .as_ref()
            .map_or_else(String::new, |e| format!(": {e}"));
        registration_event(
            global,
            "lost",
            key,
            now,
            format!("lost {key}{why}; registering again"),
        )?;
    }
    if now.reregistrations > before.reregistrations
        || (!before.registered && now.registered)
        || (now.registered && now.lease_id != before.lease_id)
    {
        registration_event(
            global,
            "reregistered",
            key,
            now,
            format!("registered {key} again (lease {})", lease(now)),
        )?;
    }
    if now.health != before.health {
        let why = match (&now.probe_failure, now.health) {
            (Some(failure), Health::Critical) => format!(" ({failure})"),
            _ => String::new(),
        };
        registration_event(
            global,
            "health",
            key,
            now,
            format!("{key} is {}{why}", health_name(now.health)),
        )?;
    }
    Ok(())
}

pub(crate) async fn register(args: RegisterArgs) -> Result<(), CliError> {
    let mut shutdown = Shutdown::install()?;
    let global = &args.global;
    let instance = args.instance();
    let options = args.options()?;
    let client = global.connect().await?;
    let registration = tokio::select! {
        registration = client.register(instance, options) => {
            registration.map_err(|e| CliError::registry(e, &global.endpoints))?
        }
        () = shutdown.wait() => return Ok(()),
    };
    let key = registration.key().to_owned();
    let mut states = registration.subscribe();
    let mut last = states.borrow_and_update().clone();
    if global.json() {
        json_line(&json!({
            "event": "registered",
            "key": key,
            "lease": last.lease_id.map(lease_hex),
            "ttl": args.ttl,
            "instance": registration.instance(),
        }))?;
    } else {
        line(format!(
            "registered {key} at {} (lease {}, TTL {}s); interrupt (Ctrl-C) to deregister",
            args.addr,
            last.lease_id.map_or_else(|| "-".to_owned(), lease_hex),
            args.ttl
        ))?;
    }
    loop {
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    return Err(CliError::registry(
                        crate::registry::RegistryError::Stopped,
                        &global.endpoints,
                    ));
                }
                let now = states.borrow_and_update().clone();
                report_change(global, &key, &last, &now)?;
                last = now;
            }
            () = shutdown.wait() => break,
        }
    }
    let state = registration.state();
    match tokio::time::timeout(global.timeout, registration.deregister()).await {
        Ok(Ok(())) => registration_event(
            global,
            "deregistered",
            &key,
            &state,
            format!("deregistered {key}"),
        ),
        Ok(Err(e)) => Err(CliError::registry(e, &global.endpoints)),
        Err(_elapsed) => Err(CliError::Timeout {
            timeout: global.timeout,
            tried: global.endpoints.clone(),
        }),
    }
}

pub(crate) async fn services(args: ServicesArgs) -> Result<(), CliError> {
    let global = &args.global;
    let client = global.connect().await?;
    let services = client
        .services()
        .await
        .map_err(|e| CliError::registry(e, &global.endpoints))?;
    if global.json() {
        let list: Vec<Value> = services
            .iter()
            .map(|(service, instances, passing)| {
                json!({ "service": service, "instances": instances, "passing": passing })
            })
            .collect();
        return json_line(&json!({ "services": list }));
    }
    let mut table = Table::new(["SERVICE", "INSTANCES", "PASSING"]);
    for (service, instances, passing) in services {
        table.row(vec![service, instances.to_string(), passing.to_string()]);
    }
    emit(&table.render())
}

/// The instances of a snapshot as a table.
pub(crate) fn instance_table(instances: &[Instance]) -> Table {
    let mut table = Table::new(["ID", "ADDR", "ZONE", "WEIGHT", "HEALTH"]);
    for i in instances {
        table.row(vec![
            i.id.clone(),
            i.addr.clone(),
            if i.zone.is_empty() {
                "-".to_owned()
            } else {
                i.zone.clone()
            },
            i.weight.to_string(),
            health_name(i.health).to_owned(),
        ]);
    }
    table
}

fn snapshot_json(snapshot: &ServiceSnapshot) -> Value {
    json!({
        "service": snapshot.service,
        "revision": snapshot.revision,
        "stale": snapshot.stale,
        "instances": snapshot.instances.as_ref(),
    })
}

fn print_snapshot(
    global: &GlobalArgs,
    snapshot: &ServiceSnapshot,
    heading: bool,
) -> Result<(), CliError> {
    if global.json() {
        return json_line(&snapshot_json(snapshot));
    }
    let mut out = String::new();
    if heading {
        out.push_str(&format!(
            "# {} at revision {}{}\n",
            snapshot.service,
            snapshot.revision,
            if snapshot.stale {
                " (STALE: registry unreachable, showing the last known instances)"
            } else {
                ""
            }
        ));
    }
    out.push_str(&instance_table(&snapshot.instances).render());
    if heading {
        out.push('\n');
    }
    emit(&out)
}

pub(crate) async fn discover(args: DiscoverArgs) -> Result<(), CliError> {
    let global = &args.global;
    let prefix = service_prefix(&args.service).map_err(|e| CliError::Usage(e.to_string()))?;
    if args.watch {
        return discover_watch(args).await;
    }
    let client = global.connect().await?;
    let listed = client
        .get_with(prefix.as_str(), GetOptions::new().prefix())
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    let mut instances = Vec::with_capacity(listed.kvs.len());
    for kv in &listed.kvs {
        if parse_key(&kv.key).is_none() {
            continue;
        }
        match Instance::from_json(&kv.value) {
            Ok(instance) => instances.push(instance),
            Err(e) => eprintln!(
                "rollcall: skipping {}: {e}",
                String::from_utf8_lossy(&kv.key)
            ),
        }
    }
    let snapshot = ServiceSnapshot {
        service: args.service.clone(),
        instances: std::sync::Arc::new(instances),
        revision: listed.revision(),
        stale: false,
    };
    print_snapshot(global, &snapshot, false)
}

async fn discover_watch(args: DiscoverArgs) -> Result<(), CliError> {
    let mut shutdown = Shutdown::install()?;
    let global = &args.global;
    let client = global.connect().await?;
    let mut discovery = tokio::select! {
        discovery = client.discover(&args.service, DiscoveryOptions::new()) => {
            discovery.map_err(|e| CliError::registry(e, &global.endpoints))?
        }
        () = shutdown.wait() => return Ok(()),
    };
    print_snapshot(global, &discovery.snapshot(), true)?;
    loop {
        tokio::select! {
            changed = discovery.changed() => {
                let snapshot = changed.map_err(|e| CliError::registry(e, &global.endpoints))?;
                print_snapshot(global, &snapshot, true)?;
            }
            () = shutdown.wait() => return Ok(()),
        }
    }
}
