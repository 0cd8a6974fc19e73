//! The Messages API route's stream: bytes from Bedrock through the SSE decoder
//! (`proxy_bedrock::sse::SseDecoder`) and each event through the step that relays it or turns it
//! into an error (`stream_item`).
//!
//! Beyond "no panic":
//! - the decoder gives the same events and the same error however the body is split into reads
//!   (the first two input bytes choose the split points), byte-by-byte reads included;
//! - nothing it returns is longer than its limit;
//! - an event relayed to the client, written as SSE by the gateway (`ReplyEvent::to_sse`), decodes
//!   to the same event (decode(encode(x)) = x);
//! - an `error` event becomes an error with a message and a 4xx/5xx type, never a relayed event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_bedrock::sse::{SseDecoder, SseError, SseEvent};

const LIMIT: usize = 4096;

fn decode(data: &[u8], cuts: &[usize]) -> (Vec<SseEvent>, Option<SseError>) {
    let mut d = SseDecoder::new(LIMIT);
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(from, data.len());
        d.push(&data[from..cut]);
        from = cut;
        loop {
            match d.next_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data {
        [a, b, ..] => (usize::from(*a), usize::from(*b)),
        _ => (0, 0),
    };
    let whole = decode(data, &[]);
    assert_eq!(
        whole,
        decode(data, &[a, a + b * 5]),
        "the split changed what was decoded"
    );
    assert_eq!(
        whole,
        decode(data, &(0..data.len()).collect::<Vec<_>>()),
        "byte-by-byte reads changed what was decoded"
    );
    for ev in whole.0 {
        assert!(ev.data.len() <= LIMIT * 3, "an event over the limit");
        match proxy_bedrock::fuzzing::stream_item(ev.clone()) {
            Ok(item) => {
                assert_ne!(item.name, "error", "an error event was relayed");
                let mut d = SseDecoder::new(usize::MAX);
                d.push(&item.to_sse());
                let back = d.next_event().expect("decodable").expect("one event");
                assert_eq!(back, ev, "decode(to_sse(event)) differs");
                assert_eq!(d.next_event(), Ok(None));
            }
            Err(e) => {
                assert!(!e.message.is_empty(), "an error without a message");
                assert!(e.kind.status() >= 400);
            }
        }
    }
});
