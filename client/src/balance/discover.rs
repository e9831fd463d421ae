//! [`discover()`]: a service's eligible set as a `tower::discover::Discover`
//! stream, so `tower::balance::p2c::Balance` and tonic's balanced channels
//! can balance over discovered instances directly.
//!
//! Consecutive snapshots are diffed by instance id: an instance that becomes
//! eligible is inserted, one that stops being eligible (deregistered,
//! critical, expired) is removed, and one whose `addr` or `weight` changed is
//! removed and inserted again with a new service.
//!
//! tower's balancer drops a service whose `poll_ready` fails and does not
//! get it back until the stream inserts it again, which happens only when
//! the instance leaves the set or changes. Services that reconnect by
//! themselves (tonic's lazy channels, as in [`balanced_channel`]) never
//! fail `poll_ready` and are the natural choice.
//!
//! [`balanced_channel`]: super::balanced_channel

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;

use futures_util::stream::{self, Stream};
use tokio::sync::watch;
use tower::discover::Change;

use crate::registry::{Instance, ServiceSnapshot};

/// The stream [`discover()`] returns: `Unpin`, so it can be handed to
/// `tower::balance::p2c::Balance::new` as it is.
pub type DiscoverStream<S> =
    Pin<Box<dyn Stream<Item = Result<Change<String, S>, Infallible>> + Send>>;

/// Streams the changes of the eligible set (under protection `threshold`) of
/// the snapshots published on `rx`: first an `Insert` per instance eligible
/// now, then, as snapshots arrive, `Remove(id)` and `Insert(id,
/// make_service(&instance))` for the differences (removals first, each in id
/// order). The stream ends when the sender side of `rx` is dropped; the last
/// set stays in whatever balances over it.
pub fn discover<S, F>(
    rx: watch::Receiver<ServiceSnapshot>,
    threshold: f64,
    make_service: F,
) -> DiscoverStream<S>
where
    S: Send + 'static,
    F: FnMut(&Instance) -> S + Send + 'static,
{
    let state = State {
        rx,
        threshold,
        make_service,
        set: EligibleSet::default(),
        pending: VecDeque::new(),
        started: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(change) = state.pending.pop_front() {
                return Some((Ok(change), state));
            }
            if state.started {
                state.rx.changed().await.ok()?;
            }
            state.started = true;
            let instances = std::sync::Arc::clone(&state.rx.borrow_and_update().instances);
            let snapshot = ServiceSnapshot {
                instances,
                ..ServiceSnapshot::default()
            };
            let eligible = snapshot.eligible(state.threshold);
            for change in state.set.update(&eligible) {
                state.pending.push_back(match change {
                    SetChange::Remove(id) => Change::Remove(id),
                    SetChange::Insert(instance) => {
                        Change::Insert(instance.id.clone(), (state.make_service)(instance))
                    }
                });
            }
        }
    }))
}

struct State<F, S> {
    rx: watch::Receiver<ServiceSnapshot>,
    threshold: f64,
    make_service: F,
    set: EligibleSet,
    pending: VecDeque<Change<String, S>>,
    started: bool,
}

/// What a consumer has been told is in the set: id → (addr, weight).
#[derive(Debug, Default)]
struct EligibleSet {
    members: BTreeMap<String, (String, u32)>,
}

#[derive(Debug, PartialEq)]
enum SetChange<'a> {
    Remove(String),
    Insert(&'a Instance),
}

