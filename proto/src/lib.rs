//! The etcd v3 wire protocol, generated from `protos/` at build time.
//!
//! Package, message and field names and numbers are those of etcd 3.4, so any
//! etcd v3 client (etcdctl, clientv3, jetcd, python-etcd3, ...) talks to
//! rollcall unchanged. Only what a client can see on the wire is kept:
//! etcd's gogoproto and grpc-gateway annotations do not change the encoding
//! and are left out.

/// `mvccpb`: the key-value record and watch event types.
#[allow(clippy::all, clippy::pedantic)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `authpb`: users, roles and permissions (message types only).
#[allow(clippy::all, clippy::pedantic)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
#[allow(clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// `rollcallraftpb`: rollcall's member-to-member protocol (the peer port),
/// not part of etcd's API.
#[allow(clippy::all, clippy::pedantic)]
pub mod rollcallraftpb {
    tonic::include_proto!("rollcallraftpb");
}
