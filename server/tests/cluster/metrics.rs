//! Cluster metrics as etcd names them, read from the leader's `/metrics`:
//! a heartbeat round trip per peer (`etcd_network_peer_round_trip_time_seconds`
//! with etcd's `To` label, the member id in hex), a leader, and no write
//! left pending once the writes are answered.

use std::time::{Duration, Instant};

use rollcall_tests::Backend;
use rollcall_tests::http::http_get;

use crate::support::{RECOVER, clients, leader, put_eventually, three};

backend_tests!(the_leader_reports_peer_round_trips_and_no_pending_writes);

/// The value of the sample `name{labels}` (labels exactly as printed),
/// from Prometheus or OpenMetrics text.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

async fn the_leader_reports_peer_round_trips_and_no_pending_writes(backend: Backend) {
    let cluster = three(backend).await;
    for i in 0..10 {
        put_eventually(cluster.member(i % 3), &format!("m/{i}"), "v").await;
    }
    let lead = leader(&cluster).await;
    let mut peers = Vec::new();
    for (i, member) in cluster.members().iter().enumerate() {
        if i == lead {
            continue;
        }
        let id = clients(member).status().await.header.unwrap().member_id;
        peers.push(format!("{id:x}"));
    }
    let port = cluster.member(lead).metrics_port();
    // etcd probes each peer every few seconds; rollcall times heartbeats.
    let deadline = Instant::now() + RECOVER;
    loop {
        let text = http_get(port, "/metrics").await.body;
        let probed = peers.iter().all(|peer| {
            sample(
                &text,
                "etcd_network_peer_round_trip_time_seconds_count",
                &format!("{{To=\"{peer}\"}}"),
            )
            .is_some_and(|count| count > 0.0)
        });
        if probed {
            assert_eq!(sample(&text, "etcd_server_has_leader", ""), Some(1.0));
            assert_eq!(
                sample(&text, "etcd_server_proposals_pending", ""),
                Some(0.0),
                "every write was answered"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no round trip to {peers:?} in the leader's /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
