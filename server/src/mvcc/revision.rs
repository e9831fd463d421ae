//! A revision as etcd counts them: `main` is the store revision a write request
//! created; `sub` numbers the changes inside that request (a txn or a
//! delete-range touching several keys), starting at 0.

/// One change's position in history; ordered by `main`, then `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub(crate) const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The redb key of this revision in the history table.
    pub(crate) const fn key(self) -> (i64, i64) {
        (self.main, self.sub)
    }
}
