//! Property tests: for generated conversations, Anthropic -> Converse -> Anthropic keeps text, tool
//! ids, tool inputs and signatures; and the stream state machine, fed any split of a ConverseStream,
//! yields events that accumulate to the same message as the non-streaming conversion.

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as Output;
use aws_sdk_bedrockruntime::types::{
    self as b, ContentBlockDelta, ContentBlockDeltaEvent, ContentBlockStart,
    ContentBlockStartEvent, ContentBlockStopEvent, ConverseStreamMetadataEvent,
    ConverseStreamOutput as Ev, MessageStartEvent, MessageStopEvent, ReasoningContentBlockDelta,
    StopReason, TokenUsage, ToolUseBlockDelta, ToolUseBlockStart,
};
use proptest::prelude::*;
use proxy_convert::{
    ConverseOptions, StreamConverter, content_block, converse_body, converse_body_bytes,
    from_converse, to_converse, to_document,
};
use proxy_schema::{Accumulator, ContentBlock, parse_messages_request};
use serde_json::{Value, json};

/// One assistant block, in a form both sides can be built from.
#[derive(Debug, Clone)]
enum Gen {
    Text(String),
    Thinking(String, String),
    Redacted(String),
    Tool(String, String, Value),
}

fn text() -> impl Strategy<Value = String> {
    // Non-blank text with unicode, quotes, newlines and JSON-looking content.
    "[a-zA-Z0-9 .,!?'\"{}\\[\\]:\n\u{e9}\u{4e16}\u{1f600}]{0,40}[a-zA-Z\u{e9}]".prop_map(|s| s)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
        text().prop_map(|s| json!(s)),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(|m| json!(m)),
        ]
    })
}

fn block() -> impl Strategy<Value = Gen> {
    prop_oneof![
        text().prop_map(Gen::Text),
        (text(), "[A-Za-z0-9+/]{8,40}={0,2}").prop_map(|(t, s)| Gen::Thinking(t, s)),
        "[A-Za-z0-9+/]{8,40}".prop_map(Gen::Redacted),
        (
            "toolu_[A-Za-z0-9]{4,20}",
            "[a-zA-Z_][a-zA-Z0-9_-]{0,20}",
            prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..4)
        )
            .prop_map(|(id, name, input)| Gen::Tool(id, name, json!(input))),
    ]
}

fn blocks() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(block(), 1..6).prop_map(|mut v| {
        // Tool ids are unique within a turn.
        let mut seen = std::collections::HashSet::new();
        v.retain(|b| !matches!(b, Gen::Tool(id, ..) if !seen.insert(id.clone())));
        v
    })
}

