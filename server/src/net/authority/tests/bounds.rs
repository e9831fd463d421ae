//! What the shim holds back and decodes stays bounded whatever the client
//! sends, and what happens past the bounds.

use std::pin::Pin;
use std::task::{Context, Poll};

use super::super::block::{MAX_BLOCK_BYTES, MAX_HEADER_LIST};
use super::*;

/// A first request with an authority that needs the repair, so the
/// connection is in its re-encoding mode afterwards.
fn rewriting_connection(encoder: &mut Encoder<'_>) -> Vec<u8> {
    let mut input = PREFACE.to_vec();
    input.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request(b"http://127.0.0.1:2379", encoder),
    ));
    input
}

/// A HEADERS frame without END_HEADERS followed by empty CONTINUATIONs
/// that never end the block.
fn continuation_flood(stream: u32, count: usize) -> Vec<u8> {
    let mut out = frame(HEADERS, 0, stream, &[0x82]);
    for _ in 0..count {
        out.extend(frame(CONTINUATION, 0, stream, &[]));
    }
    out
}

/// One literal (with incremental indexing) of a ~4 KB value, then `refs`
/// one-byte references to it: a few KB that decode to refs × 4 KB.
fn hpack_bomb(refs: usize) -> Vec<u8> {
    let mut block = Vec::new();
    loona_hpack::Encoder::new()
        .encode_header_into(
            (b"x-bomb".as_slice(), vec![b'b'; 4000].as_slice()),
            &mut block,
        )
        .unwrap();
    block.extend(std::iter::repeat_n(0xbe, refs)); // index 62: the newest entry
    block
}

#[test]
fn a_never_ending_first_header_block_is_not_buffered_but_passed_through() {
    let mut input = PREFACE.to_vec();
    input.extend(continuation_flood(1, 20_000));
    let outcome = run(&input, &[4096]);
    assert!(
        outcome.max_pending <= MAX_BLOCK_BYTES,
        "{}",
        outcome.max_pending
    );
    assert!(!outcome.failed);
    assert_eq!(outcome.out, input);
}

#[test]
fn a_never_ending_header_block_fails_a_rewritten_connection() {
    let mut encoder = Encoder::new();
    let mut input = rewriting_connection(&mut encoder);
    let repaired_first = run(&input, &[]).out;
    input.extend(continuation_flood(3, 20_000));
    let outcome = run(&input, &[4096]);
    assert!(
        outcome.max_pending <= MAX_BLOCK_BYTES,
        "{}",
        outcome.max_pending
    );
    assert!(outcome.failed);
    // Nothing of the refused block reached the server.
    assert_eq!(outcome.out, repaired_first);
}

#[test]
fn a_huge_header_frame_is_passed_on_as_soon_as_its_header_arrives() {
    let mut input = PREFACE.to_vec();
    let mut head = frame(HEADERS, END_HEADERS, 1, &[]);
    head[..3].copy_from_slice(&[0xff, 0xff, 0xff]); // 16 MiB announced
    input.extend(head);
    input.extend(vec![0x82; 100]);
    let outcome = run(&input, &[]);
    assert_eq!(outcome.max_pending, 0);
    assert_eq!(outcome.out, input);
}

#[test]
fn a_large_data_frame_streams_through_a_rewritten_connection() {
    let mut encoder = Encoder::new();
    let mut input = rewriting_connection(&mut encoder);
    input.extend(frame(0x0, END_STREAM, 1, &vec![7; 1 << 20]));
    let outcome = run(&input, &[8192]);
    assert!(!outcome.failed);
    assert_eq!(outcome.max_pending, 0);
    assert_eq!(
        outcome.out[outcome.out.len() - (1 << 20)..],
        input[input.len() - (1 << 20)..]
    );
}

#[test]
fn an_hpack_bomb_is_never_materialized() {
    // 16 KB of references: 64 MB decoded without the bound.
    let bomb = hpack_bomb(16_000);
    assert!(bomb.len() < MAX_BLOCK_BYTES);
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &bomb));
    // First block: too large to inspect, so the server judges it as sent.
    assert_eq!(run(&input, &[]).out, input);
    let mut encoder = Encoder::new();
    let mut input = rewriting_connection(&mut encoder);
    input.extend(frame(HEADERS, END_HEADERS, 3, &bomb));
    assert!(run(&input, &[]).failed);
}

#[test]
fn a_header_list_at_the_limit_is_still_repaired() {
    let mut encoder = Encoder::new();
    let mut input = rewriting_connection(&mut encoder);
    // The request's own fields take well under 300 bytes of the budget.
    let value = vec![b'v'; MAX_HEADER_LIST - 300 - 32 - 5];
    let mut block = request(b"http://127.0.0.1:2379", &mut encoder);
    encoder
        .encode_header_into((b"x-large".as_slice(), value.as_slice()), &mut block)
        .unwrap();
    input.extend(frame(HEADERS, 0, 3, &block[..8000]));
    input.extend(frame(CONTINUATION, END_HEADERS, 3, &block[8000..]));
    let outcome = run(&input, &[1000]);
    assert!(!outcome.failed);
    let events = events(&outcome.out).unwrap();
    let Some(Event::Block { headers, .. }) = events.last() else {
        panic!("{events:?}");
    };
    assert!(headers.contains(&(b":authority".to_vec(), b"127.0.0.1:2379".to_vec())));
    assert!(headers.contains(&(b"x-large".to_vec(), value)));
}

#[test]
fn a_table_size_above_the_servers_fails_a_rewritten_connection() {
    // Size update to 1 MiB (5-bit prefix integer), then an indexed field.
    let resize = [0x3f, 0xe1, 0xff, 0x3f, 0x82];
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_HEADERS, 1, &resize));
    assert_eq!(run(&input, &[]).out, input);
    let mut encoder = Encoder::new();
    let mut input = rewriting_connection(&mut encoder);
    input.extend(frame(HEADERS, END_HEADERS, 3, &resize));
    assert!(run(&input, &[]).failed);
}

/// A reader that has `data` and then nothing yet (the client waits).
struct Waiting<'a>(&'a [u8]);

impl AsyncRead for Waiting<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.0.is_empty() {
            return Poll::Pending;
        }
        let n = self.0.len().min(buf.remaining());
        buf.put_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Poll::Ready(Ok(()))
    }
}

#[test]
fn a_short_request_that_is_not_http2_reaches_the_server_without_waiting() {
    let request = b"GET / HTTP/1.0\r\n\r\n"; // shorter than the preface
    let mut fixed = AuthorityFix::new(Waiting(request));
    let mut storage = [0u8; 64];
    let mut buf = ReadBuf::new(&mut storage);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let polled = Pin::new(&mut fixed).poll_read(&mut cx, &mut buf);
    assert!(matches!(polled, Poll::Ready(Ok(()))));
    assert_eq!(buf.filled(), request);
}
