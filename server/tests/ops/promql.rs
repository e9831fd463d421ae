//! Which series a PromQL expression (or a Grafana query) selects: enough of
//! a tokenizer to find metric names and the label names matched on them,
//! skipping strings, durations, Grafana variables and the label lists of
//! `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.

use std::collections::{BTreeMap, BTreeSet};

/// Metric-name prefixes rollcall exports (etcd's, go-grpc-prometheus's and
/// its own). Names outside them (`up`, functions, keywords, recording
/// rules such as `rollcall:…`) are not checked against `/metrics`.
pub const EXPORTED_PREFIXES: [&str; 3] = ["etcd_", "grpc_", "rollcall_"];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Operators and keywords that look like names but select nothing.
const KEYWORDS: [&str; 19] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
];

/// The series an expression selects: metric name → label names used in its
/// `{…}` matchers (over all its occurrences).
pub fn selectors(expr: &str) -> BTreeMap<String, BTreeSet<String>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '{' => {
                // Matchers with no metric name before them (`{__name__=…}`)
                // are not used here; skip them.
                let (_, end) = matcher_labels(&chars, i);
                i = end;
            }
            '$' => {
                i += 1;
                if i < chars.len() && chars[i] == '{' {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && is_ident_char(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || (c == '.' && next_is_digit(&chars, i)) => {
                // A number or a duration: 0.25, 1e9, 0x1F, 5m, 1h30m.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = skip_space(&chars, i);
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if j < chars.len() && chars[j] == '(' {
                        while j < chars.len() && chars[j] != ')' {
                            j += 1;
                        }
                        i = j + 1;
                    }
                    continue;
                }
                if KEYWORDS.contains(&word.as_str()) {
                    continue;
                }
                if j < chars.len() && chars[j] == '(' {
                    // A function or an aggregation: not a series.
                    continue;
                }
                let entry = out.entry(word).or_default();
                if j < chars.len() && chars[j] == '{' {
                    let (labels, end) = matcher_labels(&chars, j);
                    entry.extend(labels);
                    j = end;
                    i = j;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The selected metric names with an exported prefix.
pub fn exported_names(expr: &str) -> BTreeMap<String, BTreeSet<String>> {
    selectors(expr)
        .into_iter()
        .filter(|(name, _)| EXPORTED_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect()
}

/// The selected names that are recording rules (`level:metric:operations`).
pub fn recorded_names(expr: &str) -> BTreeSet<String> {
    selectors(expr)
        .into_keys()
        .filter(|name| name.contains(':'))
        .collect()
}

/// Label names in the `{…}` starting at `open`; returns them and the index
/// after the closing brace.
fn matcher_labels(chars: &[char], open: usize) -> (BTreeSet<String>, usize) {
    let mut labels = BTreeSet::new();
    let mut i = open + 1;
    let mut expect_name = true;
    while i < chars.len() && chars[i] != '}' {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            expect_name = false;
        } else if c == ',' {
            expect_name = true;
            i += 1;
        } else if is_ident_start(c) && expect_name {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            labels.insert(chars[start..i].iter().collect());
            expect_name = false;
        } else {
            i += 1;
        }
    }
    (labels, i + 1)
}

fn skip_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        selectors(expr).into_keys().collect()
    }

    #[test]
    fn finds_metric_names_and_skips_functions_labels_and_strings() {
        let expr = r#"
            sum by (job, instance, grpc_service, grpc_method) (
              rate(grpc_server_handled_total{grpc_type="unary", grpc_code=~"Unknown|etcd_fake"}[5m])
            )
              / on (job, instance) group_left (grpc_code)
            sum without (grpc_code) (rate(grpc_server_handled_total[$__rate_interval] offset 1h))
            > 0.01 and etcd_server_has_leader == bool 1
        "#;
        assert_eq!(
            names(expr),
            ["etcd_server_has_leader", "grpc_server_handled_total"]
        );
        let all = selectors(expr);
        assert_eq!(
            all["grpc_server_handled_total"],
            BTreeSet::from(["grpc_code".to_owned(), "grpc_type".to_owned()])
        );
        assert_eq!(
            exported_names(expr).into_keys().collect::<Vec<_>>(),
            ["etcd_server_has_leader", "grpc_server_handled_total"]
        );
    }

    #[test]
    fn handles_histograms_recording_rules_and_grafana_variables() {
        let expr = r#"histogram_quantile(0.99, sum by (le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{job=~"$job", instance=~"${instance}"}[$__rate_interval])))
            / rollcall:quota_backend_bytes{instance=~"$instance"} * 1e9 + ${offset}"#;
        assert_eq!(
            exported_names(expr).into_keys().collect::<Vec<_>>(),
            ["etcd_disk_backend_commit_duration_seconds_bucket"]
        );
        assert_eq!(
            recorded_names(expr).into_iter().collect::<Vec<_>>(),
            ["rollcall:quota_backend_bytes"]
        );
        assert_eq!(
            names("label_values(etcd_server_has_leader{job=~\"$job\"}, instance)"),
            ["etcd_server_has_leader", "instance"]
        );
    }
}
