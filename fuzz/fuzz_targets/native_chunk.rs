//! The native route's stream step: the JSON a `chunk` carries (base64 inside the event frame's
//! `{"bytes": ...}` payload) becomes the SSE event the client gets.
//!
//! The input is the chunk's decoded bytes. Beyond "no panic":
//! - framed, base64-encoded and decoded again by the stream's own steps, the bytes come back
//!   unchanged (frame → `chunk_bytes` round trip);
//! - an event made from them is named by the JSON's `type`, carries the client's model name in a
//!   `message_start`, never Bedrock's invocation metrics, and its SSE text decodes (with the SSE
//!   decoder of the Messages route) to exactly that one event.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use proxy_bedrock::ReplyEvent;
use proxy_bedrock::eventstream::FrameDecoder;
use proxy_bedrock::sse::SseDecoder;
use proxy_schema::StreamEvent;
use serde_json::Value;

const MODEL: &str = "claude-sonnet-4-5";

fuzz_target!(|data: &[u8]| {
    // The frame Bedrock would send, through the decoder and the chunk reader.
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let payload = serde_json::to_vec(&serde_json::json!({ "bytes": b64, "p": "abcd" })).unwrap();
    let framed = bedrock_sim::eventstream::event_frame("chunk", &payload);
    let mut d = FrameDecoder::new();
    d.push(&framed);
    let frame = d
        .next_frame()
        .expect("a valid frame")
        .expect("a whole frame");
    let bytes = proxy_bedrock::fuzzing::chunk_bytes(&frame)
        .expect("a valid chunk")
        .expect("a chunk with bytes");
    assert_eq!(bytes, data, "the chunk's bytes changed on the way");

    let event = match ReplyEvent::from_native_chunk(&bytes, MODEL) {
        Ok(event) => event,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let json: Value = serde_json::from_str(&event.data).expect("the relayed data is JSON");
    if let Some(t) = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
    {
        assert_eq!(event.name, t, "the SSE name is not the chunk's type");
    }
    assert!(
        json.get("amazon-bedrock-invocationMetrics").is_none(),
        "Bedrock's metrics reached the client"
    );
    if let Some(StreamEvent::MessageStart { message }) = &event.event {
        assert_eq!(
            message.model, MODEL,
            "Bedrock's model id reached the client"
        );
    }
    let mut sse = SseDecoder::default();
    sse.push(&event.to_sse());
    let decoded = sse.next_event().expect("decodable").expect("one event");
    assert_eq!(
        (decoded.event.as_str(), decoded.data.as_str()),
        (&*event.name, event.data.as_str())
    );
    assert_eq!(sse.next_event(), Ok(None));
});
