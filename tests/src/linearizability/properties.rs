//! The checker's property tests: random linearizable histories must pass,
//! provably broken mutations of them must fail, and both must be quick at
//! the size a fault test produces.

use std::time::{Duration, Instant};

use super::generate::{self, Shape};
use super::{Budget, CheckError, check};
use crate::rng::SplitMix64;

fn generated_histories_pass_and_mutations_fail(shape: Shape, seeds: u64) {
    let (mut unwritten, mut future) = (0, 0);
    for seed in 0..seeds {
        let ops = generate::linearizable(seed, shape);
        if let Err(e) = check(&ops, Budget::default()) {
            panic!("seed {seed}: generated history rejected: {e}");
        }
        let mut rng = SplitMix64::new(seed ^ 0xA5A5);
        let mut mutated = ops.clone();
        if let Some(i) = generate::read_unwritten(&mut mutated, &mut rng) {
            unwritten += 1;
            assert!(
                matches!(
                    check(&mutated, Budget::default()),
                    Err(CheckError::NotLinearizable(_))
                ),
                "seed {seed}: read #{i} of an unwritten value accepted"
            );
        }
        let mut mutated = ops;
        if let Some(i) = generate::read_from_future(&mut mutated, &mut rng) {
            future += 1;
            assert!(
                matches!(
                    check(&mutated, Budget::default()),
                    Err(CheckError::NotLinearizable(_))
                ),
                "seed {seed}: read #{i} from the future accepted"
            );
        }
    }
    // The mutations must actually have been exercised.
    assert!(
        unwritten > seeds * 8 / 10 && future > seeds / 2,
        "{unwritten} {future}"
    );
}

#[test]
fn generated_histories_pass_and_their_mutations_fail() {
    let shape = Shape {
        clients: 4,
        keys: 2,
        ops_per_client: 15,
        indeterminate_percent: 10,
    };
    generated_histories_pass_and_mutations_fail(shape, 300);
}

#[test]
fn generated_histories_with_many_lost_ops_pass_and_their_mutations_fail() {
    let shape = Shape {
        clients: 6,
        keys: 2,
        ops_per_client: 12,
        indeterminate_percent: 30,
    };
    generated_histories_pass_and_mutations_fail(shape, 200);
}

#[test]
fn thousands_of_ops_check_quickly() {
    let shape = Shape {
        clients: 8,
        keys: 5,
        ops_per_client: 500,
        indeterminate_percent: 3,
    };
    for seed in 0..3 {
        let ops = generate::linearizable(seed, shape);
        let started = Instant::now();
        let report = check(&ops, Budget::default()).unwrap();
        let took = started.elapsed();
        eprintln!("seed {seed}: {report:?} in {took:?}");
        assert_eq!(report.ops, 4000);
        // Well under a second on a laptop in a debug build; the bound leaves
        // room for a loaded CI machine.
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
}

#[test]
fn violations_in_thousands_of_ops_are_found_quickly() {
    let shape = Shape {
        clients: 8,
        keys: 5,
        ops_per_client: 500,
        indeterminate_percent: 3,
    };
    for seed in 0..3 {
        let mut ops = generate::linearizable(seed, shape);
        let mut rng = SplitMix64::new(seed);
        let (unwritten, future) = {
            let mut a = ops.clone();
            let i = generate::read_unwritten(&mut a, &mut rng);
            let j = generate::read_from_future(&mut ops, &mut rng);
            ((a, i), (ops, j))
        };
        for (mutated, at) in [unwritten, future] {
            assert!(at.is_some());
            let started = Instant::now();
            let result = check(&mutated, Budget::default());
            let took = started.elapsed();
            eprintln!("seed {seed}: mutation at {at:?} found in {took:?}");
            assert!(
                matches!(result, Err(CheckError::NotLinearizable(_))),
                "{result:?}"
            );
            assert!(took < Duration::from_secs(5), "took {took:?}");
        }
    }
}
