//! HTTP/2 framing and HPACK for the authority shim: finding where a client's
//! header block (HEADERS + CONTINUATIONs) ends without buffering past the
//! cap, decoding it with a bound on the decoded size, and writing a repaired
//! header list back as frames.

use bytes::{BufMut, BytesMut};
use loona_hpack::decoder::DecoderError;
use loona_hpack::{Decoder, Encoder};

pub(crate) const FRAME_HEADER: usize = 9;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const CONTINUATION: u8 = 0x9;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer must accept; the server (h2 under tonic,
/// not configured otherwise) accepts no more.
pub(crate) const MAX_FRAME: usize = 16_384;

/// The largest decoded header list the shim decodes, counted as RFC 7540
/// §6.5.2 does (name, value and 32 bytes per field). The server behind it
/// (hyper's default `max_header_list_size`, which tonic leaves alone)
/// refuses larger lists anyway, so a client gains nothing from sending one;
/// without a bound, a small block of one-byte references to a large table
/// entry (an "HPACK bomb") would decode to gigabytes.
pub(crate) const MAX_HEADER_LIST: usize = 16 * 1024;

/// The most bytes of one header block (frame headers, padding and priority
/// fields included) the shim buffers. An HPACK encoding of a list within
/// [`MAX_HEADER_LIST`] is no longer than the list's accounted size (a literal
/// costs at most 11 bytes of overhead, the accounting charges 32), so twice
/// that leaves room for the framing of any real client, even one that
/// splits the block into many small CONTINUATION frames.
pub(crate) const MAX_BLOCK_BYTES: usize = 2 * MAX_HEADER_LIST;

/// The dynamic table size the server advertises (the RFC 7541 default; h2
/// does not change it). A client may not resize its table above it, and
/// without the bound a size update would let one connection's table grow
/// to 2^28 bytes in the shim's decoder.
pub(crate) const MAX_TABLE_SIZE: usize = 4096;

/// A frame's 9-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream_id: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, if all 9 bytes are there.
    pub(crate) fn parse(buf: &[u8]) -> Option<Self> {
        let head = buf.get(..FRAME_HEADER)?;
        Some(Self {
            len: usize::try_from(u32::from_be_bytes([0, head[0], head[1], head[2]])).ok()?,
            kind: head[3],
            flags: head[4],
            stream_id: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        })
    }
}

/// How far the header block at the start of the input has arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// More bytes needed; the block so far is within the cap.
    Incomplete,
    /// The block's frames end at this many bytes.
    Complete(usize),
    /// The frame headers announce more than [`MAX_BLOCK_BYTES`].
    TooLarge,
    /// A frame other than CONTINUATION interrupts the block (a connection
    /// error in HTTP/2).
    Interrupted,
}

/// Walks the frames of the header block that starts `buf` (with a HEADERS
/// frame). `scanned` is how many bytes of complete frames earlier calls
/// walked, so each byte is looked at once however the input is chunked.
/// Decisions depend only on frame headers, never on how much has arrived.
pub(crate) fn scan_block(buf: &[u8], scanned: &mut usize) -> Scan {
    loop {
        if *scanned + FRAME_HEADER > MAX_BLOCK_BYTES {
            // Not even an empty CONTINUATION fits any more.
            return Scan::TooLarge;
        }
        let Some(head) = buf.get(*scanned..).and_then(FrameHeader::parse) else {
            return Scan::Incomplete;
        };
        if *scanned > 0 && head.kind != CONTINUATION {
            return Scan::Interrupted;
        }
        let end = *scanned + FRAME_HEADER + head.len;
        if end > MAX_BLOCK_BYTES {
            return Scan::TooLarge;
        }
        if buf.len() < end {
            return Scan::Incomplete;
        }
        *scanned = end;
        if head.flags & END_HEADERS != 0 {
            return Scan::Complete(end);
        }
    }
}

/// A complete header block, its frames' fields joined.
pub(crate) struct HeaderBlock {
    pub(crate) stream_id: u32,
    pub(crate) flags: u8,
    /// The header block fragments of HEADERS and its CONTINUATIONs, joined.
    pub(crate) fragment: Vec<u8>,
}

