//! A property test of the MVCC store against a model that is nothing but a
//! map from revision to the whole key space at that revision. Random puts,
//! delete-ranges, txns (compares of every target and result, ranges with
//! limits, writes) and compactions go through the real write path
//! (`apply_batch`, committed to redb); after every batch each response must
//! match the model's, and a read at every revision still kept must return
//! the model's key space, with compacted and future revisions refused.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use rollcall_proto::etcdserverpb::{
    CompactionRequest, Compare, RangeRequest, RequestOp, TxnRequest, compare, request_op,
    response_op,
};

use super::commands;
use super::replica::Replica;
use crate::apply::{Applied, Command};
use crate::error::{Error, Refusal};
use crate::mvcc::KeyRange;

/// Sequences per run and commands per sequence.
const CASES: u32 = 48;
const COMMANDS: std::ops::Range<usize> = 1..160;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    value: Bytes,
    create: i64,
    modified: i64,
    version: i64,
}

type Space = BTreeMap<Bytes, Kv>;

/// What the store should hold: the key space at every revision.
struct Model {
    at: BTreeMap<i64, Space>,
    rev: i64,
    compact: i64,
}

/// The part of a response the model predicts.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Put {
        rev: i64,
        prev: Option<Kv>,
    },
    Delete {
        rev: i64,
        deleted: i64,
        prev: Vec<Kv>,
    },
    Txn {
        rev: i64,
        succeeded: bool,
        ops: Vec<OpExpect>,
    },
    Compact,
    Refused(Refusal),
}

#[derive(Debug, PartialEq, Eq)]
enum OpExpect {
    Range {
        kvs: Vec<(Bytes, Kv)>,
        count: i64,
        more: bool,
    },
    Put {
        prev: Option<Kv>,
    },
    Delete {
        deleted: i64,
    },
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        b"" => key == start,
        b"\0" => key >= start,
        end => key >= start && key < end,
    }
}

fn matching<'a>(
    space: &'a Space,
    start: &'a [u8],
    end: &'a [u8],
) -> impl Iterator<Item = (&'a Bytes, &'a Kv)> {
    space.iter().filter(move |(k, _)| in_range(k, start, end))
}

/// etcd's `applyCompare` on one key: a missing key compares as all zeros,
/// except that a value compare on it always fails.
fn holds(c: &Compare, kv: Option<&Kv>) -> bool {
    let zero = Kv {
        value: Bytes::new(),
        create: 0,
        modified: 0,
        version: 0,
    };
    let kv = match (kv, c.target_union.as_ref()) {
        (None, Some(compare::TargetUnion::Value(_))) => return false,
        (None, _) => &zero,
        (Some(kv), _) => kv,
    };
    let ord = match c.target_union.as_ref() {
        Some(compare::TargetUnion::Version(n)) => kv.version.cmp(n),
        Some(compare::TargetUnion::CreateRevision(n)) => kv.create.cmp(n),
        Some(compare::TargetUnion::ModRevision(n)) => kv.modified.cmp(n),
        Some(compare::TargetUnion::Value(v)) => kv.value.cmp(v),
        _ => unreachable!("the generator makes no other target"),
    };
    match compare::CompareResult::try_from(c.result) {
        Ok(compare::CompareResult::Equal) => ord.is_eq(),
        Ok(compare::CompareResult::Greater) => ord.is_gt(),
        Ok(compare::CompareResult::Less) => ord.is_lt(),
        _ => ord.is_ne(),
    }
}

impl Model {
    fn new() -> Self {
        Self {
            at: BTreeMap::from([(1, Space::new())]),
            rev: 1,
            compact: -1,
        }
    }

    fn now(&self) -> Space {
        self.at[&self.rev].clone()
    }

    fn commit(&mut self, space: Space) -> i64 {
        self.rev += 1;
        self.at.insert(self.rev, space);
        self.rev
    }

