//! Bytes from Bedrock through the event-stream decoder (`proxy_bedrock::eventstream::FrameDecoder`)
//! and, for each event frame, the step that reads an InvokeModelWithResponseStream `chunk`.
//!
//! Beyond "no panic":
//! - the decoder gives the same frames and the same error however the bytes are split into reads
//!   (the first two input bytes choose the split points);
//! - it never holds more than one frame's worth of bytes beyond what it was given;
//! - a frame it decoded, encoded again by the emulator's encoder (`bedrock_sim::eventstream`),
//!   decodes to the same frame (decode(encode(x)) = x).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_bedrock::eventstream::{Frame, FrameDecoder, FrameError};

/// Feeds `data` in pieces cut at `cuts` (sorted offsets), draining frames after each push.
fn decode(data: &[u8], cuts: &[usize]) -> (Vec<Frame>, Option<FrameError>) {
    let mut d = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(from, data.len());
        d.push(&data[from..cut]);
        from = cut;
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        assert!(d.buffered() <= data.len());
    }
    (frames, None)
}

fn reencode(f: &Frame) -> bytes::Bytes {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        (":message-type", &f.message_type),
        (":event-type", &f.event_type),
        (":exception-type", &f.exception_type),
        (":error-code", &f.error_code),
        (":error-message", &f.error_message),
    ] {
        if let Some(v) = value {
            headers.push((name, v));
        }
    }
    bedrock_sim::eventstream::encode_frame(&headers, &f.payload)
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data {
        [a, b, ..] => (usize::from(*a), usize::from(*b)),
        _ => (0, 0),
    };
    let whole = decode(data, &[]);
    let split = decode(data, &[a, a + b * 7]);
    let bytewise = decode(data, &(0..data.len()).collect::<Vec<_>>());
    assert_eq!(whole, split, "the split changed what was decoded");
    assert_eq!(
        whole, bytewise,
        "byte-by-byte reads changed what was decoded"
    );
    for frame in &whole.0 {
        // A header value the decoder kept came from a string of at most u16::MAX bytes, lossily
        // made UTF-8 (which may make it longer): encode only what fits.
        let fits = [
            &frame.message_type,
            &frame.event_type,
            &frame.exception_type,
            &frame.error_code,
            &frame.error_message,
        ]
        .iter()
        .all(|v| v.as_ref().is_none_or(|s| s.len() <= usize::from(u16::MAX)));
        if fits {
            let again = decode(&reencode(frame), &[]);
            assert_eq!(
                again,
                (vec![frame.clone()], None),
                "decode(encode(frame)) differs"
            );
        }
        // Each event frame, as the native stream reads it: a `chunk` becomes its decoded bytes or
        // an error with a message, never a panic.
        if let Err(e) = proxy_bedrock::fuzzing::chunk_bytes(frame) {
            assert!(!e.message.is_empty());
        }
    }
});
