//! Running one behavioural test against both servers: [`backend_tests!`]
//! declares, for each `async fn name(backend: Backend)`, a module `name`
//! with two tests, `rollcall` (the binary under test) and `etcd` (a real
//! etcd 3.4, which shows the expectation is etcd's own). The etcd twin
//! skips, or fails under `ROLLCALL_REQUIRE_ETCD=1`, when etcd is missing;
//! both are bounded by [`TEST_TIMEOUT`].

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Backend, Tool, require_or_skip, tools};

/// Bound on one behavioural test, so a hung server fails it instead of
/// hanging the run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Where cargo put the `rollcall` binary for a test outside the server
/// package: `$ROLLCALL_BIN`, else `target/<profile>/rollcall` next to the
/// running test (`target/<profile>/deps/<test>`). `cargo test --workspace`
/// builds it; the path may not exist when only another package was built.
#[must_use]
pub fn built_rollcall() -> PathBuf {
    if let Some(path) = std::env::var_os("ROLLCALL_BIN") {
        return PathBuf::from(path);
    }
    let name = format!("rollcall{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(&name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The rollcall backend at `bin`, or `None` after printing SKIPPED when
/// there is no such file (a test outside the server package that finds the
/// binary by looking next to itself).
#[must_use]
pub fn rollcall_backend(bin: impl Into<PathBuf>, test: &str) -> Option<Backend> {
    let bin = bin.into();
    if bin.is_file() {
        Some(Backend::Rollcall(bin))
    } else {
        tools::skipped(
            test,
            &format!(
                "no rollcall binary at {} (cargo build -p rollcall-server)",
                bin.display()
            ),
        );
        None
    }
}

/// The etcd backend, or `None` after printing SKIPPED when etcd is missing
/// (panics instead under `ROLLCALL_REQUIRE_ETCD=1`).
#[must_use]
pub fn etcd_backend(test: &str) -> Option<Backend> {
    require_or_skip(Tool::Etcd, test).then_some(Backend::Etcd)
}

/// Environment variable that raises [`TEST_TIMEOUT`] (whole seconds), for
/// soak runs.
pub const TEST_TIMEOUT_ENV: &str = "ROLLCALL_TEST_TIMEOUT_SECS";

/// [`TEST_TIMEOUT`], or `ROLLCALL_TEST_TIMEOUT_SECS` when set.
#[must_use]
pub fn test_timeout() -> Duration {
    std::env::var(TEST_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(TEST_TIMEOUT, Duration::from_secs)
}

/// Runs `test` under [`test_timeout`].
///
/// # Panics
/// When it does not finish in time.
pub async fn run_bounded(name: &str, test: impl Future<Output = ()>) {
    let limit = test_timeout();
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("{name} did not finish within {limit:?}");
    }
}

/// Declares, for each `async fn name(backend: B)` in the calling module
/// (`B` is [`Backend`] or any type `From<Backend>`), a module `name` with
/// the tests `rollcall` and `etcd`.
///
/// ```text
/// rollcall_tests::backend_tests!(rollcall = env!("CARGO_BIN_EXE_rollcall"); put_then_get, txn);
/// // Tokio worker threads per test (default 2):
/// rollcall_tests::backend_tests!(rollcall = BIN, threads = 4; many_watchers);
/// ```
///
/// `rollcall` is any `impl Into<PathBuf>`: only the server package's tests
/// get `env!("CARGO_BIN_EXE_rollcall")`, so the caller names the binary.
#[macro_export]
macro_rules! backend_tests {
    (rollcall = $bin:expr; $($name:ident),+ $(,)?) => {
        $crate::backend_tests!(rollcall = $bin, threads = 2; $($name),+);
    };
    (rollcall = $bin:expr, threads = $threads:literal; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn rollcall() {
                let test = concat!(module_path!(), "::rollcall");
                if let Some(backend) = $crate::backend::rollcall_backend($bin, test) {
                    $crate::backend::run_bounded(test, super::$name(backend.into())).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn etcd() {
                let test = concat!(module_path!(), "::etcd");
                if let Some(backend) = $crate::backend::etcd_backend(test) {
                    $crate::backend::run_bounded(test, super::$name(backend.into())).await;
                }
            }
        }
    )+};
}
