//! Faults a cluster survives: kill -9 of the leader (a new one is elected
//! and writes go on through the survivors; the killed member restarts on
//! its data dir and catches up), and SIGSTOP of two members (the last one
//! has no quorum: it refuses writes and linearizable reads within the
//! request timeout but still answers serializable reads; SIGCONT heals it,
//! and every member agrees on the fate of the write that timed out).

use std::time::{Duration, Instant};

use rollcall_tests::Backend;

use crate::support::{caught_up, get, leader, put, put_eventually, three};

backend_tests!(
    a_killed_leader_is_replaced_and_rejoins,
    a_minority_refuses_writes_and_linearizable_reads,
);

async fn a_killed_leader_is_replaced_and_rejoins(backend: Backend) {
    let mut cluster = three(backend).await;
    put_eventually(cluster.member(0), "before", "1").await;
    let old = leader(&cluster).await;
    cluster.member_mut(old).kill9().unwrap();
    let survivor = (old + 1) % 3;
    let started = Instant::now();
    put_eventually(cluster.member(survivor), "after", "2").await;
    eprintln!(
        "{}: first acknowledged write {:?} after the leader's kill -9",
        cluster.member(survivor).backend().name(),
        started.elapsed()
    );
    let new = leader(&cluster).await;
    assert_ne!(new, old, "a killed member cannot lead");
    for member in [survivor, (old + 2) % 3] {
        assert_eq!(
            get(cluster.member(member), "after", false)
                .await
                .unwrap()
                .as_deref(),
            Some("2")
        );
    }
    // Restarted with the same command line on its data dir, it rejoins and
    // gets the write it missed.
    cluster.member_mut(old).restart().await.unwrap();
    caught_up(cluster.member(old), "after", "2").await;
    caught_up(cluster.member(old), "before", "1").await;
    // And it serves writes again.
    put_eventually(cluster.member(old), "again", "3").await;
}

async fn a_minority_refuses_writes_and_linearizable_reads(backend: Backend) {
    let mut cluster = three(backend).await;
    put_eventually(cluster.member(0), "k", "v").await;
    for member in cluster.members() {
        caught_up(member, "k", "v").await;
    }
    cluster.member_mut(1).pause().unwrap();
    cluster.member_mut(2).pause().unwrap();
    let alone = cluster.member(0);
    let started = Instant::now();
    let write = put(alone, "lost", "x").await;
    assert!(write.is_err(), "committed without a quorum: {write:?}");
    let linearizable = get(alone, "k", false).await;
    assert!(
        linearizable.is_err(),
        "linearizable read without a quorum: {linearizable:?}"
    );
    // Both refused within etcd's request timeout (7 s with these timings)
    // plus the client's own bound.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    // Serializable reads still answer from the member's own state.
    assert_eq!(get(alone, "k", true).await.unwrap().as_deref(), Some("v"));
    cluster.member_mut(1).resume().unwrap();
    cluster.member_mut(2).resume().unwrap();
    put_eventually(cluster.member(0), "healed", "y").await;
    for member in cluster.members() {
        caught_up(member, "healed", "y").await;
    }
    // The timed-out write is indeterminate: a lone leader that kept its
    // leadership may commit it once the others are back (etcd's leader
    // steps down instead, and it is lost). Either way every member agrees.
    let lost = get(cluster.member(0), "lost", false).await.unwrap();
    for member in cluster.members() {
        assert_eq!(
            get(member, "lost", false).await.unwrap(),
            lost,
            "{}",
            member.name()
        );
    }
}
