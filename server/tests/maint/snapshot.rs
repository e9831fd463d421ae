//! Maintenance.Snapshot and `rollcall snapshot restore`.
//!
//! - The stream ends with the SHA-256 of what precedes it, and
//!   `etcdctl snapshot save` succeeds with its usual output (both checked
//!   against etcd too).
//! - A snapshot saved by etcdctl while a writer keeps writing restores into a
//!   fresh directory; a member started on it has a consistent cut of the
//!   original (exactly the original's data at the restored revision, which
//!   includes every write acknowledged before the snapshot started), the same
//!   HashKV at that revision, the leases with their keys, and new ids.
//! - Restore refuses a directory holding a database, a non-empty directory,
//!   a corrupt, truncated or missing file, and a file with a valid checksum
//!   that is no database, with a non-zero exit, a clear message, and nothing
//!   left behind.
//! - The snapshot is staged in the data dir; nothing is left there after the
//!   stream ends or the client abandons it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_proto::etcdserverpb::{
    LeaseLeasesRequest, LeaseTimeToLiveRequest, PutRequest, SnapshotRequest,
};
use rollcall_tests::Tool;
use rollcall_tests::etcdctl::Etcdctl;

use crate::support::{
    Kind, Member, Run, b, blob, dir_entries, eventually, has_sha256_trailer, have, keys, restore,
    rev, snapshot_stream,
};

backend_tests!(snapshot_stream_ends_with_its_sha256, etcdctl_snapshot_save);

async fn snapshot_stream_ends_with_its_sha256(kind: Kind) {
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    for i in 0..100 {
        c.put(&format!("k/{i:03}"), &blob(2000)).await;
    }
    let (bytes, remaining) = snapshot_stream(&mut c).await;
    assert!(bytes.len() > 100 * 2000, "{} bytes", bytes.len());
    assert!(has_sha256_trailer(&bytes), "no SHA-256 trailer");
    assert!(
        remaining.windows(2).all(|w| w[0] >= w[1]),
        "remaining_bytes goes up: {remaining:?}"
    );
    assert_eq!(remaining.last(), Some(&0), "{remaining:?}");
    assert!(
        remaining.len() >= 2,
        "at least one data message and the checksum"
    );
    if kind == Kind::Rollcall {
        assert_only_the_database_left(&m).await;
    }
}

