//! Replay determinism, the property Raft replication rests on: one random
//! command sequence applied to two fresh replicas, cut into batches at
//! different places, gives equal responses, equal events, equal HashKV and
//! byte-identical tables.

use proptest::prelude::*;

use super::commands;
use super::replica::Replica;
use crate::apply::{Applied, Command};
use crate::error::Refusal;
use crate::mvcc::KeyRange;

/// Commands per sequence and sequences per run: 32 × 400 = 12,800 commands
/// replayed on each of two replicas per `cargo test`.
const COMMANDS: usize = 400;
const CASES: u32 = 32;

type Events = Vec<(i64, Vec<rollcall_proto::mvccpb::Event>)>;

/// Applies `commands` cut into batches of the given sizes (cycled).
fn replay(
    replica: &mut Replica,
    commands: &[Command],
    cuts: &[usize],
) -> (Vec<Result<Applied, Refusal>>, Events) {
    let (mut results, mut events) = (Vec::new(), Vec::new());
    let mut rest = commands;
    for &cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(cut.clamp(1, rest.len()));
        let outcome = replica.apply(batch);
        results.extend(outcome.results);
        events.extend(outcome.events);
        rest = tail;
    }
    (results, events)
}

/// Every key alive at each revision the replica still keeps.
fn every_revision(replica: &Replica) -> Vec<Vec<(bytes::Bytes, i64, i64, i64)>> {
    let everything = KeyRange::new(
        &bytes::Bytes::from_static(b"\0"),
        &bytes::Bytes::from_static(b"\0"),
    );
    let from = replica.state.compact_rev.max(1);
    (from..=replica.state.rev)
        .map(|at| {
            replica
                .read(|v| v.range_keys(&everything, at, 0, false))
                .unwrap()
                .kvs
                .into_iter()
                .map(|kv| (kv.key, kv.create_revision, kv.mod_revision, kv.version))
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn replicas_replaying_one_sequence_agree(
        commands in prop::collection::vec(commands::command(), COMMANDS),
        cuts_a in prop::collection::vec(1..40usize, 1..8),
        cuts_b in prop::collection::vec(1..40usize, 1..8),
    ) {
        let (mut a, mut b) = (Replica::new(), Replica::new());
        let (results_a, events_a) = replay(&mut a, &commands, &cuts_a);
        let (results_b, events_b) = replay(&mut b, &commands, &cuts_b);

        prop_assert_eq!(results_a.len(), commands.len());
        prop_assert_eq!(&results_a, &results_b);
        prop_assert_eq!(&events_a, &events_b);
        prop_assert_eq!(a.hash_kv(), b.hash_kv());
        prop_assert_eq!(a.tables(), b.tables());
        prop_assert_eq!((a.state.rev, a.state.compact_rev), (b.state.rev, b.state.compact_rev));
        prop_assert_eq!(every_revision(&a), every_revision(&b));
        let leases = |r: &Replica| r.state.leases.ids().map(|(id, ttl)| {
            (id, ttl, r.state.leases.get(id).map(|e| (e.keys.clone(), e.remaining_ttl)))
        }).collect::<Vec<_>>();
        prop_assert_eq!(leases(&a), leases(&b));
        prop_assert_eq!(&a.state.alarms, &b.state.alarms);
    }
}

/// The sequences above must exercise what could go wrong: revisions,
/// refusals of several kinds, events, compactions and leases. A generator
/// that drifted into producing only refusals would make the property vacuous.
#[test]
fn generated_sequences_cover_refusals_compactions_and_leases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let commands = prop::collection::vec(commands::command(), COMMANDS * 4)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut replica = Replica::new();
    let (results, events) = replay(&mut replica, &commands, &[7]);
    let refused = |r: Refusal| results.iter().filter(|x| **x == Err(r)).count();
    assert!(events.len() > 100, "only {} revisions", events.len());
    assert!(refused(Refusal::LeaseNotFound) > 0);
    assert!(refused(Refusal::NoSpace) > 0);
    assert!(refused(Refusal::FutureRevision) + refused(Refusal::Compacted) > 0);
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Ok(Applied::Compact(..))))
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Ok(Applied::LeaseRevoke(..))))
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Ok(Applied::Txn(t)) if !t.succeeded))
    );
}
