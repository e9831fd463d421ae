//! The watch hub: every watcher of every stream, and the fan-out of committed
//! events to them.
//!
//! A watcher is either *synced* (in the index; it receives each published
//! batch) or *catching up* (a task reads its missed revisions from history in
//! chunks, then joins the synced set). A synced watcher whose stream cannot
//! take a delivery right now (the client reads slowly) is not waited for: it
//! becomes a *victim* and catches up from history like a new watcher, so one
//! slow client never delays the others and the server's memory stays bounded.
//!
//! Invariant (no gap, no duplicate): `next_rev` is the first revision a
//! watcher has not been given. Publishing and joining the synced set both
//! happen under the hub lock, and a watcher joins only when `next_rev` is
//! past the last published revision; deliveries skip revisions below
//! `next_rev`. Events of one revision always travel in one message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use rollcall_proto::mvccpb::Event;
use rollcall_proto::mvccpb::event::EventType;
use tokio::sync::mpsc;

use super::index::{WatcherIndex, WatcherKey};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::mvcc::{KeyRange, Store};

/// Most revisions read from history per catch-up step.
const CATCH_UP_REVISIONS: i64 = 1000;

/// What a watch stream is told, in order.
#[derive(Debug)]
pub(crate) enum StreamMsg {
    Created {
        watch_id: i64,
        rev: i64,
    },
    /// A create request that was refused (the watcher does not exist).
    Refused {
        watch_id: i64,
        rev: i64,
        reason: String,
    },
    Events {
        watcher: WatcherKey,
        watch_id: i64,
        rev: i64,
        events: Vec<Event>,
        prev_kv: bool,
        fragment: bool,
    },
    /// The watcher is gone; `compact_rev` is non-zero when it was canceled
    /// because its next revision was compacted away.
    Canceled {
        watcher: WatcherKey,
        watch_id: i64,
        rev: i64,
        compact_rev: i64,
    },
    Progress {
        watch_id: i64,
        rev: i64,
    },
}

/// What a client asked to watch.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    pub stream: u64,
    pub watch_id: i64,
    pub range: KeyRange,
    /// First revision wanted; 0 = after the current one.
    pub start_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub fragment: bool,
    pub progress_notify: bool,
}

#[derive(Debug)]
struct Watcher {
    spec: WatchSpec,
    next_rev: i64,
    synced: bool,
    /// Events went out since the last progress notification.
    active_since_progress: bool,
    tx: mpsc::Sender<StreamMsg>,
}

impl WatchSpec {
    /// False for events the watcher's filters (NOPUT, NODELETE) drop.
    fn wants(&self, event: &Event) -> bool {
        let is_put = event.r#type == EventType::Put as i32;
        !(is_put && self.no_put || !is_put && self.no_delete)
    }
}

#[derive(Debug, Default)]
struct HubState {
    /// The newest revision whose events were published.
    last_rev: i64,
    next_key: WatcherKey,
    watchers: HashMap<WatcherKey, Watcher>,
    synced: WatcherIndex,
    /// Watchers catching up (not in `synced`).
    catching_up: usize,
    streams: HashMap<u64, HashSet<WatcherKey>>,
}

pub(crate) struct WatchHub {
    state: Mutex<HubState>,
    store: Store,
    runtime: tokio::runtime::Handle,
    max_watchers: usize,
    metrics: Arc<Metrics>,
}

/// Why a watcher could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    #[error("rollcall: too many watchers (limit {0})")]
    TooMany(usize),
}

