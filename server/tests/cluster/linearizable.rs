//! A Jepsen-style run: concurrent clients read, write and compare-and-set a
//! few keys through every member while a nemesis kills (-9) and pauses
//! (SIGSTOP) members, the leader among them; every operation is recorded
//! with its invocation and completion times and the whole history is
//! checked for linearizability (`rollcall_tests::linearizability`: timed-out
//! and failed writes are indeterminate). Meanwhile a watcher per member
//! follows the keys, moving to the next member when its stream breaks; what
//! each stream delivered is checked against the full history
//! (`rollcall_tests::watch_check`): in order, no duplicate, no gap, resumed
//! exactly where it left off, the same revisions on every member. After the
//! faults, the cluster must serve every member again. Bounded: about 30 s
//! of load per backend; a soak runs longer with `ROLLCALL_SOAK_ROUNDS=N`
//! (N faults, about 5 s each) and `ROLLCALL_TEST_TIMEOUT_SECS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rollcall_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::request_op::Request as Op;
use rollcall_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use rollcall_tests::grpc::b;
use rollcall_tests::linearizability::{Budget, History, Observed, OpKind, Outcome};
use rollcall_tests::rng::SplitMix64;
use rollcall_tests::{Backend, Cluster, Tool, require_or_skip};
use tonic::transport::{Channel, Endpoint};

use rollcall_tests::watch_check;

use crate::failover_watch;
use crate::support::{leader, on_own_hosts, put_eventually, three};

backend_tests!(
    operations_stay_linearizable_under_kills_and_pauses,
    operations_stay_linearizable_under_partitions,
);

const CLIENTS: u64 = 6;
const KEYS: [&str; 4] = ["lin/a", "lin/b", "lin/c", "lin/d"];
/// One RPC's bound: past it the operation is indeterminate.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Faults injected, one every few seconds (a soak run sets
/// `ROLLCALL_SOAK_ROUNDS`, with `ROLLCALL_TEST_TIMEOUT_SECS` to match).
const FAULTS: usize = 6;

/// How many faults this run injects.
fn fault_rounds() -> usize {
    std::env::var("ROLLCALL_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FAULTS)
}
/// How long a member stays killed or paused: longer than the slowest
/// election (twice the 1 s election timeout), so the survivors must make
/// progress without it.
const FAULT_LENGTH: Duration = Duration::from_secs(3);

fn kv(endpoint: &str) -> KvClient<Channel> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(OP_TIMEOUT)
        .connect_lazy();
    KvClient::new(channel)
}

/// One operation against `client`, recorded in `history`; returns whether
/// it got a definite answer (a failed one makes the client try another
/// member next).
async fn one_op(
    client: &mut KvClient<Channel>,
    history: &History,
    id: u64,
    rng: &mut SplitMix64,
    seq: u64,
) -> bool {
    let key = *rng.pick(&KEYS);
    let roll = rng.below(100);
    if roll < 40 {
        let handle = history.invoke(id, key, OpKind::Get);
        let got = client
            .range(RangeRequest {
                key: b(key),
                ..RangeRequest::default()
            })
            .await;
        match got {
            Ok(resp) => {
                let value = resp.into_inner().kvs.first().map(|kv| kv.value.to_vec());
                history.complete(handle, Outcome::Ok(Observed::Get(value)));
                true
            }
            Err(_) => false,
        }
    } else if roll < 70 {
        let value = format!("c{id}-{seq}").into_bytes();
        let handle = history.invoke(
            id,
            key,
            OpKind::Put {
                value: value.clone(),
            },
        );
        let put = client
            .put(PutRequest {
                key: b(key),
                value: value.into(),
                ..PutRequest::default()
            })
            .await;
        match put {
            Ok(_) => {
                history.complete(handle, Outcome::Ok(Observed::Put));
                true
            }
            Err(_) => false,
        }
    } else {
        // Compare against what this client last wrote anywhere, or absence:
        // some succeed, some do not.
        let expected = if rng.chance(30) {
            None
        } else {
            Some(format!("c{id}-{}", seq.saturating_sub(1 + rng.below(3))).into_bytes())
        };
        let new = format!("c{id}-{seq}").into_bytes();
        let handle = history.invoke(
            id,
            key,
            OpKind::CompareAndSet {
                expected: expected.clone(),
                new: new.clone(),
            },
        );
        let compare = match &expected {
            Some(v) => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: b(key),
                target_union: Some(TargetUnion::Value(v.clone().into())),
                ..Compare::default()
            },
            None => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: b(key),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Compare::default()
            },
        };
        let txn = client
            .txn(TxnRequest {
                compare: vec![compare],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: b(key),
                        value: new.into(),
                        ..PutRequest::default()
                    })),
                }],
                failure: Vec::new(),
            })
            .await;
        match txn {
            Ok(resp) => {
                let succeeded = resp.into_inner().succeeded;
                history.complete(handle, Outcome::Ok(Observed::CompareAndSet { succeeded }));
                true
            }
            Err(_) => false,
        }
    }
}