    fn put(space: &mut Space, key: &Bytes, value: &Bytes, rev: i64) -> Option<Kv> {
        let prev = space.get(key).cloned();
        let kv = Kv {
            value: value.clone(),
            create: prev.as_ref().map_or(rev, |p| p.create),
            modified: rev,
            version: prev.as_ref().map_or(0, |p| p.version) + 1,
        };
        space.insert(key.clone(), kv);
        prev
    }

    fn delete(space: &mut Space, start: &[u8], end: &[u8]) -> Vec<Kv> {
        let keys: Vec<Bytes> = matching(space, start, end)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| space.remove(k)).collect()
    }

    fn apply(&mut self, command: &Command) -> Expect {
        match command {
            Command::Put(p) => {
                let mut space = self.now();
                let prev = Self::put(&mut space, &p.key, &p.value, self.rev + 1);
                Expect::Put {
                    rev: self.commit(space),
                    prev: prev.filter(|_| p.prev_kv),
                }
            }
            Command::DeleteRange(d) => {
                let mut space = self.now();
                let prev = Self::delete(&mut space, &d.key, &d.range_end);
                let deleted = prev.len() as i64;
                let rev = if deleted > 0 {
                    self.commit(space)
                } else {
                    self.rev
                };
                Expect::Delete {
                    rev,
                    deleted,
                    prev: if d.prev_kv { prev } else { Vec::new() },
                }
            }
            Command::Txn(t) => self.txn(t),
            Command::Compact(c) if c.revision <= self.compact => {
                Expect::Refused(Refusal::Compacted)
            }
            Command::Compact(c) if c.revision > self.rev => {
                Expect::Refused(Refusal::FutureRevision)
            }
            Command::Compact(c) => {
                self.compact = c.revision;
                self.at.retain(|&rev, _| rev >= c.revision);
                Expect::Compact
            }
            other => unreachable!("the model has no {other:?}"),
        }
    }

    fn txn(&mut self, t: &TxnRequest) -> Expect {
        let before = self.now();
        let succeeded = t.compare.iter().all(|c| holds(c, before.get(&c.key)));
        let mut space = before;
        let mut changed = false;
        let mut ops = Vec::new();
        for op in if succeeded { &t.success } else { &t.failure } {
            ops.push(match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    let all: Vec<(Bytes, Kv)> = matching(&space, &r.key, &r.range_end)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let count = all.len() as i64;
                    let limit = if r.limit > 0 {
                        r.limit as usize
                    } else {
                        all.len()
                    };
                    OpExpect::Range {
                        more: all.len() > limit,
                        kvs: all.into_iter().take(limit).collect(),
                        count,
                    }
                }
                Some(request_op::Request::RequestPut(p)) => {
                    changed = true;
                    OpExpect::Put {
                        prev: Self::put(&mut space, &p.key, &p.value, self.rev + 1)
                            .filter(|_| p.prev_kv),
                    }
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    let deleted = Self::delete(&mut space, &d.key, &d.range_end).len() as i64;
                    changed |= deleted > 0;
                    OpExpect::Delete { deleted }
                }
                _ => unreachable!("the model's txns are flat"),
            });
        }
        let rev = if changed {
            self.commit(space)
        } else {
            self.rev
        };
        Expect::Txn {
            rev,
            succeeded,
            ops,
        }
    }
}

fn kv_of(kv: &rollcall_proto::mvccpb::KeyValue) -> Kv {
    Kv {
        value: kv.value.clone(),
        create: kv.create_revision,
        modified: kv.mod_revision,
        version: kv.version,
    }
}

