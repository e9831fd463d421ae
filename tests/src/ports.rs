//! Free loopback ports. A port is found by binding `127.0.0.1:0` and reading
//! the port the kernel chose; the socket is closed again so the server can
//! bind it. Ports handed out by this process are remembered, so two servers
//! started by concurrent tests of one binary never get the same port even if
//! the kernel offers it twice.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use crate::HarnessError;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a loopback TCP port that is free now and was not returned before
/// by this process.
pub fn free_port() -> Result<u16, HarnessError> {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| HarnessError::io("bind 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("local_addr of a bound socket", e))?
            .port();
        drop(listener);
        let mut seen = handed_out()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.insert(port) {
            return Ok(port);
        }
    }
    Err(HarnessError::io(
        "find a free loopback port",
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "64 tries returned ports already handed out",
        ),
    ))
}
