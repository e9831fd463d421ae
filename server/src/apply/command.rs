//! One [`Command`] applied inside the batch's write transaction: etcd's
//! semantics of Put, DeleteRange, Txn, Compact, lease grant and revoke and
//! alarms. Deterministic: it reads no clock and no randomness.
//!
//! A command is checked completely against the state before it changes
//! anything, so a refused command leaves no partial effect behind (the batch
//! step checks that, see `batch.rs`).

use rollcall_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse,
    DeleteRangeRequest, DeleteRangeResponse, LeaseCheckpointRequest, LeaseCheckpointResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, RangeRequest, ResponseHeader, TxnRequest, TxnResponse, alarm_request, request_op,
    response_op,
};

use super::side_state::SideState;
use crate::error::{Error, Refusal};
use crate::lease::LeaseTable;
use crate::mvcc::view::History;
use crate::mvcc::{KeyRange, Record, View, WriteTxn};
use crate::quota;
use crate::txn;

/// A mutation of the replicated state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    /// Grant with the id and TTL already decided (the proposer side picks a
    /// free id and applies the TTL bounds, so applying reads no randomness).
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    Alarm(AlarmRequest),
    /// The leader's record of leases' remaining TTLs; changes no key and no
    /// revision.
    LeaseCheckpoint(LeaseCheckpointRequest),
}

/// The answer to a command; `header.revision` is set, the rest of the header
/// is the API layer's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    /// A compaction to perform on the index and history after the commit.
    Compact(CompactionResponse, i64),
    LeaseGrant(LeaseGrantResponse),
    /// The revoked lease's id, for the lessor to forget.
    LeaseRevoke(LeaseRevokeResponse, i64),
    Alarm(AlarmResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
}

/// Requests a NOSPACE alarm refuses: those that can add data.
fn adds_data(command: &Command) -> bool {
    match command {
        Command::Put(_) | Command::LeaseGrant(_) => true,
        Command::Txn(req) => quota::txn_cost(req) > 0,
        Command::DeleteRange(_)
        | Command::Compact(_)
        | Command::LeaseRevoke(_)
        | Command::LeaseCheckpoint(_)
        | Command::Alarm(_) => false,
    }
}

/// Get, raise or disarm an alarm (etcd's `Alarm` apply).
fn apply_alarm(
    txn: &WriteTxn<'_, '_>,
    side: &mut SideState<'_, '_>,
    req: &AlarmRequest,
) -> Result<AlarmResponse, Error> {
    let member = AlarmMember {
        member_id: req.member_id,
        alarm: req.alarm,
    };
    let alarms = match alarm_request::AlarmAction::try_from(req.action) {
        Ok(alarm_request::AlarmAction::Get) | Err(_) => side.alarms().get(req.alarm),
        Ok(alarm_request::AlarmAction::Activate) => {
            side.activate(req.member_id, req.alarm)?;
            vec![member]
        }
        Ok(alarm_request::AlarmAction::Deactivate) => {
            if side.deactivate(req.member_id, req.alarm)? {
                vec![member]
            } else {
                Vec::new()
            }
        }
    };
    Ok(AlarmResponse {
        header: Some(ResponseHeader {
            revision: txn.rev(),
            ..Default::default()
        }),
        alarms,
    })
}

/// Applies one command to `txn` and keeps lease attachments in step with the
/// keys it wrote. An `Err` may be a [`Refusal`] (the batch step tells the
/// two kinds apart) or a storage failure.
pub(super) fn apply(
    txn: &mut WriteTxn<'_, '_>,
    side: &mut SideState<'_, '_>,
    command: &Command,
) -> Result<Applied, Error> {
    let result = if side.alarms().no_space() && adds_data(command) {
        // etcd's capped applier: with NOSPACE raised, nothing may grow the store.
        Err(Error::Refused(Refusal::NoSpace))
    } else {
        apply_command(txn, side, command)
    };
    for change in &txn.changes {
        match change {
            Record::Put(kv) => side.attach(&kv.key, kv.lease),
            Record::Tombstone(kv) => side.detach(&kv.key),
        }
    }
    result
}

