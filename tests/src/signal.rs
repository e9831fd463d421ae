//! Sending a Unix signal to a process by id, through the `kill` program so
//! this crate stays free of unsafe FFI.

use std::process::{Command, Stdio};

use crate::HarnessError;

/// Sends `signal` (`TERM`, `INT`, `STOP`, `CONT`, `KILL`, ...) to `pid`.
pub fn send(pid: u32, signal: &str) -> Result<(), HarnessError> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| HarnessError::io("run kill", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::io(
            format!("kill -{signal} {pid}"),
            std::io::Error::other(format!("kill exited with {status}")),
        ))
    }
}
