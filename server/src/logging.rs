//! Where the binary's log lines go and how they look: stderr, plain text or
//! one JSON object per line (`--log-format`), filtered by `--log-level` unless
//! RUST_LOG says otherwise, and without ANSI colours unless stderr is a
//! terminal (a file or a log shipper must not receive escape codes).

use std::io::IsTerminal;

use rollcall_server::config::{LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Called once, before anything logs.
pub(crate) fn init(format: LogFormat, level: LogLevel) {
    let (filter, bad_rust_log) = filter(std::env::var("RUST_LOG").ok().as_deref(), level);
    // NO_COLOR (no-color.org) also turns colours off on a terminal.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        // Flattened so `message` and the event's fields sit beside `level`
        // at the top of each object, as etcd's JSON lines have them.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(error) = bad_rust_log {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; using --log-level");
    }
}

/// The filter: RUST_LOG's directives when it is set and valid, else
/// `level` for rollcall's own crates and at most `info` for its
/// dependencies (their debug output drowns a member's own). Also returns why
/// RUST_LOG was rejected, to be logged once the subscriber exists.
fn filter(rust_log: Option<&str>, level: LogLevel) -> (EnvFilter, Option<String>) {
    let mut rejected = None;
    if let Some(directives) = rust_log.filter(|d| !d.trim().is_empty()) {
        match EnvFilter::try_new(directives) {
            Ok(filter) => return (filter, None),
            Err(e) => rejected = Some(e.to_string()),
        }
    }
    (EnvFilter::new(directives(level)), rejected)
}

fn directives(level: LogLevel) -> String {
    let ours = level.as_str();
    let dependencies = level.min(LogLevel::Info).as_str();
    format!("{dependencies},rollcall={ours},rollcall_server={ours},rollcall_client={ours}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_applies_to_our_crates_and_caps_dependencies_at_info() {
        assert_eq!(
            directives(LogLevel::Warn),
            "warn,rollcall=warn,rollcall_server=warn,rollcall_client=warn"
        );
        assert_eq!(
            directives(LogLevel::Trace),
            "info,rollcall=trace,rollcall_server=trace,rollcall_client=trace"
        );
    }

    #[test]
    fn rust_log_wins_when_valid() {
        let (f, bad) = filter(Some("debug"), LogLevel::Error);
        assert!(bad.is_none());
        assert_eq!(f.to_string(), "debug");
        let (f, bad) = filter(Some("rollcall=notalevel=x"), LogLevel::Warn);
        assert!(bad.is_some());
        assert!(f.to_string().contains("rollcall_server=warn"), "{f}");
        let (f, bad) = filter(Some("  "), LogLevel::Info);
        assert!(bad.is_none());
        assert!(f.to_string().contains("rollcall=info"), "{f}");
    }
}