impl WatchHub {
    /// A hub whose published history ends at `last_rev`. Catch-up tasks run on
    /// `runtime` (publishing happens on the applier thread, not on a runtime
    /// worker).
    pub(crate) fn new(
        store: Store,
        last_rev: i64,
        runtime: tokio::runtime::Handle,
        max_watchers: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState {
                last_rev,
                ..Default::default()
            }),
            store,
            runtime,
            max_watchers,
            metrics,
        })
    }

    fn update_gauges(&self, state: &HubState) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.watchers.set(count(state.watchers.len()));
        self.metrics.slow_watchers.set(count(state.catching_up));
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a watcher. `created` is the stream slot reserved for its
    /// Created response, filled under the hub lock so the response precedes
    /// every event and names the revision the watcher starts after.
    pub(crate) fn create(
        self: &Arc<Self>,
        spec: WatchSpec,
        tx: mpsc::Sender<StreamMsg>,
        created: mpsc::OwnedPermit<StreamMsg>,
    ) -> Result<WatcherKey, CreateError> {
        let mut state = self.state();
        if state.watchers.len() >= self.max_watchers {
            return Err(CreateError::TooMany(self.max_watchers));
        }
        let rev = state.last_rev;
        created.send(StreamMsg::Created {
            watch_id: spec.watch_id,
            rev,
        });
        let key = state.next_key;
        state.next_key += 1;
        let next_rev = if spec.start_rev <= 0 {
            rev + 1
        } else {
            spec.start_rev
        };
        let synced = next_rev > rev;
        if synced {
            state.synced.insert(key, &spec.range);
        } else {
            state.catching_up += 1;
        }
        state.streams.entry(spec.stream).or_default().insert(key);
        state.watchers.insert(
            key,
            Watcher {
                spec,
                next_rev,
                synced,
                active_since_progress: false,
                tx,
            },
        );
        self.update_gauges(&state);
        drop(state);
        if !synced {
            self.runtime.spawn(catch_up(self.clone(), key));
        }
        Ok(key)
    }

    /// Removes a watcher; false if it was already gone.
    pub(crate) fn cancel(&self, key: WatcherKey) -> bool {
        let mut state = self.state();
        let removed = remove(&mut state, key);
        self.update_gauges(&state);
        removed
    }

    /// Removes every watcher of a closed stream.
    pub(crate) fn close_stream(&self, stream: u64) {
        let mut state = self.state();
        for key in state.streams.remove(&stream).unwrap_or_default() {
            remove(&mut state, key);
        }
        self.update_gauges(&state);
    }

    /// Fans out one committed batch: `(revision, events)` in revision order.
    /// Called by the applier after the commit, before it answers the writers.
    pub(crate) fn publish(self: &Arc<Self>, batch: &[(i64, Vec<Event>)], last_rev: i64) {
        self.metrics.instances.observe(batch);
        let mut state = self.state();
        let mut per_watcher: HashMap<WatcherKey, Vec<(i64, &Event)>> = HashMap::new();
        for (rev, events) in batch {
            for event in events {
                let Some(kv) = &event.kv else { continue };
                state.synced.matching(&kv.key, |w| {
                    per_watcher.entry(w).or_default().push((*rev, event))
                });
            }
        }
        let mut victims = Vec::new();
        for (key, matched) in per_watcher {
            let Some(watcher) = state.watchers.get_mut(&key) else {
                continue;
            };
            let events: Vec<Event> = matched
                .iter()
                .filter(|(rev, event)| *rev >= watcher.next_rev && watcher.spec.wants(event))
                .map(|(_, event)| (*event).clone())
                .collect();
            let first = matched
                .iter()
                .map(|(rev, _)| *rev)
                .find(|rev| *rev >= watcher.next_rev);
            if events.is_empty() {
                watcher.next_rev = watcher.next_rev.max(last_rev + 1);
                continue;
            }
            let msg = StreamMsg::Events {
                watcher: key,
                watch_id: watcher.spec.watch_id,
                rev: last_rev,
                events,
                prev_kv: watcher.spec.prev_kv,
                fragment: watcher.spec.fragment,
            };
            match watcher.tx.try_send(msg) {
                Ok(()) => {
                    watcher.next_rev = last_rev + 1;
                    watcher.active_since_progress = true;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.next_rev = first.unwrap_or(watcher.next_rev);
                    victims.push(key);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    remove(&mut state, key);
                }
            }
        }
        state.last_rev = state.last_rev.max(last_rev);
        for key in victims {
            if let Some(watcher) = state.watchers.get_mut(&key) {
                watcher.synced = false;
                let range = watcher.spec.range.clone();
                state.synced.remove(key, &range);
                state.catching_up += 1;
                tracing::debug!(watcher = key, "slow watch stream: catching up from history");
                self.runtime.spawn(catch_up(self.clone(), key));
            }
        }
        self.update_gauges(&state);
    }

    /// Progress notifications for synced watchers that asked for them and saw
    /// no event since the last round.
    pub(crate) fn notify_progress(&self) {
        let mut state = self.state();
        let rev = state.last_rev;
        for watcher in state.watchers.values_mut() {
            if !watcher.synced || !watcher.spec.progress_notify {
                continue;
            }
            if !std::mem::take(&mut watcher.active_since_progress) {
                let _ = watcher.tx.try_send(StreamMsg::Progress {
                    watch_id: watcher.spec.watch_id,
                    rev,
                });
            }
        }
    }

    /// The answer to a WatchProgressRequest on `stream`: a revision every
    /// watcher of the stream has been given all events up to. Queued on the
    /// stream after what is already there, it never overtakes those events.
    /// Never below revision 1, which holds no event (the first write is
    /// revision 2): a watcher catching up from revision 1 has had every
    /// event up to it, and a header revision of 0 would read as "unset".
    pub(crate) fn progress_of(&self, stream: u64) -> StreamMsg {
        let state = self.state();
        let mut rev = state.last_rev;
        for key in state.streams.get(&stream).into_iter().flatten() {
            if let Some(w) = state.watchers.get(key)
                && !w.synced
            {
                rev = rev.min(w.next_rev - 1);
            }
        }
        StreamMsg::Progress {
            watch_id: -1,
            rev: rev.max(1),
        }
    }
}

