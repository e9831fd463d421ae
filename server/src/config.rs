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

    /// Comma-separated URLs to serve clients on (http only for now).
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
    #[arg(long, env = "ROLLCALL_AUTO_COMPACTION_MODE", value_enum, default_value = "periodic")]
    pub auto_compaction_mode: crate::compactor::Mode,

    /// History to keep when compacting automatically; `0` disables it.
    #[arg(long, env = "ROLLCALL_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,

    /// How often revision-mode auto-compaction checks, in milliseconds.
    #[arg(long, env = "ROLLCALL_AUTO_COMPACTION_INTERVAL_MS", default_value_t = 300_000)]
    pub auto_compaction_interval_ms: u64,

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
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0}: only http:// client URLs are supported")]
    Scheme(String),
    #[error("{0}: expected http://HOST:PORT with an IP address host")]
    Address(String),
}

/// Parses `http://IP:PORT` into the address to bind.
pub fn parse_listen_url(url: &str) -> Result<SocketAddr, UrlError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UrlError::Scheme(url.to_string()))?;
    let authority = rest.trim_end_matches('/');
    let authority = authority.replace("localhost", "127.0.0.1");
    authority
        .parse()
        .map_err(|_| UrlError::Address(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_urls() {
        assert_eq!(
            parse_listen_url("http://127.0.0.1:2379").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 2379)))
        );
        assert_eq!(
            parse_listen_url("http://localhost:1/").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert!(matches!(
            parse_listen_url("https://127.0.0.1:1"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            parse_listen_url("http://example:1"),
            Err(UrlError::Address(_))
        ));
    }
}
