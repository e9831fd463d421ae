//! A brute-force linearizability oracle for tiny histories, to test the
//! checker's search and its rewrites (pruning, patching, merging, twins)
//! against the definition itself: some subset of the indeterminate ops,
//! plus every definite op, in some order that respects real time, is a
//! legal sequential execution of the register.

use super::generate::random_small;
use super::history::Operation;
use super::model::{ABSENT, State, Step, Values};
use super::{Budget, CheckError, check};
use crate::rng::SplitMix64;

/// Whether `ops` (all on one key) is linearizable, by enumeration.
fn linearizable(ops: &[Operation]) -> bool {
    let mut values = Values::default();
    let mut steps = Vec::new();
    for op in ops {
        // Indeterminate gets constrain nothing.
        if let Ok(Some(step)) = Step::compile(op, &mut values) {
            steps.push((step, op));
        }
    }
    let mut used = vec![false; steps.len()];
    extend(&steps, &mut used, ABSENT)
}

fn extend(steps: &[(Step, &Operation)], used: &mut [bool], state: State) -> bool {
    let definite_left = (0..steps.len()).any(|i| !used[i] && !steps[i].1.is_indeterminate());
    if !definite_left {
        // Every remaining indeterminate op is simply taken not to happen.
        return true;
    }
    for i in 0..steps.len() {
        if used[i] {
            continue;
        }
        // `i` may go next only if no unused definite op completed before it
        // was invoked.
        let blocked = (0..steps.len()).any(|j| {
            !used[j]
                && j != i
                && !steps[j].1.is_indeterminate()
                && steps[j].1.complete < steps[i].1.invoke
        });
        if blocked {
            continue;
        }
        if let Some(after) = steps[i].0.apply(state) {
            used[i] = true;
            let found = extend(steps, used, after);
            used[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

#[test]
fn the_checker_agrees_with_brute_force() {
    let (mut yes, mut no) = (0, 0);
    for seed in 0..3000 {
        let mut rng = SplitMix64::new(seed);
        let ops = random_small(&mut rng);
        let expected = linearizable(&ops);
        let got = check(&ops, Budget::default());
        match (&got, expected) {
            (Ok(_), true) => yes += 1,
            (Err(CheckError::NotLinearizable(_)), false) => no += 1,
            _ => panic!("seed {seed}: brute force says {expected}, checker {got:?}\n{ops:#?}"),
        }
    }
    // Both verdicts must be well represented for the agreement to mean much.
    assert!(yes > 300 && no > 300, "{yes} linearizable, {no} not");
}
