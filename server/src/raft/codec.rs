//! The encodings of replication: client commands and their results as the
//! peer protocol's protobuf messages (`proto/protos/raft.proto`), and
//! openraft's own messages and log entries as postcard bytes.
//!
//! Commands stay the etcd request messages they were built from, so a log
//! entry is readable by anything that knows etcd's protos, and a refusal
//! crosses the wire as its stable code (`Refusal::code`).

use prost::Message;
use rollcall_proto::rollcallraftpb::{
    self as pb, BatchResults as PbResults, CommandResult, command, command_result,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::{Applied, Command};
use crate::error::Refusal;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("cannot decode a peer message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("cannot decode a peer message: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("a peer message has an empty {0}")]
    Missing(&'static str),
    #[error("a peer message names unknown refusal code {0}")]
    UnknownRefusal(u32),
}

/// One command as its protobuf message.
pub(crate) fn command_to_pb(command: &Command) -> pb::Command {
    let kind = match command.clone() {
        Command::Put(r) => command::Kind::Put(r),
        Command::DeleteRange(r) => command::Kind::DeleteRange(r),
        Command::Txn(r) => command::Kind::Txn(r),
        Command::Compact(r) => command::Kind::Compact(r),
        Command::LeaseGrant(r) => command::Kind::LeaseGrant(r),
        Command::LeaseRevoke(r) => command::Kind::LeaseRevoke(r),
        Command::Alarm(r) => command::Kind::Alarm(r),
        Command::LeaseCheckpoint(r) => command::Kind::LeaseCheckpoint(r),
    };
    pb::Command { kind: Some(kind) }
}

pub(crate) fn command_from_pb(command: pb::Command) -> Result<Command, CodecError> {
    Ok(match command.kind.ok_or(CodecError::Missing("command"))? {
        command::Kind::Put(r) => Command::Put(r),
        command::Kind::DeleteRange(r) => Command::DeleteRange(r),
        command::Kind::Txn(r) => Command::Txn(r),
        command::Kind::Compact(r) => Command::Compact(r),
        command::Kind::LeaseGrant(r) => Command::LeaseGrant(r),
        command::Kind::LeaseRevoke(r) => Command::LeaseRevoke(r),
        command::Kind::Alarm(r) => Command::Alarm(r),
        command::Kind::LeaseCheckpoint(r) => Command::LeaseCheckpoint(r),
    })
}

pub(crate) fn batch_to_pb(commands: &[Command]) -> pb::Batch {
    pb::Batch {
        commands: commands.iter().map(command_to_pb).collect(),
    }
}

pub(crate) fn batch_from_pb(batch: pb::Batch) -> Result<Vec<Command>, CodecError> {
    batch.commands.into_iter().map(command_from_pb).collect()
}

pub(crate) fn results_to_pb(results: &[Result<Applied, Refusal>]) -> PbResults {
    let results = results
        .iter()
        .map(|result| {
            let (kind, detail) = match result.clone() {
                Ok(Applied::Put(r)) => (command_result::Kind::Put(r), 0),
                Ok(Applied::DeleteRange(r)) => (command_result::Kind::DeleteRange(r), 0),
                Ok(Applied::Txn(r)) => (command_result::Kind::Txn(r), 0),
                Ok(Applied::Compact(r, at)) => (command_result::Kind::Compact(r), at),
                Ok(Applied::LeaseGrant(r)) => (command_result::Kind::LeaseGrant(r), 0),
                Ok(Applied::LeaseRevoke(r, id)) => (command_result::Kind::LeaseRevoke(r), id),
                Ok(Applied::Alarm(r)) => (command_result::Kind::Alarm(r), 0),
                Ok(Applied::LeaseCheckpoint(r)) => (command_result::Kind::LeaseCheckpoint(r), 0),
                Err(refusal) => (command_result::Kind::Refusal(refusal.code()), 0),
            };
            CommandResult {
                kind: Some(kind),
                detail,
            }
        })
        .collect();
    PbResults { results }
}

pub(crate) fn results_from_pb(
    results: PbResults,
) -> Result<Vec<Result<Applied, Refusal>>, CodecError> {
    results
        .results
        .into_iter()
        .map(|r| {
            let detail = r.detail;
            Ok(match r.kind.ok_or(CodecError::Missing("result"))? {
                command_result::Kind::Put(r) => Ok(Applied::Put(r)),
                command_result::Kind::DeleteRange(r) => Ok(Applied::DeleteRange(r)),
                command_result::Kind::Txn(r) => Ok(Applied::Txn(r)),
                command_result::Kind::Compact(r) => Ok(Applied::Compact(r, detail)),
                command_result::Kind::LeaseGrant(r) => Ok(Applied::LeaseGrant(r)),
                command_result::Kind::LeaseRevoke(r) => Ok(Applied::LeaseRevoke(r, detail)),
                command_result::Kind::Alarm(r) => Ok(Applied::Alarm(r)),
                command_result::Kind::LeaseCheckpoint(r) => Ok(Applied::LeaseCheckpoint(r)),
                command_result::Kind::Refusal(code) => {
                    Err(Refusal::from_code(code).ok_or(CodecError::UnknownRefusal(code))?)
                }
            })
        })
        .collect()
}

/// A protobuf message as bytes.
pub(crate) fn to_pb_bytes(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

/// One of openraft's messages or a log entry as bytes.
pub(crate) fn to_bytes(value: &impl Serialize) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}
