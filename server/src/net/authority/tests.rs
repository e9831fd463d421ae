//! Tests of the authority shim: examples, the buffering bounds, and
//! property tests over arbitrary bytes, chunkings, frames and HPACK blocks.
#![allow(clippy::unwrap_used)]

mod bounds;
mod props;

use super::block::{
    CONTINUATION, END_HEADERS, END_STREAM, FRAME_HEADER, HEADERS, PADDED, PRIORITY,
};
use super::repair::{PREFACE, Repair};
use super::*;
use loona_hpack::{Decoder, Encoder};
use tokio::io::AsyncReadExt;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub(super) fn request(authority: &[u8], encoder: &mut Encoder<'_>) -> Vec<u8> {
    encoder.encode([
        (b":method".as_slice(), b"POST".as_slice()),
        (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.Maintenance/Status"),
        (b":authority", authority),
        (b"content-type", b"application/grpc"),
    ])
}

/// What the shim makes of `input` delivered in pieces of the sizes in
/// `chunks` (cyclically; empty: all at once).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) out: Vec<u8>,
    pub(super) failed: bool,
    /// The most bytes held back after processing a piece.
    pub(super) max_pending: usize,
}

pub(super) fn run(input: &[u8], chunks: &[usize]) -> Outcome {
    let mut repair = Repair::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut failed = false;
    let mut max_pending = 0;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() && !failed {
        let n = sizes
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        repair.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match repair.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        out.extend_from_slice(&repair.output().split());
        max_pending = max_pending.max(repair.pending());
    }
    if !failed {
        repair.finish();
        out.extend_from_slice(&repair.output().split());
    }
    Outcome {
        out,
        failed,
        max_pending,
    }
}

pub(super) async fn pass(input: Vec<u8>) -> Vec<u8> {
    let mut fixed = AuthorityFix::new(input.as_slice());
    let mut out = Vec::new();
    fixed.read_to_end(&mut out).await.unwrap_or_default();
    out
}

/// A connection's client frames, header blocks joined and decoded with one
/// decoder: `Err` when the bytes are not a clean sequence of frames.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    Block {
        stream: u32,
        end_stream: bool,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    },
}

/// Splits the frames after the preface, written independently of the
/// shim's own parser so the two can disagree.
pub(super) fn events(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut rest = bytes.strip_prefix(PREFACE).ok_or("no preface")?;
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    let mut open: Option<(u32, bool, Vec<u8>)> = None;
    while !rest.is_empty() {
        if rest.len() < FRAME_HEADER {
            return Err("truncated frame header".into());
        }
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let stream = u32::from_be_bytes([rest[5] & 0x7f, rest[6], rest[7], rest[8]]);
        let payload = rest
            .get(FRAME_HEADER..FRAME_HEADER + len)
            .ok_or("truncated frame")?;
        rest = &rest[FRAME_HEADER + len..];
        let fragment = match (kind, open.take()) {
            (HEADERS, None) => {
                let mut p = payload;
                if flags & PADDED != 0 {
                    let pad = usize::from(*p.first().ok_or("padding")?);
                    p = p
                        .get(1..p.len().checked_sub(pad).ok_or("padding")?)
                        .ok_or("padding")?;
                }
                if flags & PRIORITY != 0 {
                    p = p.get(5..).ok_or("priority")?;
                }
                (stream, flags & END_STREAM != 0, p.to_vec())
            }
            (CONTINUATION, Some((stream, end_stream, mut joined))) => {
                joined.extend_from_slice(payload);
                (stream, end_stream, joined)
            }
            (CONTINUATION | HEADERS, _) | (_, Some(_)) => return Err("bad block".into()),
            _ => {
                events.push(Event::Frame {
                    kind,
                    flags,
                    stream,
                    payload: payload.to_vec(),
                });
                continue;
            }
        };
        if flags & END_HEADERS != 0 {
            let (stream, end_stream, joined) = fragment;
            let headers = decoder.decode(&joined).map_err(|e| e.to_string())?;
            events.push(Event::Block {
                stream,
                end_stream,
                headers,
            });
        } else {
            open = Some(fragment);
        }
    }
    Ok(events)
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
    let blocks: Vec<_> = events(&out)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Block { headers, .. } => Some(headers),
            Event::Frame { .. } => None,
        })
        .collect();
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
    assert_eq!(block::repair_authority(b"not a host"), None);
}
