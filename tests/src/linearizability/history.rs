//! The recorded history: [`Operation`]s (what a client asked, when, and what
//! it saw) and the [`History`] recorder that concurrent tokio tasks share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Identifies the client (task, connection) that issued an operation. The
/// checker does not need it; it is there to make reports readable.
pub type ClientId = u64;

/// A point in time: nanoseconds since the recording [`History`] was created.
///
/// Plain integers rather than `Instant`s so that hand-written histories in
/// tests can name their times directly.
pub type Nanos = u64;

/// What a client asked the store to do with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A linearizable Range of the key.
    Get,
    /// A Put of `value`.
    Put {
        /// The value written.
        value: Vec<u8>,
    },
    /// A Txn: if the key's value is `expected` (`None`: the key is absent,
    /// i.e. `create_revision == 0`) then put `new`.
    CompareAndSet {
        /// The value compared against; `None` means "the key is absent".
        expected: Option<Vec<u8>>,
        /// The value written when the compare holds.
        new: Vec<u8>,
    },
    /// A DeleteRange of the key.
    Delete,
}

/// What a client saw when its operation completed; one variant per
/// [`OpKind`], and a mismatched pair is a malformed history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The value read; `None` when the key was absent.
    Get(Option<Vec<u8>>),
    /// The put was acknowledged.
    Put,
    /// Whether the compare held (Txn `succeeded`).
    CompareAndSet {
        /// The Txn's `succeeded` flag.
        succeeded: bool,
    },
    /// Whether a key was deleted (`deleted == 1`).
    Delete {
        /// True when the key existed and was deleted.
        deleted: bool,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client saw a definite result.
    Ok(Observed),
    /// Timed out, connection lost, or never completed: the operation may or
    /// may not take effect, at any time after its invocation, so the checker
    /// treats its completion time as +infinity and its result as unknown.
    Indeterminate,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it.
    pub client: ClientId,
    /// The one key it touched.
    pub key: Vec<u8>,
    /// What was asked.
    pub kind: OpKind,
    /// Taken just before the request was sent.
    pub invoke: Nanos,
    /// Taken just after the response arrived (or the client gave up). The
    /// checker ignores it for indeterminate operations; [`Nanos::MAX`] for
    /// an operation that never completed.
    pub complete: Nanos,
    /// What the client saw.
    pub outcome: Outcome,
}

impl Operation {
    /// Whether the outcome is [`Outcome::Indeterminate`].
    #[must_use]
    pub fn is_indeterminate(&self) -> bool {
        self.outcome == Outcome::Indeterminate
    }
}

/// Distinguishes recorders so that a handle is never completed on another
/// history than the one that issued it.
static NEXT_HISTORY_ID: AtomicU64 = AtomicU64::new(1);

/// A recorder of operations, shared by cloning (all clones record into the
/// same history).
///
/// Record the invocation *before* sending the request and the completion
/// *after* the response arrives: the checker assumes the operation took
/// effect somewhere between the two, so a window taken too narrowly turns a
/// correct server into a reported violation.
#[derive(Debug, Clone)]
pub struct History {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    epoch: Instant,
    ops: Mutex<Vec<Operation>>,
}

/// The pending operation returned by [`History::invoke`]; consumed by
/// [`History::complete`], so an operation completes at most once. An
/// operation whose handle is dropped stays indeterminate, which is always
/// safe (it may or may not have happened).
#[derive(Debug)]
#[must_use = "complete the operation, or it stays indeterminate"]
pub struct OpHandle {
    history: u64,
    index: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history whose clock starts now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_HISTORY_ID.fetch_add(1, Ordering::Relaxed),
                epoch: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the history was created (saturating).
    #[must_use]
    pub fn now(&self) -> Nanos {
        Nanos::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(Nanos::MAX)
    }

    /// Records that `client` is about to send `kind` on `key`.
    pub fn invoke(&self, client: ClientId, key: impl Into<Vec<u8>>, kind: OpKind) -> OpHandle {
        let invoke = self.now();
        let mut ops = self.lock();
        ops.push(Operation {
            client,
            key: key.into(),
            kind,
            invoke,
            complete: Nanos::MAX,
            outcome: Outcome::Indeterminate,
        });
        OpHandle {
            history: self.inner.id,
            index: ops.len() - 1,
        }
    }

    /// Records how the operation of `handle` ended, timestamped now.
    ///
    /// # Panics
    /// If `handle` was issued by another history (a bug in the test).
    pub fn complete(&self, handle: OpHandle, outcome: Outcome) {
        assert_eq!(
            handle.history, self.inner.id,
            "an OpHandle completed on a history that did not issue it"
        );
        let complete = self.now();
        let mut ops = self.lock();
        if let Some(op) = ops.get_mut(handle.index) {
            op.complete = complete;
            op.outcome = outcome;
        }
    }

    /// Appends a fully specified operation (hand-written histories, or
    /// operations timed by some other clock measured in the same [`Nanos`]).
    pub fn record(&self, op: Operation) {
        self.lock().push(op);
    }

    /// A copy of every operation recorded so far, in invocation order.
    #[must_use]
    pub fn ops(&self) -> Vec<Operation> {
        self.lock().clone()
    }

    /// The number of operations recorded so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Operation>> {
        // A task that panicked while holding the lock left the vector
        // consistent (every mutation is a single push or field write), so
        // the history is still worth checking.
        self.inner
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{History, Observed, OpKind, Outcome};
    use crate::linearizability::Budget;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_recorder_is_shared_across_tasks() {
        // A register behind a mutex is linearizable: each operation takes effect
        // while the lock is held, between its invoke and its complete.
        let history = History::new();
        let register = Arc::new(Mutex::new(None::<Vec<u8>>));
        let mut tasks = Vec::new();
        for client in 0..8u64 {
            let (history, register) = (history.clone(), Arc::clone(&register));
            tasks.push(tokio::spawn(async move {
                for i in 0..50u64 {
                    let value = format!("{client}-{i}").into_bytes();
                    let kind = if i % 2 == 0 {
                        OpKind::Get
                    } else {
                        OpKind::Put {
                            value: value.clone(),
                        }
                    };
                    let handle = history.invoke(client, "k", kind.clone());
                    let observed = {
                        let mut reg = register.lock().unwrap();
                        match kind {
                            OpKind::Get => Observed::Get(reg.clone()),
                            _ => {
                                *reg = Some(value);
                                Observed::Put
                            }
                        }
                    };
                    tokio::task::yield_now().await;
                    if i == 7 {
                        drop(handle); // never completed: stays indeterminate
                    } else {
                        history.complete(handle, Outcome::Ok(observed));
                    }
                }
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(history.len(), 400);
        assert_eq!(
            history
                .ops()
                .iter()
                .filter(|o| o.is_indeterminate())
                .count(),
            8
        );
        history.check(Budget::default()).unwrap();
    }
}
