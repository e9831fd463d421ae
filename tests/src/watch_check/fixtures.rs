//! A small committed history and the streams a correct server sends for
//! it, for the validators' tests to break.

use std::collections::HashMap;

use super::*;

/// Commits `(revision, key, Some(value) | None for a delete)` in order,
/// deriving create_revision, version and prev_kv like the server.
pub(super) fn commit(ops: &[(i64, &str, Option<&str>)]) -> Vec<Event> {
    let mut state: HashMap<Vec<u8>, KeyValue> = HashMap::new();
    let mut events = Vec::new();
    for &(rev, key, value) in ops {
        let key = key.as_bytes().to_vec();
        let prev = state.get(&key).cloned();
        let event = match value {
            Some(value) => {
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.as_bytes().to_vec(),
                    create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                    mod_revision: rev,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    lease: 0,
                };
                state.insert(key, kv.clone());
                Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv: prev,
                }
            }
            None => {
                state.remove(&key);
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key,
                        mod_revision: rev,
                        ..KeyValue::default()
                    },
                    prev_kv: prev,
                }
            }
        };
        events.push(event);
    }
    events
}

pub(super) fn history() -> Vec<Event> {
    commit(&[
        (2, "k/a", Some("1")),
        (3, "k/b", Some("1")),
        (4, "k/a", Some("2")),
        // One transaction, two keys.
        (5, "k/c", Some("1")),
        (5, "k/d", Some("1")),
        (6, "k/a", None),
        (7, "k/a", Some("3")),
        (8, "z", Some("1")),
    ])
}

pub(super) fn truth() -> GroundTruth {
    GroundTruth::new(history()).unwrap()
}

pub(super) const LAST: i64 = 8;

pub(super) fn request(range: KeyRange, start_revision: i64, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        range,
        start_revision,
        prev_kv,
        ..WatchRequest::default()
    }
}

pub(super) fn everything() -> KeyRange {
    KeyRange {
        key: vec![0],
        range_end: vec![0],
    }
}

pub(super) fn progress(revision: i64) -> WatchResponse {
    WatchResponse {
        header_revision: revision,
        ..WatchResponse::default()
    }
}

/// What a correct server sends `request` when events from revision `from`
/// on are due: a created response, one response per revision, and a final
/// progress notification.
pub(super) fn stream(request: &WatchRequest, from: i64) -> Vec<WatchResponse> {
    let mut responses = vec![WatchResponse {
        header_revision: from - 1,
        created: true,
        ..WatchResponse::default()
    }];
    for rev in from..=LAST {
        let events: Vec<Event> = history()
            .into_iter()
            .filter(|e| e.revision() == rev && request.matches(e))
            .map(|mut e| {
                if !request.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect();
        if !events.is_empty() {
            responses.push(WatchResponse {
                header_revision: rev,
                events,
                ..WatchResponse::default()
            });
        }
    }
    responses.push(progress(LAST));
    responses
}

pub(super) fn log(request: WatchRequest, responses: Vec<WatchResponse>) -> WatcherLog {
    WatcherLog {
        name: "w1".to_owned(),
        request,
        responses,
    }
}

/// A correct log of `request` from `from`, for mutation.
pub(super) fn good(request: WatchRequest, from: i64) -> WatcherLog {
    let responses = stream(&request, from);
    log(request, responses)
}

#[track_caller]
pub(super) fn broken(log: &WatcherLog) -> WatchViolations {
    match check(&truth(), std::slice::from_ref(log)) {
        Ok(report) => panic!("expected violations, got {report:?}"),
        Err(v) => v,
    }
}

#[track_caller]
pub(super) fn breaks_only(log: &WatcherLog, property: Property) -> String {
    let v = broken(log);
    assert_eq!(v.properties(), vec![property], "{v}");
    v.to_string()
}
