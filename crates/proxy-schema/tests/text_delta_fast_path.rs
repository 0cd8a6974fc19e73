//! `StreamEvent::from_json` reads a text delta without the deserializer; it must read every input as
//! `serde_json::from_slice` does (the same event, or an error where serde errs).

use proptest::prelude::*;
use proxy_schema::{Delta, StreamEvent};

fn same_as_serde(bytes: &[u8]) {
    let fast = StreamEvent::from_json(bytes);
    let serde = serde_json::from_slice::<StreamEvent>(bytes);
    match (fast, serde) {
        (Ok(a), Ok(b)) => assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap(),
            "{}",
            String::from_utf8_lossy(bytes)
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "{}: fast {a:?}, serde {b:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn delta(index: &str, text: &str) -> String {
    format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}"#
    )
}

#[test]
fn the_commonest_shape_is_read_as_serde_reads_it() {
    let e = StreamEvent::from_json(delta("3", "Hello, wörld 🦀").as_bytes()).unwrap();
    assert!(matches!(
        e,
        StreamEvent::ContentBlockDelta { index: 3, delta: Delta::TextDelta { ref text } } if text == "Hello, wörld 🦀"
    ));
    for (index, text) in [
        ("0", ""),
        ("0", "plain"),
        ("12", "a \\\"quote\\\""),
        ("1", "line\\nbreak"),
        ("1", "\\u00e9"),
        ("01", "leading zero"),
        ("-1", "negative"),
        ("1.0", "float"),
        ("1e2", "exponent"),
        ("999999999", "nine digits"),
        ("4294967296", "over u32"),
        ("99999999999999999999999", "over u64"),
        ("", "no index"),
        ("1", "raw\ttab"),
        ("1", "raw\u{1}control"),
        ("1", "a\",\"x\":\"b"),
    ] {
        same_as_serde(delta(index, text).as_bytes());
    }
    // Bytes that are not UTF-8 inside the text.
    let mut bytes = delta("1", "ab").into_bytes();
    let at = bytes.len() - 5;
    bytes[at] = 0xff;
    same_as_serde(&bytes);
    // Other events and other shapes go to serde.
    for other in [
        r#"{"type":"ping"}"#,
        r#"{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} "#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","more":1}}"#,
    ] {
        same_as_serde(other.as_bytes());
    }
}

proptest! {
    #[test]
    fn any_text_and_index_read_as_serde_reads_them(
        index in prop_oneof!["[0-9]{1,12}", "-?[0-9]{1,3}(\\.[0-9])?"],
        text in "(\\PC|[\"\\\\\\x00-\\x1f]){0,40}",
    ) {
        same_as_serde(delta(&index, &text).as_bytes());
        // The same text as JSON would write it.
        let escaped = serde_json::to_string(&text).unwrap();
        same_as_serde(delta(&index, &escaped[1..escaped.len() - 1]).as_bytes());
    }

    #[test]
    fn a_cut_or_changed_byte_reads_as_serde_reads_it(
        text in "\\PC{0,20}",
        cut in 0usize..120,
        at in 0usize..120,
        byte in any::<u8>(),
    ) {
        let quoted = serde_json::to_string(&text).unwrap();
        let whole = delta("7", &quoted[1..quoted.len() - 1]).into_bytes();
        same_as_serde(&whole[..cut.min(whole.len())]);
        let mut changed = whole.clone();
        let i = at % changed.len();
        changed[i] = byte;
        same_as_serde(&changed);
    }
}
