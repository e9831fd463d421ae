//! Every tunable of `rollcall serve`, with the defaults a newcomer can run
//! with (etcd's, where etcd has the same flag).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// etcd's default request limit: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// gRPC framing allowance on top of the request limit, as etcd allows, so a
/// request slightly too large gets etcd's "request is too large" error
/// rather than a transport error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Directory of the member's database (created if missing).
    #[arg(long, env = "ROLLCALL_DATA_DIR", default_value = "./rollcall.data")]
    pub data_dir: PathBuf,

    /// Comma-separated URLs to serve clients on (https:// needs --cert-file and --key-file).
    #[arg(
        long,
        env = "ROLLCALL_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,

    /// Backend quota in bytes: writes that would grow the database past it
    /// fail and raise the NOSPACE alarm (0 = etcd's default, 2 GiB).
    #[arg(long, env = "ROLLCALL_QUOTA_BACKEND_BYTES", default_value_t = crate::quota::DEFAULT_QUOTA_BYTES)]
    pub quota_backend_bytes: u64,

    /// `periodic` keeps history for `--auto-compaction-retention` (a duration
    /// such as `1h`, or hours); `revision` keeps that many revisions.
    #[arg(
        long,
        env = "ROLLCALL_AUTO_COMPACTION_MODE",
        value_enum,
        default_value = "periodic"
    )]
    pub auto_compaction_mode: crate::compactor::Mode,

    /// History to keep when compacting automatically; `0` disables it.
    #[arg(long, env = "ROLLCALL_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,

    /// How often revision-mode auto-compaction checks, in milliseconds.
    #[arg(
        long,
        env = "ROLLCALL_AUTO_COMPACTION_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub auto_compaction_interval_ms: u64,

    /// Server certificate (PEM) for https:// client URLs.
    #[arg(long, env = "ROLLCALL_CERT_FILE")]
    pub cert_file: Option<PathBuf>,

    /// Private key (PEM) of `--cert-file`.
    #[arg(long, env = "ROLLCALL_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// CA certificates (PEM) that sign client certificates.
    #[arg(long, env = "ROLLCALL_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,

    /// Require clients to present a certificate signed by `--trusted-ca-file`.
    #[arg(long, env = "ROLLCALL_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,

    /// Certificate (PEM) this member presents to the other members: on
    /// https:// `--listen-peer-urls`, and as its client certificate when it
    /// calls them.
    #[arg(long, env = "ROLLCALL_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,

    /// Private key (PEM) of `--peer-cert-file`.
    #[arg(long, env = "ROLLCALL_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,

    /// CA certificates (PEM) that sign the other members' certificates.
    #[arg(long, env = "ROLLCALL_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,

    /// Require members calling this one to present a certificate signed by
    /// `--peer-trusted-ca-file`.
    #[arg(long, env = "ROLLCALL_PEER_CLIENT_CERT_AUTH")]
    pub peer_client_cert_auth: bool,

    /// Memory for redb's page cache, in bytes.
    #[arg(long, env = "ROLLCALL_BACKEND_CACHE_BYTES", default_value_t = crate::storage::DEFAULT_CACHE_BYTES)]
    pub backend_cache_bytes: usize,

    /// Comma-separated URLs for /metrics, /health, /livez and /readyz.
    #[arg(
        long,
        env = "ROLLCALL_LISTEN_METRICS_URLS",
        default_value = "http://127.0.0.1:2381",
        value_delimiter = ','
    )]
    pub listen_metrics_urls: Vec<String>,

    /// Human-readable name of this member.
    #[arg(long, env = "ROLLCALL_NAME", default_value = "default")]
    pub name: String,

    /// Largest write request accepted, in bytes.
    #[arg(long, env = "ROLLCALL_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,

    /// Most operations in each of a txn's compare, success and failure lists.
    #[arg(long, env = "ROLLCALL_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,

    /// Shortest lease TTL in seconds; shorter requests are raised to it
    /// (etcd's is 2 s with its default election timeout).
    #[arg(long, env = "ROLLCALL_MIN_LEASE_TTL", default_value_t = 2)]
    pub min_lease_ttl: i64,

    /// How often lease deadlines are checked, in milliseconds.
    #[arg(long, env = "ROLLCALL_LEASE_CHECK_INTERVAL_MS", default_value_t = 100)]
    pub lease_check_interval_ms: u64,

    /// Most expired leases revoked per check; bounds how much revoke work
    /// can queue ahead of client writes when many leases expire at once.
    #[arg(long, env = "ROLLCALL_LEASE_REVOKE_BATCH", default_value_t = 1000)]
    pub lease_revoke_batch: usize,

    /// How often the leader records, through the log, the remaining TTL of
    /// every lease whose TTL is longer than this interval (etcd's lease
    /// checkpoints, always on here), so that a new leader resumes it from
    /// there rather than from its full TTL.
    #[arg(
        long,
        env = "ROLLCALL_LEASE_CHECKPOINT_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub lease_checkpoint_interval_ms: u64,

    /// Interval of progress notifications to watchers that asked for them,
    /// in milliseconds (etcd's default: 10 minutes).
    #[arg(
        long,
        env = "ROLLCALL_WATCH_PROGRESS_NOTIFY_INTERVAL_MS",
        default_value_t = 600_000
    )]
    pub watch_progress_notify_interval_ms: u64,

    /// Messages queued per watch stream; a stream whose client reads slower
    /// than that has its watchers catch up from history instead.
    #[arg(long, env = "ROLLCALL_WATCH_STREAM_BUFFER", default_value_t = 1024)]
    pub watch_stream_buffer: usize,

    /// Most watchers on this member across all streams.
    #[arg(long, env = "ROLLCALL_MAX_WATCHERS", default_value_t = 1_000_000)]
    pub max_watchers: usize,

    /// The members of a new cluster, `NAME=PEER_URL,…` (etcd's flag). Without
    /// it, and without a replicated log in `--data-dir`, rollcall runs as a
    /// single member with no peer port. Ignored once the data dir holds a
    /// replicated log: a restarted member rejoins with what its log says.
    #[arg(long, env = "ROLLCALL_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// `new` forms a new cluster from `--initial-cluster`; `existing` joins
    /// a running cluster this member was added to (`member add`).
    #[arg(
        long,
        env = "ROLLCALL_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: InitialClusterState,

    /// Makes the ids of a new cluster unique to it: members with the same
    /// peer URLs in two clusters still get different ids.
    #[arg(
        long,
        env = "ROLLCALL_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Comma-separated URLs to serve the other members on (raft traffic).
    #[arg(long, env = "ROLLCALL_LISTEN_PEER_URLS", value_delimiter = ',')]
    pub listen_peer_urls: Vec<String>,

    /// This member's peer URLs as the others reach them (default: the
    /// `--initial-cluster` entry of `--name`, else `--listen-peer-urls`).
    #[arg(
        long,
        env = "ROLLCALL_INITIAL_ADVERTISE_PEER_URLS",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,

    /// This member's client URLs as clients reach them, shown by MemberList
    /// (default: the bound `--listen-client-urls`).
    #[arg(long, env = "ROLLCALL_ADVERTISE_CLIENT_URLS", value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,

    /// Leader heartbeat interval in milliseconds (etcd's flag and default).
    #[arg(long, env = "ROLLCALL_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Election timeout in milliseconds (etcd's flag and default): a
    /// follower that hears no leader for this long (randomized between 1.25
    /// and 2 times it) starts an election.
    #[arg(long, env = "ROLLCALL_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,

    /// Replicated log entries between two snapshots of the state machine
    /// (etcd's flag; an entry here is a batch of requests, so the default is
    /// lower than etcd's 100,000). A member that falls further behind than
    /// the entries kept after a snapshot (see
    /// `--experimental-snapshot-catchup-entries`) catches up from a snapshot.
    #[arg(long, env = "ROLLCALL_SNAPSHOT_COUNT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_count: u64,

    /// Log entries a member keeps after its snapshot, so that a member only
    /// that far behind catches up from the log rather than a snapshot
    /// (etcd 3.5's flag and default). The leader also keeps what a member
    /// in touch with it has not received yet.
    #[arg(
        long = "experimental-snapshot-catchup-entries",
        env = "ROLLCALL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5_000
    )]
    pub snapshot_catchup_entries: u64,

    /// Log line format on stderr: `text`, or `json` (one JSON object per line).
    #[arg(long, env = "ROLLCALL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Least severe level logged. RUST_LOG, when set, overrides it with its
    /// own filter directives.
    #[arg(long, env = "ROLLCALL_LOG_LEVEL", value_enum, default_value = "info")]
    pub log_level: LogLevel,
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InitialClusterState {
    #[default]
    New,
    Existing,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0}: expected an http:// or https:// URL")]
    Scheme(String),
    #[error("{0}: expected SCHEME://HOST:PORT with an IP address host")]
    Address(String),
}

/// A URL to listen on: the address, and whether it speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenUrl {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// Parses `http://IP:PORT` or `https://IP:PORT`.
pub fn parse_listen_url(url: &str) -> Result<ListenUrl, UrlError> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err(UrlError::Scheme(url.to_string()));
    };
    let authority = rest.trim_end_matches('/').replace("localhost", "127.0.0.1");
    let addr = authority
        .parse()
        .map_err(|_| UrlError::Address(url.to_string()))?;
    Ok(ListenUrl { addr, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_urls() {
        assert_eq!(
            parse_listen_url("http://127.0.0.1:2379").ok(),
            Some(ListenUrl {
                addr: SocketAddr::from(([127, 0, 0, 1], 2379)),
                tls: false
            })
        );
        assert_eq!(
            parse_listen_url("https://localhost:1/").ok(),
            Some(ListenUrl {
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                tls: true
            })
        );
        assert!(matches!(
            parse_listen_url("unix://x:1"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            parse_listen_url("http://example:1"),
            Err(UrlError::Address(_))
        ));
    }
}
