//! `rollcall-examples`: a small gRPC echo service that registers itself in
//! rollcall with a gRPC health probe ([`service`], binary `echo-server`), and
//! a caller that discovers it and balances requests over its instances
//! (binary `echo-caller`). `README.md` walks through running three
//! instances, killing one, and watching the caller route around it.

pub mod service;

/// The generated `rollcall.examples.echo.v1` types and stubs
/// (`proto/echo.proto`).
pub mod echo {
    #![allow(clippy::all)]
    tonic::include_proto!("rollcall.examples.echo.v1");
}

/// The fully qualified gRPC service name, as the health service reports it.
pub const ECHO_SERVICE: &str = "rollcall.examples.echo.v1.Echo";
