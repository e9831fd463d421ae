//! Txn evaluation as etcd does it: every compare (nested txns' too) is
//! evaluated against the state before the txn, every operation of the chosen
//! branches is checked, and only then are the operations run, in order, by
//! one executor shared by the write path and read-only txns.

use rollcall_proto::etcdserverpb::{
    Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare, request_op,
    response_op,
};

use crate::error::{Error, Refusal};
use crate::mvcc::view::History;
use crate::mvcc::{KeyRange, View};

/// Decides which branch each txn takes and runs etcd's checks on the chosen
/// operations: `check_op` first over every operation (etcd's put checks), then
/// the revision check of ranges. Nothing is changed.
pub(crate) fn plan<H: History>(
    view: &View<'_, H>,
    req: &TxnRequest,
    check_op: &OpCheck<'_, H>,
) -> Result<Vec<bool>, Error> {
    let path = compare_path(view, req)?;
    check_branches(view, req, &mut path.iter().copied(), check_op)?;
    check_branches(view, req, &mut path.iter().copied(), &check_range_revision)?;
    Ok(path)
}

/// Runs the chosen branches along `path`; `run` performs each non-txn
/// operation. Nested txn responses carry an empty header, as in etcd.
pub(crate) fn execute(
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
    run: &mut impl FnMut(&request_op::Request) -> Result<response_op::Response, Error>,
) -> Result<TxnResponse, Error> {
    let succeeded = path.next().unwrap_or(true);
    let mut responses = Vec::new();
    for op in branch(req, succeeded) {
        let response = match &op.request {
            Some(request_op::Request::RequestTxn(nested)) => {
                let mut nested_response = execute(nested, path, run)?;
                nested_response.header = Some(ResponseHeader::default());
                Some(response_op::Response::ResponseTxn(nested_response))
            }
            Some(other) => Some(run(other)?),
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

/// Which branch each txn takes, depth first: the outer txn, then the nested
/// txns of its chosen branch in order.
fn compare_path<H: History>(view: &View<'_, H>, req: &TxnRequest) -> Result<Vec<bool>, Error> {
    let mut succeeded = true;
    for c in &req.compare {
        if !compare_holds(view, c)? {
            succeeded = false;
            break;
        }
    }
    let mut path = vec![succeeded];
    for op in branch(req, succeeded) {
        if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
            path.extend(compare_path(view, nested)?);
        }
    }
    Ok(path)
}

/// A txn's range at an explicit revision must be readable before anything
/// applies. etcd compares the raw revision with the compact revision (-1
/// before any compaction), so inside a txn a revision of -2 or below is
/// always "compacted" and -1 is once a compaction happened (outside a txn a
/// negative revision reads the newest one). Checked against etcd 3.4.23.
fn check_range_revision<H: History>(
    view: &View<'_, H>,
    op: &request_op::Request,
) -> Result<(), Error> {
    match op {
        request_op::Request::RequestRange(r) if r.revision != 0 => {
            if r.revision > view.rev {
                Err(Error::Refused(Refusal::FutureRevision))
            } else if r.revision < view.compact_rev {
                Err(Error::Refused(Refusal::Compacted))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

pub(crate) type OpCheck<'c, H> =
    dyn Fn(&View<'_, H>, &request_op::Request) -> Result<(), Error> + 'c;

fn check_branches<H: History>(
    view: &View<'_, H>,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
    check: &OpCheck<'_, H>,
) -> Result<(), Error> {
    let succeeded = path.next().unwrap_or(true);
    for op in branch(req, succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(nested)) => {
                check_branches(view, nested, path, check)?
            }
            Some(other) => check(view, other)?,
            None => {}
        }
    }
    Ok(())
}

/// True when no operation of the txn, in any branch at any depth, writes.
pub(crate) fn is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(nested)) => is_read_only(nested),
            Some(_) => false,
        })
}

/// etcd's compare: every key of the range must satisfy it; a range with no
/// key compares against an empty key-value, except that a value compare fails.
fn compare_holds<H: History>(view: &View<'_, H>, c: &Compare) -> Result<bool, Error> {
    let range = KeyRange::new(&c.key, &c.range_end);
    let kvs = match view.range_keys(&range, 0, 0, false) {
        Ok(result) => result.kvs,
        Err(Error::Refused(Refusal::Compacted) | Error::Refused(Refusal::FutureRevision)) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let target = compare::CompareTarget::try_from(c.target).ok();
    if kvs.is_empty() {
        if target == Some(compare::CompareTarget::Value) {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &Default::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(
    c: &Compare,
    target: Option<compare::CompareTarget>,
    kv: &rollcall_proto::mvccpb::KeyValue,
) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ordering = match target {
        Some(CompareTarget::Value) => {
            let wanted = match &c.target_union {
                Some(TargetUnion::Value(v)) => v.as_ref(),
                _ => &[],
            };
            kv.value.as_ref().cmp(wanted)
        }
        Some(CompareTarget::Create) => kv.create_revision.cmp(&match c.target_union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Mod) => kv.mod_revision.cmp(&match c.target_union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Version) => kv.version.cmp(&match c.target_union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Lease) => kv.lease.cmp(&match c.target_union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        None => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        Err(_) => true,
    }
}
