//! Accepts the `:authority` that etcd's own clients send.
//!
//! etcdctl 3.4 (grpc-go's `passthrough` resolver) sends the endpoint with its
//! scheme as the HTTP/2 `:authority` of some commands (`endpoint status`):
//! `http://127.0.0.1:2379`. grpc-go servers accept it; the `h2` crate under
//! tonic rejects it as malformed and resets the stream. This stream wrapper
//! reads the client's first header block: when its authority is well formed
//! (every client but those) the connection continues untouched, byte for
//! byte. Otherwise every later header block of the connection is decoded and
//! re-encoded with a usable authority (`127.0.0.1:2379`), so the server's
//! HPACK decoder follows our encoder from then on.
//!
//! The bytes come from the network, so what the shim holds back and decodes
//! is bounded (see [`block::MAX_BLOCK_BYTES`] and [`block::MAX_HEADER_LIST`]):
//! a first header block past the bounds leaves the connection untouched for
//! the server to judge; on a connection already being re-encoded, it fails
//! the connection (see [`repair::RepairError`]).
//!
//! Only the client-to-server direction is inspected; writes pass straight
//! through.

mod block;
mod repair;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use repair::Repair;

pub(crate) struct AuthorityFix<S> {
    inner: S,
    repair: Repair,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            repair: Repair::new(),
            eof: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let output = this.repair.output();
            if !output.is_empty() {
                let n = output.len().min(buf.remaining());
                buf.put_slice(&output[..n]);
                output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.repair.idle_passthrough() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            match this.repair.step() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
            }
            if this.eof {
                this.repair.finish();
                if this.repair.output().is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.repair.push(read.filled());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