fn anthropic_block(g: &Gen) -> Value {
    match g {
        Gen::Text(t) => json!({"type": "text", "text": t}),
        Gen::Thinking(t, s) => json!({"type": "thinking", "thinking": t, "signature": s}),
        Gen::Redacted(d) => json!({"type": "redacted_thinking", "data": d}),
        Gen::Tool(id, name, input) => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

fn bedrock_block(g: &Gen) -> b::ContentBlock {
    match g {
        Gen::Text(t) => b::ContentBlock::Text(t.clone()),
        Gen::Thinking(t, s) => {
            b::ContentBlock::ReasoningContent(b::ReasoningContentBlock::ReasoningText(
                b::ReasoningTextBlock::builder()
                    .text(t)
                    .signature(s)
                    .build()
                    .unwrap(),
            ))
        }
        Gen::Redacted(d) => b::ContentBlock::ReasoningContent(
            b::ReasoningContentBlock::RedactedContent(d.as_bytes().into()),
        ),
        Gen::Tool(id, name, input) => b::ContentBlock::ToolUse(
            b::ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(to_document(input))
                .build()
                .unwrap(),
        ),
    }
}

/// Splits `s` into 1..=n pieces at char boundaries chosen by `cuts`.
fn split(s: &str, cuts: &[usize]) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([chars.len()]) {
        if p > last {
            out.push(chars[last..p].iter().collect());
            last = p;
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn delta(i: i32, d: ContentBlockDelta) -> Ev {
    Ev::ContentBlockDelta(
        ContentBlockDeltaEvent::builder()
            .content_block_index(i)
            .delta(d)
            .build()
            .unwrap(),
    )
}

/// The ConverseStream Bedrock would send for these blocks, text split at `cuts`, with Converse
/// indices starting at `base` (they need not be dense or start at 0).
fn stream_events(blocks: &[Gen], cuts: &[usize], base: i32, usage: &TokenUsage) -> Vec<Ev> {
    let mut ev = vec![Ev::MessageStart(
        MessageStartEvent::builder()
            .role(b::ConversationRole::Assistant)
            .build()
            .unwrap(),
    )];
    for (n, g) in blocks.iter().enumerate() {
        let i = base + 2 * n as i32;
        match g {
            Gen::Text(t) => ev.extend(
                split(t, cuts)
                    .into_iter()
                    .map(|p| delta(i, ContentBlockDelta::Text(p))),
            ),
            Gen::Thinking(t, s) => {
                ev.extend(split(t, cuts).into_iter().map(|p| {
                    delta(
                        i,
                        ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Text(p)),
                    )
                }));
                ev.push(delta(
                    i,
                    ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Signature(
                        s.clone(),
                    )),
                ));
            }
            Gen::Redacted(d) => ev.push(delta(
                i,
                ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::RedactedContent(
                    d.as_bytes().into(),
                )),
            )),
            Gen::Tool(id, name, input) => {
                ev.push(Ev::ContentBlockStart(
                    ContentBlockStartEvent::builder()
                        .content_block_index(i)
                        .start(ContentBlockStart::ToolUse(
                            ToolUseBlockStart::builder()
                                .tool_use_id(id)
                                .name(name)
                                .build()
                                .unwrap(),
                        ))
                        .build()
                        .unwrap(),
                ));
                for p in split(&input.to_string(), cuts) {
                    ev.push(delta(
                        i,
                        ContentBlockDelta::ToolUse(
                            ToolUseBlockDelta::builder().input(p).build().unwrap(),
                        ),
                    ));
                }
            }
        }
        ev.push(Ev::ContentBlockStop(
            ContentBlockStopEvent::builder()
                .content_block_index(i)
                .build()
                .unwrap(),
        ));
    }
    ev.push(Ev::MessageStop(
        MessageStopEvent::builder()
            .stop_reason(StopReason::ToolUse)
            .build()
            .unwrap(),
    ));
    ev.push(Ev::Metadata(
        ConverseStreamMetadataEvent::builder()
            .usage(usage.clone())
            .build(),
    ));
    ev
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn anthropic_to_converse_and_back_keeps_every_block(generated in blocks()) {
        let assistant: Vec<Value> = generated.iter().map(anthropic_block).collect();
        let results: Vec<Value> = generated.iter().filter_map(|g| match g {
            Gen::Tool(id, ..) => Some(json!({"type": "tool_result", "tool_use_id": id, "content": "ok"})),
            _ => None,
        }).collect();
        let mut messages = vec![json!({"role": "user", "content": "q"}), json!({"role": "assistant", "content": assistant})];
        if !results.is_empty() {
            messages.push(json!({"role": "user", "content": results}));
        }
        let body = json!({"model": "m", "max_tokens": 100, "messages": messages});
        let req = parse_messages_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let conv = to_converse(&req, &ConverseOptions::new("us.anthropic.claude-sonnet-4-5-20250929-v1:0")).unwrap();
        let back: Vec<ContentBlock> = conv.messages[1].content().iter().filter_map(content_block).collect();
        let original: Vec<ContentBlock> = req.messages[1].content.blocks().into_owned();
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&original).unwrap());
        prop_assert_eq!(conv.tool_config.is_some(), !results.is_empty());
        // The body the gateway sends is written without the tree where it can be: the same bytes.
        prop_assert_eq!(
            String::from_utf8(converse_body_bytes(&conv).unwrap()).unwrap(),
            serde_json::to_string(&converse_body(&conv).unwrap()).unwrap()
        );
    }

    #[test]
    fn any_split_of_a_stream_accumulates_to_the_whole_message(
        generated in blocks(),
        cuts in prop::collection::vec(0usize..64, 0..6),
        base in 0i32..3,
        input in 1i32..5000, output in 1i32..5000, read in 0i32..100, write in 0i32..100,
    ) {
        let usage = TokenUsage::builder().input_tokens(input).output_tokens(output).total_tokens(input + output + read + write)
            .cache_read_input_tokens(read).cache_write_input_tokens(write).build().unwrap();
        let whole = Output::builder()
            .output(b::ConverseOutput::Message(b::Message::builder().role(b::ConversationRole::Assistant)
                .set_content(Some(generated.iter().map(bedrock_block).collect())).build().unwrap()))
            .stop_reason(StopReason::ToolUse)
            .usage(usage.clone())
            .build()
            .unwrap();
        let expected = from_converse(&whole, "msg_1", "my-model");

        let mut conv = StreamConverter::new("msg_1", "my-model");
        let mut acc = Accumulator::new();
        for ev in stream_events(&generated, &cuts, base, &usage) {
            for out in conv.on_event(&ev) {
                acc.push(&out).map_err(TestCaseError::fail)?;
            }
        }
        for out in conv.finish() {
            acc.push(&out).map_err(TestCaseError::fail)?;
        }
        let streamed = acc.into_message().unwrap();
        prop_assert_eq!(serde_json::to_value(&streamed).unwrap(), serde_json::to_value(&expected).unwrap());
        prop_assert_eq!(conv.usage().output_tokens, output as u64);
    }

    #[test]
    fn a_replayed_message_accumulates_to_itself(
        generated in blocks(),
        stop in prop_oneof![Just("end_turn"), Just("tool_use"), Just("max_tokens"), Just("stop_sequence")],
        input in 0u64..5000, output in 0u64..5000, read in prop::option::of(0u64..100),
    ) {
        // What a cached response is served as to a streaming client: its events, on the wire and back.
        let message: proxy_schema::Message = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": generated.iter().map(anthropic_block).collect::<Vec<_>>(),
            "stop_reason": stop, "stop_sequence": if stop == "stop_sequence" { json!("END") } else { Value::Null },
            "usage": {"input_tokens": input, "output_tokens": output, "cache_read_input_tokens": read},
        })).unwrap();
        let mut acc = Accumulator::new();
        for e in proxy_convert::message_events(&message) {
            let sse = e.to_sse();
            let data = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            acc.push(&serde_json::from_str(data).unwrap()).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(serde_json::to_value(acc.into_message().unwrap()).unwrap(), serde_json::to_value(&message).unwrap());
    }
}
