//! Lowe's just-in-time linearization (the algorithm of porcupine and
//! Knossos' "linear" checker) over one key: walk the history's call and
//! return entries in time order, linearize a pending call whenever the model
//! allows it, and backtrack when a return is reached whose operation could
//! not be linearized. A cache of (linearized set, register state) pairs
//! already explored keeps the search from revisiting equivalent branches.
//!
//! Operations that never complete (indeterminate, return at +infinity) get
//! two more rules, because otherwise k of them make the search try all 2^k
//! subsets at every point before it can refute a violation:
//! - they are only placed where they change the register: placed anywhere
//!   else, the same op could as well go at the very end (an indeterminate
//!   step is always allowed), so the search stops as soon as every op that
//!   did complete is placed;
//! - ops that make the same step are interchangeable, so only the
//!   earliest-invoked pending one of them is ever tried.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::model::State;
use super::prepare::KeyOp;

/// Limits of one key's search.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_steps: u64,
    pub deadline: Instant,
}

/// How one key's search ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Linearizable { steps: u64 },
    NotLinearizable { dead_end: DeadEnd },
    Exhausted { steps: u64, why: &'static str },
}

/// The deepest point the search reached before it ran out of options: what
/// a person needs to see to understand the violation.
#[derive(Debug, Clone, Default)]
pub(super) struct DeadEnd {
    /// Local op indices, in linearization order.
    pub prefix: Vec<usize>,
    /// The op whose completion was reached before it could be linearized.
    pub blocked: usize,
    /// Every op that could have been linearized next (including `blocked`).
    pub candidates: Vec<usize>,
}

/// Checks the time budget only every this many steps: `Instant::now()` costs
/// more than a step.
const CLOCK_EVERY: u64 = 1024;

/// A doubly linked list of call and return entries, in time order, with
/// sentinels at both ends; lifting an operation out and back in is O(1)
/// (dancing links), which is what makes backtracking cheap.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node: the op and whether it is the call entry.
    node: Vec<(usize, bool)>,
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
}

const HEAD: usize = 0;

impl Entries {
    fn new(ops: &[KeyOp]) -> Self {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, false, i));
            order.push((op.ret, true, i));
        }
        // At equal times calls sort before returns: touching windows count
        // as concurrent, because clocks this coarse cannot order them.
        order.sort_unstable();
        let tail = order.len() + 1;
        let mut node = vec![(usize::MAX, false); tail + 1];
        let mut call_node = vec![0; ops.len()];
        let mut ret_node = vec![0; ops.len()];
        for (k, &(_, is_ret, op)) in order.iter().enumerate() {
            let n = k + 1;
            node[n] = (op, !is_ret);
            if is_ret {
                ret_node[op] = n;
            } else {
                call_node[op] = n;
            }
        }
        Self {
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|n| n.saturating_sub(1)).collect(),
            node,
            call_node,
            ret_node,
        }
    }

    fn tail(&self) -> usize {
        self.node.len() - 1
    }

    fn is_empty(&self) -> bool {
        self.next[HEAD] == self.tail()
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        self.prev[x] = p;
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        self.prev[x] = n;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.ret_node[op]);
    }

    /// Undoes [`Self::lift`]; only valid in reverse order of the lifts.
    fn unlift(&mut self, op: usize) {
        self.relink(self.ret_node[op]);
        self.relink(self.call_node[op]);
    }

    /// The calls ahead of the first return entry: what may go next.
    fn candidates(&self) -> (usize, Vec<usize>) {
        let mut candidates = Vec::new();
        let mut n = self.next[HEAD];
        while n != self.tail() {
            let (op, is_call) = self.node[n];
            if !is_call {
                return (op, candidates);
            }
            candidates.push(op);
            n = self.next[n];
        }
        (usize::MAX, candidates)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1u64 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, on: bool) {
        let mask = 1u64 << (i % 64);
        if on {
            self.0[i / 64] |= mask;
        } else {
            self.0[i / 64] &= !mask;
        }
    }
}

/// For each op that never completes: the previous-invoked op that never
/// completes and makes the same step. Twins are linearized in invocation
/// order only: taking a later one while an earlier one is pending is the
/// same choice with the two swapped (both were invoked by then and both
/// stay pending to the end).
fn earlier_twins(ops: &[KeyOp]) -> Vec<Option<usize>> {
    let mut open: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret == u64::MAX).collect();
    open.sort_by_key(|&i| (ops[i].call, i));
    let mut last: HashMap<_, usize> = HashMap::new();
    let mut twins = vec![None; ops.len()];
    for i in open {
        twins[i] = last.insert(ops[i].step, i);
    }
    twins
}

/// Searches for a linearization of `ops` starting from `initial`.
pub(super) fn search(ops: &[KeyOp], initial: State, limits: Limits) -> Outcome {
    let twins = earlier_twins(ops);
    let mut unplaced = ops.iter().filter(|op| op.ret != u64::MAX).count();
    let mut entries = Entries::new(ops);
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, State)> = HashSet::new();
    // (op, state before it) for every linearized op, in order.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = initial;
    let mut deepest: Option<DeadEnd> = None;
    let mut entry = entries.next[HEAD];
    let mut steps: u64 = 0;
    while unplaced > 0 && !entries.is_empty() {
        steps += 1;
        if steps > limits.max_steps {
            return Outcome::Exhausted {
                steps,
                why: "step budget",
            };
        }
        if steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= limits.deadline {
            return Outcome::Exhausted {
                steps,
                why: "time budget",
            };
        }
        let (op, is_call) = entries.node[entry];
        if is_call {
            let open = ops[op].ret == u64::MAX;
            let twin_pending = twins[op].is_some_and(|t| !linearized.get(t));
            let after = ops[op].step.apply(state);
            let useful = !open || (!twin_pending && after != Some(state));
            if let (true, Some(after)) = (useful, after) {
                linearized.set(op, true);
                if seen.insert((linearized.clone(), after)) {
                    unplaced -= usize::from(!open);
                    stack.push((op, state));
                    state = after;
                    entries.lift(op);
                    entry = entries.next[HEAD];
                    continue;
                }
                linearized.set(op, false);
            }
            entry = entries.next[entry];
            continue;
        }
        // The first return entry (the walk never skips one): its operation
        // had to take effect by now and could not, so undo the latest choice.
        // Only a new deepest point is worth a snapshot; the failure is
        // explained from there.
        if deepest
            .as_ref()
            .is_none_or(|d| stack.len() > d.prefix.len())
        {
            let (blocked, candidates) = entries.candidates();
            deepest = Some(DeadEnd {
                prefix: stack.iter().map(|&(op, _)| op).collect(),
                blocked,
                candidates,
            });
        }
        let Some((undone, before)) = stack.pop() else {
            return Outcome::NotLinearizable {
                dead_end: deepest.unwrap_or_default(),
            };
        };
        linearized.set(undone, false);
        unplaced += usize::from(ops[undone].ret != u64::MAX);
        state = before;
        entries.unlift(undone);
        entry = entries.next[entries.call_node[undone]];
    }
    Outcome::Linearizable { steps }
}
