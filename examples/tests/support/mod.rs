//! Real processes for the walkthrough test: the `rollcall` binary (located
//! next to this test's own target directory) and the example binaries, each
//! a harness [`Proc`] (stdout captured line by line with the time each line
//! arrived; SIGKILLed and reaped on drop).

use std::path::{Path, PathBuf};
use std::process::Command;

pub use rollcall_tests::process::{Line, Proc};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The `rollcall` server binary of this workspace's build.
pub fn rollcall_binary() -> TestResult<PathBuf> {
    let bin = rollcall_tests::backend::built_rollcall();
    if bin.is_file() {
        return Ok(bin);
    }
    Err(format!(
        "the rollcall binary is not built (looked at {}); run `cargo build -p \
         rollcall-server` first (`cargo test --workspace` builds it)",
        bin.display()
    )
    .into())
}

/// Starts `program args` in the background as `name`.
pub fn spawn(name: &str, program: &Path, args: &[String]) -> TestResult<Proc> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ok(Proc::spawn(name, cmd)?)
}
