//! A finished message as the stream of events that would have produced it: how a cached response
//! is served to a client that asked for a stream.

use proxy_schema::{
    ContentBlock, Delta, DeltaUsage, Message, MessageDeltaBody, StreamEvent, Usage,
};
use serde_json::Value;

/// The Anthropic stream events of `message`: `message_start` (empty content), one
/// start/delta/stop per block, `message_delta` with the stop reason and usage, `message_stop`.
/// The official SDKs' accumulators (and [`proxy_schema::Accumulator`]) rebuild `message` from them.
pub fn message_events(message: &Message) -> Vec<StreamEvent> {
    let mut start = message.clone();
    start.content = Vec::new();
    start.stop_reason = None;
    start.stop_sequence = None;
    start.usage = Usage {
        output_tokens: 0,
        ..message.usage.clone()
    };
    let mut events = vec![StreamEvent::MessageStart { message: start }];
    for (index, block) in message.content.iter().enumerate() {
        let (first, deltas) = block_events(block);
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: first,
        });
        events.extend(
            deltas
                .into_iter()
                .map(|delta| StreamEvent::ContentBlockDelta { index, delta }),
        );
        events.push(StreamEvent::ContentBlockStop { index });
    }
    events.push(StreamEvent::MessageDelta {
        delta: MessageDeltaBody {
            stop_reason: message.stop_reason.clone(),
            stop_sequence: message.stop_sequence.clone(),
        },
        usage: DeltaUsage {
            output_tokens: message.usage.output_tokens,
            input_tokens: Some(message.usage.input_tokens),
            cache_creation_input_tokens: message.usage.cache_creation_input_tokens,
            cache_read_input_tokens: message.usage.cache_read_input_tokens,
        },
    });
    events.push(StreamEvent::MessageStop);
    events
}

/// A block's `content_block_start` shape and the deltas that complete it.
fn block_events(block: &ContentBlock) -> (ContentBlock, Vec<Delta>) {
    match block {
        ContentBlock::Text(t) => {
            let mut first = t.clone();
            first.text = String::new();
            first.citations = t.citations.as_ref().map(|_| Vec::new());
            let mut deltas = Vec::new();
            if !t.text.is_empty() {
                deltas.push(Delta::TextDelta {
                    text: t.text.clone(),
                });
            }
            for c in t.citations.iter().flatten() {
                deltas.push(Delta::CitationsDelta {
                    citation: c.clone(),
                });
            }
            (ContentBlock::Text(first), deltas)
        }
        ContentBlock::Thinking(t) => {
            let mut first = t.clone();
            first.thinking = String::new();
            first.signature = String::new();
            let mut deltas = Vec::new();
            if !t.thinking.is_empty() {
                deltas.push(Delta::ThinkingDelta {
                    thinking: t.thinking.clone(),
                });
            }
            deltas.push(Delta::SignatureDelta {
                signature: t.signature.clone(),
            });
            (ContentBlock::Thinking(first), deltas)
        }
        ContentBlock::ToolUse(t) => {
            let mut first = t.clone();
            first.input = Value::Object(Default::default());
            let deltas = match &t.input {
                Value::Object(o) if o.is_empty() => Vec::new(),
                input => vec![Delta::InputJsonDelta {
                    partial_json: input.to_string(),
                }],
            };
            (ContentBlock::ToolUse(first), deltas)
        }
        // Redacted thinking, server tool blocks and the rest arrive whole in their start event.
        other => (other.clone(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_rebuild_the_message() {
        let message: Message = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "ZW5j"},
                {"type": "text", "text": "Hello", "citations": [{"type": "char_location", "cited_text": "x"}]},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris", "n": [1, 2]}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0},
            "container": null
        }))
        .unwrap();
        let events = message_events(&message);
        assert!(matches!(events[0], StreamEvent::MessageStart { .. }));
        assert!(matches!(events.last(), Some(StreamEvent::MessageStop)));
        let mut acc = proxy_schema::Accumulator::new();
        for e in &events {
            acc.push(e).unwrap();
            // Every event survives its own wire form.
            let sse = e.to_sse();
            let data = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            assert_eq!(&serde_json::from_str::<StreamEvent>(data).unwrap(), e);
        }
        assert_eq!(acc.into_message().unwrap(), message);
    }
}
