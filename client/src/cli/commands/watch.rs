//! `watch <key>`: prints every change as it arrives, until SIGINT or SIGTERM
//! (exit 0) or until the watch ends (compaction, the registry gone for
//! longer than the reconnect policy: exit non-zero).
//!
//! Table output is one line per event, `PUT <key> <value> (revision N)` or
//! `DELETE <key> (revision N)`, with `(was <value>)` under `--prev-kv`;
//! JSON output is one object per line:
//! `{"type":"PUT","revision":N,"key":…,"value":…,"prev_kv":…}`.

use clap::Args;
use serde_json::{Map, Value, json};

use super::output::{insert_bytes, json_line, kv_json, line, text};
use super::signal::Shutdown;
use super::{CliError, GlobalArgs};
use crate::watch::{EventKind, WatchEvent, WatchOptions};

/// `rollcall watch <key> [range_end]`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    pub key: String,
    /// Watch the keys in `[key, range_end)`.
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub range_end: Option<String>,
    /// Every key starting with `key`.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Every key greater than or equal to `key`.
    #[arg(long)]
    pub from_key: bool,
    /// Replay history from this revision (0: only changes from now on).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Print each event with the key-value before it.
    #[arg(long)]
    pub prev_kv: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

impl WatchArgs {
    pub(crate) fn options(&self) -> WatchOptions {
        let mut options = WatchOptions::new().start_revision(self.rev);
        if let Some(end) = &self.range_end {
            options = options.range_end(end.as_str());
        } else if self.prefix {
            options = options.prefix();
        } else if self.from_key {
            options = options.from_key();
        }
        if self.prev_kv {
            options = options.prev_kv();
        }
        options
    }
}

fn kind(event: &WatchEvent) -> &'static str {
    match event.kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    }
}

/// One event as a table line.
pub(crate) fn event_line(event: &WatchEvent) -> String {
    let mut out = format!("{} {}", kind(event), text(event.key()));
    if event.is_put() {
        out.push(' ');
        out.push_str(&text(event.value()));
    }
    out.push_str(&format!(" (revision {})", event.revision()));
    if let Some(prev) = &event.prev_kv {
        out.push_str(&format!(" (was {})", text(&prev.value)));
    }
    out
}

/// One event as a JSON object.
pub(crate) fn event_json(event: &WatchEvent) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), json!(kind(event)));
    object.insert("revision".into(), json!(event.revision()));
    insert_bytes(&mut object, "key", event.key());
    if event.is_put() {
        insert_bytes(&mut object, "value", event.value());
        object.insert("version".into(), json!(event.kv.version));
    }
    object.insert(
        "prev_kv".into(),
        event.prev_kv.as_ref().map_or(Value::Null, kv_json),
    );
    Value::Object(object)
}

pub(crate) async fn run(args: WatchArgs) -> Result<(), CliError> {
    let mut shutdown = Shutdown::install()?;
    let global = &args.global;
    let client = global.connect().await?;
    let mut watcher = tokio::select! {
        watcher = client.watch(args.key.as_str(), args.options()) => {
            watcher.map_err(|e| CliError::watch(e, &global.endpoints))?
        }
        () = shutdown.wait() => return Ok(()),
    };
    loop {
        let batch = tokio::select! {
            batch = watcher.next() => batch,
            () = shutdown.wait() => return Ok(()),
        };
        match batch {
            Some(Ok(batch)) => {
                for event in &batch.events {
                    if global.json() {
                        json_line(&event_json(event))?;
                    } else {
                        line(event_line(event))?;
                    }
                }
            }
            Some(Err(e)) => return Err(CliError::watch(e, &global.endpoints)),
            None => {
                return Err(CliError::watch(
                    crate::error::WatchError::Closed,
                    &global.endpoints,
                ));
            }
        }
    }
}
