//! Bounded waits for conditions: polling with a deadline (never a sleep
//! used as synchronisation), a condition that must hold for a period, and
//! a `tokio::sync::watch` value reaching a state.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `every` until it yields `Some`, at most `within`;
/// `None` when the time is up.
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 50 ms until it yields a value.
///
/// # Panics
/// With `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(within, Duration::from_millis(50), check).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Asserts that `check` holds at every poll (every 100 ms) for `period`.
///
/// # Panics
/// When it stops holding.
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(check().await, "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, at most `within`, until a watch receiver's value satisfies `ok`.
///
/// # Panics
/// When the sender is gone or the time is up.
pub async fn watch_value<T, F>(
    what: &str,
    within: Duration,
    rx: &mut tokio::sync::watch::Receiver<T>,
    ok: F,
) -> T
where
    T: Clone,
    F: FnMut(&T) -> bool,
{
    match tokio::time::timeout(within, rx.wait_for(ok)).await {
        Ok(Ok(value)) => value.clone(),
        Ok(Err(_)) => panic!("{what}: the sender is gone"),
        Err(_) => panic!("timed out after {within:?} waiting for {what}"),
    }
}
