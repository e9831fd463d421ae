//! Membership changes as etcd makes them, on openraft: MemberAdd (a voter,
//! or a learner with `--learner`), MemberPromote, MemberRemove and
//! MemberUpdate, each refused as etcd refuses it. A member added here starts
//! with `--initial-cluster-state existing` and derives the same id from its
//! peer URLs and the cluster token. Only the leader changes membership; the
//! API layer forwards the call to it.
//!
//! "Started" members are those that published their attributes (a name),
//! as in etcd; a change that would leave fewer started voters than a quorum
//! of the new membership is refused.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use tokio::time::Instant;

use super::members::member_id;
use super::node::{MemberInfo, RaftNode};
use super::types::MemberNode;
use crate::error::{ClusterError, Error, MembershipError};

/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

/// A learner is in sync when it matched at least this share of the
/// leader's log (etcd's 90%).
const IN_SYNC_PERCENT: u64 = 90;

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

fn started(members: &[MemberInfo], voters: &BTreeSet<u64>) -> usize {
    members
        .iter()
        .filter(|m| voters.contains(&m.id) && !m.node.name.is_empty())
        .count()
}

impl RaftNode {
    fn require_leader(&self) -> Result<(), Error> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ClusterError::NotLeader.into())
        }
    }

    /// Commits one membership change (removed voters are not kept as
    /// learners), waiting out a previous change still committing.
    async fn change(&self, change: ChangeMembers<u64, MemberNode>) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let attempt = self.raft.change_membership(change.clone(), false);
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    return Err(ClusterError::NotLeader.into());
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                )))) if Instant::now() < deadline => {
                    tokio::time::sleep(self.config.heartbeat).await;
                }
                Ok(Err(e)) => return Err(Error::Raft(e.to_string())),
                Err(_) => return Err(ClusterError::Timeout.into()),
            }
        }
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.members()
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Adds a member with `peer_urls`; returns its id.
    pub(crate) async fn add_member(
        &self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<u64, Error> {
        self.require_leader()?;
        if peer_urls.is_empty()
            || peer_urls
                .iter()
                .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(MembershipError::BadUrls.into());
        }
        let members = self.members();
        // The id derives from the peer URLs, so the same URLs again are the
        // same member (etcd answers this one first too).
        let id = member_id(&peer_urls, &self.config.token);
        if members.iter().any(|m| m.id == id) {
            return Err(MembershipError::MemberExists.into());
        }
        if members
            .iter()
            .any(|m| m.node.peer_urls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(MembershipError::PeerUrlExists.into());
        }

        let voters = self.voters();
        if learner {
            if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                return Err(MembershipError::TooManyLearners.into());
            }
        } else if started(&members, &voters) < quorum(voters.len() + 1) {
            return Err(MembershipError::NotEnoughStartedMembers.into());
        }
        let node = MemberNode {
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
        };
        self.change(ChangeMembers::AddNodes(BTreeMap::from([(id, node)])))
            .await?;
        if !learner {
            self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                .await?;
        }
        tracing::info!(member = format_args!("{id:x}"), learner, "added a member");
        Ok(id)
    }

    /// Removes member `id` (voter or learner).
    pub(crate) async fn remove_member(&self, id: u64) -> Result<(), Error> {
        self.require_leader()?;
        let members = self.members();
        let Some(member) = members.iter().find(|m| m.id == id) else {
            return Err(MembershipError::MemberNotFound.into());
        };
        if !member.is_learner {
            let mut voters = self.voters();
            voters.remove(&id);
            if started(&members, &voters) < quorum(voters.len()) {
                return Err(MembershipError::NotEnoughStartedMembers.into());
            }
            // Not retained as a learner: this removes the member entirely.
            self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                .await?;
        } else {
            self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                .await?;
        }
        tracing::info!(member = format_args!("{id:x}"), "removed a member");
        Ok(())
    }

    /// Promotes learner `id` to a voter once it is in sync with the leader.
    pub(crate) async fn promote_member(&self, id: u64) -> Result<(), Error> {
        self.require_leader()?;
        let members = self.members();
        let Some(member) = members.iter().find(|m| m.id == id) else {
            return Err(MembershipError::MemberNotFound.into());
        };
        if !member.is_learner {
            return Err(MembershipError::MemberNotLearner.into());
        }
        let (leader_index, matched) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map_or(0, |l| l.index);
            (m.last_log_index.unwrap_or(0), matched)
        };
        if matched * 100 < leader_index * IN_SYNC_PERCENT {
            return Err(MembershipError::LearnerNotReady.into());
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await?;
        tracing::info!(member = format_args!("{id:x}"), "promoted a learner");
        Ok(())
    }

    /// Replaces member `id`'s peer URLs.
    pub(crate) async fn update_member(&self, id: u64, peer_urls: Vec<String>) -> Result<(), Error> {
        self.require_leader()?;
        let members = self.members();
        let Some(member) = members.iter().find(|m| m.id == id) else {
            return Err(MembershipError::MemberNotFound.into());
        };
        if members
            .iter()
            .any(|m| m.id != id && m.node.peer_urls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(MembershipError::PeerUrlExists.into());
        }
        let node = MemberNode {
            peer_urls,
            ..member.node.clone()
        };
        self.change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            .await
    }
}
