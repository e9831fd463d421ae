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
//! Only the client-to-server direction is inspected; writes pass straight
//! through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer must accept.
const MAX_FRAME: usize = 16_384;
/// A header block larger than this is not gRPC; stop inspecting.
const MAX_BLOCK: usize = 1 << 20;

enum Mode {
    /// Waiting for the connection preface.
    Preface,
    /// Before the first header block.
    Inspect(Box<Decoder<'static>>),
    /// Re-encoding every header block.
    Rewrite(Box<Decoder<'static>>, Box<Encoder<'static>>),
    /// Untouched from here on.
    Passthrough,
}

pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the client, not yet processed.
    input: BytesMut,
    /// Processed bytes for the server to read.
    output: BytesMut,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Mode::Preface,
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves what can be processed from `input` to `output`; false when more
    /// input is needed.
    fn process(&mut self) -> bool {
        match &mut self.mode {
            Mode::Passthrough => {
                let all = self.input.split();
                self.output.unsplit(all);
                true
            }
            Mode::Preface => {
                if self.input.len() < PREFACE.len() {
                    return false;
                }
                if &self.input[..PREFACE.len()] != PREFACE {
                    // Not HTTP/2 with prior knowledge: let the server judge it.
                    self.mode = Mode::Passthrough;
                    return true;
                }
                let preface = self.input.split_to(PREFACE.len());
                self.output.unsplit(preface);
                self.mode = Mode::Inspect(Box::new(Decoder::new()));
                true
            }
            Mode::Inspect(_) | Mode::Rewrite(..) => self.process_frame(),
        }
    }

    fn process_frame(&mut self) -> bool {
        if self.input.len() < FRAME_HEADER {
            return false;
        }
        let kind = self.input[3];
        if kind != HEADERS {
            let Some(len) = frame_len(&self.input) else {
                return false;
            };
            let frame = self.input.split_to(len);
            self.output.unsplit(frame);
            return true;
        }
        let block = match HeaderBlock::parse(&self.input) {
            Parsed::Incomplete => return false,
            Parsed::Unsupported => {
                self.mode = Mode::Passthrough;
                return true;
            }
            Parsed::Block(block) => block,
        };
        let raw = self.input.split_to(block.consumed);
        let mode = std::mem::replace(&mut self.mode, Mode::Passthrough);
        self.mode = match mode {
            Mode::Inspect(mut decoder) => {
                let Ok(headers) = decoder.decode(&block.fragment) else {
                    // Undecodable: forward it and let the server answer.
                    self.output.unsplit(raw);
                    return true;
                };
                if headers
                    .iter()
                    .all(|(n, v)| n.as_slice() != b":authority" || valid_authority(v))
                {
                    self.output.unsplit(raw);
                    Mode::Passthrough
                } else {
                    let mut encoder = Box::new(Encoder::new());
                    if !self.reencode(&mut encoder, &block, headers) {
                        self.output.unsplit(raw);
                        return true;
                    }
                    Mode::Rewrite(decoder, encoder)
                }
            }
            Mode::Rewrite(mut decoder, mut encoder) => {
                let reencoded = match decoder.decode(&block.fragment) {
                    Ok(headers) => self.reencode(&mut encoder, &block, headers),
                    Err(_) => false,
                };
                if !reencoded {
                    // Forward it as sent; the server will reject what it cannot read.
                    self.output.unsplit(raw);
                }
                Mode::Rewrite(decoder, encoder)
            }
            other => other,
        };
        true
    }

    /// Writes `headers` (authority repaired) as HEADERS + CONTINUATION frames.
    fn reencode(
        &mut self,
        encoder: &mut Encoder<'static>,
        block: &HeaderBlock,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> bool {
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .filter_map(|(name, value)| {
                if name.as_slice() != b":authority" || valid_authority(&value) {
                    return Some((name, value));
                }
                repair_authority(&value).map(|v| (name, v))
            })
            .collect();
        let mut encoded = Vec::new();
        if encoder
            .encode_into(
                fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
                &mut encoded,
            )
            .is_err()
        {
            return false;
        }
        let chunks: Vec<&[u8]> = if encoded.is_empty() {
            vec![&[]]
        } else {
            encoded.chunks(MAX_FRAME).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            let mut flags = if i == 0 { block.flags & END_STREAM } else { 0 };
            if i == last {
                flags |= END_HEADERS;
            }
            let len = u32::try_from(chunk.len()).unwrap_or(0);
            self.output.put_uint(u64::from(len), 3);
            self.output.put_u8(kind);
            self.output.put_u8(flags);
            self.output.put_u32(block.stream_id);
            self.output.put_slice(chunk);
        }
        true
    }
}

/// Length of the whole frame at the start of `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let payload = usize::try_from(u32::from_be_bytes([0, buf[0], buf[1], buf[2]])).ok()?;
    let len = FRAME_HEADER + payload;
    (buf.len() >= len).then_some(len)
}

