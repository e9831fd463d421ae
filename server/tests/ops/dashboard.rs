//! `deploy/grafana/rollcall-dashboard.json`: valid JSON in Grafana's
//! dashboard shape, covering what operators need, with queries that parse
//! (promtool, when installed) and read only metrics a live rollcall exports.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::promql;
use crate::rules::{self, check_names, note_newly_exported};
use crate::support::{Ops, promtool, promtool_or_skip, repo_root};

const DASHBOARD: &str = "deploy/grafana/rollcall-dashboard.json";

/// Series the dashboard must chart (issue 7, item 3, and the brief's panel
/// list): leader, RPS and errors, RPC latency, commit latency, batch size,
/// DB size, keys, puts and deletes, watchers, leases, registry instances.
const MUST_CHART: &[&str] = &[
    "etcd_server_has_leader",
    "grpc_server_handled_total",
    "grpc_server_handling_seconds_bucket",
    "etcd_disk_backend_commit_duration_seconds_bucket",
    "rollcall_group_commit_batch_size_bucket",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_debugging_mvcc_keys_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_debugging_mvcc_watcher_total",
    "rollcall_watch_slow_watchers",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "rollcall_lease_expired_total",
    "rollcall_registry_instances",
];

fn load() -> Value {
    let path = repo_root().join(DASHBOARD);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// (where, PromQL) of every panel target.
fn target_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let reference = target["refId"].as_str().unwrap_or("?");
                out.push((format!("panel {title:?} {reference}"), expr.to_owned()));
            }
        }
    }
    out
}

/// (where, query) of every template variable that queries Prometheus.
fn variable_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        let query = variable["query"]
            .get("query")
            .or(Some(&variable["query"]))
            .and_then(Value::as_str)
            .or_else(|| variable["definition"].as_str());
        if let Some(query) = query {
            out.push((format!("variable ${name}"), query.to_owned()));
        }
    }
    out
}

#[test]
fn dashboard_is_well_formed() {
    let dashboard = load();
    let mut problems = Vec::new();

    let schema = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    if !(36..=41).contains(&schema) {
        problems.push(format!("schemaVersion {schema}, expected about 39"));
    }
    for key in ["uid", "title"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_datasource_variable = variables.iter().any(|v| {
        v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"
    });
    if !has_datasource_variable {
        problems.push("no `datasource` variable of type datasource for prometheus".into());
    }

    let mut ids = BTreeSet::new();
    let mut charts = 0;
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        let kind = panel["type"].as_str().unwrap_or("");
        match panel["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            other => problems.push(format!("{title}: id {other:?} missing or repeated")),
        }
        let grid = &panel["gridPos"];
        let (x, w, h) = (
            grid["x"].as_u64().unwrap_or(99),
            grid["w"].as_u64().unwrap_or(0),
            grid["h"].as_u64().unwrap_or(0),
        );
        if w == 0 || h == 0 || x + w > 24 || grid["y"].as_u64().is_none() {
            problems.push(format!("{title}: bad gridPos {grid}"));
        }
        if kind == "row" {
            continue;
        }
        charts += 1;
        if panel["datasource"]["uid"] != "${datasource}" {
            problems.push(format!("{title}: datasource is not ${{datasource}}"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no targets"));
        }
        let mut references = BTreeSet::new();
        for target in &targets {
            if target["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                problems.push(format!("{title}: a target without expr"));
            }
            if !target["refId"]
                .as_str()
                .is_some_and(|r| references.insert(r.to_owned()))
            {
                problems.push(format!("{title}: refId missing or repeated"));
            }
        }
    }
    if charts < 10 {
        problems.push(format!("only {charts} charts"));
    }

    let exprs = target_exprs(&dashboard);
    let charted: BTreeSet<String> = exprs
        .iter()
        .flat_map(|(_, e)| promql::exported_names(e).into_keys())
        .collect();
    for name in MUST_CHART {
        if !charted.contains(*name) {
            problems.push(format!("no panel charts {name}"));
        }
    }
    // Recording rules the dashboard reads must be in the rules file.
    let recorded = rules::recorded_names();
    for (at, expr) in &exprs {
        for used in promql::recorded_names(expr) {
            if !recorded.contains(&used) {
                problems.push(format!(
                    "{at}: reads {used}, which {} does not record",
                    rules::RULES
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{DASHBOARD}:\n{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_reads_only_exported_metrics() {
    let dashboard = load();
    let mut ops = Ops::start().await;
    let live = ops.populated_scrape().await.series_names();
    let mut exprs = target_exprs(&dashboard);
    exprs.extend(variable_queries(&dashboard));
    assert!(exprs.len() > 10, "{exprs:?}");
    let (problems, _) = check_names(&exprs, &live);
    assert!(
        problems.is_empty(),
        "{DASHBOARD}:\n{problems:#?}\nlive series: {:#?}",
        live.keys().collect::<Vec<_>>()
    );
    note_newly_exported(&live);
}

#[test]
fn promtool_parses_the_dashboard_queries() {
    if !promtool_or_skip("dashboard::promtool_parses_the_dashboard_queries") {
        return;
    }
    // Each query as a recording rule, Grafana's variables replaced by values
    // of the right kind, so `promtool check rules` parses the PromQL.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (at, expr)) in target_exprs(&load()).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        assert!(!expr.contains('$'), "{at}: unknown variable in {expr}");
        let quoted = serde_json::to_string(&expr).expect("a string serializes");
        let _ = writeln!(file, "      - record: dashboard:query_{i}:check");
        let _ = writeln!(file, "        expr: {quoted}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("dashboard-queries.yml"), &file).expect("write queries");
    let checked = promtool(dir.path(), &["check", "rules", "dashboard-queries.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}\n{file}");
}
