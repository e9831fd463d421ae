//! [`Cluster`]: N server processes whose ports are all allocated before any
//! starts, so each member's flags can name every other member.
//!
//! ```no_run
//! # async fn f() -> Result<(), rollcall_tests::HarnessError> {
//! use rollcall_tests::{Backend, Cluster};
//! // etcd's peer flags are derived by default; a closure can give others
//! // (rollcall's own, once it replicates) from every member's ports:
//! let cluster = Cluster::builder(Backend::Etcd, 3)
//!     .peer_args(|layout, i| layout.etcd_peer_args(i))
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! All members are spawned first and only then waited for (a member of a
//! replicated cluster cannot name a leader before a quorum runs). Every
//! member is a [`ServerProcess`], so kill -9, pause/resume and restart work
//! per member; dropping the cluster kills them all and removes their dirs.
//! On [`ClusterBuilder::on_own_hosts`], each member runs on a host of its
//! own, and [`Cluster::hosts`] cuts and heals the links between them.

use std::sync::Arc;

use crate::layout::{Layout, PeerArgs};
use crate::netns::Hosts;
use crate::server::START_ATTEMPTS;
use crate::{Backend, HarnessError, ServerConfig, ServerProcess};

/// Settings of a [`Cluster`] before it starts.
pub struct ClusterBuilder {
    backend: Backend,
    size: usize,
    template: ServerConfig,
    peer_args: Option<PeerArgs>,
    own_hosts: bool,
}

impl ClusterBuilder {
    /// Runs each member on a host of its own ([`Hosts`]: a network namespace
    /// on a bridge), so the test can cut the links between members. Needs
    /// root and `ip` (see [`crate::Tool::Netns`]).
    #[must_use]
    pub fn on_own_hosts(mut self) -> Self {
        self.own_hosts = true;
        self
    }

    /// The configuration every member starts with (flags, environment,
    /// limits). Members are named `<config.name><index>`.
    #[must_use]
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.template = config;
        self
    }

    /// Derives each member's peer flags from every member's ports, replacing
    /// the backend's default (etcd's peer flags; none for rollcall).
    #[must_use]
    pub fn peer_args<F>(mut self, f: F) -> Self
    where
        F: Fn(&Layout, usize) -> Vec<String> + Send + Sync + 'static,
    {
        self.peer_args = Some(Arc::new(f));
        self
    }

    /// Allocates the ports, spawns every member, then waits until each one
    /// is ready. Retries with new ports (a bounded number of times) when one
    /// was taken meanwhile.
    pub async fn start(self) -> Result<Cluster, HarnessError> {
        let names: Vec<String> = (0..self.size)
            .map(|i| format!("{}{i}", self.template.name))
            .collect();
        let hosts = if self.own_hosts {
            Some(Hosts::create(self.size)?)
        } else {
            None
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let layout = match &hosts {
                Some(hosts) => Layout::on_hosts(&names, hosts),
                None => Layout::allocate(&names)?,
            };
            let mut members = Vec::with_capacity(self.size);
            for (index, name) in names.iter().enumerate() {
                let config = ServerConfig {
                    name: name.clone(),
                    ..self.template.clone()
                };
                members.push(ServerProcess::prepare(
                    self.backend.clone(),
                    config,
                    layout.clone(),
                    index,
                    self.peer_args.clone(),
                )?);
            }
            let mut cluster = Cluster {
                members,
                hosts: None,
            };
            match cluster.spawn_all().await {
                Ok(()) => {
                    cluster.hosts = hosts;
                    return Ok(cluster);
                }
                Err(_)
                    if attempt < START_ATTEMPTS
                        && cluster.members.iter().any(ServerProcess::port_was_taken) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// N running server processes (each one killed when the cluster is dropped).
#[derive(Debug)]
pub struct Cluster {
    members: Vec<ServerProcess>,
    // After `members`: the hosts are removed once the members are killed.
    hosts: Option<Hosts>,
}

impl Cluster {
    /// A cluster of `size` members of `backend`.
    #[must_use]
    pub fn builder(backend: Backend, size: usize) -> ClusterBuilder {
        ClusterBuilder {
            backend,
            size,
            template: ServerConfig::default(),
            peer_args: None,
            own_hosts: false,
        }
    }

    /// The members' hosts, when each runs on its own
    /// ([`ClusterBuilder::on_own_hosts`]): cut and heal links there.
    #[must_use]
    pub fn hosts(&self) -> Option<&Hosts> {
        self.hosts.as_ref()
    }

    async fn spawn_all(&mut self) -> Result<(), HarnessError> {
        for member in &mut self.members {
            member.spawn()?;
        }
        for member in &mut self.members {
            member.wait_ready().await?;
        }
        Ok(())
    }

    /// Every member, in order.
    #[must_use]
    pub fn members(&self) -> &[ServerProcess] {
        &self.members
    }

    /// Member `index`.
    ///
    /// # Panics
    /// If there is no such member.
    #[must_use]
    pub fn member(&self, index: usize) -> &ServerProcess {
        &self.members[index]
    }

    /// Member `index`, to kill, pause or restart it.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn member_mut(&mut self, index: usize) -> &mut ServerProcess {
        &mut self.members[index]
    }

    /// Every member's client URL.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(ServerProcess::endpoint).collect()
    }

    /// The ports of every member.
    ///
    /// # Panics
    /// If the cluster has no members.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        self.members[0].layout()
    }
}
