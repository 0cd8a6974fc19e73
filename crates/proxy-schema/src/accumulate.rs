//! Rebuilding a message from its stream events, by the rules of the official SDKs' accumulators.

use serde_json::Value;

use crate::{ContentBlock, Delta, Message, StreamEvent};

/// Builds the final [`Message`] from stream events the way the Anthropic SDKs do: text and thinking
/// deltas append, `input_json_delta` fragments are joined and parsed at the block's stop,
/// `signature_delta` replaces, citations are pushed, and `message_delta` sets the stop reason and
/// overwrites the usage fields it carries.
#[derive(Debug, Default)]
pub struct Accumulator {
    message: Option<Message>,
    partial_json: Vec<String>,
    error: Option<crate::ErrorBody>,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event. Errors describe events out of order (a delta before its block, ...).
    pub fn push(&mut self, event: &StreamEvent) -> Result<(), String> {
        match event {
            StreamEvent::MessageStart { message } => {
                self.message = Some(message.clone());
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let m = self
                    .message
                    .as_mut()
                    .ok_or("content_block_start before message_start")?;
                if *index != m.content.len() {
                    return Err(format!(
                        "content_block_start index {index}, expected {}",
                        m.content.len()
                    ));
                }
                m.content.push(content_block.clone());
                self.partial_json.push(String::new());
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let m = self.message.as_mut().ok_or("delta before message_start")?;
                let block = m
                    .content
                    .get_mut(*index)
                    .ok_or_else(|| format!("delta for unknown block {index}"))?;
                match (block, delta) {
                    (ContentBlock::Text(t), Delta::TextDelta { text }) => t.text.push_str(text),
                    (ContentBlock::Text(t), Delta::CitationsDelta { citation }) => t
                        .citations
                        .get_or_insert_with(Vec::new)
                        .push(citation.clone()),
                    (ContentBlock::Thinking(t), Delta::ThinkingDelta { thinking }) => {
                        t.thinking.push_str(thinking)
                    }
                    (ContentBlock::Thinking(t), Delta::SignatureDelta { signature }) => {
                        t.signature = signature.clone()
                    }
                    (
                        ContentBlock::ToolUse(_) | ContentBlock::Other(_),
                        Delta::InputJsonDelta { partial_json },
                    ) => self
                        .partial_json
                        .get_mut(*index)
                        .ok_or_else(|| format!("delta for unknown block {index}"))?
                        .push_str(partial_json),
                    (b, d) => return Err(format!("delta {d:?} does not fit block {}", b.kind())),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                let m = self
                    .message
                    .as_mut()
                    .ok_or("content_block_stop before message_start")?;
                let json = std::mem::take(
                    self.partial_json
                        .get_mut(*index)
                        .ok_or_else(|| format!("content_block_stop for unknown block {index}"))?,
                );
                if json.is_empty() {
                    return Ok(());
                }
                let input = || {
                    serde_json::from_str::<Value>(&json)
                        .map_err(|e| format!("tool input is not JSON: {e}"))
                };
                match m.content.get_mut(*index) {
                    Some(ContentBlock::ToolUse(t)) => t.input = input()?,
                    // Server tool blocks (`server_tool_use`, ...) stream their input the same way.
                    Some(ContentBlock::Other(Value::Object(o))) => {
                        o.insert("input".into(), input()?);
                    }
                    _ => {}
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                let m = self
                    .message
                    .as_mut()
                    .ok_or("message_delta before message_start")?;
                m.stop_reason = delta.stop_reason.clone();
                m.stop_sequence = delta.stop_sequence.clone();
                m.usage.output_tokens = usage.output_tokens;
                if let Some(v) = usage.input_tokens {
                    m.usage.input_tokens = v;
                }
                if let Some(v) = usage.cache_creation_input_tokens {
                    m.usage.cache_creation_input_tokens = Some(v);
                }
                if let Some(v) = usage.cache_read_input_tokens {
                    m.usage.cache_read_input_tokens = Some(v);
                }
            }
            StreamEvent::MessageStop | StreamEvent::Ping => {}
            StreamEvent::Error { error } => self.error = Some(error.clone()),
        }
        Ok(())
    }

    /// The error event received, if any.
    pub fn error(&self) -> Option<&crate::ErrorBody> {
        self.error.as_ref()
    }

    /// The message built so far.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// The final message.
    pub fn into_message(self) -> Option<Message> {
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> StreamEvent {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn events_for_unknown_blocks_are_errors_not_panics() {
        let mut acc = Accumulator::new();
        acc.push(&ev(
            json!({"type": "message_start", "message": {"id": "m", "type": "message",
            "role": "assistant", "model": "x", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        ))
        .unwrap();
        assert!(
            acc.push(&ev(json!({"type": "content_block_stop", "index": 3})))
                .is_err()
        );
        assert!(
            acc.push(&ev(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{"}})))
                .is_err()
        );
    }

    #[test]
    fn server_tool_inputs_are_joined_like_tool_inputs() {
        let mut acc = Accumulator::new();
        for e in [
            json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                "model": "x", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{\"query\": "}}),
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "\"rust\"}"}}),
            json!({"type": "content_block_stop", "index": 0}),
        ] {
            acc.push(&ev(e)).unwrap();
        }
        let m = acc.into_message().unwrap();
        assert_eq!(
            serde_json::to_value(&m.content[0]).unwrap()["input"],
            json!({"query": "rust"})
        );
    }
}
