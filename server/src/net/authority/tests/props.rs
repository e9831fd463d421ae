//! Property tests of the shim over arbitrary input.
//!
//! Cases per property: 256 by default (`ROLLCALL_PROPTEST_CASES` raises it
//! for a longer local run); failures are not persisted to files.

use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::block::{MAX_BLOCK_BYTES, valid_authority};
use super::*;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("ROLLCALL_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Authorities h2 accepts.
fn plain_authority() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just("127.0.0.1:2379".to_string()),
        Just("localhost:2379".to_string()),
        Just("[::1]:2379".to_string()),
        "[a-z]{1,10}(\\.[a-z]{1,5})?(:[0-9]{1,4})?",
    ]
    .prop_map(String::into_bytes)
    .prop_filter("accepted by h2", |a| valid_authority(a))
}

/// `scheme://plain/path` and the `plain` the repair must produce.
fn schemed_authority() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop_oneof![Just("http"), Just("https"), Just("unix"), Just("dns")],
        plain_authority(),
        prop_oneof![Just(""), Just("/"), Just("/a/b")],
    )
        .prop_map(|(scheme, plain, path)| {
            let mut schemed = format!("{scheme}://").into_bytes();
            schemed.extend_from_slice(&plain);
            schemed.extend_from_slice(path.as_bytes());
            (schemed, plain)
        })
}

fn any_authority() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        plain_authority(),
        schemed_authority().prop_map(|(schemed, _)| schemed),
        vec(any::<u8>(), 0..24),
    ]
}

fn extra_headers() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    vec(
        (
            "[a-z][a-z0-9-]{0,12}".prop_map(String::into_bytes),
            vec(any::<u8>(), 0..40),
        ),
        0..4,
    )
}

/// One request of a generated connection.
#[derive(Debug, Clone)]
struct Req {
    authority: Option<Vec<u8>>,
    extra: Vec<(Vec<u8>, Vec<u8>)>,
    /// Sizes of the header block's pieces (HEADERS, then CONTINUATIONs).
    split: Vec<usize>,
    pad: Option<u8>,
    priority: bool,
    end_stream: bool,
    data: Vec<u8>,
    ping_before: bool,
}

fn req(authority: impl Strategy<Value = Option<Vec<u8>>>) -> impl Strategy<Value = Req> {
    (
        authority,
        extra_headers(),
        vec(1usize..64, 1..4),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        any::<bool>(),
        vec(any::<u8>(), 0..32),
        any::<bool>(),
    )
        .prop_map(
            |(authority, extra, split, pad, priority, end_stream, data, ping_before)| Req {
                authority,
                extra,
                split,
                pad,
                priority,
                end_stream,
                data,
                ping_before,
            },
        )
}