fn apply_command(
    txn: &mut WriteTxn<'_, '_>,
    side: &mut SideState<'_, '_>,
    command: &Command,
) -> Result<Applied, Error> {
    match command {
        Command::Put(req) => {
            // Outside a txn etcd looks the lease up before the previous key.
            if req.lease != 0 && !side.leases().contains(req.lease) {
                return Err(Error::Refused(Refusal::LeaseNotFound));
            }
            check_put(&txn.view(), side.leases(), req)?;
            put(txn, req).map(Applied::Put)
        }
        Command::LeaseGrant(req) => {
            if !side.grant(req.id, req.ttl)? {
                return Err(Error::Refused(Refusal::LeaseExists));
            }
            Ok(Applied::LeaseGrant(LeaseGrantResponse {
                header: Some(ResponseHeader {
                    revision: txn.rev(),
                    ..Default::default()
                }),
                id: req.id,
                ttl: req.ttl,
                error: String::new(),
            }))
        }
        Command::LeaseRevoke(req) => {
            let keys = side
                .revoke(req.id)?
                .ok_or(Error::Refused(Refusal::LeaseNotFound))?;
            // All of the lease's keys go in one revision, in key order.
            for key in keys {
                txn.delete_range(&KeyRange::Single(key))?;
            }
            Ok(Applied::LeaseRevoke(
                LeaseRevokeResponse {
                    header: Some(ResponseHeader {
                        revision: txn.rev(),
                        ..Default::default()
                    }),
                },
                req.id,
            ))
        }
        Command::LeaseCheckpoint(req) => {
            // As etcd: leases revoked since the checkpoint was taken are
            // skipped, not refused.
            for checkpoint in &req.checkpoints {
                side.checkpoint(checkpoint.id, checkpoint.remaining_ttl)?;
            }
            Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
                header: Some(ResponseHeader {
                    revision: txn.rev(),
                    ..Default::default()
                }),
            }))
        }
        Command::DeleteRange(req) => delete_range(txn, req).map(Applied::DeleteRange),
        Command::Txn(req) => apply_txn_request(txn, side.leases(), req).map(Applied::Txn),
        Command::Alarm(req) => apply_alarm(txn, side, req).map(Applied::Alarm),
        Command::Compact(req) => {
            if req.revision <= txn.compact_rev {
                return Err(Error::Refused(Refusal::Compacted));
            }
            if req.revision > txn.begin_rev {
                return Err(Error::Refused(Refusal::FutureRevision));
            }
            txn.compact_rev = req.revision;
            let header = Some(ResponseHeader {
                revision: txn.begin_rev,
                ..Default::default()
            });
            Ok(Applied::Compact(
                CompactionResponse { header },
                req.revision,
            ))
        }
    }
}

/// The checks etcd makes against the state before a put: the previous key
/// must exist for `ignore_value`/`ignore_lease`, the lease must exist.
fn check_put<H: History>(
    view: &View<'_, H>,
    leases: &LeaseTable,
    req: &PutRequest,
) -> Result<(), Error> {
    if (req.ignore_value || req.ignore_lease) && view.get(&req.key)?.is_none() {
        return Err(Error::Refused(Refusal::KeyNotFound));
    }
    if req.lease != 0 && !leases.contains(req.lease) {
        return Err(Error::Refused(Refusal::LeaseNotFound));
    }
    Ok(())
}

fn put(txn: &mut WriteTxn<'_, '_>, req: &PutRequest) -> Result<PutResponse, Error> {
    let previous = if req.ignore_value || req.ignore_lease || req.prev_kv {
        txn.view().get(&req.key)?
    } else {
        None
    };
    let value = match (&previous, req.ignore_value) {
        (Some(prev), true) => prev.value.clone(),
        _ => req.value.clone(),
    };
    let lease = match (&previous, req.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => req.lease,
    };
    let revision = txn.put(&req.key, value, lease)?;
    Ok(PutResponse {
        header: Some(ResponseHeader {
            revision,
            ..Default::default()
        }),
        prev_kv: previous.filter(|_| req.prev_kv),
    })
}

fn delete_range(
    txn: &mut WriteTxn<'_, '_>,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, Error> {
    let range = KeyRange::new(&req.key, &req.range_end);
    let prev_kvs = if req.prev_kv {
        txn.view().range_keys(&range, 0, 0, false)?.kvs
    } else {
        Vec::new()
    };
    let (deleted, revision) = txn.delete_range(&range)?;
    Ok(DeleteRangeResponse {
        header: Some(ResponseHeader {
            revision,
            ..Default::default()
        }),
        deleted,
        prev_kvs,
    })
}

fn range<H: History>(
    view: &View<'_, H>,
    req: &RangeRequest,
) -> Result<rollcall_proto::etcdserverpb::RangeResponse, Error> {
    view.range(req)
}

/// Evaluates a txn: decide and check everything against the state before
/// it, then apply the chosen operations.
fn apply_txn_request(
    txn: &mut WriteTxn<'_, '_>,
    leases: &LeaseTable,
    req: &TxnRequest,
) -> Result<TxnResponse, Error> {
    let path = txn::plan(&txn.view(), req, &|v, op| match op {
        request_op::Request::RequestPut(p) => check_put(v, leases, p),
        _ => Ok(()),
    })?;
    let mut response = txn::execute(req, &mut path.into_iter(), &mut |op| match op {
        request_op::Request::RequestRange(r) => {
            Ok(response_op::Response::ResponseRange(range(&txn.view(), r)?))
        }
        request_op::Request::RequestPut(p) => Ok(response_op::Response::ResponsePut(put(txn, p)?)),
        request_op::Request::RequestDeleteRange(d) => Ok(
            response_op::Response::ResponseDeleteRange(delete_range(txn, d)?),
        ),
        request_op::Request::RequestTxn(_) => {
            Err(Error::Internal("nested txn reached the op executor"))
        }
    })?;
    response.header = Some(ResponseHeader {
        revision: txn.rev(),
        ..Default::default()
    });
    Ok(response)
}

/// Evaluates a txn that only reads (see `txn::is_read_only`) against a
/// snapshot view, without the write path.
pub(crate) fn read_only_txn<H: History>(
    view: &View<'_, H>,
    req: &TxnRequest,
) -> Result<TxnResponse, Error> {
    let path = txn::plan(view, req, &|_, _| Ok(()))?;
    let mut response = txn::execute(req, &mut path.into_iter(), &mut |op| match op {
        request_op::Request::RequestRange(r) => {
            Ok(response_op::Response::ResponseRange(range(view, r)?))
        }
        _ => Err(Error::Internal("a read-only txn tried to write")),
    })?;
    response.header = Some(ResponseHeader {
        revision: view.rev,
        ..Default::default()
    });
    Ok(response)
}
