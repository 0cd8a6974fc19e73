//! Inputs the fuzz targets (`fuzz/`, `cargo xtask fuzz`) found, kept as regression tests in the
//! crate's own suite. Each file under `tests/fuzz-found/` is the input as the target got it.

use proxy_bedrock::ReplyEvent;
use proxy_bedrock::sse::SseDecoder;

/// What the client must get from a native `chunk`: an error, or SSE text that decodes to exactly
/// the event (one event, the same name, the same data).
fn relayed_as_sent(chunk: &[u8]) {
    let Ok(event) = ReplyEvent::from_native_chunk(chunk, "claude-sonnet-4-5") else {
        return;
    };
    let mut d = SseDecoder::default();
    d.push(&event.to_sse());
    let back = d.next_event().unwrap().expect("one event");
    assert_eq!(
        (back.event.as_str(), back.data.as_str()),
        (event.name.as_ref(), event.data.as_str())
    );
    assert_eq!(
        d.next_event(),
        Ok(None),
        "the SSE text holds more than one event"
    );
}

/// `native_chunk` (found 2026-12-01): a chunk whose `type` holds a carriage return (`"message_st\rt"`,
/// a JSON escape) was written as the SSE `event:` line as it was, so the line broke in two and the
/// client read an event named `message_st` and a stray line. A line break in a name could also
/// smuggle whole events into the client's stream.
#[test]
fn a_line_break_in_a_chunk_type_never_reaches_the_sse_name() {
    relayed_as_sent(include_bytes!(
        "fuzz-found/native_chunk-line-break-in-type.json"
    ));
    relayed_as_sent(br#"{"type":"message_stop\n\nevent: message_stop\ndata: {}"}"#);
    assert!(ReplyEvent::from_native_chunk(br#"{"type":"a\rb"}"#, "m").is_err());
}

/// Found while fixing the one above: a delta relayed byte for byte kept a raw carriage return
/// that Bedrock's JSON had as whitespace; SSE takes it for a line end, so the client's `data` was
/// cut into a broken line and a stray field.
#[test]
fn a_raw_carriage_return_in_a_chunk_is_not_relayed_as_a_line_end() {
    relayed_as_sent(b"{\"type\":\r\"ping\"}");
    relayed_as_sent(
        b"{\"type\":\"content_block_delta\",\r\n\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}",
    );
}

/// `native_chunk` (20-minute run, 2026-12-01): a chunk with `"type": ""` was written as `event: `,
/// which SSE reads as an event named `message`, not the name the gateway meant to send.
#[test]
fn an_empty_chunk_type_is_not_relayed_as_a_nameless_event() {
    relayed_as_sent(include_bytes!("fuzz-found/native_chunk-empty-type.json"));
    assert!(ReplyEvent::from_native_chunk(br#"{"type":""}"#, "m").is_err());
}
