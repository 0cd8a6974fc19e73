//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) of Bedrock's streaming
//! operations, decoded as bytes arrive.
//!
//! A frame: total length (u32 BE), headers length (u32 BE), CRC-32 of those 8 bytes, headers,
//! payload, CRC-32 of everything before it. Headers: name length (u8), name, value type (u8),
//! value. Both CRCs are checked before anything is trusted, and a frame is bounded
//! ([`MAX_FRAME`]): a length that lies cannot make the gateway buffer without end.
//!
//! Only the headers that say what a frame is are kept (`:message-type`, `:event-type`,
//! `:exception-type`, `:error-code`, `:error-message`); the payload is a slice of the received bytes,
//! never copied.

use bytes::{Buf, Bytes, BytesMut};

/// The largest frame accepted: 16 MiB, the cap of aws-c-event-stream (botocore accepts a 24 MiB
/// payload; a Bedrock `chunk` carries at most 1,000,000 decoded bytes).
pub const MAX_FRAME: usize = 16 << 20;

const PRELUDE: usize = 12;
/// Prelude and the trailing message CRC.
const OVERHEAD: usize = PRELUDE + 4;

/// One decoded frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: Option<String>,
    /// `:event-type` of an event (`chunk`, `messageStart`, ...).
    pub event_type: Option<String>,
    /// `:exception-type` of an exception (`throttlingException`, ...).
    pub exception_type: Option<String>,
    /// `:error-code` and `:error-message` of an error frame.
    pub error_code: Option<String>,
    /// See `error_code`.
    pub error_message: Option<String>,
    /// The payload (JSON for Bedrock's events and exceptions).
    pub payload: Bytes,
}

/// Why the bytes are not a valid event stream (the stream cannot go on after one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A CRC does not match.
    #[error("event stream frame with a bad {0} CRC")]
    Crc(&'static str),
    /// A length or header is impossible.
    #[error("malformed event stream frame: {0}")]
    Malformed(&'static str),
    /// A frame larger than [`MAX_FRAME`].
    #[error("event stream frame of {0} bytes, over the limit")]
    TooLarge(usize),
}

/// Decodes frames from bytes pushed as they arrive.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        FrameDecoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let be = |at: usize| {
            u32::from_be_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ])
        };
        let (total, headers_len, prelude_crc) = (be(0) as usize, be(4) as usize, be(8));
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(FrameError::Crc("prelude"));
        }
        if total > MAX_FRAME {
            return Err(FrameError::TooLarge(total));
        }
        if total < OVERHEAD || headers_len > total - OVERHEAD {
            return Err(FrameError::Malformed("lengths do not add up"));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total).freeze();
        let message_crc = u32::from_be_bytes([
            frame[total - 4],
            frame[total - 3],
            frame[total - 2],
            frame[total - 1],
        ]);
        if crc32fast::hash(&frame[..total - 4]) != message_crc {
            return Err(FrameError::Crc("message"));
        }
        frame.truncate(total - 4);
        frame.advance(PRELUDE);
        let payload = frame.split_off(headers_len);
        let mut out = Frame {
            payload,
            ..Frame::default()
        };
        read_headers(&frame, &mut out)?;
        Ok(Some(out))
    }
}

fn read_headers(mut raw: &[u8], frame: &mut Frame) -> Result<(), FrameError> {
    fn take<'a>(raw: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if raw.len() < n {
            return Err(FrameError::Malformed("a header runs past the headers"));
        }
        let (head, rest) = raw.split_at(n);
        *raw = rest;
        Ok(head)
    }
    while !raw.is_empty() {
        let name_len = usize::from(take(&mut raw, 1)?[0]);
        let name = take(&mut raw, name_len)?;
        let kind = take(&mut raw, 1)?[0];
        let value = match kind {
            0 | 1 => None,
            2 => take(&mut raw, 1).map(|_| None)?,
            3 => take(&mut raw, 2).map(|_| None)?,
            4 => take(&mut raw, 4).map(|_| None)?,
            5 | 8 => take(&mut raw, 8).map(|_| None)?,
            9 => take(&mut raw, 16).map(|_| None)?,
            6 | 7 => {
                let len = take(&mut raw, 2)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let bytes = take(&mut raw, len)?;
                (kind == 7).then_some(bytes)
            }
            _ => return Err(FrameError::Malformed("unknown header value type")),
        };
        let slot = match name {
            b":message-type" => &mut frame.message_type,
            b":event-type" => &mut frame.event_type,
            b":exception-type" => &mut frame.exception_type,
            b":error-code" => &mut frame.error_code,
            b":error-message" => &mut frame.error_message,
            // Not kept (`:content-type`, ...): not copied either.
            _ => continue,
        };
        *slot = value.map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Frames made and decoded by botocore's event-stream parser (docs/WIRE-NOTES.md).
    const VECTOR_CHUNK: &str = "000000d70000004bbff9e4380b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265794a306558426c496a6f695932397564475675644639696247396a6131396b5a57783059534973496d6c755a475634496a6f774c434a6b5a5778305953493665794a306558426c496a6f69644756346446396b5a57783059534973496e526c654851694f694a4961534a3966513d3d227d4b8e9495";

    #[test]
    fn decodes_the_reference_chunk_split_anywhere() {
        let bytes = unhex(VECTOR_CHUNK);
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            d.push(&bytes[..split]);
            assert_eq!(d.next_frame().unwrap(), None, "split at {split}");
            d.push(&bytes[split..]);
            let f = d.next_frame().unwrap().expect("a frame");
            assert_eq!(f.message_type.as_deref(), Some("event"));
            assert_eq!(f.event_type.as_deref(), Some("chunk"));
            assert!(f.payload.starts_with(br#"{"bytes":"eyJ0eXBl"#));
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn corrupt_and_oversized_frames_are_refused() {
        let good = unhex(VECTOR_CHUNK);
        let mut bad = good.clone();
        bad[100] ^= 1;
        let mut d = FrameDecoder::new();
        d.push(&bad);
        assert_eq!(d.next_frame(), Err(FrameError::Crc("message")));
        let mut d = FrameDecoder::new();
        let mut prelude = good[..12].to_vec();
        prelude[0] ^= 0x80;
        d.push(&prelude);
        assert_eq!(d.next_frame(), Err(FrameError::Crc("prelude")));
        // A prelude with a valid CRC that declares 1 GiB.
        let mut huge = Vec::new();
        huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&crc32fast::hash(&huge).to_be_bytes());
        let mut d = FrameDecoder::new();
        d.push(&huge);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(1 << 30)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 1u64;
        for _ in 0..2000 {
            let mut d = FrameDecoder::new();
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            d.push(&bytes);
            let _ = d.next_frame();
            // The same bytes as the headers of a frame whose lengths and CRCs are right, so that
            // the header reader sees them.
            let total = (bytes.len() + OVERHEAD) as u32;
            let mut frame = Vec::new();
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
            frame.extend_from_slice(&bytes);
            frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
            let mut d = FrameDecoder::new();
            d.push(&frame);
            match d.next_frame() {
                Ok(Some(f)) => assert!(f.payload.is_empty()),
                Ok(None) => panic!("a whole frame was not taken"),
                Err(e) => assert!(matches!(e, FrameError::Malformed(_)), "{e}"),
            }
        }
    }
}
