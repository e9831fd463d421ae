//! The validators' own tests: correct streams derived from a small history
//! pass, and each kind of broken stream is reported under its property.

use super::fixtures::*;
use super::*;

#[test]
fn correct_streams_pass() {
    let no_delete = WatchRequest {
        no_delete: true,
        ..request(KeyRange::key("k/a"), 1, false)
    };
    let mut logs = vec![
        good(request(everything(), 1, true), 1),
        good(request(KeyRange::prefix("k/"), 2, false), 2),
        good(no_delete, 1),
        // Resumed after revision 4.
        good(request(KeyRange::prefix("k/"), 5, true), 5),
        // From "now", after revision 3: the start is not checked.
        good(request(KeyRange::prefix("k/"), 0, false), 4),
    ];
    // Several revisions in one response are fine, as long as none is split.
    let mut batched = good(request(everything(), 2, false), 2);
    let events: Vec<Event> = batched
        .responses
        .drain(1..)
        .flat_map(|r| r.events)
        .collect();
    batched.responses.push(WatchResponse {
        header_revision: LAST,
        events,
        ..WatchResponse::default()
    });
    logs.push(batched);
    let report = check(&truth(), &logs).unwrap();
    assert_eq!(report.watchers, 6);
    assert_eq!(report.progress_notifications, 5);
    assert_eq!(report.events, 8 + 7 + 3 + 4 + 5 + 8);
}

#[test]
fn a_ground_truth_from_a_full_history_watch() {
    let all = good(request(everything(), 1, true), 1);
    let truth = GroundTruth::from_responses(&all.responses).unwrap();
    assert_eq!(truth.events().len(), 8);
    assert_eq!(truth.last_revision(), LAST);
}

#[test]
fn events_going_back_break_ordered() {
    let mut log = good(request(KeyRange::prefix("k/"), 1, false), 1);
    log.responses.swap(2, 3);
    breaks_only(&log, Property::Ordered);
    // Within a transaction, events keep the order it applied them in.
    let mut log = good(request(everything(), 1, false), 1);
    let txn = log
        .responses
        .iter_mut()
        .find(|r| r.header_revision == 5)
        .unwrap();
    txn.events.swap(0, 1);
    breaks_only(&log, Property::Ordered);
}

#[test]
fn an_event_twice_breaks_unique() {
    let mut log = good(request(everything(), 1, false), 1);
    let again = log.responses[2].clone();
    log.responses.insert(3, again);
    breaks_only(&log, Property::Unique);
}

#[test]
fn a_split_revision_breaks_atomic() {
    let mut log = good(request(everything(), 1, false), 1);
    let at = log
        .responses
        .iter()
        .position(|r| r.header_revision == 5)
        .unwrap();
    let second = log.responses[at].events.pop().unwrap();
    log.responses.insert(
        at + 1,
        WatchResponse {
            header_revision: 5,
            events: vec![second],
            ..WatchResponse::default()
        },
    );
    let text = breaks_only(&log, Property::Atomic);
    assert!(text.contains("only part of revision 5"), "{text}");
}

#[test]
fn a_gap_breaks_reliable() {
    let mut log = good(request(KeyRange::prefix("k/"), 1, false), 1);
    log.responses.retain(|r| r.header_revision != 4);
    log.responses.pop(); // the progress notification would report it too
    let text = breaks_only(&log, Property::Reliable);
    assert!(text.contains("PUT \"k/a\"=\"2\" @4"), "{text}");
}

#[test]
fn a_late_first_event_breaks_resumable() {
    let mut log = good(request(KeyRange::prefix("k/"), 4, false), 4);
    log.responses.retain(|r| r.header_revision != 4);
    log.responses.pop();
    breaks_only(&log, Property::Resumable);
    // Nor may a watch deliver anything before its start revision.
    let mut log = good(request(KeyRange::prefix("k/"), 4, false), 4);
    let early = good(request(KeyRange::prefix("k/"), 1, false), 1).responses[1].clone();
    log.responses.insert(1, early);
    breaks_only(&log, Property::Resumable);
}

#[test]
fn a_premature_progress_notification_breaks_bookmarkable() {
    // At revision 5 before the events of revision 5 arrived.
    let mut log = good(request(everything(), 1, false), 1);
    let at = log
        .responses
        .iter()
        .position(|r| r.header_revision == 5)
        .unwrap();
    log.responses.insert(at, progress(5));
    breaks_only(&log, Property::Bookmarkable);
    // At a revision older than an event already delivered.
    let mut log = good(request(everything(), 1, false), 1);
    let at = log
        .responses
        .iter()
        .position(|r| r.header_revision == 5)
        .unwrap();
    log.responses.insert(at + 1, progress(4));
    breaks_only(&log, Property::Bookmarkable);
}

#[test]
fn wrong_creation_fields_break_is_create() {
    let mut log = good(request(everything(), 1, false), 1);
    let recreated = log
        .responses
        .iter_mut()
        .find(|r| r.header_revision == 7)
        .unwrap();
    // As if the delete at 6 had not ended the key's first incarnation.
    recreated.events[0].kv.create_revision = 2;
    recreated.events[0].kv.version = 3;
    let text = breaks_only(&log, Property::IsCreate);
    assert!(text.contains("creates the key"), "{text}");
}