/// The store's answer in the model's terms.
fn observed(result: &Result<Applied, Refusal>) -> Expect {
    let rev = |h: &Option<rollcall_proto::etcdserverpb::ResponseHeader>| {
        h.as_ref().map_or(0, |h| h.revision)
    };
    match result {
        Err(refusal) => Expect::Refused(*refusal),
        Ok(Applied::Put(p)) => Expect::Put {
            rev: rev(&p.header),
            prev: p.prev_kv.as_ref().map(kv_of),
        },
        Ok(Applied::DeleteRange(d)) => Expect::Delete {
            rev: rev(&d.header),
            deleted: d.deleted,
            prev: d.prev_kvs.iter().map(kv_of).collect(),
        },
        Ok(Applied::Txn(t)) => Expect::Txn {
            rev: rev(&t.header),
            succeeded: t.succeeded,
            ops: t
                .responses
                .iter()
                .map(|r| match &r.response {
                    Some(response_op::Response::ResponseRange(r)) => OpExpect::Range {
                        kvs: r.kvs.iter().map(|kv| (kv.key.clone(), kv_of(kv))).collect(),
                        count: r.count,
                        more: r.more,
                    },
                    Some(response_op::Response::ResponsePut(p)) => OpExpect::Put {
                        prev: p.prev_kv.as_ref().map(kv_of),
                    },
                    Some(response_op::Response::ResponseDeleteRange(d)) => {
                        OpExpect::Delete { deleted: d.deleted }
                    }
                    other => unreachable!("flat txn answered {other:?}"),
                })
                .collect(),
        },
        Ok(Applied::Compact(..)) => Expect::Compact,
        Ok(other) => unreachable!("the model sends no command answered by {other:?}"),
    }
}

fn flat_txn() -> impl Strategy<Value = TxnRequest> {
    let op = prop_oneof![
        (commands::key(), commands::range_end(), 0..3i64).prop_map(|(key, end, limit)| {
            request_op::Request::RequestRange(RangeRequest {
                key,
                range_end: end.unwrap_or_default(),
                limit,
                ..Default::default()
            })
        }),
        commands::put(false).prop_map(request_op::Request::RequestPut),
        commands::delete_range().prop_map(request_op::Request::RequestDeleteRange),
    ]
    .prop_map(|request| RequestOp {
        request: Some(request),
    });
    (
        prop::collection::vec(commands::compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn model_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => commands::put(false).prop_map(Command::Put),
        3 => commands::delete_range().prop_map(Command::DeleteRange),
        4 => flat_txn().prop_map(Command::Txn),
        1 => (0..60i64).prop_map(|revision| Command::Compact(CompactionRequest { revision, physical: false })),
    ]
}

/// Every revision the model keeps reads back as the model says; one below
/// the compact revision and one above the newest are refused.
fn check_reads(replica: &Replica, model: &Model) -> Result<(), TestCaseError> {
    let everything = KeyRange::new(&Bytes::from_static(b"\0"), &Bytes::from_static(b"\0"));
    for (&at, space) in &model.at {
        let kvs = replica
            .read(|v| v.range_keys(&everything, at, 0, false))
            .unwrap()
            .kvs;
        let got: Vec<(Bytes, Kv)> = kvs.iter().map(|kv| (kv.key.clone(), kv_of(kv))).collect();
        let want: Vec<(Bytes, Kv)> = space.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(got, want, "key space at revision {}", at);
    }
    let refused = |at| match replica.read(|v| v.range_keys(&everything, at, 0, false)) {
        Err(Error::Refused(r)) => Some(r),
        _ => None,
    };
    if model.compact > 1 {
        prop_assert_eq!(refused(model.compact - 1), Some(Refusal::Compacted));
    }
    prop_assert_eq!(refused(model.rev + 1), Some(Refusal::FutureRevision));
    prop_assert_eq!(replica.state.rev, model.rev);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_map_of_revisions(
        commands in prop::collection::vec(model_command(), COMMANDS),
        cut in 1..12usize,
    ) {
        let mut replica = Replica::new();
        let mut model = Model::new();
        for batch in commands.chunks(cut) {
            let outcome = replica.apply(batch);
            for (command, result) in batch.iter().zip(&outcome.results) {
                let want = model.apply(command);
                prop_assert_eq!(observed(result), want, "answer to {:?}", command);
            }
            check_reads(&replica, &model)?;
        }
    }
}
