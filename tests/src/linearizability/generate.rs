//! Random histories for the checker's property tests: a sequential execution
//! of random operations, each given a random window around its linearization
//! point (so the history is linearizable by construction), and mutations
//! that provably break linearizability.

use std::collections::HashMap;

use super::history::{ClientId, Nanos, Observed, OpKind, Operation, Outcome};
use crate::rng::SplitMix64;

/// The size of a generated history.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub clients: u64,
    pub keys: u64,
    pub ops_per_client: u64,
    pub indeterminate_percent: u64,
}

struct Slot {
    client: ClientId,
    seq: u64,
    invoke: Nanos,
    point: Nanos,
    complete: Nanos,
    indeterminate: bool,
    /// Whether an indeterminate operation took effect at all.
    effective: bool,
}

/// A linearizable history; every written value is unique.
pub(super) fn linearizable(seed: u64, shape: Shape) -> Vec<Operation> {
    let mut rng = SplitMix64::new(seed);
    let mut slots = Vec::new();
    for client in 0..shape.clients {
        let mut t = rng.below(50);
        for seq in 0..shape.ops_per_client {
            let invoke = t + rng.range_inclusive(1, 20);
            let indeterminate = rng.chance(shape.indeterminate_percent);
            // An indeterminate operation may take effect long after the
            // client gave up on it, while the client goes on.
            let point = invoke + rng.below(if indeterminate { 400 } else { 30 });
            let complete = if indeterminate {
                invoke + rng.below(30)
            } else {
                point + rng.below(30)
            };
            slots.push(Slot {
                client,
                seq,
                invoke,
                point,
                complete,
                indeterminate,
                effective: rng.chance(50),
            });
            t = complete;
        }
    }
    slots.sort_by_key(|s| (s.point, s.client, s.seq));
    let mut state: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    let mut written: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    let mut ops = Vec::with_capacity(slots.len());
    for slot in &slots {
        let key = rng.below(shape.keys);
        let current = state.entry(key).or_default();
        let value = format!("c{}-{}", slot.client, slot.seq).into_bytes();
        let (kind, after, observed) = match rng.below(100) {
            0..35 => (OpKind::Get, current.clone(), Observed::Get(current.clone())),
            35..65 => (
                OpKind::Put {
                    value: value.clone(),
                },
                Some(value),
                Observed::Put,
            ),
            65..90 => {
                let expected = match rng.below(10) {
                    0..5 => current.clone(),
                    5..7 => None,
                    _ => written
                        .get(&key)
                        .filter(|w| !w.is_empty())
                        .map(|w| rng.pick(w).clone()),
                };
                let succeeded = expected == *current;
                let after = if succeeded {
                    Some(value.clone())
                } else {
                    current.clone()
                };
                (
                    OpKind::CompareAndSet {
                        expected,
                        new: value,
                    },
                    after,
                    Observed::CompareAndSet { succeeded },
                )
            }
            _ => (
                OpKind::Delete,
                None,
                Observed::Delete {
                    deleted: current.is_some(),
                },
            ),
        };
        if let OpKind::Put { value } | OpKind::CompareAndSet { new: value, .. } = &kind {
            written.entry(key).or_default().push(value.clone());
        }
        if !slot.indeterminate || slot.effective {
            *current = after;
        }
        ops.push(Operation {
            client: slot.client,
            key: format!("key{key}").into_bytes(),
            kind,
            invoke: slot.invoke,
            complete: slot.complete,
            outcome: if slot.indeterminate {
                Outcome::Indeterminate
            } else {
                Outcome::Ok(observed)
            },
        });
    }
    ops.sort_by_key(|op| op.invoke);
    ops
}

fn definite_reads(ops: &[Operation]) -> Vec<usize> {
    (0..ops.len())
        .filter(|&i| ops[i].kind == OpKind::Get && !ops[i].is_indeterminate())
        .collect()
}

/// Makes one read observe a value nobody wrote; `None` without a read.
pub(super) fn read_unwritten(ops: &mut [Operation], rng: &mut SplitMix64) -> Option<usize> {
    let reads = definite_reads(ops);
    if reads.is_empty() {
        return None;
    }
    let i = *rng.pick(&reads);
    ops[i].outcome = Outcome::Ok(Observed::Get(Some(b"never written".to_vec())));
    Some(i)
}

/// Makes one read observe the value of a write on its key invoked only after
/// the read completed: the only writer of that value comes too late.
/// `None` when the history has no such pair.
pub(super) fn read_from_future(ops: &mut [Operation], rng: &mut SplitMix64) -> Option<usize> {
    let mut pairs = Vec::new();
    for r in definite_reads(ops) {
        for op in ops.iter() {
            if op.key != ops[r].key || op.invoke <= ops[r].complete {
                continue;
            }
            if let OpKind::Put { value } | OpKind::CompareAndSet { new: value, .. } = &op.kind {
                pairs.push((r, value.clone()));
            }
        }
    }
    if pairs.is_empty() {
        return None;
    }
    let (r, value) = rng.pick(&pairs).clone();
    ops[r].outcome = Outcome::Ok(Observed::Get(Some(value)));
    Some(r)
}

/// A tiny history on one key with random windows, operations and observed
/// values from a small alphabet (so values repeat): usually not
/// linearizable, for comparison with a brute-force oracle.
pub(super) fn random_small(rng: &mut SplitMix64) -> Vec<Operation> {
    let values: [&[u8]; 3] = [b"a", b"b", b"c"];
    let pick = |rng: &mut SplitMix64| -> Option<Vec<u8>> {
        if rng.chance(25) {
            None
        } else {
            Some(rng.pick(&values).to_vec())
        }
    };
    let count = rng.range_inclusive(1, 7);
    (0..count)
        .map(|client| {
            let invoke = rng.below(20);
            let complete = invoke + rng.below(12);
            let (kind, observed) = match rng.below(4) {
                0 => (OpKind::Get, Observed::Get(pick(rng))),
                1 => {
                    let value = rng.pick(&values).to_vec();
                    (OpKind::Put { value }, Observed::Put)
                }
                2 => {
                    let (expected, new) = (pick(rng), rng.pick(&values).to_vec());
                    let succeeded = rng.chance(50);
                    (
                        OpKind::CompareAndSet { expected, new },
                        Observed::CompareAndSet { succeeded },
                    )
                }
                _ => {
                    let deleted = rng.chance(50);
                    (OpKind::Delete, Observed::Delete { deleted })
                }
            };
            Operation {
                client,
                key: b"k".to_vec(),
                kind,
                invoke,
                complete,
                outcome: if rng.chance(30) {
                    Outcome::Indeterminate
                } else {
                    Outcome::Ok(observed)
                },
            }
        })
        .collect()
}
