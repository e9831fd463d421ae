//! Client connections: accepting them (with TCP_NODELAY) and the HTTP/2
//! compatibility shim every connection passes through.

pub(crate) mod authority;
pub(crate) mod incoming;
pub(crate) mod tls;