fn remove(state: &mut HubState, key: WatcherKey) -> bool {
    let Some(watcher) = state.watchers.remove(&key) else {
        return false;
    };
    if watcher.synced {
        state.synced.remove(key, &watcher.spec.range);
    } else {
        state.catching_up = state.catching_up.saturating_sub(1);
    }
    if let Some(keys) = state.streams.get_mut(&watcher.spec.stream) {
        keys.remove(&key);
    }
    true
}

/// Brings one watcher from its `next_rev` up to the published head, then
/// joins it to the synced set.
async fn catch_up(hub: Arc<WatchHub>, key: WatcherKey) {
    loop {
        let (spec, next_rev, tx) = {
            let state = hub.state();
            let Some(w) = state.watchers.get(&key) else {
                return;
            };
            (w.spec.clone(), w.next_rev, w.tx.clone())
        };
        let read = hub.store.read(|view| {
            if next_rev < view.compact_rev {
                return Ok(Err(view.compact_rev));
            }
            let to = view.rev.min(next_rev + CATCH_UP_REVISIONS - 1);
            Ok(Ok((view.rev, to, view.events(&spec.range, next_rev, to)?)))
        });
        let (head, to, events) = match read {
            Ok(Ok(found)) => found,
            Ok(Err(compact_rev)) => {
                let rev = hub.store.current_rev();
                if hub.cancel(key) {
                    let _ = tx
                        .send(StreamMsg::Canceled {
                            watcher: key,
                            watch_id: spec.watch_id,
                            rev,
                            compact_rev,
                        })
                        .await;
                }
                return;
            }
            Err(e) => {
                report_failure(&hub, key, &spec, &tx, &e).await;
                return;
            }
        };
        let wanted: Vec<Event> = events
            .into_iter()
            .map(|(_, event)| event)
            .filter(|event| spec.wants(event))
            .collect();
        let sent = !wanted.is_empty();
        if sent {
            let msg = StreamMsg::Events {
                watcher: key,
                watch_id: spec.watch_id,
                rev: head,
                events: wanted,
                prev_kv: spec.prev_kv,
                fragment: spec.fragment,
            };
            // Waiting here is fine: only this watcher waits for its reader.
            if tx.send(msg).await.is_err() {
                hub.cancel(key);
                return;
            }
        }
        let mut state = hub.state();
        let last_rev = state.last_rev;
        let Some(watcher) = state.watchers.get_mut(&key) else {
            return;
        };
        watcher.next_rev = watcher.next_rev.max(to + 1);
        watcher.active_since_progress |= sent;
        if watcher.next_rev > last_rev {
            watcher.synced = true;
            let range = watcher.spec.range.clone();
            state.synced.insert(key, &range);
            state.catching_up = state.catching_up.saturating_sub(1);
            hub.update_gauges(&state);
            return;
        }
    }
}

async fn report_failure(
    hub: &WatchHub,
    key: WatcherKey,
    spec: &WatchSpec,
    tx: &mpsc::Sender<StreamMsg>,
    e: &Error,
) {
    tracing::error!(watcher = key, error = %e, "reading history for a watcher failed; canceling it");
    if hub.cancel(key) {
        let rev = hub.store.current_rev();
        let _ = tx
            .send(StreamMsg::Canceled {
                watcher: key,
                watch_id: spec.watch_id,
                rev,
                compact_rev: 0,
            })
            .await;
    }
}
