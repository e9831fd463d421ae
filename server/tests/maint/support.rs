//! Helpers of the maintenance suite: a [`Member`] started with the flags
//! the tests vary (`--quota-backend-bytes`, `--auto-compaction-*`),
//! optionally on a given data directory (a restored snapshot); the suite's
//! client conveniences; `rollcall` client subcommands under a timeout; the
//! snapshot stream. Processes, clients, waits and HTTP are the harness's.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall_proto::etcdserverpb::RangeRequest;
use rollcall_proto::mvccpb::KeyValue;
use rollcall_tests::grpc::Clients;
pub use rollcall_tests::grpc::{
    COMPACTED, FUTURE_REV, assert_status, b, del_req, get_at, get_req, keys, prefix_end, put_req,
    rev,
};
pub use rollcall_tests::process::Ran as Run;
use rollcall_tests::{Backend, ServerConfig, ServerProcess, Tool, require_or_skip};
use tonic::{Code, Status};

/// Bound on one run of a `rollcall` client subcommand.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Which server program a [`Member`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rollcall,
    Etcd,
}

impl From<Backend> for Kind {
    fn from(backend: Backend) -> Self {
        if backend.is_etcd() {
            Kind::Etcd
        } else {
            Kind::Rollcall
        }
    }
}

impl Kind {
    fn backend(self) -> Backend {
        match self {
            Kind::Rollcall => Backend::Rollcall(rollcall_bin()),
            Kind::Etcd => Backend::Etcd,
        }
    }
}

/// The `rollcall` binary cargo built for this test run.
pub fn rollcall_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollcall"))
}

/// Whether `tool` is there (prints SKIPPED, or panics under
/// `ROLLCALL_REQUIRE_ETCD=1`, when it is not).
pub fn have(tool: Tool, test: &str) -> bool {
    require_or_skip(tool, test)
}

/// One server process (the harness's, killed on drop).
pub struct Member {
    kind: Kind,
    server: ServerProcess,
}

impl Deref for Member {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.server
    }
}

impl DerefMut for Member {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.server
    }
}

impl Member {
    /// Starts `kind` with `args` appended to the usual flags, in a fresh data
    /// directory.
    pub async fn start(kind: Kind, args: &[&str]) -> Self {
        Self::start_with(kind, ServerConfig::with_args(args.iter().copied())).await
    }

    /// Starts `kind` on an existing `data_dir` (e.g. a restored snapshot).
    pub async fn start_in(kind: Kind, data_dir: &Path, args: &[&str]) -> Self {
        let config = ServerConfig::with_args(args.iter().copied()).data_dir(data_dir);
        Self::start_with(kind, config).await
    }

    async fn start_with(kind: Kind, mut config: ServerConfig) -> Self {
        config.name = "maint".to_owned();
        config.ready_timeout = Duration::from_secs(30);
        match kind.backend().start_with(config).await {
            Ok(server) => Self { kind, server },
            Err(e) => panic!("cannot start {kind:?}: {e}"),
        }
    }

    /// The database file: rollcall's redb file or etcd's bbolt file.
    pub fn db_file(&self) -> PathBuf {
        match self.kind {
            Kind::Rollcall => self.data_dir().join("rollcall.redb"),
            Kind::Etcd => self.data_dir().join("member").join("snap").join("db"),
        }
    }

    /// The port serving `/health`.
    pub fn health_port(&self) -> u16 {
        self.metrics_port()
    }

    /// A scratch directory removed with the member.
    pub fn scratch(&self) -> &Path {
        self.scratch_dir()
    }

    /// A connected client (panics when it cannot connect).
    pub async fn client(&self) -> Client {
        Client(Clients::connect(&self.server).await)
    }

    /// SIGTERM, then starts again on the same ports and data directory.
    pub async fn restart(&mut self) {
        if let Err(e) = self.server.restart().await {
            panic!("cannot restart {:?}: {e}", self.kind);
        }
    }
}

