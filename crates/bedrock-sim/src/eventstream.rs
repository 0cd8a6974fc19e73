//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`): an encoder for the
//! frames the emulator sends and a decoder that tests and clients can use to read them back.
//!
//! Frame: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, headers, payload,
//! CRC32 of everything before it. Only string headers (type 7) are written, as Bedrock does.

use bytes::{BufMut, Bytes, BytesMut};

/// Encodes one frame with the given string headers and payload.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut buf = BytesMut::with_capacity(total);
    buf.put_u32(total as u32);
    buf.put_u32(headers_len as u32);
    let prelude_crc = crc32fast::hash(&buf[..8]);
    buf.put_u32(prelude_crc);
    for (name, value) in headers {
        buf.put_u8(name.len() as u8);
        buf.put_slice(name.as_bytes());
        buf.put_u8(7);
        buf.put_u16(value.len() as u16);
        buf.put_slice(value.as_bytes());
    }
    buf.put_slice(payload);
    let message_crc = crc32fast::hash(&buf);
    buf.put_u32(message_crc);
    buf.freeze()
}

/// An `event` frame: `:event-type`, `:content-type: application/json`, `:message-type: event`.
pub fn event_frame(event_type: &str, payload: &[u8]) -> Bytes {
    encode_frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// An `exception` frame, e.g. `throttlingException` with `{"message": ...}`.
pub fn exception_frame(exception_type: &str, payload: &[u8]) -> Bytes {
    encode_frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Headers in wire order, values rendered as strings (non-string types as their debug form).
    pub headers: Vec<(String, String)>,
    /// The raw payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a byte sequence is not a valid frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The prelude CRC does not match.
    #[error("prelude CRC mismatch")]
    PreludeCrc,
    /// The message CRC does not match.
    #[error("message CRC mismatch")]
    MessageCrc,
    /// Lengths or headers are inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Reads frames from a growing buffer: feed bytes as they arrive, take complete frames out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.buf.len() < 12 {
            return Ok(None);
        }
        let total = u32::from_be_bytes(self.buf[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(self.buf[4..8].try_into().unwrap()) as usize;
        let prelude_crc = u32::from_be_bytes(self.buf[8..12].try_into().unwrap());
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(DecodeError::PreludeCrc);
        }
        if total < 16 + headers_len {
            return Err(DecodeError::Malformed("total length shorter than headers"));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total);
        let message_crc = u32::from_be_bytes(frame[total - 4..].try_into().unwrap());
        if crc32fast::hash(&frame[..total - 4]) != message_crc {
            return Err(DecodeError::MessageCrc);
        }
        let headers = decode_headers(&frame[12..12 + headers_len])?;
        Ok(Some(Frame {
            headers,
            payload: frame[12 + headers_len..total - 4].to_vec(),
        }))
    }
}

fn decode_headers(mut raw: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    fn take<'a>(raw: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
        if raw.len() < n {
            return Err(DecodeError::Malformed("truncated header"));
        }
        let (head, rest) = raw.split_at(n);
        *raw = rest;
        Ok(head)
    }
    let mut headers = Vec::new();
    while !raw.is_empty() {
        let name_len = take(&mut raw, 1)?[0] as usize;
        let name = String::from_utf8_lossy(take(&mut raw, name_len)?).into_owned();
        let kind = take(&mut raw, 1)?[0];
        let value = match kind {
            0 => "true".to_owned(),
            1 => "false".to_owned(),
            2 => format!("{}", take(&mut raw, 1)?[0] as i8),
            3 => format!(
                "{}",
                i16::from_be_bytes(take(&mut raw, 2)?.try_into().unwrap())
            ),
            4 => format!(
                "{}",
                i32::from_be_bytes(take(&mut raw, 4)?.try_into().unwrap())
            ),
            5 | 8 => format!(
                "{}",
                i64::from_be_bytes(take(&mut raw, 8)?.try_into().unwrap())
            ),
            6 | 7 => {
                let len = u16::from_be_bytes(take(&mut raw, 2)?.try_into().unwrap()) as usize;
                String::from_utf8_lossy(take(&mut raw, len)?).into_owned()
            }
            9 => format!("{:02x?}", take(&mut raw, 16)?),
            _ => return Err(DecodeError::Malformed("unknown header type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Test vectors produced and decoded with botocore's event-stream parser (docs/WIRE-NOTES.md).
    const VECTOR_DELTA: &str = "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
    const VECTOR_CHUNK: &str = "000000d70000004bbff9e4380b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265794a306558426c496a6f695932397564475675644639696247396a6131396b5a57783059534973496d6c755a475634496a6f774c434a6b5a5778305953493665794a306558426c496a6f69644756346446396b5a57783059534973496e526c654851694f694a4961534a3966513d3d227d4b8e9495";

    #[test]
    fn encodes_the_reference_vectors_byte_for_byte() {
        let delta = event_frame(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        );
        assert_eq!(hex(&delta), VECTOR_DELTA);
        let chunk = event_frame(
            "chunk",
            br#"{"bytes":"eyJ0eXBlIjoiY29udGVudF9ibG9ja19kZWx0YSIsImluZGV4IjowLCJkZWx0YSI6eyJ0eXBlIjoidGV4dF9kZWx0YSIsInRleHQiOiJIaSJ9fQ=="}"#,
        );
        assert_eq!(hex(&chunk), VECTOR_CHUNK);
    }

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let a = event_frame("messageStart", br#"{"role":"assistant"}"#);
        let b = exception_frame("throttlingException", br#"{"message":"slow down"}"#);
        let all = [a.as_ref(), b.as_ref()].concat();
        for split in 0..all.len() {
            let mut dec = Decoder::default();
            let mut frames = Vec::new();
            dec.push(&all[..split]);
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
            dec.push(&all[split..]);
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
            assert_eq!(frames.len(), 2, "split at {split}");
            assert_eq!(frames[0].header(":event-type"), Some("messageStart"));
            assert_eq!(frames[1].header(":message-type"), Some("exception"));
            assert_eq!(frames[1].payload, br#"{"message":"slow down"}"#);
        }
    }

    #[test]
    fn rejects_a_corrupted_frame() {
        let mut bytes = event_frame("messageStart", b"{}").to_vec();
        let last = bytes.len() - 6;
        bytes[last] ^= 0xff;
        let mut dec = Decoder::default();
        dec.push(&bytes);
        assert_eq!(dec.next_frame(), Err(DecodeError::MessageCrc));
        let mut bytes = event_frame("messageStart", b"{}").to_vec();
        bytes[2] ^= 0x01;
        let mut dec = Decoder::default();
        dec.push(&bytes);
        assert_eq!(dec.next_frame(), Err(DecodeError::PreludeCrc));
    }
}
