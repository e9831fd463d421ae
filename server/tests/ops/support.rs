//! Helpers of the ops suite: a rollcall process with its metrics port, gRPC
//! clients, a minimal HTTP/1.1 GET, and a parsed `/metrics` scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openmetrics_parser::{MetricFamily, MetricsExposition, OpenMetricsType, OpenMetricsValue};
use rollcall_proto::etcdserverpb::kv_client::KvClient;
use rollcall_proto::etcdserverpb::lease_client::LeaseClient;
use rollcall_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rollcall_proto::etcdserverpb::watch_client::WatchClient;
use rollcall_proto::etcdserverpb::{PutRequest, RangeRequest};
use rollcall_tests::{Backend, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// Bound on one HTTP exchange with the metrics listener.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

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
        let metrics_port = metrics_port(&server);
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

/// The port of the server's `--listen-metrics-urls`, read from its command
/// line: the harness chooses it but has no accessor for it.
fn metrics_port(server: &ServerProcess) -> u16 {
    let pid = server.pid().expect("the server runs");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cmdline: {e}"));
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let url = args
        .iter()
        .position(|a| a == "--listen-metrics-urls")
        .and_then(|i| args.get(i + 1))
        .unwrap_or_else(|| panic!("no --listen-metrics-urls in {args:?}"));
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in --listen-metrics-urls {url}"))
}

/// An HTTP response, body as text.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A minimal HTTP/1.1 GET (`Connection: close`, body by Content-Length or
/// chunked), bounded by [`HTTP_TIMEOUT`].
pub async fn http_get(port: u16, path: &str) -> HttpResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: \
             application/openmetrics-text;version=1.0.0,text/plain;q=0.5,*/*;q=0.1\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} on port {port}: no answer in {HTTP_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"));
    parse_response(&raw).unwrap_or_else(|e| {
        panic!(
            "GET {path}: {e}; raw response:\n{}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" {
        return Err(format!("status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = BTreeMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = headers.get("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("content-length {length:?}"))?;
        if rest.len() != length {
            return Err(format!(
                "content-length {length} but {} body bytes",
                rest.len()
            ));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    let body = String::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size_text = std::str::from_utf8(&rest[..end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("chunk size {size_text:?}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
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

/// Whether `tool` runs here (`tool --version`).
pub fn tool_available(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Environment variable that turns a skip for a missing `promtool` into a
/// failure (set it where the `prometheus` package is installed, as CI should).
pub const REQUIRE_PROMTOOL_ENV: &str = "ROLLCALL_REQUIRE_PROMTOOL";

/// Whether `promtool` is there; if not, prints SKIPPED for `test` and returns
/// false, or panics under `ROLLCALL_REQUIRE_PROMTOOL=1`.
pub fn promtool_or_skip(test: &str) -> bool {
    if tool_available("promtool") {
        return true;
    }
    let required = std::env::var(REQUIRE_PROMTOOL_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: promtool is not installed and {REQUIRE_PROMTOOL_ENV}=1 (apt-get install prometheus)"
    );
    eprintln!("SKIPPED {test}: promtool is not installed (apt-get install prometheus)");
    false
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