rollcall_tests::suite_client!(
    /// The harness's clients, with this suite's conveniences.
    Client
);

impl Client {
    /// Puts and returns the revision it got.
    pub async fn put(&mut self, key: &str, value: &str) -> i64 {
        let resp = self.try_put(put_req(key, value)).await;
        rev(&resp.unwrap_or_else(|e| panic!("put {key}: {e:?}")).header)
    }

    /// The single record of `key`, or None.
    pub async fn get(&mut self, key: &str) -> Option<KeyValue> {
        self.get_kv(key).await
    }

    /// Every key at `revision` (0: newest), with the header revision.
    pub async fn all_at(&mut self, revision: i64) -> (i64, Vec<KeyValue>) {
        let req = RangeRequest {
            key: b("\0"),
            range_end: b("\0"),
            revision,
            ..RangeRequest::default()
        };
        let resp = self.range(req).await;
        (rev(&resp.header), resp.kvs)
    }

    /// A physical compaction (it returns once the old revisions are gone).
    pub async fn compact(&mut self, revision: i64) {
        let done = self.try_compact(revision, true).await;
        done.unwrap_or_else(|e| panic!("compact {revision}: {e:?}"));
    }
}

/// An HTTP/1.1 GET of `path` on 127.0.0.1:`port`: status code and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let resp = rollcall_tests::http::http_get(port, path).await;
    (resp.status, resp.body)
}

/// Runs `rollcall <args>` under [`TOOL_TIMEOUT`].
pub async fn run_rollcall(args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(rollcall_bin());
    cmd.args(args).env("NO_COLOR", "1");
    rollcall_tests::process::run(cmd, TOOL_TIMEOUT).await
}

/// Polls `check` every `every` until it yields `Some`, at most `within`.
pub use rollcall_tests::wait::poll as eventually;

/// Asserts the NOSPACE refusal, exactly as etcd words it.
#[track_caller]
pub fn assert_no_space<T: std::fmt::Debug>(result: Result<T, Status>) {
    assert_status(result, Code::ResourceExhausted, NO_SPACE);
}

/// `rollcall snapshot restore FILE --data-dir DIR`.
pub async fn restore(file: &Path, data_dir: &Path) -> Run {
    let file = file.to_str().expect("UTF-8 path");
    let dir = data_dir.to_str().expect("UTF-8 path");
    run_rollcall(&["snapshot", "restore", file, "--data-dir", dir]).await
}

/// The names of the entries of `dir`, sorted (empty if it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A value of `n` bytes.
pub fn blob(n: usize) -> String {
    "x".repeat(n)
}

/// Bound on streaming a whole snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Streams Maintenance.Snapshot to its end: the bytes received and each
/// message's `remaining_bytes`.
pub async fn snapshot_stream(c: &mut Client) -> (Vec<u8>, Vec<u64>) {
    let collect = async {
        let mut stream = c
            .maintenance
            .snapshot(rollcall_proto::etcdserverpb::SnapshotRequest {})
            .await
            .expect("Snapshot")
            .into_inner();
        let mut bytes = Vec::new();
        let mut remaining = Vec::new();
        while let Some(msg) = stream.message().await.expect("snapshot stream") {
            bytes.extend_from_slice(&msg.blob);
            remaining.push(msg.remaining_bytes);
        }
        (bytes, remaining)
    };
    tokio::time::timeout(SNAPSHOT_TIMEOUT, collect)
        .await
        .unwrap_or_else(|_| panic!("the snapshot did not finish within {SNAPSHOT_TIMEOUT:?}"))
}

/// Whether the last 32 bytes of `bytes` are the SHA-256 of the rest.
pub fn has_sha256_trailer(bytes: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let Some(split) = bytes.len().checked_sub(32) else {
        return false;
    };
    let (body, trailer) = bytes.split_at(split);
    Sha256::digest(body).as_slice() == trailer
}
