//! Helpers of the ops suite: a rollcall process with its metrics port and
//! gRPC clients, a parsed `/metrics` scrape, and running promtool. The
//! process, the HTTP GET and the skip rule are the harness's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openmetrics_parser::{MetricFamily, MetricsExposition, OpenMetricsType, OpenMetricsValue};
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest};
use rollcall_tests::http::{HttpResponse, http_get};
use rollcall_tests::{Backend, ServerProcess, Tool, require_or_skip};
use tonic::transport::Channel;

/// Bound on waiting for a metric to reach a value.
pub const WAIT: Duration = Duration::from_secs(20);

/// The rollcall binary built by cargo for this test run.
pub fn rollcall() -> Backend {
    Backend::Rollcall(PathBuf::from(env!("CARGO_BIN_EXE_rollcall")))
}

/// The repository root (the workspace), where `deploy/` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// One running rollcall with its gRPC clients and its metrics port.
pub struct Ops {
    /// Owned so the process lives as long as the clients (`Drop` kills it).
    _server: ServerProcess,
    pub metrics_port: u16,
    pub kv: KvClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
}

impl Ops {
    /// Starts rollcall on free ports (the harness passes
    /// `--listen-metrics-urls http://127.0.0.1:<free port>`).
    pub async fn start() -> Self {
        let backend = rollcall();
        let server = match backend.start().await {
            Ok(s) => s,
            Err(e) => panic!("cannot start rollcall: {e}"),
        };
        let metrics_port = server.metrics_port();
        let channel = server
            .channel()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", server.endpoint()));
        Self {
            _server: server,
            metrics_port,
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel),
        }
    }

    /// `GET path` on the metrics listener.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.metrics_port, path).await
    }

    /// Scrapes and parses `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        Scrape::parse(&response.body)
    }

    /// Scrapes until `ready` holds (bounded by [`WAIT`]); panics with `what`
    /// and the last scrape otherwise.
    pub async fn scrape_until(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + WAIT;
        loop {
            let scrape = self.scrape().await;
            if ready(&scrape) {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; last /metrics:\n{}",
                scrape.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn put(&mut self, key: &str, value: &str) {
        self.put_with_lease(key, value, 0).await;
    }

    pub async fn put_with_lease(&mut self, key: &str, value: &str, lease: i64) {
        self.kv
            .put(PutRequest {
                key: key.to_owned().into(),
                value: value.to_owned().into(),
                lease,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("put {key}={value}: {e:?}"));
    }

    /// How many keys the whole keyspace holds (a count-only Range RPC).
    pub async fn live_keys(&mut self) -> i64 {
        self.kv
            .range(RangeRequest {
                key: vec![0u8].into(),
                range_end: vec![0u8].into(),
                count_only: true,
                ..Default::default()
            })
            .await
            .expect("count the keyspace")
            .into_inner()
            .count
    }

    /// Puts the keys that make every labelled family appear (a registered
    /// instance for `rollcall_registry_instances`; any RPC already made the
    /// `grpc_server_*` series) and returns a scrape.
    pub async fn populated_scrape(&mut self) -> Scrape {
        self.put("/services/web/1", r#"{"id":"1","health":"passing"}"#)
            .await;
        self.scrape().await
    }
}

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

/// Whether `promtool` is there; if not, prints SKIPPED for `test` and returns
/// false, or panics under `ROLLCALL_REQUIRE_PROMTOOL=1`.
pub fn promtool_or_skip(test: &str) -> bool {
    require_or_skip(Tool::Promtool, test)
}

/// Runs `promtool args…` in `dir` (bounded); panics with its output unless it
/// succeeds. Returns stdout.
pub fn promtool(dir: &Path, args: &[&str]) -> String {
    // Output goes to files, not pipes: a full pipe cannot stall the child.
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("clone temp file"))
        .stderr(err.try_clone().expect("clone temp file"))
        .spawn()
        .expect("spawn promtool");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll promtool") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("promtool {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        f.rewind().expect("rewind temp file");
        f.read_to_string(&mut text).expect("read temp file");
        text
    };
    let stdout = read(out);
    assert!(
        status.success(),
        "promtool {args:?} failed ({status}):\n{stdout}\n{}",
        read(err)
    );
    stdout
}
