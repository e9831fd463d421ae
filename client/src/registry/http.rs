//! The HTTP health check's client: one `GET` over HTTP/1.1 (hyper) on a
//! fresh connection (`Connection: close`), reading only the response's
//! status. Plain `http://` only; a check behind TLS can use the TCP or gRPC
//! probe instead. The probe (`probe.rs`) bounds the whole exchange by its
//! timeout and decides what a status means; this module knows nothing of
//! probes.

use std::str::FromStr;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where an HTTP check goes: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTarget {
    /// Host name or address to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority as written.
    authority: HeaderValue,
    /// The request target, `/` when the URL has no path.
    path: PathAndQuery,
}

/// Why a GET got no status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GetError {
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl HttpTarget {
    /// Parses the URL; the error is the reason it is not one.
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs are supported")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err("garbage after the IPv6 address"),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || authority.contains('@') {
            return Err("no host (or a userinfo, which is not supported)");
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| "the port is not a number")?,
            None => 80,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the path contains whitespace");
        }
        let path = PathAndQuery::from_str(&path).map_err(|_| "the path is not a valid URI path")?;
        let authority =
            HeaderValue::from_str(authority).map_err(|_| "the host is not a valid Host header")?;
        Ok(Self {
            host: host.to_owned(),
            port,
            authority,
            path,
        })
    }

    /// Sends the GET and returns the response's status code. Unbounded in
    /// time: the caller applies its timeout.
    pub(crate) async fn get_status(&self) -> Result<u16, GetError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let request = hyper::Request::get(self.path.clone())
            .header(HOST, self.authority.clone())
            .header(USER_AGENT, "rollcall-health-probe")
            .header(ACCEPT, "*/*")
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())?;
        // The connection task does the I/O; it ends (and the socket closes)
        // when the head has arrived, or when this future is dropped by the
        // probe's timeout: the body is never read.
        let connection = AbortOnDrop(tokio::spawn(connection));
        let response = sender.send_request(request).await;
        drop(connection);
        let response = response?;
        Ok(response.status().as_u16())
    }
}

/// Stops the connection task with the request that owns it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn urls_parse() -> Result<(), &'static str> {
        let t = HttpTarget::parse("http://127.0.0.1:8080/health?full=1")?;
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.to_str().ok(),
                t.path.as_str()
            ),
            ("127.0.0.1", 8080, Some("127.0.0.1:8080"), "/health?full=1")
        );
        let t = HttpTarget::parse("http://svc.local")?;
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("svc.local", 80, "/")
        );
        let t = HttpTarget::parse("http://[::1]:9/x")?;
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.to_str().ok()),
            ("::1", 9, Some("[::1]:9"))
        );
        let t = HttpTarget::parse("http://h:1?q")?;
        assert_eq!(t.path.as_str(), "/?q");
        for bad in [
            "https://h/",
            "h:80/",
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://h/a b",
            "http://h/a\u{7f}",
        ] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad:?} accepted");
        }
        Ok(())
    }

    /// A one-connection server that reads the request head, writes `answer`
    /// in two pieces (the client must reassemble) and returns the request.
    async fn serve_once(
        answer: &'static [u8],
    ) -> std::io::Result<(
        std::net::SocketAddr,
        tokio::task::JoinHandle<std::io::Result<String>>,
    )> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let (first, second) = answer.split_at(answer.len().min(10));
            conn.write_all(first).await?;
            conn.flush().await?;
            conn.write_all(second).await?;
            conn.flush().await?;
            Ok(String::from_utf8_lossy(&request).into_owned())
        });
        Ok((addr, server))
    }

    #[tokio::test]
    async fn get_reads_the_status_and_sends_a_well_formed_request()
    -> Result<(), Box<dyn std::error::Error>> {
        let (addr, server) =
            serve_once(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n").await?;
        let target = HttpTarget::parse(&format!("http://{addr}/healthz"))?;
        assert_eq!(target.get_status().await?, 503);
        let request = server.await??;
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("\r\nhost: {addr}\r\n")),
            "{request}"
        );
        assert!(lower.contains("\r\nconnection: close\r\n"), "{request}");
        Ok(())
    }

    #[tokio::test]
    async fn a_status_comes_back_without_reading_the_body() -> Result<(), Box<dyn std::error::Error>>
    {
        // The body is announced but never sent: the status is enough.
        let (addr, server) = serve_once(b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n").await?;
        let target = HttpTarget::parse(&format!("http://{addr}/"))?;
        assert_eq!(target.get_status().await?, 204);
        server.await??;
        let (addr, server) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial").await?;
        let target = HttpTarget::parse(&format!("http://{addr}/"))?;
        assert_eq!(target.get_status().await?, 200);
        server.await??;
        Ok(())
    }

    #[tokio::test]
    async fn what_is_not_http_or_closes_early_is_an_error() -> Result<(), Box<dyn std::error::Error>>
    {
        let (addr, server) = serve_once(b"SSH-2.0-OpenSSH_9.6\r\n").await?;
        let target = HttpTarget::parse(&format!("http://{addr}/"))?;
        assert!(matches!(target.get_status().await, Err(GetError::Http(_))));
        server.await??;
        let (addr, server) = serve_once(b"").await?;
        let target = HttpTarget::parse(&format!("http://{addr}/"))?;
        assert!(matches!(target.get_status().await, Err(GetError::Http(_))));
        server.await??;
        Ok(())
    }
}
