//! The real `etcdctl watch` against the server: it runs as a child process
//! while the test writes, is killed, and its output is asserted line by line
//! (the same expected text against etcd proves it is etcdctl's own).

use std::process::Stdio;
use std::time::{Duration, Instant};

use rollcall_tests::{Backend, Tool, require_or_skip};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::{Opts, Range, Server, WAIT, Writer};

backend_tests!(
    etcdctl_watch_key,
    etcdctl_watch_prefix,
    etcdctl_watch_rev,
    etcdctl_watch_prev_kv,
);

/// A running `etcdctl watch`.
struct CtlWatch {
    command: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl CtlWatch {
    fn spawn(endpoint: &str, args: &[&str]) -> Self {
        let command = format!("etcdctl --endpoints {endpoint} watch {}", args.join(" "));
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(endpoint)
            .arg("--dial-timeout=5s")
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            command,
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn line_within(&mut self, limit: Duration) -> Option<String> {
        match tokio::time::timeout(limit, self.lines.next_line()).await {
            Err(_) => None,
            Ok(Ok(Some(line))) => Some(line),
            Ok(Ok(None)) => {
                let stderr = self.stderr().await;
                panic!("`{}` ended early{stderr}", self.command)
            }
            Ok(Err(e)) => panic!("read output of `{}`: {e}", self.command),
        }
    }

    /// The next `n` lines, each within [`WAIT`].
    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.line_within(WAIT).await {
                Some(line) => out.push(line),
                None => panic!(
                    "`{}`: {} of {n} lines within {WAIT:?}: {out:?}",
                    self.command,
                    out.len()
                ),
            }
        }
        out
    }

    /// Kills etcdctl and returns whatever it printed after the lines read.
    async fn finish(mut self) -> Vec<String> {
        // Give a late (wrong) extra event a moment to show.
        let mut rest = Vec::new();
        while let Some(line) = self.line_within(Duration::from_millis(300)).await {
            rest.push(line);
        }
        let _ = self.child.kill().await;
        rest
    }

    async fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), err.read_to_string(&mut text)).await;
        }
        format!("; stderr: {text}")
    }
}

/// For a watch from "now": writes `key=warmup` until etcdctl prints, then a
/// marker, and discards everything up to the marker's event, so the writes
/// that follow are certain to be seen and are the only output left.
async fn warm_up(ctl: &mut CtlWatch, w: &mut Writer, key: &str) {
    let started = Instant::now();
    loop {
        w.put(key, "warmup").await;
        if ctl.line_within(Duration::from_millis(200)).await.is_some() {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "`{}` printed nothing for {WAIT:?}",
            ctl.command
        );
    }
    w.put(key, "marker").await;
    let mut last = Vec::new();
    while last != ["PUT", key, "marker"] {
        let line = ctl
            .line_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("`{}`: no marker event", ctl.command));
        last.push(line);
        if last.len() > 3 {
            last.remove(0);
        }
    }
}

fn etcdctl_present(test: &str) -> bool {
    require_or_skip(Tool::Etcdctl, test)
}

async fn etcdctl_watch_key(backend: Backend) {
    if !etcdctl_present("etcdctl_watch_key") {
        return;
    }
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    let mut ctl = CtlWatch::spawn(&server.endpoint(), &["k"]);
    warm_up(&mut ctl, &mut w, "k").await;
    w.put("k", "v1").await;
    w.put("other", "x").await;
    w.put("kk", "not this").await;
    w.put("k", "v2").await;
    w.delete(Range::key("k")).await;
    w.put("k", "v3").await;
    assert_eq!(
        ctl.lines(12).await,
        [
            "PUT", "k", "v1", "PUT", "k", "v2", "DELETE", "k", "", "PUT", "k", "v3"
        ]
    );
    assert_eq!(ctl.finish().await, Vec::<String>::new());
}

async fn etcdctl_watch_prefix(backend: Backend) {
    if !etcdctl_present("etcdctl_watch_prefix") {
        return;
    }
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    let mut ctl = CtlWatch::spawn(&server.endpoint(), &["--prefix", "svc/"]);
    warm_up(&mut ctl, &mut w, "svc/warm").await;
    w.put("svc/a", "1").await;
    w.put("svc", "not this").await;
    w.put("svc/b", "2").await;
    w.put("svd/a", "not this").await;
    w.delete(Range::prefix("svc/")).await;
    assert_eq!(
        ctl.lines(15).await,
        [
            "PUT", "svc/a", "1", "PUT", "svc/b", "2", "DELETE", "svc/a", "", "DELETE", "svc/b", "",
            "DELETE", "svc/warm", "",
        ]
    );
    assert_eq!(ctl.finish().await, Vec::<String>::new());
}

async fn etcdctl_watch_rev(backend: Backend) {
    if !etcdctl_present("etcdctl_watch_rev") {
        return;
    }
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    w.put("r", "a").await;
    let from = w.put("r", "b").await;
    w.delete(Range::key("r")).await;
    w.put("r", "c").await;
    let from = from.to_string();
    let mut ctl = CtlWatch::spawn(&server.endpoint(), &["--rev", &from, "r"]);
    assert_eq!(
        ctl.lines(9).await,
        ["PUT", "r", "b", "DELETE", "r", "", "PUT", "r", "c"]
    );
    // Live events follow the history.
    w.put("r", "d").await;
    assert_eq!(ctl.lines(3).await, ["PUT", "r", "d"]);
    assert_eq!(ctl.finish().await, Vec::<String>::new());
}

async fn etcdctl_watch_prev_kv(backend: Backend) {
    if !etcdctl_present("etcdctl_watch_prev_kv") {
        return;
    }
    let server = Server::start(&backend, &Opts::default()).await;
    let mut w = Writer::new(server.client().await);
    let from = w.put("p/1", "a").await;
    w.put("p/1", "b").await;
    w.put("p/2", "x").await;
    w.delete(Range::prefix("p/")).await;
    let from = from.to_string();
    let mut ctl = CtlWatch::spawn(
        &server.endpoint(),
        &["--rev", &from, "--prev-kv", "--prefix", "p/"],
    );
    assert_eq!(
        ctl.lines(21).await,
        [
            // A creation has no previous value.
            "PUT", "p/1", "a", //
            "PUT", "p/1", "a", "p/1", "b", //
            "PUT", "p/2", "x", //
            "DELETE", "p/1", "b", "p/1", "", //
            "DELETE", "p/2", "x", "p/2", "",
        ]
    );
    w.put("p/2", "y").await;
    assert_eq!(ctl.lines(3).await, ["PUT", "p/2", "y"]);
    assert_eq!(ctl.finish().await, Vec::<String>::new());
}
