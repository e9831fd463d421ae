//! [`BenchReport`]: what a scenario measured, with its parameters, as a
//! human-readable table or as one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::driver::Outcome;

/// The result of one scenario run. Throughput counts successful requests only
/// (for `watch-latency`, delivered events).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub scenario: String,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    /// The request budget, if the run was bounded by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The time budget in seconds, if the run was bounded by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    /// `"l"` (linearizable) or `"s"` (serializable) for reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    pub ok: u64,
    /// Requests answered without effect (`txn-cas`: the compare failed
    /// because another client swapped first); not errors, not in `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    pub errors: u64,
    /// The first error seen, to tell what went wrong without a log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub elapsed_secs: f64,
    pub ops_per_sec: f64,
    pub latency_ms: LatencySummary,
    /// Scenario-specific numbers (events expected and received, puts...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Every successful request's latency in microseconds.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// From a histogram of microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let ms = |micros: u64| micros as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The parameters of a run, as they appear in the report.
pub(crate) struct Params {
    pub scenario: &'static str,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    pub total: Option<u64>,
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    pub consistency: Option<&'static str>,
    /// Whether the scenario counts conflicts (reported even when zero).
    pub counts_conflicts: bool,
}

impl BenchReport {
    pub(crate) fn new(params: Params, outcome: Outcome) -> Self {
        let elapsed_secs = outcome.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let ops_per_sec = if elapsed_secs > 0.0 {
            outcome.ok as f64 / elapsed_secs
        } else {
            0.0
        };
        Self {
            scenario: params.scenario.to_owned(),
            endpoints: params.endpoints,
            clients: params.clients,
            conns: params.conns,
            total: params.total,
            duration_secs: params.duration.map(|d| d.as_secs_f64()),
            key_size: params.key_size,
            val_size: params.val_size,
            key_space: params.key_space,
            consistency: params.consistency.map(str::to_owned),
            ok: outcome.ok,
            conflicts: params.counts_conflicts.then_some(outcome.conflicts),
            errors: outcome.errors,
            first_error: outcome.first_error.map(|e| e.to_string()),
            elapsed_secs,
            ops_per_sec,
            latency_ms: LatencySummary::from_micros(&outcome.histogram),
            extra: BTreeMap::new(),
            histogram: outcome.histogram,
        }
    }

    /// Adds a scenario-specific number (shown in the table and the JSON).
    #[must_use]
    pub fn with_extra(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    /// A small table: the parameters on one line, then the results.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut out = String::new();
        let bound = match (self.total, self.duration_secs) {
            (Some(total), None) => format!("{total} requests"),
            (None, Some(secs)) => format!("{secs} s"),
            (Some(total), Some(secs)) => format!("{secs} s (at most {total} requests)"),
            (None, None) => "unbounded".to_owned(),
        };
        // Sizes a scenario does not use are 0 and left out.
        let mut shape = Vec::new();
        if self.key_size > 0 {
            shape.push(format!("key {} B", self.key_size));
        }
        if self.val_size > 0 {
            shape.push(format!("value {} B", self.val_size));
        }
        if self.key_space > 0 {
            shape.push(format!("key space {}", self.key_space));
        }
        if let Some(c) = &self.consistency {
            shape.push(format!("consistency {c}"));
        }
        let shape = if shape.is_empty() {
            String::new()
        } else {
            format!("; {}", shape.join(", "))
        };
        let _ = writeln!(
            out,
            "{}: {}, {} clients over {} connections to {}{}",
            self.scenario,
            bound,
            self.clients,
            self.conns,
            self.endpoints.join(","),
            shape,
        );
        let mut header = vec!["ok"];
        let mut row = vec![self.ok.to_string()];
        if let Some(conflicts) = self.conflicts {
            header.push("conflicts");
            row.push(conflicts.to_string());
        }
        header.extend([
            "errors", "secs", "ops/s", "min ms", "mean ms", "p50 ms", "p90 ms", "p99 ms",
            "p99.9 ms", "max ms",
        ]);
        row.extend([
            self.errors.to_string(),
            format!("{:.3}", self.elapsed_secs),
            format!("{:.1}", self.ops_per_sec),
            format!("{:.3}", l.min),
            format!("{:.3}", l.mean),
            format!("{:.3}", l.p50),
            format!("{:.3}", l.p90),
            format!("{:.3}", l.p99),
            format!("{:.3}", l.p999),
            format!("{:.3}", l.max),
        ]);
        let widths: Vec<usize> = header
            .iter()
            .zip(&row)
            .map(|(h, r)| h.len().max(r.len()))
            .collect();
        let line = |cells: &mut dyn Iterator<Item = String>| {
            cells
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        let _ = writeln!(out, "{}", line(&mut header.iter().map(|h| (*h).to_owned())));
        let _ = writeln!(out, "{}", line(&mut row.iter().cloned()));
        if !self.extra.is_empty() {
            let extra: Vec<String> = self
                .extra
                .iter()
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            let _ = writeln!(out, "{}", extra.join(", "));
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "first error: {e}");
        }
        out
    }

    /// The report as one line of JSON (no trailing newline).
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report() -> Result<BenchReport, Box<dyn std::error::Error>> {
        let mut histogram = Histogram::new_with_bounds(1, 600_000_000, 3)?;
        for micros in 1..=1000 {
            histogram.record(micros)?;
        }
        let outcome = Outcome {
            histogram,
            ok: 1000,
            conflicts: 0,
            errors: 2,
            first_error: Some(crate::ClientError::Timeout(Duration::from_secs(1))),
            elapsed: Duration::from_secs(2),
        };
        let params = Params {
            scenario: "put",
            endpoints: vec!["http://127.0.0.1:1".into()],
            clients: 10,
            conns: 2,
            total: Some(1002),
            duration: None,
            key_size: 8,
            val_size: 256,
            key_space: 100,
            consistency: None,
            counts_conflicts: false,
        };
        Ok(BenchReport::new(params, outcome))
    }

    #[test]
    fn json_line_has_the_numbers() -> Result<(), Box<dyn std::error::Error>> {
        let r = report()?;
        let line = r.json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line)?;
        assert_eq!(v["scenario"], "put");
        assert_eq!(v["ok"], 1000);
        assert_eq!(v["errors"], 2);
        assert_eq!(v["ops_per_sec"], 500.0);
        let p50 = v["latency_ms"]["p50"].as_f64().unwrap_or_default();
        assert!((0.49..=0.51).contains(&p50), "p50 {p50}");
        assert!(v.get("consistency").is_none());
        assert!(v.get("conflicts").is_none());
        assert!(v.get("extra").is_none());
        let v: serde_json::Value =
            serde_json::from_str(&r.with_extra("events_expected", 5u64).json_line())?;
        assert_eq!(v["extra"]["events_expected"], 5);
        Ok(())
    }

    #[test]
    fn table_has_header_and_row() -> Result<(), Box<dyn std::error::Error>> {
        let table = report()?.table();
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("ops/s"));
        assert!(lines[2].contains("500.0"));
        Ok(())
    }
}
