//! `lease grant|revoke|keepalive|ttl|list`. Lease ids are printed and read
//! in hex, as etcdctl does (`lease 694d7d8a2e8e6f0a granted with TTL(10s)`),
//! so an id printed by one command can be pasted into the next; JSON carries
//! them as hex strings too.
//!
//! `keepalive` renews until SIGINT or SIGTERM (exit 0, the lease is left to
//! expire) or until the lease is lost (exit 1), printing each renewal.

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{Table, emit, json_line, lease_hex, line, text};
use super::signal::Shutdown;
use super::{CliError, GlobalArgs};
use crate::header::HasHeader;

/// `rollcall lease <command>`.
#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: LeaseCommand,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LeaseCommand {
    /// Grant a lease of TTL seconds.
    Grant {
        /// Seconds; the registry may raise it to its minimum.
        ttl: i64,
    },
    /// Revoke a lease, deleting every key attached to it.
    Revoke {
        /// Lease id in hex.
        #[arg(value_parser = parse_lease_id)]
        id: i64,
    },
    /// Keep a lease alive until interrupted.
    #[command(name = "keepalive", alias = "keep-alive")]
    KeepAlive {
        /// Lease id in hex.
        #[arg(value_parser = parse_lease_id)]
        id: i64,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Show a lease's granted and remaining TTL.
    #[command(alias = "timetolive")]
    Ttl {
        /// Lease id in hex.
        #[arg(value_parser = parse_lease_id)]
        id: i64,
        /// Also list the keys attached to it.
        #[arg(long)]
        keys: bool,
    },
    /// List every lease.
    List,
}

impl LeaseCommand {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Grant { .. } => "lease grant",
            Self::Revoke { .. } => "lease revoke",
            Self::KeepAlive { .. } => "lease keepalive",
            Self::Ttl { .. } => "lease ttl",
            Self::List => "lease list",
        }
    }
}

/// Parses a lease id as etcdctl does: hex (an optional `0x` is accepted).
pub fn parse_lease_id(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    match i64::from_str_radix(digits, 16) {
        Ok(id) if id > 0 => Ok(id),
        Ok(_) => Err(format!("{text:?}: a lease id is positive")),
        Err(e) => Err(format!("{text:?} is not a lease id in hex: {e}")),
    }
}

pub(crate) async fn run(args: LeaseArgs) -> Result<(), CliError> {
    let global = &args.global;
    match args.command {
        LeaseCommand::Grant { ttl } => grant(global, ttl).await,
        LeaseCommand::Revoke { id } => revoke(global, id).await,
        LeaseCommand::KeepAlive { id, once } => keep_alive(global, id, once).await,
        LeaseCommand::Ttl { id, keys } => time_to_live(global, id, keys).await,
        LeaseCommand::List => list(global).await,
    }
}

async fn grant(global: &GlobalArgs, ttl: i64) -> Result<(), CliError> {
    let client = global.connect().await?;
    let resp = client
        .grant(ttl)
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if !resp.error.is_empty() {
        return Err(CliError::Refused {
            code: tonic::Code::Unknown,
            message: resp.error,
        });
    }
    if global.json() {
        return json_line(&json!({
            "id": lease_hex(resp.id),
            "ttl": resp.ttl,
            "revision": resp.revision(),
        }));
    }
    line(format!(
        "lease {} granted with TTL({}s)",
        lease_hex(resp.id),
        resp.ttl
    ))
}

async fn revoke(global: &GlobalArgs, id: i64) -> Result<(), CliError> {
    let client = global.connect().await?;
    let resp = client
        .revoke(id)
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if global.json() {
        return json_line(&json!({
            "id": lease_hex(id),
            "revoked": true,
            "revision": resp.revision(),
        }));
    }
    line(format!("lease {} revoked", lease_hex(id)))
}

fn renewed(global: &GlobalArgs, id: i64, ttl: i64) -> Result<(), CliError> {
    if global.json() {
        json_line(&json!({ "id": lease_hex(id), "ttl": ttl }))
    } else {
        line(format!(
            "lease {} keepalived with TTL({ttl})",
            lease_hex(id)
        ))
    }
}

async fn keep_alive(global: &GlobalArgs, id: i64, once: bool) -> Result<(), CliError> {
    let mut shutdown = Shutdown::install()?;
    let client = global.connect().await?;
    if once {
        let resp = client
            .keep_alive_once(id)
            .await
            .map_err(|e| CliError::client(e, &global.endpoints))?;
        return renewed(global, id, resp.ttl);
    }
    let keeper = tokio::select! {
        keeper = client.keep_alive(id) => {
            keeper.map_err(|e| CliError::client(e, &global.endpoints))?
        }
        () = shutdown.wait() => return Ok(()),
    };
    let mut state = keeper.subscribe();
    let mut renewals = {
        let first = state.borrow_and_update();
        renewed(global, id, first.ttl)?;
        first.renewals
    };
    loop {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(CliError::LeaseLost { id, reason: crate::LeaseLost::Stopped });
                }
                let now = state.borrow_and_update().clone();
                if let Some(reason) = now.lost {
                    return Err(CliError::LeaseLost { id, reason });
                }
                if now.renewals > renewals {
                    renewals = now.renewals;
                    renewed(global, id, now.ttl)?;
                }
            }
            () = shutdown.wait() => return Ok(()),
        }
    }
}

async fn time_to_live(global: &GlobalArgs, id: i64, keys: bool) -> Result<(), CliError> {
    let client = global.connect().await?;
    let resp = client
        .time_to_live(id, keys)
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if global.json() {
        let keys: Vec<String> = resp.keys.iter().map(|k| text(k)).collect();
        return json_line(&json!({
            "id": lease_hex(id),
            "ttl": resp.ttl,
            "granted_ttl": resp.granted_ttl,
            "keys": keys,
            "revision": resp.revision(),
        }));
    }
    if resp.ttl == -1 {
        return line(format!("lease {} already expired", lease_hex(id)));
    }
    let mut out = format!(
        "lease {} granted with TTL({}s), remaining({}s)",
        lease_hex(id),
        resp.granted_ttl,
        resp.ttl
    );
    if keys {
        let keys: Vec<String> = resp.keys.iter().map(|k| text(k)).collect();
        out.push_str(&format!(", attached keys([{}])", keys.join(" ")));
    }
    line(out)
}

async fn list(global: &GlobalArgs) -> Result<(), CliError> {
    let client = global.connect().await?;
    let resp = client
        .leases()
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    let mut ids: Vec<i64> = resp.leases.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    if global.json() {
        return json_line(&json!({
            "leases": ids.iter().map(|&id| lease_hex(id)).collect::<Vec<_>>(),
            "revision": resp.revision(),
        }));
    }
    let mut table = Table::new(["ID"]);
    for id in ids {
        table.row(vec![lease_hex(id)]);
    }
    emit(&table.render())
}
