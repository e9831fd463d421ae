//! openraft's storage conformance suite (`openraft::testing::Suite`) run
//! against the replicated log (`raft/log_store.rs`) and the state machine
//! (`raft/state_machine.rs`), each test on a fresh data directory; plus the
//! state machine's own promises: a batch's results come back per entry, and
//! what was applied survives a reopen with its log position.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder, storage::RaftStateMachine};
use tempfile::TempDir;

use super::fixture::put;
use crate::apply::Applied;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::types::{Batch, StorageError, TypeConfig};
use crate::settle::Settle;
use crate::state::State;
use crate::watch::WatchHub;

fn open_state_machine(dir: &std::path::Path) -> StateMachine {
    let (store, state) = State::open(dir, 1 << 20).expect("open store");
    let metrics = Arc::new(Metrics::new());
    let hub = WatchHub::new(
        store.clone(),
        store.current_rev(),
        tokio::runtime::Handle::current(),
        100,
        metrics.clone(),
    );
    let settle = Settle {
        store,
        lessor: Arc::new(Lessor::default()),
        hub,
        metrics,
    };
    StateMachine::new(state, settle).expect("state machine")
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("log store");
        let sm = open_state_machine(dir.path());
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() {
    Suite::test_all(Builder).expect("the storage suite passes");
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload,
    }
}

#[tokio::test]
async fn one_apply_answers_each_entry_and_survives_a_reopen() {
    let dir = TempDir::new().expect("temp dir");
    {
        let mut sm = open_state_machine(dir.path());
        let results = sm
            .apply(vec![
                entry(1, EntryPayload::Blank),
                entry(
                    2,
                    EntryPayload::Normal(Batch(vec![put("a", "1"), put("b", "2")])),
                ),
                entry(3, EntryPayload::Normal(Batch(vec![put("a", "3")]))),
            ])
            .await
            .expect("apply");
        let revisions: Vec<Vec<i64>> = results
            .iter()
            .map(|r| {
                r.0.iter()
                    .map(|res| match res {
                        Ok(Applied::Put(p)) => p.header.as_ref().map_or(0, |h| h.revision),
                        other => panic!("unexpected result {other:?}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(revisions, vec![vec![], vec![2, 3], vec![4]]);
        // A snapshot makes everything applied durable before it copies it.
        let mut builder = sm.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.expect("snapshot");
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));
    }
    let mut sm = open_state_machine(dir.path());
    let (last, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(last.map(|l| l.index), Some(3));
    let current = sm.get_current_snapshot().await.expect("current snapshot");
    assert_eq!(
        current.map(|s| s.meta.last_log_id.map(|l| l.index)),
        Some(Some(3))
    );
}

#[tokio::test]
async fn a_restarted_leader_keeps_its_vote_but_not_its_leadership() {
    use openraft::Vote;
    use openraft::storage::RaftLogStorage;

    let dir = TempDir::new().expect("temp dir");
    let mut log = LogStore::open(dir.path()).expect("log store");
    let mut led = Vote::new(7, 3);
    led.commit();
    log.save_vote(&led).await.expect("save vote");
    // Another member's leadership is left alone.
    assert!(!log.step_down(4).expect("step down"));
    assert_eq!(log.read_vote().await.expect("vote"), Some(led));
    drop(log);

    // Reopened, as after a crash: the same term and choice, uncommitted.
    let mut log = LogStore::open(dir.path()).expect("reopen");
    assert!(log.step_down(3).expect("step down"));
    let vote = log.read_vote().await.expect("vote").expect("a vote");
    assert_eq!(vote, Vote::new(7, 3));
    assert!(!vote.is_committed());
    // Idempotent: a second start changes nothing more.
    assert!(!log.step_down(3).expect("step down again"));
}
