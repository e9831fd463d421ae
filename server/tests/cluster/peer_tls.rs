//! Peer TLS with etcd's flags: three members on https:// peer URLs with
//! `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file` and
//! `--peer-client-cert-auth` elect a leader and replicate; on rollcall the
//! peer port then refuses a plaintext call. Certificates are made per test
//! (`rollcall_tests::pki`: one certificate for 127.0.0.1 usable as server
//! and as client, as etcd's peer certificates are).

use rollcall_proto::rollcallraftpb::ReadIndexRequest;
use rollcall_proto::rollcallraftpb::peer_client::PeerClient;
use rollcall_tests::pki::Pki;
use rollcall_tests::{Backend, Cluster};

use crate::support::{caught_up, leader, put_eventually};

backend_tests!(members_replicate_over_mutual_tls_peer_links);

async fn members_replicate_over_mutual_tls_peer_links(backend: Backend) {
    let pki = Pki::new().unwrap();
    let tls_args: Vec<String> = [
        ("--peer-cert-file", "server.pem"),
        ("--peer-key-file", "server.key"),
        ("--peer-trusted-ca-file", "ca.pem"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), pki.path(file).display().to_string()])
    .chain(["--peer-client-cert-auth".to_string()])
    .collect();
    let cluster = Cluster::builder(backend.clone(), 3)
        .peer_args(move |layout, i| {
            let mut args: Vec<String> = layout
                .etcd_peer_args(i)
                .into_iter()
                .map(|a| a.replace("http://", "https://"))
                .collect();
            args.extend(tls_args.iter().cloned());
            args
        })
        .start()
        .await
        .unwrap();
    leader(&cluster).await;
    put_eventually(cluster.member(1), "over/tls", "1").await;
    for member in cluster.members() {
        caught_up(member, "over/tls", "1").await;
    }
    if !backend.is_etcd() {
        let log = cluster.member(0).log_text();
        assert!(
            log.contains("serving the other members") && log.contains("tls=true"),
            "{}",
            cluster.member(0).log_tail(20)
        );
        // The peer port speaks only TLS: a plaintext call gets no answer.
        let plain = format!("http://127.0.0.1:{}", cluster.member(0).peer_port());
        let channel = tonic::transport::Endpoint::from_shared(plain)
            .unwrap()
            .timeout(std::time::Duration::from_secs(3))
            .connect_lazy();
        let answer = PeerClient::new(channel)
            .read_index(ReadIndexRequest {})
            .await;
        assert!(answer.is_err(), "plaintext peer call answered: {answer:?}");
    }
}