impl HeaderBlock {
    /// The block in `raw`, which [`scan_block`] found complete; `None` when
    /// the HEADERS frame's padding or priority fields do not fit in it.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        let head = FrameHeader::parse(raw)?;
        let mut payload = raw.get(FRAME_HEADER..FRAME_HEADER + head.len)?;
        if head.flags & PADDED != 0 {
            let (&pad, rest) = payload.split_first()?;
            payload = rest.get(..rest.len().checked_sub(usize::from(pad))?)?;
        }
        if head.flags & PRIORITY != 0 {
            payload = payload.get(5..)?;
        }
        let mut fragment = payload.to_vec();
        let mut at = FRAME_HEADER + head.len;
        while let Some(next) = raw.get(at..).and_then(FrameHeader::parse) {
            let start = at + FRAME_HEADER;
            fragment.extend_from_slice(raw.get(start..start + next.len)?);
            at = start + next.len;
        }
        Some(Self {
            stream_id: head.stream_id,
            flags: head.flags,
            fragment,
        })
    }
}

pub(crate) type HeaderList = Vec<(Vec<u8>, Vec<u8>)>;

/// A decoder for one client connection, bounded like the server's.
pub(crate) fn new_decoder() -> Decoder<'static> {
    let mut decoder = Decoder::new();
    decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
    decoder
}

/// Decodes `fragment`; `Ok(None)` when the list is larger than
/// [`MAX_HEADER_LIST`] (the decoder still follows the whole block, but
/// nothing past the limit is kept).
pub(crate) fn decode_limited(
    decoder: &mut Decoder<'static>,
    fragment: &[u8],
) -> Result<Option<HeaderList>, DecoderError> {
    let mut size = 0usize;
    let mut headers = Vec::new();
    decoder.decode_with_cb(fragment, |name, value| {
        size = size.saturating_add(name.len() + value.len() + 32);
        if size <= MAX_HEADER_LIST {
            headers.push((name.into_owned(), value.into_owned()));
        }
    })?;
    Ok((size <= MAX_HEADER_LIST).then_some(headers))
}

/// Appends `headers`, encoded by `encoder`, to `out` as a HEADERS frame and
/// as many CONTINUATIONs as [`MAX_FRAME`] requires. `flags` are the
/// original HEADERS flags: only END_STREAM carries over (padding and
/// priority are dropped, both advisory).
pub(crate) fn write_block(
    encoder: &mut Encoder<'static>,
    headers: &HeaderList,
    stream_id: u32,
    flags: u8,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let mut encoded = Vec::new();
    encoder.encode_into(
        headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
        &mut encoded,
    )?;
    let chunks: Vec<&[u8]> = if encoded.is_empty() {
        vec![&[]]
    } else {
        encoded.chunks(MAX_FRAME).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let mut frame_flags = if i == 0 { flags & END_STREAM } else { 0 };
        if i == last {
            frame_flags |= END_HEADERS;
        }
        // A chunk is at most MAX_FRAME bytes, so its length fits 24 bits.
        out.put_uint(chunk.len() as u64, 3);
        out.put_u8(kind);
        out.put_u8(frame_flags);
        out.put_u32(stream_id);
        out.put_slice(chunk);
    }
    Ok(())
}

/// What `http::uri::Authority` (and so h2) accepts.
pub(crate) fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// Every `:authority` of `headers` made acceptable to h2:
/// `http://127.0.0.1:2379/` → `127.0.0.1:2379`; one that cannot be repaired
/// is dropped (h2 then takes the request without an authority).
pub(crate) fn repair_headers(headers: HeaderList) -> HeaderList {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            if name.as_slice() != b":authority" || valid_authority(&value) {
                return Some((name, value));
            }
            repair_authority(&value).map(|v| (name, v))
        })
        .collect()
}

/// Whether [`repair_headers`] would change anything.
pub(crate) fn needs_repair(headers: &HeaderList) -> bool {
    headers
        .iter()
        .any(|(n, v)| n.as_slice() == b":authority" && !valid_authority(v))
}

/// `http://127.0.0.1:2379/` → `127.0.0.1:2379`; `None` drops the header.
pub(crate) fn repair_authority(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let without_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or_default();
    valid_authority(host.as_bytes()).then(|| host.as_bytes().to_vec())
}
