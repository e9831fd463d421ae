//! Deciding at start-up whether this process is a single member or a
//! cluster member, and with which ids, from etcd's flags and the data dir:
//!
//! * a replicated log in the data dir: a restart; the log says who is in
//!   the cluster and the `--initial-*` flags are ignored, as etcd does;
//! * `--initial-cluster` and `--initial-cluster-state new`: form a new
//!   cluster of the listed members;
//! * `--initial-cluster-state existing`: join a cluster this member was
//!   added to; the leader sends it the log or a snapshot;
//! * neither: a single member with no peer port, exactly as before
//!   replication existed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::log_store::LOG_FILE;
use super::members::{InitialClusterError, member_id, parse_initial_cluster};
use super::node::NodeConfig;
use super::types::MemberNode;
use crate::config::{InitialClusterState, ServeConfig};
use crate::mvcc::store::Identity;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    InitialCluster(#[from] InitialClusterError),
    #[error("a cluster member needs --listen-peer-urls")]
    NoPeerListener,
    #[error(
        "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
    )]
    Timing { heartbeat: u64, election: u64 },
}

/// How this process takes part in a cluster.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub node: NodeConfig,
    /// Ids for a member starting for the first time; `None` on a restart
    /// (the data dir has them).
    pub identity: Option<Identity>,
    /// This member as MemberList should show it.
    pub me: MemberNode,
}

/// The cluster id: derived from the token every member of a cluster shares,
/// so a member joining later derives the same one.
fn cluster_id(token: &str) -> u64 {
    let digest = Sha256::digest(format!("rollcall-cluster\0{token}").as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id).max(1)
}

/// `None`: run as a single member. `restart_id`: the member id the data dir
/// holds, used when it already has a replicated log.
pub(crate) fn plan(
    config: &ServeConfig,
    client_urls: Vec<String>,
    data_dir: &Path,
    restart_id: u64,
) -> Result<Option<Plan>, BootstrapError> {
    let restarting = data_dir.join(LOG_FILE).exists();
    if config.initial_cluster.is_none() && !restarting {
        return Ok(None);
    }
    if config.listen_peer_urls.is_empty() {
        return Err(BootstrapError::NoPeerListener);
    }
    // etcd's rule (and its message): room for several heartbeats to be
    // lost before followers give up on the leader.
    if config.heartbeat_interval.saturating_mul(5) > config.election_timeout {
        return Err(BootstrapError::Timing {
            heartbeat: config.heartbeat_interval,
            election: config.election_timeout,
        });
    }
    let token = &config.initial_cluster_token;
    let members: BTreeMap<u64, MemberNode> = match &config.initial_cluster {
        Some(spec) => parse_initial_cluster(spec, token)?,
        None => BTreeMap::new(),
    };
    let peer_urls = if !config.initial_advertise_peer_urls.is_empty() {
        config.initial_advertise_peer_urls.clone()
    } else if let Some(listed) = members.values().find(|m| m.name == config.name) {
        listed.peer_urls.clone()
    } else {
        config.listen_peer_urls.clone()
    };
    let me = MemberNode {
        name: config.name.clone(),
        peer_urls: peer_urls.clone(),
        client_urls,
    };
    let timing = |id, bootstrap| NodeConfig {
        id,
        name: config.name.clone(),
        token: token.clone(),
        bootstrap,
        heartbeat: Duration::from_millis(config.heartbeat_interval),
        election_timeout: Duration::from_millis(config.election_timeout),
        snapshot_count: config.snapshot_count,
        catchup_entries: config.snapshot_catchup_entries,
    };
    if restarting {
        return Ok(Some(Plan {
            node: timing(restart_id, None),
            identity: None,
            me,
        }));
    }
    let id = member_id(&peer_urls, token);
    let bootstrap = match config.initial_cluster_state {
        InitialClusterState::New => {
            let Some(listed) = members.get(&id) else {
                return Err(InitialClusterError::MissingSelf(config.name.clone()).into());
            };
            if listed.name != config.name {
                return Err(InitialClusterError::AdvertiseMismatch(
                    listed.name.clone(),
                    peer_urls.join(","),
                )
                .into());
            }
            Some(members)
        }
        InitialClusterState::Existing => None,
    };
    Ok(Some(Plan {
        node: timing(id, bootstrap),
        identity: Some(Identity {
            cluster_id: cluster_id(token),
            member_id: id,
        }),
        me,
    }))
}
