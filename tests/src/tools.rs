//! External tools the tests compare against (`etcd`, `etcdctl`), and the rule
//! for when one is missing: a test that needs it says plainly that it is
//! skipped and returns, unless `ROLLCALL_REQUIRE_ETCD=1` is set (CI sets it),
//! in which case a missing tool fails the test instead.

use std::io::Write;
use std::process::{Command, Stdio};

/// Environment variable that turns a skip for a missing tool into a failure.
pub const REQUIRE_ENV: &str = "ROLLCALL_REQUIRE_ETCD";

/// What to install to get the tools.
pub const INSTALL_HINT: &str = "apt-get install etcd-server etcd-client";

/// An external program some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The etcd server (Debian package `etcd-server`).
    Etcd,
    /// The etcd v3 command line client (Debian package `etcd-client`).
    Etcdctl,
}

impl Tool {
    /// The program name looked up in `PATH`.
    #[must_use]
    pub fn program(self) -> &'static str {
        match self {
            Tool::Etcd => "etcd",
            Tool::Etcdctl => "etcdctl",
        }
    }

    /// Whether the program is installed and runs (`etcd --version`,
    /// `etcdctl version`).
    #[must_use]
    pub fn available(self) -> bool {
        let probe = match self {
            Tool::Etcd => "--version",
            Tool::Etcdctl => "version",
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

/// Whether missing tools must fail tests rather than skip them.
#[must_use]
pub fn tools_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// What to do about a test that needs a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The tool is there: run the test.
    Run,
    /// The tool is missing and skipping is allowed.
    Skip,
    /// The tool is missing and `ROLLCALL_REQUIRE_ETCD=1`: fail.
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

/// Returns true when `tool` is available and the test should go on.
///
/// When it is missing, prints `SKIPPED: <test> needs <tool> (...)` and
/// returns false, so the caller returns; but when `ROLLCALL_REQUIRE_ETCD=1`
/// is set, panics instead.
///
/// # Panics
/// When the tool is missing and `ROLLCALL_REQUIRE_ETCD=1`.
#[must_use]
pub fn require_or_skip(tool: Tool, test: &str) -> bool {
    let message = || format!("{test} needs {} ({INSTALL_HINT})", tool.program());
    match decide(tool.available(), tools_required()) {
        Decision::Run => true,
        Decision::Fail => panic!(
            "FAILED: {}, and {REQUIRE_ENV}=1 forbids skipping",
            message()
        ),
        Decision::Skip => {
            // Straight to the process's stderr: unlike `eprintln!`, this is
            // not captured by the test runner, so the skip shows in a plain
            // `cargo test`.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {}", message());
            false
        }
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
