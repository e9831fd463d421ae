//! Request checks that need no state, made before anything is proposed, in
//! etcd's order and with etcd's errors (its `v3rpc/key.go`).

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};

use crate::error::{Error, Refusal};

pub(crate) fn check_range(r: &RangeRequest) -> Result<(), Error> {
    if r.key.is_empty() {
        return Err(Error::Refused(Refusal::EmptyKey));
    }
    Ok(())
}

pub(crate) fn check_put(r: &PutRequest) -> Result<(), Error> {
    if r.key.is_empty() {
        return Err(Error::Refused(Refusal::EmptyKey));
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::Refused(Refusal::ValueProvided));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::Refused(Refusal::LeaseProvided));
    }
    Ok(())
}

pub(crate) fn check_delete(r: &DeleteRangeRequest) -> Result<(), Error> {
    if r.key.is_empty() {
        return Err(Error::Refused(Refusal::EmptyKey));
    }
    Ok(())
}

/// Op counts (each of compare, success and failure at most `max_ops`, nested
/// txns within what their parent leaves), keys, then overlapping writes.
pub(crate) fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), Error> {
    check_txn_ops(r, max_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_ops: usize) -> Result<(), Error> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(Error::Refused(Refusal::TooManyOps));
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::Refused(Refusal::EmptyKey));
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(x)) => check_range(x)?,
            Some(request_op::Request::RequestPut(x)) => check_put(x)?,
            Some(request_op::Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(request_op::Request::RequestTxn(x)) => check_txn_ops(x, max_ops - ops)?,
            // etcd answers an empty operation with "key not found".
            None => return Err(Error::Refused(Refusal::KeyNotFound)),
        }
    }
    Ok(())
}

/// A deleted interval `[start, end)`; a single key is `[key, key\0)`.
struct Deleted {
    start: Bytes,
    end: Option<Bytes>,
}

impl Deleted {
    /// Byte-wise, as etcd's string intervals: `range_end == "\0"` contains no
    /// non-empty key, so a from-key delete never conflicts.
    fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => self.start.as_ref() == key,
            Some(end) => self.start.as_ref() <= key && key < end.as_ref(),
        }
    }
}

/// A txn may not write one key twice: no two puts of a key, no put inside a
/// deleted range, in one branch or in the branches of nested txns (the two
/// branches of one nested txn exclude each other and may share puts).
fn check_intervals(
    ops: &[RequestOp],
) -> Result<(std::collections::HashSet<Bytes>, Vec<Deleted>), Error> {
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Deleted {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts = std::collections::HashSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&nested.success)?;
        let (puts_else, dels_else) = check_intervals(&nested.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.iter().any(|d| d.contains(k)) {
                return Err(Error::Refused(Refusal::DuplicateKey));
            }
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || dels.iter().any(|d| d.contains(k)) {
                return Err(Error::Refused(Refusal::DuplicateKey));
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || dels.iter().any(|d| d.contains(&p.key)) {
            return Err(Error::Refused(Refusal::DuplicateKey));
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