/// rollcall stages a snapshot in its data dir: once the stream is over (or
/// abandoned), only the database is left there.
async fn assert_only_the_database_left(m: &Member) {
    let dir = m.db_file().parent().unwrap().to_path_buf();
    let clean = eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        let entries = dir_entries(&dir);
        async move { (entries == ["rollcall.redb"]).then_some(()) }
    })
    .await;
    assert!(
        clean.is_some(),
        "{} still holds {:?}",
        dir.display(),
        dir_entries(&dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_snapshot_stream_leaves_no_temp_file() {
    let m = Member::start(Kind::Rollcall, &[]).await;
    let mut c = m.client().await;
    for i in 0..60 {
        c.put(&format!("k/{i:02}"), &blob(50_000)).await;
    }
    {
        // A fresh connection, dropped after the first message.
        let mut other = m.client().await;
        let mut stream = other
            .maintenance
            .snapshot(SnapshotRequest {})
            .await
            .expect("Snapshot")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a first snapshot message in time")
            .expect("first message")
            .expect("not the end yet");
        assert!(first.remaining_bytes > 0);
    }
    assert_only_the_database_left(&m).await;
    // The member is fine and snapshots again.
    let (bytes, _) = snapshot_stream(&mut c).await;
    assert!(has_sha256_trailer(&bytes));
    assert_only_the_database_left(&m).await;
}

async fn etcdctl_snapshot_save(kind: Kind) {
    if !have(Tool::Etcdctl, "snapshot::etcdctl_snapshot_save") {
        return;
    }
    let m = Member::start(kind, &[]).await;
    let mut c = m.client().await;
    c.put("a", "1").await;
    let file = m.scratch().join("saved.db");
    let path = file.to_str().unwrap();
    let out = Etcdctl::new(m.endpoint())
        .run(&["snapshot", "save", path])
        .await
        .unwrap();
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains(&format!("Snapshot saved at {path}")),
        "{out:?}"
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        has_sha256_trailer(&bytes),
        "the saved file ends with no SHA-256"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_under_writes_restores_to_a_consistent_member() {
    if !have(
        Tool::Etcdctl,
        "snapshot::snapshot_under_writes_restores_to_a_consistent_member",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Rollcall, &[]).await;
    let mut c = m.client().await;
    let original = c.status().await.header.unwrap();

    let leases = [0x100_i64, 0x200, 0x300];
    for (i, id) in leases.iter().enumerate() {
        c.try_grant(600, *id).await.expect("grant");
        c.try_put(PutRequest {
            key: b(&format!("svc/{i}")),
            value: b("addr"),
            lease: *id,
            ..PutRequest::default()
        })
        .await
        .expect("leased put");
    }
    for i in 0..300 {
        c.put(&format!("base/{i:03}"), &blob(1000)).await;
    }

    // A writer that keeps writing new keys and records what was acknowledged.
    let acks: Arc<Mutex<Vec<(String, String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acks, stop, mut c) = (acks.clone(), stop.clone(), c.clone());
        tokio::spawn(async move {
            for n in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (key, value) = (format!("w/{n:06}"), format!("v{n}"));
                let r = c.put(&key, &value).await;
                acks.lock().unwrap().push((key, value, r));
            }
        })
    };
    let started = eventually(Duration::from_secs(10), Duration::from_millis(10), || {
        let n = acks.lock().unwrap().len();
        async move { (n >= 20).then_some(()) }
    })
    .await;
    assert!(started.is_some(), "the writer got no 20 writes in 10 s");

    // Everything acknowledged before the snapshot starts must be in it.
    let before = acks.lock().unwrap().clone();
    let file = work.path().join("under-writes.db");
    let path = file.to_str().unwrap();
    let save = Etcdctl::new(m.endpoint())
        .run(&["snapshot", "save", path])
        .await
        .unwrap();
    let during = acks.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the writer stops")
        .expect("the writer did not panic");
    assert!(save.success, "{save:?}");
    assert!(save.stdout.contains("Snapshot saved at"), "{save:?}");
    assert!(
        during > 0,
        "no write completed while the snapshot was taken"
    );

    let dir = work.path().join("restored");
    let run = restore(&file, &dir).await;
    assert!(run.success(), "{run:?}");
    assert!(run.stdout.contains("restored"), "{run:?}");

    let r = Member::start_in(Kind::Rollcall, &dir, &[]).await;
    let mut rc = r.client().await;
    let (snap_rev, restored) = rc.all_at(0).await;
    let last_before = before.last().unwrap().2;
    assert!(
        snap_rev >= last_before,
        "restored at {snap_rev}, before the last write acknowledged before the snapshot ({last_before})"
    );
    for (key, value, r) in &before {
        let found = restored.iter().find(|kv| kv.key == b(key));
        let found = found.unwrap_or_else(|| panic!("{key} (revision {r}) is not restored"));
        assert_eq!((&found.value, found.mod_revision), (&b(value), *r), "{key}");
    }
    // A consistent cut: exactly the original's data at that revision.
    let (_, original_at) = c.all_at(snap_rev).await;
    assert_eq!(keys(&restored), keys(&original_at));
    assert_eq!(restored, original_at);
    assert_eq!(
        rc.hash_kv(0).await.hash,
        c.hash_kv(snap_rev).await.hash,
        "HashKV of the restored member vs the original at {snap_rev}"
    );

    // The leases, with their keys.
    let mut listed: Vec<i64> = rc
        .lease
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner()
        .leases
        .iter()
        .map(|l| l.id)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, leases);
    for (i, id) in leases.iter().enumerate() {
        let ttl = rc
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: *id,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ttl.granted_ttl, 600, "{ttl:?}");
        assert!(ttl.ttl > 0, "{ttl:?}");
        assert_eq!(ttl.keys, vec![b(&format!("svc/{i}"))], "{ttl:?}");
    }
    rc.try_revoke(leases[0])
        .await
        .expect("revoke on the restored member");
    assert_eq!(rc.get("svc/0").await, None);

    // A new member of a new cluster, taking writes after the snapshot's
    // revision (the revoke above took one).
    let header = rc.status().await.header.unwrap();
    assert_ne!(header.cluster_id, original.cluster_id);
    assert_ne!(header.member_id, original.member_id);
    assert_eq!(rc.put("after-restore", "1").await, snap_rev + 2);
    assert!(rc.alarms().await.is_empty());
}

/// A snapshot of a small rollcall database, streamed into `dir/name`.
async fn snapshot_file(dir: &Path, name: &str) -> PathBuf {
    let m = Member::start(Kind::Rollcall, &[]).await;
    let mut c = m.client().await;
    for i in 0..50 {
        c.put(&format!("k/{i:02}"), &format!("v{i}")).await;
    }
    let (bytes, _) = snapshot_stream(&mut c).await;
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    file
}

