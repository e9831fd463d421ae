//! `get`, `put` and `del`: the KV commands, with etcdctl's options.
//!
//! Tables: `get` prints `KEY VALUE MOD_REV VERSION LEASE` (no `VALUE` with
//! `--keys-only`, a `COUNT` with `--count-only`); `put` prints `OK` (and the
//! previous key-value with `--prev-kv`); `del` prints how many keys it
//! deleted (and them with `--prev-kv`). JSON: one object per command with
//! the header revision.

use clap::{Args, ValueEnum};
use rollcall_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rollcall_proto::mvccpb::KeyValue;
use serde_json::{Value, json};

use super::output::{Table, emit, json_line, kv_json, lease_cell, line, text};
use super::{CliError, GlobalArgs, lease::parse_lease_id};
use crate::header::HasHeader;
use crate::kv::{DeleteOptions, GetOptions, PutOptions};

/// `rollcall get <key> [range_end]`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The key (with `--prefix`: the prefix; with `--from-key`: the first key).
    pub key: String,
    /// Read the keys in `[key, range_end)`.
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub range_end: Option<String>,
    /// Every key starting with `key`.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Every key greater than or equal to `key`.
    #[arg(long)]
    pub from_key: bool,
    /// At most this many keys (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Read at this revision (0: the current one).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Keys and metadata only, no values.
    #[arg(long)]
    pub keys_only: bool,
    /// Only the number of keys.
    #[arg(long, conflicts_with = "keys_only")]
    pub count_only: bool,
    /// Sort the keys by this field.
    #[arg(long, value_enum)]
    pub sort: Option<SortBy>,
    /// Sort order (with `--sort`; ascending unless told).
    #[arg(long, value_enum, requires = "sort")]
    pub order: Option<SortOrderArg>,
    /// Answer from the member's local state, without a linearizable read.
    #[arg(long)]
    pub serializable: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// What `get --sort` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Key,
    Version,
    Create,
    Modify,
    Value,
}

/// `get --order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortOrderArg {
    #[value(alias = "ascend")]
    Asc,
    #[value(alias = "descend")]
    Desc,
}

/// `rollcall put <key> <value>`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    pub key: String,
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// Attach the key to this lease (hex id, as `lease grant` prints it).
    #[arg(long, value_parser = parse_lease_id)]
    pub lease: Option<i64>,
    /// Print the key-value the put replaced.
    #[arg(long)]
    pub prev_kv: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `rollcall del <key> [range_end]`.
#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    pub key: String,
    /// Delete the keys in `[key, range_end)`.
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub range_end: Option<String>,
    /// Every key starting with `key`.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Every key greater than or equal to `key`.
    #[arg(long)]
    pub from_key: bool,
    /// Print the deleted key-values.
    #[arg(long)]
    pub prev_kv: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

impl GetArgs {
    pub(crate) fn options(&self) -> GetOptions {
        let mut options = GetOptions::new().limit(self.limit).revision(self.rev);
        if let Some(end) = &self.range_end {
            options = options.range_end(end.as_str());
        } else if self.prefix {
            options = options.prefix();
        } else if self.from_key {
            options = options.from_key();
        }
        if let Some(by) = self.sort {
            let target = match by {
                SortBy::Key => SortTarget::Key,
                SortBy::Version => SortTarget::Version,
                SortBy::Create => SortTarget::Create,
                SortBy::Modify => SortTarget::Mod,
                SortBy::Value => SortTarget::Value,
            };
            let order = match self.order {
                Some(SortOrderArg::Desc) => SortOrder::Descend,
                Some(SortOrderArg::Asc) | None => SortOrder::Ascend,
            };
            options = options.sort(target, order);
        }
        if self.keys_only {
            options = options.keys_only();
        }
        if self.count_only {
            options = options.count_only();
        }
        if self.serializable {
            options = options.serializable();
        }
        options
    }
}

impl DelArgs {
    pub(crate) fn options(&self) -> DeleteOptions {
        let mut options = DeleteOptions::new();
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

/// A table of key-values; without values when `values` is false.
pub(crate) fn kv_table(kvs: &[KeyValue], values: bool) -> Table {
    let mut table = if values {
        Table::new(["KEY", "VALUE", "MOD_REV", "VERSION", "LEASE"])
    } else {
        Table::new(["KEY", "MOD_REV", "VERSION", "LEASE"])
    };
    for kv in kvs {
        let mut row = vec![text(&kv.key)];
        if values {
            row.push(text(&kv.value));
        }
        row.extend([
            kv.mod_revision.to_string(),
            kv.version.to_string(),
            lease_cell(kv.lease),
        ]);
        table.row(row);
    }
    table
}

pub(crate) async fn get(args: GetArgs) -> Result<(), CliError> {
    let global = &args.global;
    let client = global.connect().await?;
    let resp = client
        .get_with(args.key.as_str(), args.options())
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if global.json() {
        return json_line(&json!({
            "revision": resp.revision(),
            "count": resp.count,
            "more": resp.more,
            "kvs": resp.kvs.iter().map(kv_json).collect::<Vec<_>>(),
        }));
    }
    if args.count_only {
        let mut table = Table::new(["COUNT"]);
        table.row(vec![resp.count.to_string()]);
        return emit(&table.render());
    }
    emit(&kv_table(&resp.kvs, !args.keys_only).render())?;
    if resp.more {
        let shown = i64::try_from(resp.kvs.len()).unwrap_or(i64::MAX);
        line(format!(
            "({shown} of {} keys shown; raise --limit for more)",
            resp.count
        ))?;
    }
    Ok(())
}

pub(crate) async fn put(args: PutArgs) -> Result<(), CliError> {
    let global = &args.global;
    let client = global.connect().await?;
    let mut options = PutOptions::new();
    if let Some(lease) = args.lease {
        options = options.lease(lease);
    }
    if args.prev_kv {
        options = options.prev_kv();
    }
    let resp = client
        .put_with(args.key.as_str(), args.value.as_str(), options)
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if global.json() {
        return json_line(&json!({
            "revision": resp.revision(),
            "prev_kv": resp.prev_kv.as_ref().map_or(Value::Null, kv_json),
        }));
    }
    line("OK")?;
    if let Some(prev) = &resp.prev_kv {
        emit(&kv_table(std::slice::from_ref(prev), true).render())?;
    }
    Ok(())
}

pub(crate) async fn del(args: DelArgs) -> Result<(), CliError> {
    let global = &args.global;
    let client = global.connect().await?;
    let resp = client
        .delete_with(args.key.as_str(), args.options())
        .await
        .map_err(|e| CliError::client(e, &global.endpoints))?;
    if global.json() {
        return json_line(&json!({
            "revision": resp.revision(),
            "deleted": resp.deleted,
            "prev_kvs": resp.prev_kvs.iter().map(kv_json).collect::<Vec<_>>(),
        }));
    }
    line(resp.deleted)?;
    if args.prev_kv && !resp.prev_kvs.is_empty() {
        emit(&kv_table(&resp.prev_kvs, true).render())?;
    }
    Ok(())
}
