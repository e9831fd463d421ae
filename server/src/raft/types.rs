//! The types openraft is instantiated with: a log entry's payload is a
//! [`Batch`] of client commands (group commit: one entry, one append and one
//! apply transaction serve many requests), its result the per-command
//! [`BatchResults`], and a member is a [`MemberNode`] with etcd's URLs.

use std::fmt;

use prost::Message;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::codec;
use crate::apply::{Applied, Command};
use crate::error::Refusal;

openraft::declare_raft_types!(
    /// rollcall's instantiation of openraft.
    pub(crate) TypeConfig:
        D = Batch,
        R = BatchResults,
        NodeId = u64,
        Node = MemberNode,
        SnapshotData = tokio::fs::File,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type LogId = openraft::LogId<u64>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type StoredMembership = openraft::StoredMembership<u64, MemberNode>;
pub(crate) type StorageError = openraft::StorageError<u64>;

/// A member as the cluster API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberNode {
    /// `--name`; empty for a member added but not started yet (as etcd).
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// The payload of one log entry: client commands applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Batch(pub Vec<Command>);

/// The answer to each command of a [`Batch`], in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BatchResults(pub Vec<Result<Applied, Refusal>>);

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} commands", self.0.len())
    }
}

// Both serialize as their protobuf encoding, a byte string in whatever serde
// format carries them: log entries on disk and append-entries messages.
impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&codec::to_pb_bytes(&codec::batch_to_pb(&self.0)))
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = d.deserialize_byte_buf(BytesVisitor)?;
        let pb = rollcall_proto::rollcallraftpb::Batch::decode(bytes.as_slice())
            .map_err(de::Error::custom)?;
        codec::batch_from_pb(pb)
            .map(Batch)
            .map_err(de::Error::custom)
    }
}

impl Serialize for BatchResults {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&codec::to_pb_bytes(&codec::results_to_pb(&self.0)))
    }
}

impl<'de> Deserialize<'de> for BatchResults {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = d.deserialize_byte_buf(BytesVisitor)?;
        let pb = rollcall_proto::rollcallraftpb::BatchResults::decode(bytes.as_slice())
            .map_err(de::Error::custom)?;
        codec::results_from_pb(pb)
            .map(BatchResults)
            .map_err(de::Error::custom)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(v)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}