#[track_caller]
fn assert_refused(run: &Run, words: &str) {
    assert!(
        run.code().is_some_and(|c| c != 0),
        "`{}` did not fail: {run:?}",
        run.command
    );
    assert!(
        run.stderr.contains(words),
        "`{}`: stderr does not say {words:?}: {}",
        run.command,
        run.stderr
    );
}

/// A data directory a refused restore left: no database, no partial file.
#[track_caller]
fn assert_nothing_restored(dir: &Path) {
    let left = dir_entries(dir);
    assert!(left.is_empty(), "{} holds {left:?}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_data_dir_holding_a_database() {
    let work = tempfile::tempdir().unwrap();
    let file = snapshot_file(work.path(), "snap.db").await;
    let dir = work.path().join("member");
    let first = restore(&file, &dir).await;
    assert!(first.success(), "{first:?}");
    let db = dir.join("rollcall.redb");
    let contents = std::fs::read(&db).unwrap();

    let again = restore(&file, &dir).await;
    assert_refused(&again, "empty data directory");
    assert!(again.stderr.contains(dir.to_str().unwrap()), "{again:?}");
    assert_eq!(dir_entries(&dir), ["rollcall.redb"]);
    assert!(
        std::fs::read(&db).unwrap() == contents,
        "the database changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_non_empty_data_dir() {
    let work = tempfile::tempdir().unwrap();
    let file = snapshot_file(work.path(), "snap.db").await;
    let dir = work.path().join("busy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a database").unwrap();

    let run = restore(&file, &dir).await;
    assert!(
        run.code().is_some_and(|c| c != 0),
        "restore into a non-empty directory succeeded: {run:?}; it now holds {:?}",
        dir_entries(&dir)
    );
    assert_eq!(dir_entries(&dir), ["notes.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_corrupt_truncated_or_missing_file() {
    let work = tempfile::tempdir().unwrap();
    let file = snapshot_file(work.path(), "good.db").await;
    let good = std::fs::read(&file).unwrap();
    assert!(has_sha256_trailer(&good));
    let len = good.len();

    let flip = |at: usize| {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        bad
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("body-flipped", flip(len / 2), "checksum mismatch"),
        ("first-byte-flipped", flip(0), "checksum mismatch"),
        ("trailer-flipped", flip(len - 5), "checksum mismatch"),
        ("truncated", good[..len - 100].to_vec(), "checksum mismatch"),
        ("tiny", good[..10].to_vec(), "too short"),
    ];
    for (i, (name, bytes, words)) in cases.into_iter().enumerate() {
        let bad = work.path().join(format!("{name}.db"));
        std::fs::write(&bad, bytes).unwrap();
        let dir = work.path().join(format!("into-{i}"));
        let run = restore(&bad, &dir).await;
        assert_refused(&run, words);
        assert!(run.stderr.contains(bad.to_str().unwrap()), "{run:?}");
        assert_nothing_restored(&dir);
    }
    let missing = work.path().join("missing.db");
    let dir = work.path().join("into-missing");
    let run = restore(&missing, &dir).await;
    assert_refused(&run, missing.to_str().unwrap());
    assert_nothing_restored(&dir);

    // A directory a refused restore used takes the intact file.
    let dir = work.path().join("into-0");
    let run = restore(&file, &dir).await;
    assert!(run.success(), "{run:?}");
    let m = Member::start_in(Kind::Rollcall, &dir, &[]).await;
    let mut c = m.client().await;
    let (revision, all) = c.all_at(0).await;
    assert_eq!(all.len(), 50);
    assert_eq!(revision, 51);
    assert_eq!(c.get("k/07").await.unwrap().value, b("v7"));
    assert_eq!(rev(c.status().await.header.as_ref()), 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_checksummed_file_that_is_not_a_database() {
    use sha2::{Digest, Sha256};
    let work = tempfile::tempdir().unwrap();
    // What an etcd (bbolt) backup or any other file looks like to restore:
    // a body and a valid SHA-256 of it, but no redb database.
    let mut rng = rollcall_tests::rng::SplitMix64::new(42);
    let mut bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| rng.next_u64().to_le_bytes()[0])
        .collect();
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let junk = work.path().join("not-a-database.db");
    std::fs::write(&junk, &bytes).unwrap();
    let dir = work.path().join("member");

    let run = restore(&junk, &dir).await;
    assert!(run.code().is_some_and(|c| c != 0), "{run:?}");
    assert_nothing_restored(&dir);

    // The directory is still usable for a real snapshot.
    let file = snapshot_file(work.path(), "good.db").await;
    let run = restore(&file, &dir).await;
    assert!(run.success(), "{run:?}");
}
