//! Prometheus metrics, named as etcd names them wherever the meaning is the
//! same (so etcd dashboards and alert rules work unchanged), plus rollcall's
//! own. Components hold an `Arc<Metrics>` and update the fields they own;
//! values that are cheaper to read than to track (database size, alarms) are
//! sampled when `/metrics` is scraped (see `http.rs`); registry instances are
//! counted from the committed changes (see `registry.rs`).

pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod registry;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GrpcCodeLabels {
    pub grpc_type: String,
    pub grpc_service: String,
    pub grpc_method: String,
    pub grpc_code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GrpcMethodLabels {
    pub grpc_type: String,
    pub grpc_service: String,
    pub grpc_method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InstanceLabels {
    pub service: String,
    pub health: String,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub has_leader: Gauge,
    pub leader_changes: Counter,
    pub proposals_committed: Counter,
    pub proposals_failed: Counter,
    pub proposals_pending: Gauge,
    pub peer_round_trip_seconds: Family<PeerLabels, Histogram>,
    pub db_total_size: Gauge,
    pub db_in_use_size: Gauge,
    pub keys_total: Gauge,
    pub put_total: Counter,
    pub delete_total: Counter,
    pub backend_commit_seconds: Histogram,
    pub watchers: Gauge,
    pub slow_watchers: Gauge,
    pub lease_granted: Counter,
    pub lease_revoked: Counter,
    pub lease_renewed: Counter,
    pub lease_expired: Counter,
    pub batch_size: Histogram,
    pub grpc_started: Family<GrpcMethodLabels, Counter>,
    pub grpc_handled: Family<GrpcCodeLabels, Counter>,
    pub grpc_handling_seconds: Family<GrpcMethodLabels, Histogram>,
    pub registry_instances: Family<InstanceLabels, Gauge>,
    /// Feeds `registry_instances` from the watch hub's committed batches.
    pub instances: registry::RegistryInstances,
    pub quota_backend_bytes: Gauge,
    pub alarm_active: Family<AlarmLabels, Gauge>,
}

/// The peer a round trip went to, labelled as etcd does: `To`, the member
/// id in hex (hence the field's name).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub(crate) struct PeerLabels {
    pub To: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AlarmLabels {
    pub alarm: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~8 s, as etcd's disk histograms.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

fn round_trip_histogram() -> Histogram {
    // 0.1 ms .. ~3 s, as etcd's peer round-trip histogram.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            has_leader: Gauge::default(),
            leader_changes: Counter::default(),
            proposals_committed: Counter::default(),
            proposals_failed: Counter::default(),
            proposals_pending: Gauge::default(),
            peer_round_trip_seconds: Family::new_with_constructor(round_trip_histogram),
            db_total_size: Gauge::default(),
            db_in_use_size: Gauge::default(),
            keys_total: Gauge::default(),
            put_total: Counter::default(),
            delete_total: Counter::default(),
            backend_commit_seconds: latency_histogram(),
            watchers: Gauge::default(),
            slow_watchers: Gauge::default(),
            lease_granted: Counter::default(),
            lease_revoked: Counter::default(),
            lease_renewed: Counter::default(),
            lease_expired: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            grpc_started: Family::default(),
            grpc_handled: Family::default(),
            grpc_handling_seconds: Family::new_with_constructor(latency_histogram),
            registry_instances: Family::default(),
            instances: registry::RegistryInstances::default(),
            quota_backend_bytes: Gauge::default(),
            alarm_active: Family::default(),
        };
        let mut registry = Registry::default();
        m.register_all(&mut registry);
        m.registry = registry;
        // A single member is always its own leader.
        m.has_leader.set(1);
        m
    }

    fn register_all(&self, r: &mut Registry) {
        // Counters get their `_total` suffix from the encoder.
        r.register(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes",
            self.quota_backend_bytes.clone(),
        );
        r.register(
            "rollcall_alarm_active",
            "Active alarms by type (1 while raised)",
            self.alarm_active.clone(),
        );
        r.register(
            "grpc_server_started",
            "RPCs started, by method",
            self.grpc_started.clone(),
        );
        r.register(
            "etcd_server_has_leader",
            "Whether a leader exists (1) or not (0)",
            self.has_leader.clone(),
        );
        r.register(
            "etcd_server_leader_changes_seen",
            "Leader changes seen",
            self.leader_changes.clone(),
        );
        r.register(
            "etcd_server_proposals_committed",
            "Proposals committed",
            self.proposals_committed.clone(),
        );
        r.register(
            "etcd_server_proposals_failed",
            "Proposals refused or failed",
            self.proposals_failed.clone(),
        );
        r.register(
            "etcd_server_proposals_pending",
            "Writes handed to the write path and not yet answered",
            self.proposals_pending.clone(),
        );
        r.register(
            "etcd_network_peer_round_trip_time_seconds",
            "Round trip of a heartbeat to each peer (the leader's view)",
            self.peer_round_trip_seconds.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_bytes",
            "Database file size in bytes",
            self.db_total_size.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Database bytes in use (rollcall: the file size until defragmentation exists)",
            self.db_in_use_size.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_keys_total",
            "Live keys",
            self.keys_total.clone(),
        );
        r.register("etcd_mvcc_put", "Keys put", self.put_total.clone());
        r.register(
            "etcd_mvcc_delete",
            "Keys deleted",
            self.delete_total.clone(),
        );
        r.register(
            "etcd_disk_backend_commit_duration_seconds",
            "Latency of redb commits (with fsync)",
            self.backend_commit_seconds.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watcher_total",
            "Current watchers",
            self.watchers.clone(),
        );
        r.register(
            "etcd_debugging_lease_granted",
            "Leases granted",
            self.lease_granted.clone(),
        );
        r.register(
            "etcd_debugging_lease_revoked",
            "Leases revoked",
            self.lease_revoked.clone(),
        );
        r.register(
            "etcd_debugging_lease_renewed",
            "Lease renewals",
            self.lease_renewed.clone(),
        );
        r.register(
            "rollcall_lease_expired",
            "Leases revoked because they expired",
            self.lease_expired.clone(),
        );
        r.register(
            "rollcall_watch_slow_watchers",
            "Watchers catching up from history (slow readers included)",
            self.slow_watchers.clone(),
        );
        r.register(
            "rollcall_group_commit_batch_size",
            "Commands per redb commit",
            self.batch_size.clone(),
        );
        r.register(
            "grpc_server_handled",
            "RPCs completed, by method and code",
            self.grpc_handled.clone(),
        );
        r.register(
            "grpc_server_handling_seconds",
            "RPC latency, by method",
            self.grpc_handling_seconds.clone(),
        );
        r.register(
            "rollcall_registry_instances",
            "Registered service instances under /services/, by service and health",
            self.registry_instances.clone(),
        );
    }

    /// The text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
