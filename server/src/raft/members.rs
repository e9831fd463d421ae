//! Who is in the cluster at start: `--initial-cluster name=url,…` parsed,
//! and member ids computed from peer URLs and the cluster token,
//! so that every member derives the same ids from the same flags (as etcd
//! does) without talking to the others first.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::types::MemberNode;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InitialClusterError {
    #[error("--initial-cluster: expected NAME=URL, got {0:?}")]
    Entry(String),
    #[error(
        "--initial-cluster has no entry for --name {0:?} (with --initial-cluster-state new every member lists itself)"
    )]
    MissingSelf(String),
    #[error("--initial-cluster: {0:?} does not match --initial-advertise-peer-urls {1:?}")]
    AdvertiseMismatch(String, String),
    #[error("--initial-cluster: two members have the same peer URLs {0:?}")]
    DuplicateUrls(String),
}

/// The first 8 bytes of SHA-256 of the sorted peer URLs and the cluster
/// token: the same member id on every member for the same flags.
pub(crate) fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut hasher = Sha256::new();
    for url in urls {
        hasher.update(url.as_bytes());
        hasher.update([0]);
    }
    hasher.update(token.as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id).max(1)
}

/// Parses `--initial-cluster` into member id → member, grouping repeated
/// names (a member may list several peer URLs, as in etcd).
pub(crate) fn parse_initial_cluster(
    spec: &str,
    token: &str,
) -> Result<BTreeMap<u64, MemberNode>, InitialClusterError> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .filter(|(n, u)| !n.is_empty() && !u.is_empty())
            .ok_or_else(|| InitialClusterError::Entry(entry.to_string()))?;
        by_name
            .entry(name.to_string())
            .or_default()
            .push(url.to_string());
    }
    let mut members = BTreeMap::new();
    for (name, peer_urls) in by_name {
        let id = member_id(&peer_urls, token);
        let member = MemberNode {
            name,
            peer_urls,
            client_urls: Vec::new(),
        };
        if members.insert(id, member).is_some() {
            return Err(InitialClusterError::DuplicateUrls(spec.to_string()));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_derives_the_same_ids() {
        let spec = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
        let one = parse_initial_cluster(spec, "t").expect("parses");
        let reordered = parse_initial_cluster(
            "c=http://127.0.0.1:3,a=http://127.0.0.1:1,b=http://127.0.0.1:2",
            "t",
        )
        .expect("parses");
        assert_eq!(one, reordered);
        assert_eq!(one.len(), 3);
        let other_token = parse_initial_cluster(spec, "u").expect("parses");
        assert!(one.keys().all(|id| !other_token.contains_key(id)));
        let names: Vec<&str> = one.values().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"a") && names.contains(&"c"));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(matches!(
            parse_initial_cluster("a=http://x:1,b", "t"),
            Err(InitialClusterError::Entry(_))
        ));
        assert!(matches!(
            parse_initial_cluster("=http://x:1", "t"),
            Err(InitialClusterError::Entry(_))
        ));
        let two = parse_initial_cluster("a=http://x:1,a=http://x:2", "t").expect("parses");
        assert_eq!(two.len(), 1);
        assert_eq!(two.values().next().map(|m| m.peer_urls.len()), Some(2));
    }
}
