//! How results are printed: [`Table`] (aligned columns under upper-case
//! headers), the JSON shapes of keys, values and lease ids, and [`emit`],
//! which writes to stdout and reports a closed pipe instead of panicking.
//!
//! Keys and values are bytes. A table shows them as text with control
//! characters escaped; JSON carries them as strings when they are UTF-8 and
//! as `key_base64`/`value_base64` otherwise, so nothing is lost.

use std::io::Write;

use rollcall_proto::mvccpb::KeyValue;
use serde_json::{Map, Value, json};

use super::CliError;

/// Writes `text` to stdout and flushes it (watchers print as events come).
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes one line to stdout.
pub(crate) fn line(text: impl std::fmt::Display) -> Result<(), CliError> {
    emit(&format!("{text}\n"))
}

/// Writes one compact JSON document as a line.
pub(crate) fn json_line(value: &Value) -> Result<(), CliError> {
    line(value)
}

/// Columns under headers, left-aligned, two spaces apart; the last column is
/// not padded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    let pad = width.saturating_sub(cell.chars().count()) + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Bytes as table text: UTF-8 (lossy) with control characters escaped, so a
/// value holding a newline stays on its row.
pub(crate) fn text(bytes: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(lossy.len());
    for c in lossy.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A lease id as etcdctl prints it: 16 lower-case hex digits, no prefix.
pub(crate) fn lease_hex(id: i64) -> String {
    format!("{id:016x}")
}

/// A lease id cell: hex, or `-` for none.
pub(crate) fn lease_cell(id: i64) -> String {
    if id == 0 {
        "-".to_owned()
    } else {
        lease_hex(id)
    }
}

/// Puts `bytes` into `object` as `name` (UTF-8) or `name_base64`.
pub(crate) fn insert_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            object.insert(name.to_owned(), Value::String(s.to_owned()));
        }
        Err(_) => {
            object.insert(format!("{name}_base64"), Value::String(base64(bytes)));
        }
    }
}

/// A key-value as JSON; `lease` is hex (or null), as on the command line.
pub(crate) fn kv_json(kv: &KeyValue) -> Value {
    let mut object = Map::new();
    insert_bytes(&mut object, "key", &kv.key);
    insert_bytes(&mut object, "value", &kv.value);
    object.insert("create_revision".into(), json!(kv.create_revision));
    object.insert("mod_revision".into(), json!(kv.mod_revision));
    object.insert("version".into(), json!(kv.version));
    object.insert(
        "lease".into(),
        if kv.lease == 0 {
            Value::Null
        } else {
            Value::String(lease_hex(kv.lease))
        },
    );
    Value::Object(object)
}

/// Standard base64 with padding (RFC 4648), for keys and values that are
/// not UTF-8.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A byte count as etcdctl shows db sizes: SI units (`20 kB`, `1.5 MB`).
pub(crate) fn bytes_si(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64;
    let mut unit = 0;
    while value.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}
