//! The shim's state machine over the client's bytes, independent of I/O:
//! bytes go in with [`Repair::push`], [`Repair::step`] moves what it can to
//! the output, and the caller hands the output to the server.
//!
//! What it holds back is bounded: at most the 24-byte preface, a 9-byte
//! frame header, or one header block of up to [`MAX_BLOCK_BYTES`]; every
//! other frame's payload streams through as it arrives.

use bytes::BytesMut;
use loona_hpack::decoder::DecoderError;
use loona_hpack::{Decoder, Encoder};

use super::block::{
    FRAME_HEADER, FrameHeader, HEADERS, HeaderBlock, MAX_BLOCK_BYTES, Scan, decode_limited,
    needs_repair, new_decoder, repair_headers, scan_block, write_block,
};

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a connection whose header blocks are being re-encoded has to end.
/// Forwarding the client's block as sent is not an option there: the
/// server's HPACK decoder follows the shim's encoder, so it would read the
/// block against the wrong dynamic table.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepairError {
    #[error("client header block larger than the {MAX_BLOCK_BYTES}-byte limit")]
    TooLarge,
    #[error("client header block interrupted by another frame or with malformed padding")]
    Malformed,
    #[error("client header block is not valid HPACK: {0}")]
    Hpack(#[from] DecoderError),
    #[error("the connection already failed")]
    Failed,
    #[error("cannot re-encode a client header block: {0}")]
    Encode(#[from] std::io::Error),
}

enum Mode {
    /// Waiting for the connection preface.
    Preface,
    /// Before the first header block.
    Inspect(Box<Decoder<'static>>),
    /// Re-encoding every header block.
    Rewrite(Box<Decoder<'static>>, Box<Encoder<'static>>),
    /// Untouched from here on.
    Passthrough,
    /// Ended by an error; nothing more is forwarded.
    Failed,
}

pub(crate) struct Repair {
    mode: Mode,
    /// Bytes from the client not yet processed.
    input: BytesMut,
    /// Processed bytes for the server.
    output: BytesMut,
    /// Payload bytes of the current non-HEADERS frame still to forward.
    forward: usize,
    /// Bytes of complete frames of the pending header block already walked.
    scanned: usize,
}

impl Repair {
    pub(crate) fn new() -> Self {
        Self {
            mode: Mode::Preface,
            input: BytesMut::new(),
            output: BytesMut::new(),
            forward: 0,
            scanned: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if !matches!(self.mode, Mode::Failed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// Bytes held back, waiting for the rest of their unit.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.input.len()
    }

    pub(crate) fn output(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    /// Nothing held back and nothing more to inspect: the caller may read
    /// straight into the server's buffer.
    pub(crate) fn idle_passthrough(&self) -> bool {
        matches!(self.mode, Mode::Passthrough) && self.input.is_empty()
    }

    /// The client closed: a truncated unit goes to the server as it is.
    pub(crate) fn finish(&mut self) {
        if !matches!(self.mode, Mode::Failed) {
            let rest = self.input.split();
            self.output.unsplit(rest);
        }
    }

    /// Moves what can be processed from the input to the output; `Ok(false)`
    /// when more input is needed.
    pub(crate) fn step(&mut self) -> Result<bool, RepairError> {
        if self.forward > 0 {
            if self.input.is_empty() {
                return Ok(false);
            }
            let n = self.forward.min(self.input.len());
            let bytes = self.input.split_to(n);
            self.output.unsplit(bytes);
            self.forward -= n;
            return Ok(true);
        }
        match &self.mode {
            Mode::Failed => Err(RepairError::Failed),
            Mode::Passthrough => {
                if self.input.is_empty() {
                    return Ok(false);
                }
                let all = self.input.split();
                self.output.unsplit(all);
                Ok(true)
            }
            Mode::Preface => {
                let n = self.input.len().min(PREFACE.len());
                if self.input[..n] != PREFACE[..n] {
                    // Not HTTP/2 with prior knowledge: let the server judge
                    // it now rather than wait for 24 bytes that may not come.
                    self.mode = Mode::Passthrough;
                    return Ok(true);
                }
                if n < PREFACE.len() {
                    return Ok(false);
                }
                let preface = self.input.split_to(PREFACE.len());
                self.output.unsplit(preface);
                self.mode = Mode::Inspect(Box::new(new_decoder()));
                Ok(true)
            }
            Mode::Inspect(_) | Mode::Rewrite(..) => {
                let result = self.frame();
                if result.is_err() {
                    self.mode = Mode::Failed;
                    self.input = BytesMut::new();
                }
                result
            }
        }
    }

    fn frame(&mut self) -> Result<bool, RepairError> {
        let Some(head) = FrameHeader::parse(&self.input) else {
            return Ok(false);
        };
        if head.kind != HEADERS {
            let header = self.input.split_to(FRAME_HEADER);
            self.output.unsplit(header);
            self.forward = head.len;
            return Ok(true);
        }
        let consumed = match scan_block(&self.input, &mut self.scanned) {
            Scan::Incomplete => return Ok(false),
            Scan::Complete(consumed) => consumed,
            Scan::TooLarge => return self.give_up(RepairError::TooLarge),
            Scan::Interrupted => return self.give_up(RepairError::Malformed),
        };
        self.scanned = 0;
        let Some(block) = HeaderBlock::parse(&self.input[..consumed]) else {
            return self.give_up(RepairError::Malformed);
        };
        let raw = self.input.split_to(consumed);
        let (decoder, mut encoder, headers) =
            match std::mem::replace(&mut self.mode, Mode::Passthrough) {
                Mode::Inspect(mut decoder) => match decode_limited(&mut decoder, &block.fragment) {
                    Ok(Some(headers)) if needs_repair(&headers) => {
                        (decoder, Box::new(Encoder::new()), headers)
                    }
                    // Well formed (every client but etcdctl 3.4), too large
                    // or undecodable: the server sees the connection as
                    // sent and judges it by its own rules.
                    _ => {
                        self.output.unsplit(raw);
                        return Ok(true);
                    }
                },
                Mode::Rewrite(mut decoder, encoder) => {
                    let headers = decode_limited(&mut decoder, &block.fragment)?
                        .ok_or(RepairError::TooLarge)?;
                    (decoder, encoder, headers)
                }
                other => {
                    self.mode = other;
                    return Ok(true);
                }
            };
        write_block(
            &mut encoder,
            &repair_headers(headers),
            block.stream_id,
            block.flags,
            &mut self.output,
        )?;
        self.mode = Mode::Rewrite(decoder, encoder);
        Ok(true)
    }

    /// A header block the shim will not buffer or cannot read. Before any
    /// rewrite the connection continues untouched (nothing is lost but the
    /// repair, and the server applies its own limits); once rewriting, the
    /// connection fails (see [`RepairError`]).
    fn give_up(&mut self, error: RepairError) -> Result<bool, RepairError> {
        self.scanned = 0;
        match self.mode {
            Mode::Rewrite(..) => Err(error),
            _ => {
                self.mode = Mode::Passthrough;
                Ok(true)
            }
        }
    }
}
