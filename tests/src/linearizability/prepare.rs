//! Turns one key's operations into search input, and shrinks the search
//! space with two rewrites that keep the verdict exactly as it was:
//!
//! - *Pruning*: an indeterminate write whose value nobody ever read or
//!   compared with, on a key where no operation proved an inequality (a
//!   failed compare, a delete that found the key), is dropped. Whatever it
//!   did is invisible: any linearization with it stays one without it.
//! - *Patching*: an indeterminate write that is the only writer of its value
//!   and whose value some operation observed must have taken effect before
//!   the first such observer completed, so that completion becomes its
//!   completion instead of +infinity.
//!
//! - *Merging*: values no operation reads or compares against are
//!   indistinguishable to the model, so all of them become one state.
//!
//! Without them every indeterminate write stays pending to the end of the
//! history, and each doubles the states the search may visit; a kill -9 test
//! produces dozens. Both rewrites rely on nothing but the model, but the
//! second only helps when tests write unique values.

use std::collections::{HashMap, HashSet};

use super::history::{Nanos, Operation};
use super::model::{ABSENT, State, Step, Values};

/// One operation as the search sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyOp {
    /// Index in the whole history, for reports.
    pub global: usize,
    pub step: Step,
    /// The step before unread values were merged, for reports.
    pub original: Step,
    pub call: Nanos,
    /// [`Nanos::MAX`] when the operation may still take effect.
    pub ret: Nanos,
}

/// One key's search input.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    pub ops: Vec<KeyOp>,
    pub values: Values,
    pub dropped_reads: usize,
    pub pruned_writes: usize,
    pub patched_writes: usize,
}

/// Compiles the operations `indices` of `history` (all on one key).
pub(super) fn prepare(history: &[Operation], indices: &[usize]) -> Result<Prepared, String> {
    let mut prepared = Prepared::default();
    for &global in indices {
        let Some(op) = history.get(global) else {
            continue;
        };
        let Some(step) = Step::compile(op, &mut prepared.values)? else {
            prepared.dropped_reads += 1;
            continue;
        };
        let ret = if op.is_indeterminate() {
            Nanos::MAX
        } else if op.complete == Nanos::MAX {
            // +infinity is reserved for ops whose step is always allowed.
            Nanos::MAX - 1
        } else if op.complete < op.invoke {
            return Err(format!(
                "operation #{global} completed ({}) before it was invoked ({})",
                op.complete, op.invoke
            ));
        } else {
            op.complete
        };
        prepared.ops.push(KeyOp {
            global,
            step,
            original: step,
            call: op.invoke,
            ret,
        });
    }
    let mentioned = mentioned(&prepared);
    prune(&mut prepared, &mentioned);
    patch(&mut prepared);
    merge_unread(&mut prepared, &mentioned);
    Ok(prepared)
}

/// Every value some operation reads or compares against: the only values
/// the model ever tests the register for.
fn mentioned(prepared: &Prepared) -> HashSet<State> {
    prepared
        .ops
        .iter()
        .flat_map(|op| [op.step.observes(), op.step.compares_with()])
        .flatten()
        .collect()
}

/// Writes of values nobody tests for all write the one ghost state.
fn merge_unread(prepared: &mut Prepared, mentioned: &HashSet<State>) {
    let unread = |v: State| v != ABSENT && !mentioned.contains(&v);
    if !prepared
        .ops
        .iter()
        .any(|op| op.step.written().is_some_and(unread))
    {
        return;
    }
    let ghost = prepared.values.ghost();
    for op in &mut prepared.ops {
        op.step = op.step.map_written(|v| if unread(v) { ghost } else { v });
    }
}

fn is_open_write(op: &KeyOp) -> Option<State> {
    if op.ret == Nanos::MAX {
        op.step.written().filter(|&v| v != ABSENT)
    } else {
        None
    }
}

fn prune(prepared: &mut Prepared, mentioned: &HashSet<State>) {
    if prepared.ops.iter().any(|op| op.step.observes_inequality()) {
        return;
    }
    let before = prepared.ops.len();
    prepared
        .ops
        .retain(|op| is_open_write(op).is_none_or(|v| mentioned.contains(&v)));
    prepared.pruned_writes = before - prepared.ops.len();
}

fn patch(prepared: &mut Prepared) {
    let mut writers: HashMap<State, usize> = HashMap::new();
    for op in &prepared.ops {
        if let Some(v) = op.step.written() {
            *writers.entry(v).or_default() += 1;
        }
    }
    let mut first_seen: HashMap<State, Nanos> = HashMap::new();
    for op in &prepared.ops {
        if let Some(v) = op.step.observes().filter(|&v| v != ABSENT) {
            let seen = first_seen.entry(v).or_insert(Nanos::MAX);
            *seen = (*seen).min(op.ret);
        }
    }
    for op in &mut prepared.ops {
        let Some(v) = is_open_write(op) else { continue };
        let Some(&seen) = first_seen.get(&v) else {
            continue;
        };
        // An observer that completed before this write was even invoked is a
        // violation the search must report, not a window to shrink.
        if writers.get(&v) == Some(&1) && seen != Nanos::MAX && seen >= op.call {
            op.ret = seen;
            prepared.patched_writes += 1;
        }
    }
}