struct HeaderBlock {
    stream_id: u32,
    flags: u8,
    /// The header block fragment of HEADERS and its CONTINUATIONs, joined.
    fragment: Vec<u8>,
    /// Input bytes the frames span.
    consumed: usize,
}

enum Parsed {
    Incomplete,
    Unsupported,
    Block(HeaderBlock),
}

impl HeaderBlock {
    fn parse(buf: &[u8]) -> Parsed {
        let Some(len) = frame_len(buf) else {
            return if buf.len() > MAX_BLOCK {
                Parsed::Unsupported
            } else {
                Parsed::Incomplete
            };
        };
        let flags = buf[4];
        let stream_id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        let mut payload = &buf[FRAME_HEADER..len];
        if flags & PADDED != 0 {
            let Some((&pad, rest)) = payload.split_first() else {
                return Parsed::Unsupported;
            };
            let Some(end) = rest.len().checked_sub(usize::from(pad)) else {
                return Parsed::Unsupported;
            };
            payload = &rest[..end];
        }
        if flags & PRIORITY != 0 {
            let Some(rest) = payload.get(5..) else {
                return Parsed::Unsupported;
            };
            payload = rest;
        }
        let mut fragment = payload.to_vec();
        let mut consumed = len;
        let mut done = flags & END_HEADERS != 0;
        while !done {
            let rest = &buf[consumed..];
            if rest.len() < FRAME_HEADER {
                return Parsed::Incomplete;
            }
            if rest[3] != CONTINUATION {
                return Parsed::Unsupported;
            }
            let Some(next) = frame_len(rest) else {
                return Parsed::Incomplete;
            };
            fragment.extend_from_slice(&rest[FRAME_HEADER..next]);
            done = rest[4] & END_HEADERS != 0;
            consumed += next;
            if fragment.len() > MAX_BLOCK {
                return Parsed::Unsupported;
            }
        }
        Parsed::Block(HeaderBlock {
            stream_id,
            flags,
            fragment,
            consumed,
        })
    }
}

/// What `http::uri::Authority` (and so h2) accepts.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// `http://127.0.0.1:2379/` → `127.0.0.1:2379`; `None` drops the header.
fn repair_authority(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let without_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or_default();
    valid_authority(host.as_bytes()).then(|| host.as_bytes().to_vec())
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.process() {
                continue;
            }
            if this.eof {
                // A truncated frame: hand over what is left and end.
                let rest = this.input.split();
                this.output.unsplit(rest);
                if this.output.is_empty() {
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
                this.input.extend_from_slice(read.filled());
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn request(authority: &[u8], encoder: &mut Encoder<'_>) -> Vec<u8> {
        encoder.encode([
            (b":method".as_slice(), b"POST".as_slice()),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
        ])
    }

    async fn pass(input: Vec<u8>) -> Vec<u8> {
        let mut fixed = AuthorityFix::new(input.as_slice());
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap_or_default();
        out
    }

    fn header_blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = Decoder::new();
        let mut rest = &bytes[PREFACE.len()..];
        let mut blocks = Vec::new();
        while let Some(len) = (rest.len() >= FRAME_HEADER)
            .then(|| frame_len(rest))
            .flatten()
        {
            if rest[3] == HEADERS {
                blocks.push(decoder.decode(&rest[FRAME_HEADER..len]).unwrap_or_default());
            }
            rest = &rest[len..];
        }
        blocks
    }

    #[tokio::test]
    async fn well_formed_connections_pass_byte_for_byte() {
        let mut encoder = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request(b"127.0.0.1:2379", &mut encoder),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        assert_eq!(pass(input.clone()).await, input);
    }

    #[tokio::test]
    async fn schemed_authority_is_repaired_on_every_request() {
        let mut encoder = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request(b"http://127.0.0.1:2379", &mut encoder),
        ));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        // The second request reuses the client's dynamic table entries.
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            3,
            &request(b"http://127.0.0.1:2379", &mut encoder),
        ));
        let out = pass(input).await;
        let blocks = header_blocks(&out);
        assert_eq!(blocks.len(), 2);
        for block in blocks {
            let authority = block
                .iter()
                .find(|(n, _)| n.as_slice() == b":authority")
                .map(|(_, v)| v.clone());
            assert_eq!(authority.as_deref(), Some(b"127.0.0.1:2379".as_slice()));
            assert!(
                block
                    .iter()
                    .any(|(n, v)| n.as_slice() == b":path" && v.starts_with(b"/etcdserverpb"))
            );
        }
        assert_eq!(repair_authority(b"not a host"), None);
    }
}
