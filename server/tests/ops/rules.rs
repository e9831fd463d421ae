//! `deploy/prometheus/rollcall-alerts.yml`: well formed, accepted and unit
//! tested by `promtool` (when installed), and reading only metrics a live
//! rollcall exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_norway::Value;

use crate::promql;
use crate::support::{Ops, promtool, promtool_or_skip, repo_root};

/// The rules file, relative to the repository root.
pub const RULES: &str = "deploy/prometheus/rollcall-alerts.yml";
/// Its promtool unit tests, in the same directory.
const RULE_TESTS: &str = "rollcall-alerts.test.yml";

/// Metrics the rules read that rollcall does not export yet (none now).
/// Each would be documented as such in the rules file and in
/// deploy/README.md; the check below fails if an entry is exported already.
pub const NOT_YET_EXPORTED: &[(&str, &str)] = &[];

/// The alerts the operations issue asks for (issue 7, item 3, plus the gRPC
/// error ratio).
const EXPECTED_ALERTS: &[&str] = &[
    "RollcallNoLeader",
    "RollcallCommitLatencyHigh",
    "RollcallDatabaseNearQuota",
    "RollcallAlarmActive",
    "RollcallWatchersSlow",
    "RollcallLeaseExpirySpike",
    "RollcallGrpcErrorRatioHigh",
];

const RULE_KEYS: &[&str] = &[
    "alert",
    "record",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
];

/// Target labels Prometheus adds to every scraped series.
pub const TARGET_LABELS: &[&str] = &["job", "instance"];

pub fn rules_path() -> PathBuf {
    repo_root().join(RULES)
}

/// One rule of the file: its group and its YAML mapping.
pub struct Rule {
    pub group: String,
    pub body: Value,
}

impl Rule {
    fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    pub fn name(&self) -> String {
        self.str("alert")
            .or_else(|| self.str("record"))
            .unwrap_or("<unnamed>")
            .to_owned()
    }

    pub fn expr(&self) -> &str {
        self.str("expr").unwrap_or_default()
    }
}

pub fn load_rules() -> Vec<Rule> {
    let path = rules_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let groups = doc
        .get("groups")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{RULES}: no `groups` list"));
    let mut rules = Vec::new();
    for group in groups {
        let name = group
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{RULES}: a group without a name"));
        let list = group
            .get("rules")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{RULES}: group {name} has no `rules` list"));
        assert!(!list.is_empty(), "{RULES}: group {name} is empty");
        for body in list {
            rules.push(Rule {
                group: name.to_owned(),
                body: body.clone(),
            });
        }
    }
    rules
}

/// The recording rules the file defines.
pub fn recorded_names() -> BTreeSet<String> {
    load_rules()
        .iter()
        .filter_map(|r| r.str("record").map(str::to_owned))
        .collect()
}

