//! Differential test of leases: the same seeded random sequence of lease and
//! KV requests whose outcome does not depend on timing is sent to a fresh
//! real etcd 3.4 and a fresh rollcall, and every answer is compared field by
//! field after zeroing cluster_id, member_id and raft_term in the headers;
//! errors are compared by (code, message).
//!
//! Requests: grant with client-chosen ids from a small pool (so duplicates
//! are frequent; TTLs of 10 minutes and more, so nothing expires during the
//! run; sometimes above the maximum), revoke (existing, revoked, never
//! granted), keep-alive (answers carry the granted TTL or 0), time-to-live
//! with and without keys (keys compared as a sorted set; the remaining TTL,
//! which depends on timing, only checked to lie within the last two minutes
//! of the granted TTL), the lease list (as a sorted set), puts with a lease,
//! without, with a missing lease, with ignore_lease, txns putting and
//! deleting with leases, deletes and range reads. At the end the whole state
//! (keys with their leases, every lease's keys) is compared too.
//!
//! A failure names the seed and the op index and shows the request, both
//! answers and the ops just before. More seeds:
//! `ROLLCALL_LEASE_DIFF_SEEDS=7,8 ROLLCALL_LEASE_DIFF_OPS=500 cargo test -p
//! rollcall-server --test lease differential::extra`.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rollcall_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse, compare, request_op,
};
use rollcall_tests::normalize::Normalize;
use rollcall_tests::rng::SplitMix64;
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};
use tonic::{Code, Status};

use crate::support::{Client, KeepAlive, MAX_TTL, b, prefix_end, rollcall, start};

/// Ops per seed for the fixed seeds.
const OPS: usize = 150;
/// Bound on one seed's run.
const SEED_TIMEOUT: Duration = Duration::from_secs(120);
/// How far the remaining TTL may have run down during a run.
const TTL_SLACK: i64 = 120;

/// Lease ids: a small pool so grants collide and revokes hit revoked leases.
const IDS: &[i64] = &[1, 2, 3, 42, 1 << 40, i64::MAX, -3];
/// Never granted.
const MISSING: &[i64] = &[5555, 0, -1];
const TTLS: &[i64] = &[600, 1200, 3600, 86_400, MAX_TTL];
const KEYS: &[&str] = &["a", "b", "c", "s/1", "s/2", "s/3"];
const VALUES: &[&str] = &["", "v0", "v1"];

macro_rules! seeds {
    ($($name:ident = $seed:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_seed(concat!("differential::", stringify!($name)), $seed, OPS).await;
        }
    )*};
}

seeds!(seed_1 = 1, seed_2 = 2, seed_3 = 0x1ea5e);

/// Seeds from `ROLLCALL_LEASE_DIFF_SEEDS` (comma separated),
/// `ROLLCALL_LEASE_DIFF_OPS` ops each; does nothing when unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_seeds_from_env() {
    let Ok(list) = std::env::var("ROLLCALL_LEASE_DIFF_SEEDS") else {
        return;
    };
    let ops = std::env::var("ROLLCALL_LEASE_DIFF_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(OPS);
    for seed in list.split(',').filter_map(|s| s.trim().parse::<u64>().ok()) {
        run_seed("differential::extra_seeds_from_env", seed, ops).await;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Grant { ttl: i64, id: i64 },
    Revoke(i64),
    KeepAlive(i64),
    TimeToLive { id: i64, keys: bool },
    Leases,
    Put(PutRequest),
    Txn(TxnRequest),
    Delete(DeleteRangeRequest),
    Range(RangeRequest),
}

/// One server's answer with the server identity erased.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Grant(LeaseGrantResponse),
    Revoke(LeaseRevokeResponse),
    KeepAlive(LeaseKeepAliveResponse),
    TimeToLive(LeaseTimeToLiveResponse),
    Leases {
        header: Option<ResponseHeader>,
        ids: Vec<i64>,
    },
    Put(PutResponse),
    Txn(TxnResponse),
    Delete(DeleteRangeResponse),
    Range(RangeResponse),
    Error {
        code: Code,
        message: String,
    },
}

fn header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

fn error(s: &Status) -> Outcome {
    Outcome::Error {
        code: s.code(),
        message: s.message().to_owned(),
    }
}

fn kv<T: Normalize>(result: Result<T, Status>, wrap: fn(T) -> Outcome) -> Outcome {
    match result {
        Ok(r) => wrap(r.normalized()),
        Err(s) => error(&s),
    }
}

