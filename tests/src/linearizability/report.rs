//! What a check returns: [`CheckReport`] on a pass, [`CheckError`] otherwise
//! ([`Violation`] explains a non-linearizable key), and the rendering of
//! operations and values for failed-test output.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::history::{Nanos, Observed, OpKind, Operation, Outcome};

/// Limits of a check. An exhausted budget is reported as
/// [`CheckError::Inconclusive`], never as a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Search steps allowed per key. Each step may add one entry to the
    /// memo cache, so this also bounds memory (roughly steps × (ops/8 + 50)
    /// bytes).
    pub max_steps_per_key: u64,
    /// Wall-clock time allowed for the whole check.
    pub max_time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_steps_per_key: 2_000_000,
            max_time: Duration::from_secs(30),
        }
    }
}

/// A passed check: every key's history is linearizable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Keys checked (one independent search each).
    pub keys: usize,
    /// Operations in the history.
    pub ops: usize,
    /// Indeterminate reads, which constrain nothing and were dropped.
    pub dropped_reads: usize,
    /// Indeterminate writes dropped because nothing could observe them.
    pub pruned_writes: usize,
    /// Indeterminate writes whose window was closed at their first observer.
    pub patched_writes: usize,
    /// Search steps over all keys.
    pub steps: u64,
    /// Wall-clock time of the check.
    pub elapsed: Duration,
}

/// An operation with its index in the checked history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedOp {
    /// Index in the slice given to [`super::check`].
    pub index: usize,
    /// The operation.
    pub op: Operation,
}

/// An operation that could not be placed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    /// The operation.
    pub op: IndexedOp,
    /// Why it cannot take effect after the longest prefix.
    pub why: String,
}

/// The register's value at some point of a linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Register {
    /// The key does not exist.
    Absent,
    /// The key holds this value.
    Value(Vec<u8>),
    /// The key holds one of the written values that no operation ever read
    /// or compared against (the checker does not tell those apart).
    Unread,
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Register::Absent => f.write_str("<absent>"),
            Register::Value(v) => f.write_str(&show_bytes(v)),
            Register::Unread => f.write_str("<a value nothing read>"),
        }
    }
}

/// Proof-ish of a non-linearizable key: the deepest point the search
/// reached. Every ordering of the key's operations breaks somewhere; this is
/// where the longest one broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Vec<u8>,
    /// Operations of the key the search considered.
    pub ops_checked: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<IndexedOp>,
    /// The register's value after that prefix.
    pub state: Register,
    /// The operation whose completion the search reached before it could be
    /// placed: it had to take effect next.
    pub blocked: Option<IndexedOp>,
    /// Every operation that could have gone next, and why none could.
    pub unplaceable: Vec<Unplaceable>,
}

/// How many prefix operations a [`Violation`] prints.
const SHOWN_PREFIX: usize = 12;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history of key {} is not linearizable ({} ops checked; longest linearizable prefix: {} ops)",
            show_bytes(&self.key),
            self.ops_checked,
            self.prefix.len()
        )?;
        let skipped = self.prefix.len().saturating_sub(SHOWN_PREFIX);
        if skipped > 0 {
            writeln!(f, "  ... {skipped} earlier ops of the prefix")?;
        }
        for op in &self.prefix[skipped..] {
            writeln!(f, "  {}", show_op(op))?;
        }
        writeln!(f, "register after the prefix: {}", self.state)?;
        if let Some(blocked) = &self.blocked {
            writeln!(
                f,
                "by the time {} completed, one of these had to take effect next, and none can:",
                show_op(blocked)
            )?;
        }
        for stuck in &self.unplaceable {
            writeln!(f, "  {}: {}", show_op(&stuck.op), stuck.why)?;
        }
        Ok(())
    }
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A key's history has no linearization.
    #[error("{0}")]
    NotLinearizable(Box<Violation>),
    /// The search ran out of budget: the history may or may not be
    /// linearizable. Not a pass.
    #[error(
        "inconclusive (NOT a pass): the search on key {key} ({ops} ops) hit its {why} after {steps} steps and {elapsed:?}"
    )]
    Inconclusive {
        /// The (first) key whose search gave up.
        key: String,
        /// Its operation count.
        ops: usize,
        /// Which budget ran out.
        why: &'static str,
        /// Steps spent on that key.
        steps: u64,
        /// Time spent on the whole check so far.
        elapsed: Duration,
    },
    /// The history itself is inconsistent (a bug in the test's recording).
    #[error("malformed history: {0}")]
    Malformed(String),
}

/// A byte string for humans: quoted text when printable, hex otherwise,
/// truncated.
#[must_use]
pub fn show_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let shown = &bytes[..bytes.len().min(MAX)];
    let mut out = if shown.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(shown))
    } else {
        let mut hex = String::from("0x");
        for b in shown {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    if bytes.len() > MAX {
        let _ = write!(out, "..({} bytes)", bytes.len());
    }
    out
}

/// A register value for humans.
#[must_use]
pub fn show_value(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "<absent>".to_owned(), show_bytes)
}

fn show_time(t: Nanos) -> String {
    if t == Nanos::MAX {
        "inf".to_owned()
    } else {
        format!("{}.{:06}ms", t / 1_000_000, t % 1_000_000)
    }
}

/// One operation on one line: index, client, request, window, outcome.
#[must_use]
pub fn show_op(op: &IndexedOp) -> String {
    let o = &op.op;
    let request = match &o.kind {
        OpKind::Get => "get".to_owned(),
        OpKind::Put { value } => format!("put {}", show_bytes(value)),
        OpKind::CompareAndSet { expected, new } => format!(
            "cas {} -> {}",
            show_value(expected.as_deref()),
            show_bytes(new)
        ),
        OpKind::Delete => "delete".to_owned(),
    };
    let outcome = match &o.outcome {
        Outcome::Indeterminate => "indeterminate".to_owned(),
        Outcome::Ok(Observed::Get(v)) => format!("read {}", show_value(v.as_deref())),
        Outcome::Ok(Observed::Put) => "ok".to_owned(),
        Outcome::Ok(Observed::CompareAndSet { succeeded }) => {
            if *succeeded { "succeeded" } else { "failed" }.to_owned()
        }
        Outcome::Ok(Observed::Delete { deleted }) => {
            if *deleted { "deleted" } else { "not found" }.to_owned()
        }
    };
    let end = if o.is_indeterminate() {
        Nanos::MAX
    } else {
        o.complete
    };
    format!(
        "#{} client {} {request} [{}..{}] {outcome}",
        op.index,
        o.client,
        show_time(o.invoke),
        show_time(end)
    )
}
