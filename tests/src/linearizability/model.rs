//! The register model of one etcd key, compiled for the search: values are
//! interned to small integers so that a memoized search state is a bitset
//! and a `u32`, not a byte string.

use std::collections::HashMap;

use super::history::{Observed, OpKind, Operation, Outcome};
use super::report::{Register, show_bytes};

/// The register's value: [`ABSENT`] or `1 +` the index of an interned value.
pub(super) type State = u32;

/// The key does not exist.
pub(super) const ABSENT: State = 0;

/// Interned values of one key, for the search and for reports.
#[derive(Debug, Default)]
pub(super) struct Values {
    ids: HashMap<Vec<u8>, State>,
    bytes: Vec<Vec<u8>>,
    /// The state standing for every value no operation reads or compares
    /// against: the model cannot tell such values apart, and merging them
    /// lets the memo cache merge the branches that wrote them.
    ghost: Option<State>,
}

impl Values {
    pub(super) fn intern(&mut self, value: Option<&[u8]>) -> State {
        let Some(value) = value else { return ABSENT };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.bytes.push(value.to_vec());
        // A key sees at most a few million values; u32 overflow would mean a
        // history far beyond what the search could check anyway.
        let id = State::try_from(self.bytes.len()).unwrap_or(State::MAX);
        self.ids.insert(value.to_vec(), id);
        id
    }

    pub(super) fn get(&self, state: State) -> Option<&[u8]> {
        if Some(state) == self.ghost {
            return None;
        }
        let index = usize::try_from(state).ok()?.checked_sub(1)?;
        self.bytes.get(index).map(Vec::as_slice)
    }

    /// The shared state of unread values, allocated on first use.
    pub(super) fn ghost(&mut self) -> State {
        if let Some(ghost) = self.ghost {
            return ghost;
        }
        self.bytes.push(Vec::new());
        let ghost = State::try_from(self.bytes.len()).unwrap_or(State::MAX);
        self.ghost = Some(ghost);
        ghost
    }

    /// The register's value for a report.
    pub(super) fn describe(&self, state: State) -> Register {
        if state == ABSENT {
            Register::Absent
        } else if Some(state) == self.ghost {
            Register::Unread
        } else {
            self.get(state)
                .map_or(Register::Unread, |v| Register::Value(v.to_vec()))
        }
    }
}

/// One operation as a transition of the register. `None` in an outcome
/// field means the outcome is unknown (indeterminate operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Step {
    Get(State),
    Put(State),
    Cas {
        expected: State,
        new: State,
        succeeded: Option<bool>,
    },
    Delete {
        deleted: Option<bool>,
    },
}

impl Step {
    /// Compiles `op`; `Err` names what is malformed. `Ok(None)` for an
    /// indeterminate Get, which constrains nothing.
    pub(super) fn compile(op: &Operation, values: &mut Values) -> Result<Option<Self>, String> {
        let step = match (&op.kind, &op.outcome) {
            (OpKind::Get, Outcome::Indeterminate) => return Ok(None),
            (OpKind::Get, Outcome::Ok(Observed::Get(v))) => Step::Get(values.intern(v.as_deref())),
            (OpKind::Put { value }, Outcome::Ok(Observed::Put) | Outcome::Indeterminate) => {
                Step::Put(values.intern(Some(value)))
            }
            (OpKind::CompareAndSet { expected, new }, outcome) => {
                let succeeded = match outcome {
                    Outcome::Indeterminate => None,
                    Outcome::Ok(Observed::CompareAndSet { succeeded }) => Some(*succeeded),
                    Outcome::Ok(other) => return Err(mismatch(op, other)),
                };
                Step::Cas {
                    expected: values.intern(expected.as_deref()),
                    new: values.intern(Some(new)),
                    succeeded,
                }
            }
            (OpKind::Delete, Outcome::Indeterminate) => Step::Delete { deleted: None },
            (OpKind::Delete, Outcome::Ok(Observed::Delete { deleted })) => Step::Delete {
                deleted: Some(*deleted),
            },
            (_, Outcome::Ok(other)) => return Err(mismatch(op, other)),
        };
        Ok(Some(step))
    }

    /// The state after this step from `state`, or `None` when the observed
    /// outcome is impossible from `state`.
    pub(super) fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Get(seen) => (seen == state).then_some(state),
            Step::Put(value) => Some(value),
            Step::Cas {
                expected,
                new,
                succeeded,
            } => {
                let holds = state == expected;
                match succeeded {
                    Some(s) if s != holds => None,
                    _ => Some(if holds { new } else { state }),
                }
            }
            Step::Delete { deleted } => match deleted {
                Some(d) if d != (state != ABSENT) => None,
                _ => Some(ABSENT),
            },
        }
    }

    /// The value this step writes when it takes effect, if any.
    pub(super) fn written(self) -> Option<State> {
        match self {
            Step::Put(v) | Step::Cas { new: v, .. } => Some(v),
            Step::Get(_) | Step::Delete { .. } => None,
        }
    }

    /// The value this step proves the register held, when it completed
    /// with a definite outcome that requires one.
    pub(super) fn observes(self) -> Option<State> {
        match self {
            Step::Get(v)
            | Step::Cas {
                expected: v,
                succeeded: Some(true),
                ..
            } => Some(v),
            Step::Delete {
                deleted: Some(false),
            } => Some(ABSENT),
            _ => None,
        }
    }

    /// Whether a definite outcome proves only that the register did *not*
    /// hold some value (a failed compare, a delete that found the key).
    pub(super) fn observes_inequality(self) -> bool {
        matches!(
            self,
            Step::Cas {
                succeeded: Some(false),
                ..
            } | Step::Delete {
                deleted: Some(true)
            }
        )
    }

    /// This step with every written value `v` replaced by `f(v)`.
    pub(super) fn map_written(self, f: impl Fn(State) -> State) -> Self {
        match self {
            Step::Put(v) => Step::Put(f(v)),
            Step::Cas {
                expected,
                new,
                succeeded,
            } => Step::Cas {
                expected,
                new: f(new),
                succeeded,
            },
            other => other,
        }
    }

    /// The value a compare of this step mentions, whatever its outcome.
    pub(super) fn compares_with(self) -> Option<State> {
        match self {
            Step::Cas { expected, .. } => Some(expected),
            _ => None,
        }
    }
}

impl Step {
    /// Why this step cannot take effect from `state`, for a report.
    pub(super) fn why_not(self, state: State, values: &Values) -> String {
        let show = |s: State| values.describe(s).to_string();
        if self.apply(state).is_some() {
            return format!(
                "could take effect on {}, but every continuation after it fails",
                show(state)
            );
        }
        match self {
            Step::Get(seen) => {
                format!("read {} but the register holds {}", show(seen), show(state))
            }
            Step::Cas { expected, .. } if state == expected => {
                format!(
                    "failed although the register holds the expected {}",
                    show(state)
                )
            }
            Step::Cas { expected, .. } => format!(
                "succeeded although the register holds {}, not the expected {}",
                show(state),
                show(expected)
            ),
            Step::Delete { .. } if state == ABSENT => "deleted a key that is absent".to_owned(),
            Step::Delete { .. } => format!("found no key but the register holds {}", show(state)),
            Step::Put(_) => "a put can always take effect".to_owned(),
        }
    }
}

fn mismatch(op: &Operation, observed: &Observed) -> String {
    format!(
        "client {} on key {}: a {:?} operation completed with {:?}",
        op.client,
        show_bytes(&op.key),
        op.kind,
        observed
    )
}