impl Outcome {
    fn kind(&self) -> String {
        match self {
            Outcome::Grant(_) => "grant".into(),
            Outcome::Revoke(_) => "revoke".into(),
            Outcome::KeepAlive(r) if r.ttl > 0 => "keep-alive (live)".into(),
            Outcome::KeepAlive(_) => "keep-alive (unknown)".into(),
            Outcome::TimeToLive(r) if r.ttl < 0 => "time-to-live (unknown)".into(),
            Outcome::TimeToLive(r) if !r.keys.is_empty() => "time-to-live (keys)".into(),
            Outcome::TimeToLive(_) => "time-to-live".into(),
            Outcome::Leases { .. } => "leases".into(),
            Outcome::Put(_) => "put".into(),
            Outcome::Txn(_) => "txn".into(),
            Outcome::Delete(r) if r.deleted > 0 => "delete (deleted)".into(),
            Outcome::Delete(_) => "delete (none)".into(),
            Outcome::Range(_) => "range".into(),
            Outcome::Error { code, message } => format!("error {code:?} {message}"),
        }
    }
}

/// One server under test: its clients and an open keep-alive stream.
struct Side {
    client: Client,
    keep_alive: KeepAlive,
    _server: ServerProcess,
}

impl Side {
    async fn start(backend: &Backend) -> Self {
        let server = start(backend).await;
        let mut client = Client::connect(&server).await;
        let keep_alive = client.keep_alive();
        Self {
            client,
            keep_alive,
            _server: server,
        }
    }

    async fn apply(&mut self, op: &Op) -> Outcome {
        let c = &mut self.client;
        match op.clone() {
            Op::Grant { ttl, id } => match c.try_grant(ttl, id).await {
                Ok(mut r) => {
                    header(&mut r.header);
                    Outcome::Grant(r)
                }
                Err(s) => error(&s),
            },
            Op::Revoke(id) => match c.try_revoke(id).await {
                Ok(mut r) => {
                    header(&mut r.header);
                    Outcome::Revoke(r)
                }
                Err(s) => error(&s),
            },
            Op::KeepAlive(id) => {
                let mut r = self.keep_alive.once(id).await;
                header(&mut r.header);
                Outcome::KeepAlive(r)
            }
            Op::TimeToLive { id, keys } => match c.try_time_to_live(id, keys).await {
                Ok(mut r) => {
                    header(&mut r.header);
                    r.keys.sort();
                    // The remaining TTL depends on timing: only its range is
                    // checked; in range, it compares as 0.
                    if r.ttl >= 0 && r.ttl <= r.granted_ttl && r.ttl >= r.granted_ttl - TTL_SLACK {
                        r.ttl = 0;
                    }
                    Outcome::TimeToLive(r)
                }
                Err(s) => error(&s),
            },
            Op::Leases => match c.try_leases().await {
                Ok(mut r) => {
                    header(&mut r.header);
                    let mut ids: Vec<i64> = r.leases.iter().map(|l| l.id).collect();
                    ids.sort_unstable();
                    Outcome::Leases {
                        header: r.header,
                        ids,
                    }
                }
                Err(s) => error(&s),
            },
            Op::Put(r) => kv(c.try_put(r).await, Outcome::Put),
            Op::Txn(r) => kv(c.try_txn(r).await, Outcome::Txn),
            Op::Delete(r) => kv(c.try_delete(r).await, Outcome::Delete),
            Op::Range(r) => kv(c.try_range(r).await, Outcome::Range),
        }
    }
}

/// What the generator knows of the store, taken from etcd's answers.
struct Generator {
    rng: SplitMix64,
    /// Leases granted and not revoked.
    live: Vec<i64>,
}