#[test]
fn a_wrong_or_unasked_prev_kv_breaks_prev_kv() {
    let mut log = good(request(everything(), 1, true), 1);
    let update = log
        .responses
        .iter_mut()
        .find(|r| r.header_revision == 4)
        .unwrap();
    update.events[0].prev_kv = None;
    breaks_only(&log, Property::PrevKv);
    let mut log = good(request(everything(), 1, false), 1);
    let update = log
        .responses
        .iter_mut()
        .find(|r| r.header_revision == 4)
        .unwrap();
    update.events[0].prev_kv = history()[2].prev_kv.clone();
    breaks_only(&log, Property::PrevKv);
}

#[test]
fn events_outside_the_range_or_filter_break_filter() {
    let no_delete = WatchRequest {
        no_delete: true,
        ..request(KeyRange::key("k/a"), 1, false)
    };
    let mut log = good(no_delete, 1);
    let mut delete = history()[5].clone();
    delete.prev_kv = None;
    log.responses.insert(
        3,
        WatchResponse {
            header_revision: 6,
            events: vec![delete],
            ..WatchResponse::default()
        },
    );
    breaks_only(&log, Property::Filter);
    let mut log = good(request(KeyRange::prefix("k/"), 1, false), 1);
    let stray = good(request(everything(), 1, false), 1).responses;
    let z = stray
        .iter()
        .find(|r| r.header_revision == 8)
        .unwrap()
        .clone();
    let at = log.responses.len() - 1;
    log.responses.insert(at, z);
    breaks_only(&log, Property::Filter);
}

#[test]
fn events_unlike_the_committed_ones_break_committed() {
    let mut log = good(request(everything(), 1, false), 1);
    log.responses[1].events[0].kv.value = b"forged".to_vec();
    breaks_only(&log, Property::Committed);
    let mut log = good(request(everything(), 1, false), 1);
    let mut phantom = log.responses[1].clone();
    phantom.header_revision = 9;
    phantom.events[0].kv.mod_revision = 9;
    phantom.events[0].kv.create_revision = 9;
    log.responses.push(phantom);
    breaks_only(&log, Property::Committed);
}

#[test]
fn a_response_after_the_cancel_breaks_canceled() {
    let mut log = good(request(everything(), 1, false), 1);
    log.responses.insert(
        3,
        WatchResponse {
            header_revision: 3,
            canceled: true,
            ..WatchResponse::default()
        },
    );
    breaks_only(&log, Property::Canceled);
}

#[test]
fn a_ground_truth_that_contradicts_itself_is_rejected() {
    let mut events = history();
    events[2].kv.version = 1; // the update at 4 claims to create k/a
    let v = GroundTruth::new(events).unwrap_err();
    // The delete at 6 then also carries a prev_kv unlike the record before it.
    assert_eq!(
        v.properties(),
        vec![Property::IsCreate, Property::PrevKv],
        "{v}"
    );
    let mut events = history();
    events.swap(0, 1);
    assert!(GroundTruth::new(events).unwrap_err().has(Property::Ordered));
    let v = GroundTruth::new(commit(&[(2, "k", None)])).unwrap_err();
    assert!(v.has(Property::GroundTruth), "{v}");
    let mut events = history();
    events[6].prev_kv = events[2].prev_kv.clone();
    assert!(GroundTruth::new(events).unwrap_err().has(Property::PrevKv));
}

#[test]
fn violations_name_the_watcher_and_the_property() {
    let mut log = good(request(KeyRange::prefix("k/"), 1, false), 1);
    log.name = "member-2 watcher".to_owned();
    log.responses.retain(|r| r.header_revision != 4);
    let text = broken(&log).to_string();
    assert!(text.contains("[reliable] member-2 watcher: "), "{text}");
    assert!(text.contains("[bookmarkable] member-2 watcher: "), "{text}");
}

#[test]
fn wire_responses_convert_and_fragments_merge() {
    use rollcall_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest};
    use rollcall_proto::mvccpb;

    let wire_event = |key: &str, rev| mvccpb::Event {
        r#type: 0,
        kv: Some(mvccpb::KeyValue {
            key: key.as_bytes().to_vec().into(),
            mod_revision: rev,
            ..mvccpb::KeyValue::default()
        }),
        prev_kv: None,
    };
    let wire = |id, fragment, events| rollcall_proto::etcdserverpb::WatchResponse {
        header: Some(ResponseHeader {
            revision: 5,
            ..ResponseHeader::default()
        }),
        watch_id: id,
        fragment,
        events,
        ..Default::default()
    };
    let stream = [
        wire(1, true, vec![wire_event("a", 5)]),
        wire(2, false, vec![wire_event("x", 5)]),
        wire(1, false, vec![wire_event("b", 5)]),
        wire(1, false, vec![wire_event("c", 6)]),
        wire(-1, false, vec![]),
    ];
    let merged = WatchResponse::from_stream(&stream, 1);
    assert_eq!(merged.len(), 3);
    assert!(merged[2].is_progress_notify());
    assert_eq!(merged[0].events.len(), 2);
    assert_eq!(merged[0].header_revision, 5);
    assert_eq!(merged[1].events[0].kv.key, b"c");
    assert_eq!(merged[1].events[0].kind, EventKind::Put);

    let create = crate::events::Range::prefix("k/").create();
    let request = WatchRequest::from(&WatchCreateRequest {
        filters: crate::events::filters(false, true),
        prev_kv: true,
        start_revision: 3,
        ..create
    });
    assert_eq!(request.range, KeyRange::prefix("k/"));
    assert_eq!(
        KeyRange::from(&crate::events::Range::prefix("k/")),
        request.range
    );
    assert!(request.no_delete && !request.no_put && request.prev_kv);
    assert!(request.range.contains(b"k/x") && !request.range.contains(b"k0"));
}
