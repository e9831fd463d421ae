//! THE write path, pure: commands in, responses and events out.
//!
//! [`apply_batch`] applies a batch of [`Command`]s, in order, to the
//! applier's in-memory [`State`] and the tables of ONE redb write
//! transaction, and returns what happened ([`BatchOutcome`]): a response or
//! a [`Refusal`] per command, the events of every revision created, the lease
//! and alarm changes, a compaction to finish. It does not commit, and it
//! answers no caller, publishes nothing and reads no clock: that is the
//! post-commit step's job (`applier.rs`). Because nothing but the commands
//! and the state decides the outcome, replaying the same commands on another
//! member reaches the same bytes, the property Raft replication rests on
//! (tested by `tests/determinism.rs`).
//!
//! ```text
//!  commands ─▶ apply_batch(state, write txn) ─▶ BatchOutcome ─▶ commit ─▶ settle
//!              (command.rs: one command;        results, events,          (answer, publish,
//!               side_state.rs: leases/alarms)   side log, compaction       lessor, metrics)
//! ```

mod batch;
mod command;
pub(crate) mod side_state;

pub(crate) use batch::{BatchOutcome, apply_batch};
pub(crate) use command::{Applied, Command, read_only_txn};
