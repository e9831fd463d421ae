//! A linearizability checker for histories of etcd KV operations, each on a
//! single key: record what concurrent clients asked and saw in a [`History`],
//! then [`check`] it against a per-key register model.
//!
//! The algorithm is the one of porcupine and Knossos: keys are independent
//! registers, so each key's sub-history is checked alone (P-compositionality),
//! by Lowe's just-in-time linearization with a memo of (linearized set,
//! register state). Times are [`Nanos`] since the history was created.
//!
//! An operation whose outcome the client never learned (timeout, lost
//! connection, killed server) is [`Outcome::Indeterminate`]: it may take
//! effect at any point after its invocation, or never. Tests should write
//! unique values: then an indeterminate write that some read observed is
//! pinned before that read, which keeps the search small (see `prepare`).
//!
//! The search is bounded by a [`Budget`]; running out of it is
//! [`CheckError::Inconclusive`], which is never a pass.
//!
//! Model assumptions: every key starts absent; a Get is a linearizable read
//! (not `serializable`); a CompareAndSet compares the value (or, for
//! `expected: None`, that the key is absent).

mod history;
mod model;
mod prepare;
mod report;
mod search;

#[cfg(test)]
mod generate;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use history::{ClientId, History, Nanos, Observed, OpHandle, OpKind, Operation, Outcome};
pub use report::{
    Budget, CheckError, CheckReport, IndexedOp, Register, Unplaceable, Violation, show_bytes,
    show_op, show_value,
};

use model::ABSENT;
use prepare::Prepared;
use search::{DeadEnd, Limits};

/// Checks that `history` is linearizable.
///
/// # Errors
/// [`CheckError::NotLinearizable`] with an explanation for the first bad
/// key (in key order), [`CheckError::Inconclusive`] if the budget ran out on
/// some key and no key was found bad, [`CheckError::Malformed`] for a
/// history that contradicts itself.
pub fn check(history: &[Operation], budget: Budget) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    // A budget too large to add to now is no deadline at all; a century will do.
    let deadline = started
        .checked_add(budget.max_time)
        .or_else(|| started.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(started);
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_slice()).or_default().push(index);
    }
    let mut report = CheckReport {
        keys: by_key.len(),
        ops: history.len(),
        ..CheckReport::default()
    };
    let mut inconclusive = None;
    for (key, indices) in by_key {
        let prepared = prepare::prepare(history, &indices).map_err(CheckError::Malformed)?;
        report.dropped_reads += prepared.dropped_reads;
        report.pruned_writes += prepared.pruned_writes;
        report.patched_writes += prepared.patched_writes;
        let limits = Limits {
            max_steps: budget.max_steps_per_key,
            deadline,
        };
        match search::search(&prepared.ops, ABSENT, limits) {
            search::Outcome::Linearizable { steps } => report.steps += steps,
            search::Outcome::NotLinearizable { dead_end, .. } => {
                return Err(CheckError::NotLinearizable(Box::new(violation(
                    history, key, &prepared, &dead_end,
                ))));
            }
            search::Outcome::Exhausted { steps, why } => {
                report.steps += steps;
                // Keep going: a violation on a later key says more than this.
                inconclusive.get_or_insert_with(|| CheckError::Inconclusive {
                    key: show_bytes(key),
                    ops: prepared.ops.len(),
                    why,
                    steps,
                    elapsed: started.elapsed(),
                });
            }
        }
    }
    report.elapsed = started.elapsed();
    match inconclusive {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

impl History {
    /// [`check`] of everything recorded so far.
    ///
    /// # Errors
    /// As [`check`].
    pub fn check(&self, budget: Budget) -> Result<CheckReport, CheckError> {
        check(&self.ops(), budget)
    }
}

fn violation(history: &[Operation], key: &[u8], prepared: &Prepared, dead: &DeadEnd) -> Violation {
    // Replaying the prefix with the unmerged steps recovers the register's
    // actual value; the merged model made the same decisions, so each step
    // is allowed here too.
    let state = dead.prefix.iter().fold(ABSENT, |state, &l| {
        prepared
            .ops
            .get(l)
            .and_then(|op| op.original.apply(state))
            .unwrap_or(state)
    });
    let indexed = |local: usize| {
        prepared.ops.get(local).and_then(|op| {
            history.get(op.global).map(|o| IndexedOp {
                index: op.global,
                op: o.clone(),
            })
        })
    };
    Violation {
        key: key.to_vec(),
        ops_checked: prepared.ops.len(),
        prefix: dead.prefix.iter().filter_map(|&l| indexed(l)).collect(),
        state: prepared.values.describe(state),
        blocked: indexed(dead.blocked),
        unplaceable: dead
            .candidates
            .iter()
            .filter_map(|&l| {
                let step = prepared.ops.get(l)?.original;
                Some(Unplaceable {
                    op: indexed(l)?,
                    why: step.why_not(state, &prepared.values),
                })
            })
            .collect(),
    }
}
