//! The HTTP health check's client: one `GET` over HTTP/1.1 on a fresh
//! connection (`Connection: close`), reading only the status line. That is
//! all a health check needs, so it costs no HTTP library. Plain `http://`
//! only; a check behind TLS can use the TCP or gRPC probe instead.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::probe::{CheckFailure, ProbeError};

/// The longest status line read before the response counts as malformed.
const MAX_STATUS_LINE: usize = 1024;

/// Where an HTTP check goes: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTarget {
    /// Host name or address to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority as written.
    authority: String,
    /// The request target, `/` when the URL has no path.
    path: String,
}

impl HttpTarget {
    pub(crate) fn parse(url: &str) -> Result<Self, ProbeError> {
        let invalid = |reason| ProbeError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '[' in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(invalid("garbage after the IPv6 address")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || authority.contains('@') {
            return Err(invalid("no host (or a userinfo, which is not supported)"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| invalid("the port is not a number"))?,
            None => 80,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the path contains whitespace"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }

    /// Sends the GET and returns the response's status code.
    pub(crate) async fn get_status(&self) -> Result<u16, CheckFailure> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rollcall-health-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(128);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") {
            if head.len() > MAX_STATUS_LINE {
                return Err(CheckFailure::BadResponse("status line too long"));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(CheckFailure::BadResponse(
                    "connection closed before a status line",
                ));
            }
            head.extend_from_slice(&buf[..n]);
        }
        parse_status_line(&head)
    }
}

/// The code of `HTTP/1.x NNN reason\r\n...`.
fn parse_status_line(head: &[u8]) -> Result<u16, CheckFailure> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| CheckFailure::BadResponse("not text"))?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(CheckFailure::BadResponse("not an HTTP/1.x status line"));
    }
    parts
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse().ok())
        .ok_or(CheckFailure::BadResponse("no status code"))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn urls_parse() -> Result<(), ProbeError> {
        let t = HttpTarget::parse("http://127.0.0.1:8080/health?full=1")?;
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/health?full=1")
        );
        let t = HttpTarget::parse("http://svc.local")?;
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("svc.local", 80, "/")
        );
        let t = HttpTarget::parse("http://[::1]:9/x")?;
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 9, "[::1]:9")
        );
        let t = HttpTarget::parse("http://h:1?q")?;
        assert_eq!(t.path, "/?q");
        for bad in [
            "https://h/",
            "h:80/",
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://h/a b",
        ] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad:?} accepted");
        }
        Ok(())
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 204 No Content\r\n").ok(),
            Some(204)
        );
        assert_eq!(parse_status_line(b"HTTP/1.0 503\r\n").ok(), Some(503));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20 OK\r\n").is_err());
    }

    #[tokio::test]
    async fn get_reads_the_status_and_sends_a_well_formed_request()
    -> Result<(), Box<dyn std::error::Error>> {
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
            // The status line in two writes: the client must reassemble.
            conn.write_all(b"HTTP/1.1 5").await?;
            conn.flush().await?;
            conn.write_all(b"03 Unavailable\r\nContent-Length: 0\r\n\r\n")
                .await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&request).into_owned())
        });
        let target = HttpTarget::parse(&format!("http://{addr}/healthz"))?;
        assert_eq!(target.get_status().await?, 503);
        let request = server.await??;
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nHost: {addr}\r\n")),
            "{request}"
        );
        Ok(())
    }
}
