//! TLS on the client listener, driven by the real `etcdctl`: server
//! authentication, mutual TLS with `--client-cert-auth`, and refusal of a
//! client without a certificate. Certificates are made per test
//! (`rollcall_tests::pki`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollcall_tests::pki::Pki;
use rollcall_tests::ports::free_port;
use rollcall_tests::{Tool, require_or_skip};

/// A rollcall process serving https on a free port; killed on drop.
struct TlsServer {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl TlsServer {
    fn start(pki: &Pki, client_cert_auth: bool) -> Self {
        let data = tempfile::tempdir().unwrap();
        let endpoint = format!("https://127.0.0.1:{}", free_port().unwrap());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .arg("--listen-client-urls")
            .arg(&endpoint)
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", free_port().unwrap()))
            .arg("--cert-file")
            .arg(pki.path("server.pem"))
            .arg("--key-file")
            .arg(pki.path("server.key"))
            .arg("--trusted-ca-file")
            .arg(pki.path("ca.pem"));
        if client_cert_auth {
            cmd.arg("--client-cert-auth");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            endpoint,
            _data: data,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs etcdctl against `endpoint`; `certs` adds the client certificate.
fn etcdctl(endpoint: &str, pki: &Pki, certs: bool, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=3s");
    if certs {
        cmd.arg("--cert")
            .arg(pki.path("client.pem"))
            .arg("--key")
            .arg(pki.path("client.key"));
    }
    cmd.args(args).output().unwrap()
}

/// Retries `put` until the server answers (bounded), returning the last output.
fn wait_ready(server: &TlsServer, pki: &Pki, certs: bool) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = etcdctl(&server.endpoint, pki, certs, &["put", "ready", "1"]);
        if out.status.success() || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn server_tls_serves_etcdctl() {
    if !require_or_skip(Tool::Etcdctl, "tls::server_tls_serves_etcdctl") {
        return;
    }
    let pki = Pki::new().unwrap();
    let server = TlsServer::start(&pki, false);
    let ready = wait_ready(&server, &pki, false);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let put = etcdctl(&server.endpoint, &pki, false, &["put", "/tls/k", "v"]);
    assert_eq!(stdout(&put).trim(), "OK");
    let get = etcdctl(&server.endpoint, &pki, false, &["get", "/tls/k"]);
    assert_eq!(stdout(&get), "/tls/k\nv\n");
    // endpoint status sends the schemed URL as :authority, over TLS too.
    let status = etcdctl(&server.endpoint, &pki, false, &["endpoint", "status"]);
    assert!(
        stdout(&status).starts_with(&server.endpoint),
        "{}",
        stdout(&status)
    );
}

#[test]
fn client_cert_auth_requires_a_signed_client_certificate() {
    if !require_or_skip(
        Tool::Etcdctl,
        "tls::client_cert_auth_requires_a_signed_client_certificate",
    ) {
        return;
    }
    let pki = Pki::new().unwrap();
    let server = TlsServer::start(&pki, true);
    let ready = wait_ready(&server, &pki, true);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let get = etcdctl(
        &server.endpoint,
        &pki,
        true,
        &["get", "ready", "--print-value-only"],
    );
    assert_eq!(stdout(&get).trim(), "1");

    let refused = etcdctl(&server.endpoint, &pki, false, &["get", "ready"]);
    assert!(
        !refused.status.success(),
        "a client without a certificate was served"
    );
    assert!(stdout(&refused).is_empty());
}

/// Runs `rollcall <args>` against `endpoint` with the CA and, when `certs`,
/// the client certificate.
fn rollcall_cli(endpoint: &str, pki: &Pki, certs: bool, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    cmd.args(args)
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .arg("--timeout")
        .arg("3s");
    if certs {
        cmd.arg("--cert")
            .arg(pki.path("client.pem"))
            .arg("--key")
            .arg(pki.path("client.key"));
    }
    cmd.output().unwrap()
}

#[test]
fn rollcall_cli_speaks_mutual_tls() {
    let pki = Pki::new().unwrap();
    let server = TlsServer::start(&pki, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let put = loop {
        let out = rollcall_cli(&server.endpoint, &pki, true, &["put", "/cli/k", "v"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = rollcall_cli(
        &server.endpoint,
        &pki,
        true,
        &["get", "/cli/k", "-o", "json"],
    );
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert!(stdout(&get).contains("/cli/k"), "{}", stdout(&get));

    // Without a client certificate the registry refuses the handshake.
    let refused = rollcall_cli(&server.endpoint, &pki, false, &["get", "/cli/k"]);
    assert!(!refused.status.success());
    assert!(stdout(&refused).is_empty());
    // And an https endpoint is never dialled in plain text.
    let mut no_ca = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    let plain = no_ca
        .args([
            "get",
            "/cli/k",
            "--timeout",
            "2s",
            "--endpoints",
            &server.endpoint,
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("--cacert"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}

#[tokio::test]
async fn client_library_connects_with_mutual_tls() {
    use rollcall_client::{Client, ClientTls, ConnectOptions};
    let pki = Pki::new().unwrap();
    let server = TlsServer::start(&pki, true);
    let tls = ClientTls {
        ca: pki.path("ca.pem"),
        identity: Some((pki.path("client.pem"), pki.path("client.key"))),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match Client::connect_with_tls([server.endpoint.clone()], ConnectOptions::default(), &tls)
            .await
        {
            Ok(client) => break client,
            Err(e) if Instant::now() > deadline => panic!("cannot connect over TLS: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    client.put("/lib/k", "v").await.unwrap();
    let got = client.get("/lib/k").await.unwrap();
    assert_eq!(got.kvs[0].value.as_ref(), b"v");

    // Without a client certificate: with TLS 1.3 the server's refusal can
    // arrive after the client's side of the handshake, so judge by a call.
    let anonymous = ClientTls {
        ca: pki.path("ca.pem"),
        identity: None,
    };
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
    };
    let served =
        match Client::connect_with_tls([server.endpoint.clone()], options, &anonymous).await {
            Ok(client) => client.get("/lib/k").await.is_ok(),
            Err(_) => false,
        };
    assert!(!served, "served a client without a certificate");
}