fn is_duration(text: &str) -> bool {
    // Prometheus durations: one or more <number><unit>, e.g. 5m, 1h30m.
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn alert_rules_are_well_formed() {
    let rules = load_rules();
    let recorded = recorded_names();
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for rule in &rules {
        let name = rule.name();
        let at = format!("{}/{name}", rule.group);
        let Some(map) = rule.body.as_mapping() else {
            problems.push(format!("{at}: not a mapping"));
            continue;
        };
        for key in map.keys() {
            let key = key.as_str().unwrap_or("<non-string key>");
            if !RULE_KEYS.contains(&key) {
                problems.push(format!("{at}: unknown key {key}"));
            }
        }
        if rule.expr().trim().is_empty() {
            problems.push(format!("{at}: no expr"));
        }
        for used in promql::recorded_names(rule.expr()) {
            if !recorded.contains(&used) {
                problems.push(format!("{at}: reads {used}, which no rule records"));
            }
        }
        match (rule.str("alert"), rule.str("record")) {
            (Some(alert), None) => {
                if !alerts.insert(alert.to_owned()) {
                    problems.push(format!("{at}: alert name used twice"));
                }
                let severity = rule
                    .body
                    .get("labels")
                    .and_then(|l| l.get("severity"))
                    .and_then(Value::as_str);
                if !matches!(severity, Some("critical" | "warning" | "info")) {
                    problems.push(format!(
                        "{at}: labels.severity is {severity:?}, not critical/warning/info"
                    ));
                }
                for key in ["summary", "description"] {
                    let text = rule
                        .body
                        .get("annotations")
                        .and_then(|a| a.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if text.trim().is_empty() {
                        problems.push(format!("{at}: no annotations.{key}"));
                    }
                }
                if let Some(duration) = rule.body.get("for") {
                    let ok = duration.as_str().is_some_and(is_duration);
                    if !ok {
                        problems.push(format!("{at}: `for: {duration:?}` is not a duration"));
                    }
                }
            }
            (None, Some(record)) => {
                // level:metric:operations, as Prometheus recommends.
                if !record.contains(':') {
                    problems.push(format!("{at}: recording rule name without a colon"));
                }
                if rule.body.get("for").is_some() || rule.body.get("annotations").is_some() {
                    problems.push(format!("{at}: a recording rule takes no for/annotations"));
                }
            }
            _ => problems.push(format!("{at}: needs exactly one of alert / record")),
        }
    }
    for expected in EXPECTED_ALERTS {
        if !alerts.contains(*expected) {
            problems.push(format!("missing alert {expected}"));
        }
    }
    assert!(problems.is_empty(), "{RULES}:\n{problems:#?}");
}

/// Checks that every exported-prefix metric `exprs` read exists in `live`
/// (series name → label names) or is allow-listed as not yet exported, and
/// that the labels matched on it exist. Returns the problems, and the
/// allow-listed names that were read.
pub fn check_names(
    exprs: &[(String, String)],
    live: &BTreeMap<String, BTreeSet<String>>,
) -> (Vec<String>, BTreeSet<&'static str>) {
    let mut problems = Vec::new();
    let mut allowed_used = BTreeSet::new();
    for (at, expr) in exprs {
        for (name, labels) in promql::exported_names(expr) {
            let Some(known) = live.get(&name) else {
                if let Some((allowed, _)) = NOT_YET_EXPORTED.iter().find(|(n, _)| *n == name) {
                    allowed_used.insert(*allowed);
                } else {
                    problems.push(format!("{at}: {name} is not in rollcall's /metrics"));
                }
                continue;
            };
            for label in labels {
                if !known.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!(
                        "{at}: {name} has no label {label} (it has {known:?})"
                    ));
                }
            }
        }
    }
    (problems, allowed_used)
}

/// Warns about allow-listed names the live server now exports: the
/// allowlist and the "not exported yet" comments are then stale.
pub fn note_newly_exported(live: &BTreeMap<String, BTreeSet<String>>) {
    for (name, _) in NOT_YET_EXPORTED {
        if live.contains_key(*name) {
            eprintln!(
                "NOTE: {name} is exported now: drop it from NOT_YET_EXPORTED \
                 (server/tests/ops/rules.rs) and the comments in {RULES} and deploy/README.md"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_read_only_exported_metrics() {
    let mut ops = Ops::start().await;
    let live = ops.populated_scrape().await.series_names();
    let exprs: Vec<(String, String)> = load_rules()
        .iter()
        .map(|r| (format!("{}/{}", r.group, r.name()), r.expr().to_owned()))
        .collect();
    let (problems, allowed_used) = check_names(&exprs, &live);
    assert!(
        problems.is_empty(),
        "{RULES}:\n{problems:#?}\nlive series: {:#?}",
        live.keys().collect::<Vec<_>>()
    );
    // Every allowlist entry must still be needed by the rules.
    for (name, why) in NOT_YET_EXPORTED {
        assert!(
            allowed_used.contains(name),
            "NOT_YET_EXPORTED lists {name} ({why}) but no rule reads it"
        );
    }
    note_newly_exported(&live);
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    if !promtool_or_skip("rules::promtool_checks_and_unit_tests_the_rules") {
        return;
    }
    let dir = rules_path()
        .parent()
        .expect("the rules file has a directory")
        .to_path_buf();
    let checked = promtool(&dir, &["check", "rules", "rollcall-alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn durations_are_recognised() {
    for ok in ["0m", "5m", "1h30m", "10s", "250ms", "2d"] {
        assert!(is_duration(ok), "{ok}");
    }
    for bad in ["", "5", "m", "5 m", "1.5h", "5min"] {
        assert!(!is_duration(bad), "{bad}");
    }
}
