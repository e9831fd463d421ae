//! External tools some tests compare against or validate with (`etcd`,
//! `etcdctl`, `promtool`) or inject faults with (network namespaces), and
//! the rule for when one is missing: the test prints `SKIPPED: <test>: <reason>` where the test runner shows it and
//! returns — unless the tool's `ROLLCALL_REQUIRE_*` variable is `1` (CI sets
//! them), in which case the test fails instead.
//!
//! Every check that does run is appended, one line each, to the file named
//! by `ROLLCALL_TOOL_RUNS` when it is set, so CI can say how many
//! tool-dependent checks actually ran.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that turns a skip for a missing etcd or etcdctl
/// into a failure.
pub const REQUIRE_ENV: &str = "ROLLCALL_REQUIRE_ETCD";

/// Environment variable that turns a skip for a missing promtool into a
/// failure.
pub const REQUIRE_PROMTOOL_ENV: &str = "ROLLCALL_REQUIRE_PROMTOOL";

/// Environment variable that turns a skip for missing network namespaces
/// into a failure.
pub const REQUIRE_NETNS_ENV: &str = "ROLLCALL_REQUIRE_NETNS";

/// Environment variable naming a file that gets one line per
/// tool-dependent check that ran.
pub const RUNS_FILE_ENV: &str = "ROLLCALL_TOOL_RUNS";

/// An external program some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The etcd server (Debian package `etcd-server`).
    Etcd,
    /// The etcd v3 command line client (Debian package `etcd-client`).
    Etcdctl,
    /// Prometheus's rule checker (Debian package `prometheus`).
    Promtool,
    /// Network namespaces for partition tests: `ip` (Debian package
    /// `iproute2`) and the right to add a namespace (root).
    Netns,
}

impl Tool {
    /// The program name looked up in `PATH`.
    #[must_use]
    pub fn program(self) -> &'static str {
        match self {
            Tool::Etcd => "etcd",
            Tool::Etcdctl => "etcdctl",
            Tool::Promtool => "promtool",
            Tool::Netns => "ip",
        }
    }

    /// The variable that makes its absence a failure.
    #[must_use]
    pub fn require_env(self) -> &'static str {
        match self {
            Tool::Etcd | Tool::Etcdctl => REQUIRE_ENV,
            Tool::Promtool => REQUIRE_PROMTOOL_ENV,
            Tool::Netns => REQUIRE_NETNS_ENV,
        }
    }

    /// What to install to get it.
    #[must_use]
    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Etcd => "apt-get install etcd-server",
            Tool::Etcdctl => "apt-get install etcd-client",
            Tool::Promtool => "apt-get install prometheus",
            Tool::Netns => "apt-get install iproute2, and run as root",
        }
    }

    /// Whether the program is installed and runs (`etcd --version`,
    /// `etcdctl version`, `promtool --version`; for namespaces, one is
    /// added and removed).
    #[must_use]
    pub fn available(self) -> bool {
        let probe = match self {
            Tool::Etcd | Tool::Promtool => "--version",
            Tool::Etcdctl => "version",
            Tool::Netns => return crate::netns::Hosts::available(),
        };
        Command::new(self.program())
            .arg(probe)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Whether its absence must fail tests rather than skip them.
    #[must_use]
    pub fn required(self) -> bool {
        std::env::var(self.require_env()).is_ok_and(|v| v == "1")
    }
}

/// Whether `etcd` is installed.
#[must_use]
pub fn etcd_available() -> bool {
    Tool::Etcd.available()
}

/// Whether `etcdctl` is installed.
#[must_use]
pub fn etcdctl_available() -> bool {
    Tool::Etcdctl.available()
}

/// What to do about a test that needs a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The tool is there: run the test.
    Run,
    /// The tool is missing and skipping is allowed.
    Skip,
    /// The tool is missing and its `ROLLCALL_REQUIRE_*` is `1`: fail.
    Fail,
}

/// The skip rule, without side effects.
#[must_use]
pub fn decide(available: bool, required: bool) -> Decision {
    match (available, required) {
        (true, _) => Decision::Run,
        (false, false) => Decision::Skip,
        (false, true) => Decision::Fail,
    }
}

/// Returns true when `tool` is available and the test should go on (and
/// records the run, see the module docs).
///
/// When it is missing, prints `SKIPPED: <test>: ...` and returns false, so
/// the caller returns; but when the tool's `ROLLCALL_REQUIRE_*` is `1`,
/// panics instead.
///
/// # Panics
/// When the tool is missing and required.
#[must_use]
pub fn require_or_skip(tool: Tool, test: &str) -> bool {
    let reason = || {
        format!(
            "{} is not installed ({})",
            tool.program(),
            tool.install_hint()
        )
    };
    match decide(tool.available(), tool.required()) {
        Decision::Run => {
            record_run(tool, test);
            true
        }
        Decision::Fail => panic!(
            "FAILED: {}: {}, and {}=1 forbids skipping",
            running_test(test),
            reason(),
            tool.require_env()
        ),
        Decision::Skip => {
            skipped(test, &reason());
            false
        }
    }
}

/// Prints `SKIPPED: <binary>::<test>: <reason>` straight to the process's stderr:
/// unlike `eprintln!`, this is not captured by the test runner, so the
/// skip shows in a plain `cargo test`.
pub fn skipped(test: &str, reason: &str) {
    let line = format!("SKIPPED: {}: {reason}\n", running_test(test));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Runs `tool args…` in `dir` (bounded); panics with its output unless it
/// succeeds. Returns stdout.
pub fn run_in(dir: &Path, tool: Tool, args: &[&str]) -> String {
    // Output goes to files, not pipes: a full pipe cannot stall the child.
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    let mut child = std::process::Command::new(tool.program())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("clone temp file"))
        .stderr(err.try_clone().expect("clone temp file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", tool.program()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .unwrap_or_else(|e| panic!("poll {}: {e}", tool.program()))
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} did not finish in 60 s", tool.program());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        f.rewind().expect("rewind temp file");
        f.read_to_string(&mut text).expect("read temp file");
        text
    };
    let stdout = read(out);
    assert!(
        status.success(),
        "{} {args:?} failed ({status}):\n{stdout}\n{}",
        tool.program(),
        read(err)
    );
    stdout
}

/// The running test's full name: `<binary>::<test path>`, from the name
/// the test runner gives each test's thread (unique within a binary, and
/// including the `::rollcall` / `::etcd` twin), else `test` as given.
fn running_test(test: &str) -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .and_then(|stem| stem.split('-').next().map(str::to_owned))
        .unwrap_or_default();
    let current = std::thread::current();
    match current.name().filter(|n| *n != "main") {
        Some(name) => format!("{binary}::{name}"),
        None => test.to_owned(),
    }
}

fn record_run(tool: Tool, test: &str) {
    let Some(path) = std::env::var_os(RUNS_FILE_ENV) else {
        return;
    };
    let line = format!("{} {}\n", tool.program(), running_test(test));
    // One short append per line: concurrent tests do not interleave within it.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{Decision, decide};

    #[test]
    fn missing_tool_skips_unless_required() {
        assert_eq!(decide(true, false), Decision::Run);
        assert_eq!(decide(true, true), Decision::Run);
        assert_eq!(decide(false, false), Decision::Skip);
        assert_eq!(decide(false, true), Decision::Fail);
    }
}
