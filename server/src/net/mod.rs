//! Client connections: accepting them (with TCP_NODELAY) and the HTTP/2
//! compatibility shim every connection passes through.

pub mod authority;
pub mod incoming;
pub mod tls;
