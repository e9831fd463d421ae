//! Compiles the etcd v3 protobuf definitions with protox (a pure-Rust protobuf
//! compiler), so building rollcall needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("protos");
    let files = ["rpc.proto", "kv.proto", "auth.proto", "raft.proto"].map(|f| root.join(f));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        // Keys and values are shared between the store, the index and responses
        // without copying.
        .bytes(".")
        // Services rollcall does not serve yet answer UNIMPLEMENTED, as gRPC expects.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
