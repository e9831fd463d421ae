//! Watch: the hub that fans committed events out to watchers, the index that
//! finds the watchers an event concerns, and history catch-up for watchers
//! that start in the past or fell behind.

pub(crate) mod hub;
pub(crate) mod index;

pub(crate) use hub::{StreamMsg, WatchHub, WatchSpec};
