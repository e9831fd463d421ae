//! [`Layout`]: the names, addresses and ports of every member of a group of
//! server processes (on loopback, or each on its own [`Hosts`] host), allocated before any of them starts, so that each member's
//! command line can name all the others (etcd's `--initial-cluster`, and
//! rollcall's own once it replicates).
//!
//! The harness derives each member's flags from the layout in two parts:
//! its own identity (name, data dir, client URLs; rollcall's metrics URL),
//! which the harness always passes, and its *peer flags*, which a
//! [`PeerArgs`] closure given every member's ports returns. The default
//! peer flags are etcd's ([`Layout::etcd_peer_args`]) for etcd and none for
//! rollcall (which has no peers yet).

use std::sync::Arc;

use crate::netns::Hosts;
use crate::{HarnessError, ports};

/// The name, address and ports of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSlot {
    /// The member name (`--name`).
    pub name: String,
    /// The address it listens on: `127.0.0.1`, or its own host's address.
    pub host: String,
    /// The network namespace it runs in ([`crate::netns::Hosts`]), if not
    /// the test's own.
    pub namespace: Option<String>,
    /// Port of the client listener (gRPC).
    pub client_port: u16,
    /// Port reserved for peer traffic (etcd's `--listen-peer-urls`).
    pub peer_port: u16,
    /// Port of rollcall's `--listen-metrics-urls` (etcd serves its metrics
    /// on the client port and leaves this one unused).
    pub metrics_port: u16,
}

impl MemberSlot {
    fn allocate(name: &str) -> Result<Self, HarnessError> {
        Ok(Self {
            name: name.to_owned(),
            host: "127.0.0.1".into(),
            namespace: None,
            client_port: ports::free_port()?,
            peer_port: ports::free_port()?,
            metrics_port: ports::free_port()?,
        })
    }

    /// `http://<host>:<client port>`.
    #[must_use]
    pub fn client_url(&self) -> String {
        format!("http://{}:{}", self.host, self.client_port)
    }

    /// `http://<host>:<peer port>`.
    #[must_use]
    pub fn peer_url(&self) -> String {
        format!("http://{}:{}", self.host, self.peer_port)
    }

    /// `http://<host>:<metrics port>`.
    #[must_use]
    pub fn metrics_url(&self) -> String {
        format!("http://{}:{}", self.host, self.metrics_port)
    }
}

/// Every member's name and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    members: Vec<MemberSlot>,
}

/// Derives one member's peer flags from the whole layout and the member's
/// index in it. Kept by each process, so a restart uses the same flags.
pub type PeerArgs = Arc<dyn Fn(&Layout, usize) -> Vec<String> + Send + Sync>;

impl Layout {
    /// Fresh free ports for members with these names.
    pub fn allocate(names: &[String]) -> Result<Self, HarnessError> {
        let members = names
            .iter()
            .map(|n| MemberSlot::allocate(n))
            .collect::<Result<_, _>>()?;
        Ok(Self { members })
    }

    /// Members with these names, member `i` alone on host `i` of `hosts`
    /// with etcd's default ports (each host has its own).
    ///
    /// # Panics
    /// If there are more names than hosts.
    #[must_use]
    pub fn on_hosts(names: &[String], hosts: &Hosts) -> Self {
        assert!(names.len() <= hosts.len(), "more members than hosts");
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| MemberSlot {
                name: name.clone(),
                host: hosts.addr(i).to_string(),
                namespace: Some(hosts.namespace(i).to_owned()),
                client_port: 2379,
                peer_port: 2380,
                metrics_port: 2381,
            })
            .collect();
        Self { members }
    }

    /// Every member, in order.
    #[must_use]
    pub fn members(&self) -> &[MemberSlot] {
        &self.members
    }

    /// Member `index`.
    ///
    /// # Panics
    /// If there is no such member.
    #[must_use]
    pub fn member(&self, index: usize) -> &MemberSlot {
        &self.members[index]
    }

    /// `name=peer_url,...` of every member (etcd's `--initial-cluster`).
    #[must_use]
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member's client URL.
    #[must_use]
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(MemberSlot::client_url).collect()
    }

    /// etcd's peer flags for member `index`: it listens on and advertises
    /// its peer port, and the initial cluster is every member of the layout.
    #[must_use]
    pub fn etcd_peer_args(&self, index: usize) -> Vec<String> {
        let me = self.member(index);
        vec![
            "--listen-peer-urls".into(),
            me.peer_url(),
            "--initial-advertise-peer-urls".into(),
            me.peer_url(),
            "--initial-cluster".into(),
            self.initial_cluster(),
            "--initial-cluster-state".into(),
            "new".into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn initial_cluster_names_every_member_and_its_peer_port() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let layout = Layout::allocate(&names).unwrap();
        let parts: Vec<String> = layout
            .initial_cluster()
            .split(',')
            .map(String::from)
            .collect();
        assert_eq!(parts.len(), 3);
        for (part, member) in parts.iter().zip(layout.members()) {
            assert_eq!(part, &format!("{}={}", member.name, member.peer_url()));
        }
        let args = layout.etcd_peer_args(1);
        assert_eq!(args[1], layout.member(1).peer_url());
        assert_eq!(args[5], layout.initial_cluster());
    }
}