impl EligibleSet {
    /// Moves to `eligible` and returns the changes that get a consumer there:
    /// every removal (in id order), then every insertion (in id order).
    fn update<'a>(&mut self, eligible: &'a [Instance]) -> Vec<SetChange<'a>> {
        let next: BTreeMap<&str, &Instance> = eligible.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut changes = Vec::new();
        self.members.retain(|id, (addr, weight)| {
            let keep = next
                .get(id.as_str())
                .is_some_and(|i| i.addr == *addr && i.weight == *weight);
            if !keep {
                changes.push(SetChange::Remove(id.clone()));
            }
            keep
        });
        for (id, instance) in next {
            if !self.members.contains_key(id) {
                self.members
                    .insert(id.to_string(), (instance.addr.clone(), instance.weight));
                changes.push(SetChange::Insert(instance));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use futures_util::StreamExt;
    use tower::balance::p2c::Balance;
    use tower::load::{CompleteOnResponse, PendingRequests};
    use tower::{BoxError, Service, ServiceExt, service_fn};

    use super::*;
    use crate::balance::test_support::{channel, snapshot};
    use crate::registry::Health::{Critical, Passing};

    fn ids(changes: &[SetChange<'_>]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                SetChange::Remove(id) => format!("-{id}"),
                SetChange::Insert(i) => format!("+{}", i.id),
            })
            .collect()
    }

    fn instance(id: &str, addr: &str, weight: u32) -> Instance {
        let mut instance = Instance::new("svc", id, addr);
        instance.weight = weight;
        instance
    }

    #[test]
    fn diff_inserts_removes_and_replaces_changed_instances() {
        let mut set = EligibleSet::default();
        let first = [
            instance("a", "h:1", 1),
            instance("b", "h:2", 1),
            instance("c", "h:3", 1),
        ];
        assert_eq!(ids(&set.update(&first)), ["+a", "+b", "+c"]);
        assert!(set.update(&first).is_empty(), "same set: no change");
        // b leaves, d arrives, c moves, a changes only its tags (no change).
        let mut a = instance("a", "h:1", 1);
        a.tags.push("canary".into());
        let second = [a, instance("c", "h:33", 1), instance("d", "h:4", 1)];
        assert_eq!(ids(&set.update(&second)), ["-b", "-c", "+c", "+d"]);
        // A weight change is a replacement too.
        let third = [
            instance("a", "h:1", 5),
            instance("c", "h:33", 1),
            instance("d", "h:4", 1),
        ];
        let changes = set.update(&third);
        assert_eq!(ids(&changes), ["-a", "+a"]);
        assert!(matches!(changes[1], SetChange::Insert(i) if i.weight == 5));
        assert_eq!(ids(&set.update(&[])), ["-a", "-c", "-d"]);
    }

    async fn next_change(stream: &mut DiscoverStream<String>) -> Option<Change<String, String>> {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(change))) => Some(change),
            _ => None,
        }
    }

    fn describe(change: Option<Change<String, String>>) -> String {
        match change {
            Some(Change::Insert(id, svc)) => format!("+{id}={svc}"),
            Some(Change::Remove(id)) => format!("-{id}"),
            None => "end".into(),
        }
    }

    #[tokio::test]
    async fn stream_follows_snapshots_and_ends_with_the_sender() {
        let (tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Passing),
            ("c", "", 1, Critical),
        ]);
        let mut stream = discover(rx, 0.5, |i: &Instance| i.addr.clone());
        assert_eq!(describe(next_change(&mut stream).await), "+a=127.0.0.1:1a");
        assert_eq!(describe(next_change(&mut stream).await), "+b=127.0.0.1:1b");
        // b turns critical, c recovers.
        tx.send_replace(snapshot(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Critical),
            ("c", "", 1, Passing),
        ]));
        assert_eq!(describe(next_change(&mut stream).await), "-b");
        assert_eq!(describe(next_change(&mut stream).await), "+c=127.0.0.1:1c");
        // A snapshot with the same eligible set (new revision, stale) yields nothing.
        let mut same = snapshot(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Critical),
            ("c", "", 1, Passing),
        ]);
        same.stale = true;
        tx.send_replace(same);
        tx.send_replace(snapshot(&[("a", "", 2, Passing), ("c", "", 1, Passing)]));
        assert_eq!(describe(next_change(&mut stream).await), "-a");
        assert_eq!(describe(next_change(&mut stream).await), "+a=127.0.0.1:1a");
        drop(tx);
        assert_eq!(describe(next_change(&mut stream).await), "end");
    }

    type Svc = PendingRequests<tower::util::BoxService<(), String, BoxError>>;

    fn make(instance: &Instance) -> Svc {
        let id = instance.id.clone();
        let svc = service_fn(move |()| {
            let id = id.clone();
            async move { Ok::<_, BoxError>(id) }
        });
        PendingRequests::new(
            tower::util::BoxService::new(svc),
            CompleteOnResponse::default(),
        )
    }

    async fn call(balance: &mut Balance<DiscoverStream<Svc>, ()>) -> Result<String, BoxError> {
        tokio::time::timeout(Duration::from_secs(5), async {
            balance.ready().await?.call(()).await
        })
        .await
        .map_err(|_| BoxError::from("balancer call timed out"))?
    }

    #[tokio::test]
    async fn tower_p2c_balances_over_the_discovered_set() -> Result<(), BoxError> {
        let (tx, rx) = channel(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Passing),
            ("c", "", 1, Passing),
        ]);
        let mut balance = Balance::new(discover(rx, 0.5, make));
        let mut seen = HashSet::new();
        for _ in 0..300 {
            seen.insert(call(&mut balance).await?);
        }
        assert_eq!(
            seen,
            HashSet::from(["a".to_string(), "b".into(), "c".into()])
        );
        assert_eq!(balance.len(), 3);
        // c turns critical and d arrives: c never answers again once the
        // balancer has polled the change (its next poll_ready does).
        tx.send_replace(snapshot(&[
            ("a", "", 1, Passing),
            ("b", "", 1, Passing),
            ("c", "", 1, Critical),
            ("d", "", 1, Passing),
        ]));
        let mut seen = HashSet::new();
        for _ in 0..300 {
            seen.insert(call(&mut balance).await?);
        }
        assert_eq!(
            seen,
            HashSet::from(["a".to_string(), "b".into(), "d".into()])
        );
        assert_eq!(balance.len(), 3);
        Ok(())
    }
}
