//! [`Scrape`]: one `/metrics` body parsed by a strict OpenMetrics parser,
//! with the lookups tests make (a family's summed value, a histogram's sum,
//! label sets, every series name a PromQL query can select).

use std::collections::{BTreeMap, BTreeSet};

use openmetrics_parser::{MetricFamily, MetricsExposition, OpenMetricsType, OpenMetricsValue};

pub type Family = MetricFamily<OpenMetricsType, OpenMetricsValue>;

/// One `/metrics` body, parsed by a strict OpenMetrics parser.
pub struct Scrape {
    pub text: String,
    pub exposition: MetricsExposition<OpenMetricsType, OpenMetricsValue>,
}

impl Scrape {
    /// Parses `text`, panicking (with the text) if it is not valid
    /// OpenMetrics.
    pub fn parse(text: &str) -> Self {
        let exposition = openmetrics_parser::openmetrics::parse_openmetrics(text)
            .unwrap_or_else(|e| panic!("/metrics is not valid OpenMetrics: {e:?}\n{text}"));
        Self {
            text: text.to_owned(),
            exposition,
        }
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.exposition.families.get(name)
    }

    /// The value of `family`'s samples whose labels include `labels`, summed
    /// (as PromQL's `sum` would): a counter's total, a gauge's value, a
    /// histogram's count. 0 when no sample matches.
    pub fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels)
            .map(|value| match value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => g.as_f64(),
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                other => panic!("{family}: unexpected value {other:?}"),
            })
            .sum()
    }

    /// A histogram's `_sum` over the samples whose labels include `labels`.
    pub fn histogram_sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels)
            .map(|value| match value {
                OpenMetricsValue::Histogram(h) => h.sum.as_ref().map_or(0.0, |s| s.as_f64()),
                other => panic!("{family} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// The label sets of `family`'s samples.
    pub fn label_sets(&self, family: &str) -> Vec<BTreeMap<String, String>> {
        let Some(f) = self.family(family) else {
            return Vec::new();
        };
        f.iter_samples()
            .map(|s| {
                s.get_labelset()
                    .expect("parsed samples belong to a family")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }

    fn matching<'a>(
        &'a self,
        family: &str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a OpenMetricsValue> + 'a {
        self.family(family)
            .into_iter()
            .flat_map(Family::iter_samples)
            .filter(move |s| {
                let set = s.get_labelset().expect("parsed samples belong to a family");
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|s| &s.value)
    }

    /// Every series name a PromQL query can select from this scrape: a
    /// counter `x` is `x_total`, a histogram `x` is `x_bucket`, `x_sum` and
    /// `x_count`, a gauge is its own name. Mapped to its family's label names.
    pub fn series_names(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut names = BTreeMap::new();
        for (name, family) in &self.exposition.families {
            let labels: BTreeSet<String> = family.get_label_names().iter().cloned().collect();
            let suffixes: &[&str] = match family.family_type {
                OpenMetricsType::Counter => &["_total", "_created"],
                OpenMetricsType::Histogram | OpenMetricsType::GaugeHistogram => {
                    &["_bucket", "_sum", "_count", "_created"]
                }
                OpenMetricsType::Summary => &["", "_sum", "_count", "_created"],
                OpenMetricsType::Info => &["_info"],
                _ => &[""],
            };
            for suffix in suffixes {
                let mut labels = labels.clone();
                if *suffix == "_bucket" {
                    labels.insert("le".to_owned());
                }
                names.insert(format!("{name}{suffix}"), labels);
            }
        }
        names
    }
}