fn headers_of(req: &Req, authority: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut headers = vec![
        (b":method".to_vec(), b"POST".to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (b":path".to_vec(), b"/etcdserverpb.KV/Range".to_vec()),
    ];
    if let Some(authority) = authority {
        headers.push((b":authority".to_vec(), authority.to_vec()));
    }
    headers.extend(req.extra.iter().cloned());
    headers
}

/// The client's bytes for `reqs`, one stream each, and the events the
/// server must see when every authority is replaced by `repaired(i)`.
fn connection(reqs: &[Req]) -> Vec<u8> {
    let mut encoder = Encoder::new();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for (i, req) in reqs.iter().enumerate() {
        let stream = u32::try_from(2 * i + 1).unwrap();
        if req.ping_before {
            out.extend(frame(0x6, 0, 0, &[0; 8]));
        }
        let headers = headers_of(req, req.authority.as_deref());
        let block = encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let mut pieces = Vec::new();
        let mut rest = block.as_slice();
        let mut sizes = req.split.iter().cycle();
        while pieces.is_empty() || !rest.is_empty() {
            let n = sizes.next().copied().unwrap_or(1).min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        let last = pieces.len() - 1;
        for (j, piece) in pieces.into_iter().enumerate() {
            let mut flags = if j == last { END_HEADERS } else { 0 };
            if j > 0 {
                out.extend(frame(CONTINUATION, flags, stream, piece));
                continue;
            }
            if req.end_stream {
                flags |= END_STREAM;
            }
            let mut payload = Vec::new();
            if let Some(pad) = req.pad {
                flags |= PADDED;
                payload.push(pad);
            }
            if req.priority {
                flags |= PRIORITY;
                payload.extend_from_slice(&[0, 0, 0, 0, 16]);
            }
            payload.extend_from_slice(piece);
            payload.extend(std::iter::repeat_n(0, usize::from(req.pad.unwrap_or(0))));
            out.extend(frame(HEADERS, flags, stream, &payload));
        }
        if !req.end_stream {
            out.extend(frame(0x0, END_STREAM, stream, &req.data));
        }
    }
    out
}

/// Any frame, with valid or invalid HPACK, lying lengths and odd flags.
fn raw_frame() -> impl Strategy<Value = Vec<u8>> {
    let hpack = (any_authority(), extra_headers())
        .prop_map(|(authority, extra)| {
            let mut headers = vec![(b":authority".to_vec(), authority)];
            headers.extend(extra);
            Encoder::new().encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
        })
        .boxed();
    let mutated = (hpack.clone(), any::<usize>(), 1u8..).prop_map(|(mut block, at, xor)| {
        if !block.is_empty() {
            let at = at % block.len();
            block[at] ^= xor;
        }
        block
    });
    (
        prop_oneof![
            Just(HEADERS),
            Just(CONTINUATION),
            Just(0u8),
            Just(0x4),
            any::<u8>()
        ],
        any::<u8>(),
        prop_oneof![Just(1u32), Just(0), any::<u32>()],
        prop_oneof![vec(any::<u8>(), 0..48), hpack, mutated],
        prop_oneof![4 => Just(None), 1 => (0u32..1 << 24).prop_map(Some)],
    )
        .prop_map(|(kind, flags, stream, payload, lie)| {
            let mut f = frame(kind, flags, stream, payload.as_slice());
            if let Some(len) = lie {
                f[..3].copy_from_slice(&len.to_be_bytes()[1..]);
            }
            f
        })
}

/// Inputs of every kind: random bytes, random frames after the preface,
/// generated connections and generated connections with a byte flipped.
fn any_input() -> impl Strategy<Value = Vec<u8>> {
    let conn = vec(req(proptest::option::of(any_authority())), 1..4)
        .prop_map(|r| connection(&r))
        .boxed();
    prop_oneof![
        vec(any::<u8>(), 0..256),
        vec(raw_frame(), 0..8).prop_map(|frames| {
            let mut out = PREFACE.to_vec();
            out.extend(frames.concat());
            out
        }),
        conn.clone(),
        (conn, any::<usize>(), 1u8..).prop_map(|(mut bytes, at, xor)| {
            let at = PREFACE.len() + at % (bytes.len() - PREFACE.len());
            bytes[at] ^= xor;
            bytes
        }),
    ]
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..40, 0..6)
}

proptest! {
    #![proptest_config(config(256))]

    /// (a) No panic; the result does not depend on how the bytes arrive;
    /// what is held back stays within the cap.
    #[test]
    fn any_input_in_any_chunks(input in any_input(), chunks in chunking()) {
        let whole = run(&input, &[]);
        let chunked = run(&input, &chunks);
        prop_assert!(chunked.max_pending <= MAX_BLOCK_BYTES);
        prop_assert_eq!(&chunked.out, &whole.out);
        prop_assert_eq!(chunked.failed, whole.failed);
    }

    /// (b) The shim's output is a fixed point.
    #[test]
    fn output_passes_through_unchanged(input in any_input()) {
        let once = run(&input, &[]);
        let twice = run(&once.out, &[]);
        prop_assert!(!twice.failed);
        prop_assert_eq!(twice.out, once.out);
    }

    /// (c) A connection whose first authority needs no repair passes byte
    /// for byte, whatever its later requests carry.
    #[test]
    fn well_formed_connections_are_untouched(
        first in req(proptest::option::of(plain_authority())),
        later in vec(req(proptest::option::of(any_authority())), 0..3),
        chunks in chunking(),
    ) {
        let mut reqs = vec![first];
        reqs.extend(later);
        let input = connection(&reqs);
        let outcome = run(&input, &chunks);
        prop_assert!(!outcome.failed);
        prop_assert_eq!(outcome.out, input);
    }

    /// (c) Bytes that are not an HTTP/2 connection pass byte for byte.
    #[test]
    fn other_protocols_are_untouched(input in vec(any::<u8>(), 0..256), chunks in chunking()) {
        prop_assume!(!input.starts_with(PREFACE));
        prop_assert_eq!(run(&input, &chunks).out, input);
    }

    /// (d) Once repaired, every request decodes to what the client sent
    /// with only the authority fixed; other frames are unchanged.
    #[test]
    fn repaired_connections_keep_everything_but_the_authority(
        reqs in vec((req(Just(None)), proptest::option::of(schemed_authority())), 1..5),
        chunks in chunking(),
    ) {
        let mut reqs = reqs;
        if reqs[0].1.is_none() {
            reqs[0].1 = Some((b"http://127.0.0.1:2379".to_vec(), b"127.0.0.1:2379".to_vec()));
        }
        let sent: Vec<Req> = reqs
            .iter()
            .map(|(req, authority)| Req {
                authority: authority.as_ref().map(|(schemed, _)| schemed.clone()),
                ..req.clone()
            })
            .collect();
        let input = connection(&sent);
        let outcome = run(&input, &chunks);
        prop_assert!(!outcome.failed);
        let mut expected = events(&input).map_err(TestCaseError::fail)?;
        let mut repaired = reqs.iter().map(|(req, authority)| {
            headers_of(req, authority.as_ref().map(|(_, plain)| plain.as_slice()))
        });
        for event in &mut expected {
            if let Event::Block { headers, .. } = event {
                *headers = repaired.next().unwrap_or_default();
            }
        }
        prop_assert_eq!(events(&outcome.out).map_err(TestCaseError::fail)?, expected);
    }
}

/// A reader handing out `chunks`, one per read.
struct Chunked(std::collections::VecDeque<Vec<u8>>);

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.0.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// The `AsyncRead` wrapper forwards exactly what the state machine
    /// produces, and an error ends the stream.
    #[test]
    fn the_stream_wrapper_matches_the_state_machine(input in any_input(), chunks in chunking()) {
        let expected = run(&input, &[]);
        let mut pieces = std::collections::VecDeque::new();
        let mut rest = input.as_slice();
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
            pieces.push_back(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (out, failed) = runtime.block_on(async {
            let mut fixed = AuthorityFix::new(Chunked(pieces));
            let mut out = Vec::new();
            let failed = fixed.read_to_end(&mut out).await.is_err();
            (out, failed)
        });
        prop_assert_eq!(failed, expected.failed);
        prop_assert_eq!(out, expected.out);
    }
}
