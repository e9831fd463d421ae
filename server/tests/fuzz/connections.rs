//! Arbitrary HTTP/2 connections over TCP: the preface, then random frames
//! (header blocks with plain, schemed and garbage authorities, valid and
//! damaged HPACK, random lengths and flags), so the authority shim and the
//! h2 server behind it both meet them. The client then half-closes and the
//! server must end the connection within the timeout, without a panic.

use bytes::Bytes;
use loona_hpack::Encoder;
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::within;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8], length: Option<u32>) -> Vec<u8> {
    let len = length.unwrap_or_else(|| u32::try_from(payload.len()).unwrap());
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn authority() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        Just(b"127.0.0.1:2379".to_vec()),
        Just(b"http://127.0.0.1:2379".to_vec()),
        Just(b"https://localhost:2379/".to_vec()),
        vec(any::<u8>(), 0..20),
    ]
    .boxed()
}

fn path() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        Just(b"/etcdserverpb.KV/Range".to_vec()),
        Just(b"/etcdserverpb.KV/Put".to_vec()),
        Just(b"/etcdserverpb.Watch/Watch".to_vec()),
        Just(b"/etcdserverpb.Lease/LeaseKeepAlive".to_vec()),
        vec(any::<u8>(), 0..20),
    ]
    .boxed()
}

/// A request's HPACK block (one encoder per connection is not needed: a
/// fresh one per block makes later blocks reference entries the server
/// does not have, which is one of the damaged cases wanted).
fn hpack() -> BoxedStrategy<Vec<u8>> {
    (
        authority(),
        path(),
        any::<bool>(),
        any::<usize>(),
        any::<u8>(),
    )
        .prop_map(|(authority, path, damage, at, xor)| {
            let mut block = Encoder::new().encode([
                (b":method".as_slice(), b"POST".as_slice()),
                (b":scheme", b"http"),
                (b":path", path.as_slice()),
                (b":authority", authority.as_slice()),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ]);
            if damage && !block.is_empty() {
                let at = at % block.len();
                block[at] ^= xor | 1;
            }
            block
        })
        .boxed()
}

fn any_frame() -> BoxedStrategy<Vec<u8>> {
    let payload = prop_oneof![
        3 => hpack(),
        2 => vec(any::<u8>(), 0..40),
        1 => vec(any::<u8>(), 0..12).prop_map(|body| {
            // A gRPC message: uncompressed, its length, the bytes.
            let mut out = vec![0];
            out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            out.extend(body);
            out
        }),
    ];
    (
        prop_oneof![
            4 => Just(HEADERS),
            1 => Just(CONTINUATION),
            2 => Just(0x0),
            1 => Just(0x4),
            1 => Just(0x8),
            1 => Just(0x3),
            1 => any::<u8>(),
        ],
        prop_oneof![Just(0x4u8), Just(0x5), Just(0x0), any::<u8>()],
        prop_oneof![Just(1u32), Just(3), Just(0), any::<u32>()],
        payload,
        prop_oneof![6 => Just(None), 1 => (0u32..1 << 24).prop_map(Some)],
    )
        .prop_map(|(kind, flags, stream, payload, length)| {
            frame(kind, flags, stream, &payload, length)
        })
        .boxed()
}

pub fn connection() -> BoxedStrategy<Bytes> {
    (vec(any_frame(), 0..6), any::<bool>())
        .prop_map(|(frames, preface)| {
            let mut out = if preface {
                PREFACE.to_vec()
            } else {
                Vec::new()
            };
            out.extend(frames.concat());
            Bytes::from(out)
        })
        .boxed()
}

/// Sends `bytes`, half-closes, and reads until the server closes.
pub async fn exchange(addr: std::net::SocketAddr, bytes: Bytes) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    within(async {
        // The server may close first (a protocol error): that is an answer.
        if stream.write_all(&bytes).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        crate::harness::record(if sink.is_empty() {
            "closed without a byte".into()
        } else {
            "answered".into()
        });
    })
    .await;
    Ok(())
}
