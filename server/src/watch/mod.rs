//! Watch: the hub that fans committed events out to watchers, the index that
//! finds the watchers an event concerns, and history catch-up for watchers
//! that start in the past or fell behind.

pub mod hub;
pub mod index;

pub use hub::{StreamMsg, WatchHub, WatchSpec};