async fn operations_stay_linearizable_under_kills_and_pauses(backend: Backend) {
    let cluster = three(backend.clone()).await;
    run(backend, cluster, Nemesis::CrashesAndPauses).await;
}

async fn operations_stay_linearizable_under_partitions(backend: Backend) {
    if !require_or_skip(Tool::Netns, "operations_stay_linearizable_under_partitions") {
        return;
    }
    let cluster = on_own_hosts(backend.clone()).await;
    run(backend, cluster, Nemesis::Partitions).await;
}

/// What the nemesis does to the members.
#[derive(Debug, Clone, Copy)]
enum Nemesis {
    /// kill -9 (then a restart) and SIGSTOP (then SIGCONT), of the leader
    /// and of followers in turn.
    CrashesAndPauses,
    /// Cut links: the leader alone, a follower alone, and the leader cut
    /// from one follower only (the third member still reaches both).
    Partitions,
}

/// Clients and watchers on every member while `nemesis` strikes, then
/// the checks.
async fn run(backend: Backend, mut cluster: Cluster, nemesis: Nemesis) {
    let endpoints = cluster.endpoints();
    let history = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let definite = Arc::new(AtomicU64::new(0));
    let stop_watching = Arc::new(AtomicBool::new(false));
    let mut watchers = tokio::task::JoinSet::new();
    for first in 0..endpoints.len() {
        watchers.spawn(failover_watch::follow(
            format!("watcher {first}"),
            endpoints.clone(),
            first,
            "lin/",
            stop_watching.clone(),
        ));
    }
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..CLIENTS {
        let endpoints = endpoints.clone();
        let history = history.clone();
        let stop = stop.clone();
        let definite = definite.clone();
        clients.spawn(async move {
            let mut rng = SplitMix64::new(0x5eed ^ id);
            let mut member = usize::try_from(id).unwrap() % endpoints.len();
            let mut client = kv(&endpoints[member]);
            let mut seq = 0;
            // Bounded: the stop flag, or at most 100,000 operations.
            while !stop.load(Ordering::Relaxed) && seq < 100_000 {
                seq += 1;
                if one_op(&mut client, &history, id, &mut rng, seq).await {
                    definite.fetch_add(1, Ordering::Relaxed);
                } else {
                    member = (member + 1) % endpoints.len();
                    client = kv(&endpoints[member]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }

    let faults = match nemesis {
        Nemesis::CrashesAndPauses => crash_and_pause(&mut cluster).await,
        Nemesis::Partitions => partition(&cluster).await,
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = clients.join_next().await {
        joined.unwrap();
    }
    assert!(
        definite.load(Ordering::Relaxed) > 0,
        "no client operation got an answer"
    );
    // Every member serves again, and one final read per key through each
    // joins the history.
    let mut healed = 0;
    for (i, endpoint) in endpoints.iter().enumerate() {
        healed = healed.max(put_eventually(cluster.member(i), "lin/healed", "1").await);
        let mut client = kv(endpoint);
        for key in KEYS {
            let handle = history.invoke(100 + i as u64, key, OpKind::Get);
            let resp = client
                .range(RangeRequest {
                    key: b(key),
                    ..RangeRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            let value = resp.kvs.first().map(|kv| kv.value.to_vec());
            history.complete(handle, Outcome::Ok(Observed::Get(value)));
        }
    }
    // The watchers get a moment to deliver the last writes, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_watching.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    while let Some(joined) = watchers.join_next().await {
        logs.extend(joined.unwrap());
    }
    let truth = failover_watch::ground_truth(&endpoints[0], "lin/", healed).await;
    let watched = watch_check::check(&truth, &logs).unwrap_or_else(|e| {
        panic!(
            "{}: watches broke a guarantee under faults {faults:?}: {e}",
            backend.name()
        )
    });
    // Crashes break streams, which must then resume on another member; a
    // partition leaves the test's own streams open (they stall, then catch
    // up on the healed member).
    let streams_needed = match nemesis {
        Nemesis::CrashesAndPauses => endpoints.len() + 1,
        Nemesis::Partitions => endpoints.len(),
    };
    assert!(
        watched.events > 0 && logs.len() >= streams_needed,
        "watchers saw too little: {watched:?} over {} streams",
        logs.len()
    );
    eprintln!(
        "{}: {} watch streams delivered {} events, all as committed",
        backend.name(),
        logs.len(),
        watched.events
    );
    let ops = history.ops();
    let indeterminate = ops.iter().filter(|op| op.is_indeterminate()).count();
    let report = history.check(Budget::default()).unwrap_or_else(|e| {
        panic!(
            "{} is not linearizable under faults {faults:?}: {e}",
            backend.name()
        )
    });
    eprintln!(
        "{}: {} operations ({indeterminate} indeterminate) over {} keys, faults {faults:?}: linearizable (checked in {:?}, {} steps)",
        backend.name(),
        report.ops,
        report.keys,
        report.elapsed,
        report.steps
    );
    assert!(
        report.ops > 200,
        "too few operations to mean anything: {}",
        report.ops
    );
}

/// Kills (-9) and pauses the leader and followers in turn, one fault at a
/// time, each lasting [`FAULT_LENGTH`]; returns what it did.
async fn crash_and_pause(cluster: &mut Cluster) -> Vec<String> {
    let mut faults = Vec::new();
    let mut rng = SplitMix64::new(7);
    for round in 0..fault_rounds() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lead = leader(cluster).await;
        let target = if round % 2 == 0 {
            lead
        } else {
            (lead + 1 + usize::try_from(rng.below(2)).unwrap()) % 3
        };
        let faulted_at = tokio::time::Instant::now();
        if round % 3 == 2 {
            faults.push(format!("SIGSTOP {}", cluster.member(target).name()));
            cluster.member_mut(target).pause().unwrap();
        } else {
            faults.push(format!("kill -9 {}", cluster.member(target).name()));
            cluster.member_mut(target).kill9().unwrap();
        }
        // The survivors keep a quorum: a write commits while the target is
        // still down (asserted by put_eventually's bound).
        let survivor = cluster.member((target + 1) % 3);
        put_eventually(survivor, "lin/progress", &round.to_string()).await;
        tokio::time::sleep_until(faulted_at + FAULT_LENGTH).await;
        if round % 3 == 2 {
            cluster.member_mut(target).resume().unwrap();
        } else {
            cluster.member_mut(target).restart().await.unwrap();
        }
    }
    faults
}

/// Cuts links for [`FAULT_LENGTH`] at a time: the leader from both
/// followers, a follower from both others, the leader from one follower
/// only; each while a write must commit through the majority.
async fn partition(cluster: &Cluster) -> Vec<String> {
    let hosts = cluster.hosts().expect("members on hosts of their own");
    let mut faults = Vec::new();
    for round in 0..fault_rounds() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lead = leader(cluster).await;
        let follower = (lead + 1 + round % 2) % 3;
        let faulted_at = tokio::time::Instant::now();
        // A member of the majority, which must keep committing.
        let majority = match round % 3 {
            0 => {
                hosts.isolate(lead).unwrap();
                faults.push(format!("isolate leader {}", cluster.member(lead).name()));
                follower
            }
            1 => {
                hosts.isolate(follower).unwrap();
                faults.push(format!("isolate {}", cluster.member(follower).name()));
                lead
            }
            _ => {
                hosts.cut(lead, follower).unwrap();
                faults.push(format!(
                    "cut {} from {}",
                    cluster.member(lead).name(),
                    cluster.member(follower).name()
                ));
                3 - lead - follower
            }
        };
        put_eventually(cluster.member(majority), "lin/progress", &round.to_string()).await;
        tokio::time::sleep_until(faulted_at + FAULT_LENGTH).await;
        hosts.heal().unwrap();
    }
    faults
}
