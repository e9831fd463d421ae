//! `status`: Maintenance.Status of every endpoint given, each asked on a
//! connection of its own (no failover: the point is to see each one); with
//! `--cluster`, of every member's first client URL, as MemberList (asked of
//! the endpoints given) names them, like `etcdctl endpoint status --cluster`.
//!
//! Table: `ENDPOINT ID VERSION DB_SIZE REVISION LEADER IS_LEADER RAFT_TERM
//! RAFT_INDEX`. An endpoint that does not answer is reported on stderr and
//! makes the exit code non-zero; the others are still printed.

use clap::Args;
use rollcall_proto::etcdserverpb::StatusResponse;
use serde_json::{Value, json};

use super::output::{Table, bytes_si, emit, json_line};
use super::{CliError, GlobalArgs};
use crate::client::Client;
use crate::endpoint::normalize_endpoint;
use crate::header::HasHeader;

/// `rollcall status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Ask every member of the cluster, found through MemberList.
    #[arg(long)]
    pub cluster: bool,
}

/// Every member's first client URL, from the first endpoint that answers
/// MemberList (members that have not published theirs yet are skipped).
async fn member_endpoints(global: &GlobalArgs) -> Result<Vec<String>, CliError> {
    let client = Client::connect_with(global.endpoints.clone(), global.connect_options())
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    let list = client
        .member_list()
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    Ok(list
        .members
        .iter()
        .filter_map(|m| m.client_ur_ls.first().cloned())
        .collect())
}

fn member_id(status: &StatusResponse) -> u64 {
    status.header.as_ref().map_or(0, |h| h.member_id)
}

fn status_json(endpoint: &str, status: &StatusResponse) -> Value {
    json!({
        "endpoint": endpoint,
        "member_id": format!("{:x}", member_id(status)),
        "version": status.version,
        "db_size": status.db_size,
        "db_size_in_use": status.db_size_in_use,
        "revision": status.revision(),
        "leader": format!("{:x}", status.leader),
        "is_leader": status.leader != 0 && status.leader == member_id(status),
        "raft_term": status.raft_term,
        "raft_index": status.raft_index,
        "raft_applied_index": status.raft_applied_index,
        "errors": status.errors,
    })
}

async fn one(global: &GlobalArgs, endpoint: &str) -> Result<StatusResponse, CliError> {
    let tried = [endpoint.to_owned()];
    let client = Client::connect_with([endpoint], global.connect_options())
        .await
        .map_err(|e| CliError::client(e, &tried))?;
    client
        .status()
        .await
        .map_err(|e| CliError::client(e, &tried))
}

pub(crate) async fn run(args: StatusArgs) -> Result<(), CliError> {
    let global = &args.global;
    let endpoints = if args.cluster {
        member_endpoints(global).await?
    } else {
        global.endpoints.clone()
    };
    let mut answers = Vec::new();
    for given in &endpoints {
        let endpoint = normalize_endpoint(given).map_err(|e| CliError::client(e, &endpoints))?;
        let answer = one(global, &endpoint).await;
        answers.push((endpoint, answer));
    }
    if global.json() {
        let list: Vec<Value> = answers
            .iter()
            .map(|(endpoint, answer)| match answer {
                Ok(status) => status_json(endpoint, status),
                Err(e) => json!({ "endpoint": endpoint, "error": e.to_string() }),
            })
            .collect();
        json_line(&json!({ "endpoints": list }))?;
    } else if answers.iter().any(|(_, a)| a.is_ok()) {
        let mut table = Table::new([
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB_SIZE",
            "REVISION",
            "LEADER",
            "IS_LEADER",
            "RAFT_TERM",
            "RAFT_INDEX",
        ]);
        for (endpoint, answer) in &answers {
            let Ok(status) = answer else { continue };
            let id = member_id(status);
            table.row(vec![
                endpoint.clone(),
                format!("{id:x}"),
                status.version.clone(),
                bytes_si(status.db_size),
                status.revision().to_string(),
                format!("{:x}", status.leader),
                (status.leader != 0 && status.leader == id).to_string(),
                status.raft_term.to_string(),
                status.raft_index.to_string(),
            ]);
        }
        emit(&table.render())?;
    }
    let mut failures: Vec<(String, CliError)> = answers
        .into_iter()
        .filter_map(|(endpoint, answer)| answer.err().map(|e| (endpoint, e)))
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    if endpoints.len() == 1
        && let Some((_, e)) = failures.pop()
    {
        return Err(e);
    }
    Err(CliError::Unreachable {
        tried: failures
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect(),
        detail: failures
            .iter()
            .map(|(endpoint, e)| format!("{endpoint}: {e}"))
            .collect::<Vec<_>>()
            .join("; "),
    })
}