impl Generator {
    fn key(&mut self) -> &'static str {
        let key: &&'static str = self.rng.pick(KEYS);
        key
    }

    fn value(&mut self) -> Bytes {
        let value: &&str = self.rng.pick(VALUES);
        b(value)
    }

    /// A lease for a put: none, a pool id (granted or not), or a missing one.
    fn put_lease(&mut self) -> i64 {
        match self.rng.below(100) {
            0..25 => 0,
            25..75 if !self.live.is_empty() => *self.rng.pick(&self.live),
            75..92 => *self.rng.pick(IDS),
            _ => *self.rng.pick(MISSING),
        }
    }

    /// A lease id to revoke or look at: mostly a live one, else from the
    /// pool or never granted.
    fn some_id(&mut self) -> i64 {
        match self.rng.below(100) {
            0..60 if !self.live.is_empty() => *self.rng.pick(&self.live),
            0..88 => *self.rng.pick(IDS),
            _ => *self.rng.pick(MISSING),
        }
    }

    /// Learns which leases exist from etcd's answer to `op`.
    fn observe(&mut self, op: &Op, outcome: &Outcome) {
        match (op, outcome) {
            (Op::Grant { id, .. }, Outcome::Grant(_)) => self.live.push(*id),
            (Op::Revoke(id), Outcome::Revoke(_)) => self.live.retain(|l| l != id),
            _ => {}
        }
    }

    fn put(&mut self) -> PutRequest {
        let key = self.key();
        let ignore_lease = self.rng.chance(8);
        PutRequest {
            key: b(key),
            value: self.value(),
            // With ignore_lease a lease is mostly left out (else it is
            // etcd's "lease is provided" error).
            lease: if ignore_lease && self.rng.chance(80) {
                0
            } else {
                self.put_lease()
            },
            prev_kv: self.rng.chance(30),
            ignore_value: false,
            ignore_lease,
        }
    }

    fn delete(&mut self) -> DeleteRangeRequest {
        let (key, range_end) = if self.rng.chance(30) {
            (b("s/"), prefix_end("s/"))
        } else {
            (b(self.key()), Bytes::new())
        };
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.rng.chance(50),
        }
    }

    fn txn(&mut self) -> TxnRequest {
        // Sometimes a compare on a key's lease picks the branch.
        let compare = if self.rng.chance(50) {
            let lease = self.put_lease();
            vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Lease as i32,
                key: b(self.key()),
                range_end: Bytes::new(),
                target_union: Some(compare::TargetUnion::Lease(lease)),
            }]
        } else {
            vec![]
        };
        let success = self.txn_ops();
        let failure = self.txn_ops();
        TxnRequest {
            compare,
            success,
            failure,
        }
    }

    fn txn_ops(&mut self) -> Vec<RequestOp> {
        let mut success = Vec::new();
        let mut used = Vec::new();
        for _ in 0..self.rng.range_inclusive(1, 3) {
            let key = self.key();
            if used.contains(&key) {
                continue;
            }
            used.push(key);
            let request = if self.rng.chance(70) {
                request_op::Request::RequestPut(PutRequest {
                    key: b(key),
                    value: self.value(),
                    lease: self.put_lease(),
                    prev_kv: self.rng.chance(30),
                    ..PutRequest::default()
                })
            } else {
                request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: b(key),
                    prev_kv: self.rng.chance(50),
                    ..DeleteRangeRequest::default()
                })
            };
            success.push(RequestOp {
                request: Some(request),
            });
        }
        success
    }

    fn op(&mut self) -> Op {
        match self.rng.below(100) {
            0..18 => Op::Grant {
                ttl: if self.rng.chance(8) {
                    MAX_TTL + 1
                } else {
                    *self.rng.pick(TTLS)
                },
                id: *self.rng.pick(IDS),
            },
            18..28 => Op::Revoke(self.some_id()),
            28..35 => Op::KeepAlive(self.some_id()),
            35..47 => Op::TimeToLive {
                id: self.some_id(),
                keys: self.rng.chance(75),
            },
            47..52 => Op::Leases,
            52..75 => Op::Put(self.put()),
            75..83 => Op::Txn(self.txn()),
            83..91 => Op::Delete(self.delete()),
            _ => Op::Range(RangeRequest {
                key: b("\0"),
                range_end: b("\0"),
                ..RangeRequest::default()
            }),
        }
    }
}

async fn run_seed(test: &str, seed: u64, ops: usize) {
    if !require_or_skip(Tool::Etcd, test) {
        return;
    }
    tokio::time::timeout(SEED_TIMEOUT, run(seed, ops))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: not finished within {SEED_TIMEOUT:?}"));
}

async fn run(seed: u64, ops: usize) {
    let mut etcd = Side::start(&Backend::Etcd).await;
    let mut ours = Side::start(&rollcall()).await;
    let mut generator = Generator {
        rng: SplitMix64::new(seed),
        live: Vec::new(),
    };
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut kinds: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for index in 0..ops {
        let op = generator.op();
        let expected = etcd.apply(&op).await;
        let got = ours.apply(&op).await;
        if expected != got {
            panic!(
                "seed {seed}, op #{index}: rollcall differs from etcd\n\
                 request: {op:?}\n\
                 etcd:     {expected:?}\n\
                 rollcall: {got:?}\n\
                 ops before (oldest first):\n  {}",
                recent.iter().cloned().collect::<Vec<_>>().join("\n  ")
            );
        }
        generator.observe(&op, &expected);
        *kinds.entry(expected.kind()).or_default() += 1;
        recent.push_back(format!("#{index} {op:?} -> {}", expected.kind()));
        if recent.len() > 12 {
            recent.pop_front();
        }
    }
    // The final state: every lease with its keys, every key with its lease.
    let mut finals = vec![
        Op::Leases,
        Op::Range(RangeRequest {
            key: b("\0"),
            range_end: b("\0"),
            ..RangeRequest::default()
        }),
    ];
    finals.extend(IDS.iter().map(|&id| Op::TimeToLive { id, keys: true }));
    for op in finals {
        let expected = etcd.apply(&op).await;
        let got = ours.apply(&op).await;
        assert_eq!(
            expected, got,
            "seed {seed}: final state differs at {op:?} (etcd left, rollcall right)"
        );
    }
    eprintln!("seed {seed}: {ops} ops agree; outcomes: {kinds:?}");
}
