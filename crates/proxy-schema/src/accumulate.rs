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
                    (ContentBlock::ToolUse(_), Delta::InputJsonDelta { partial_json }) => {
                        self.partial_json[*index].push_str(partial_json)
                    }
                    (ContentBlock::Other(_), Delta::InputJsonDelta { partial_json }) => {
                        self.partial_json[*index].push_str(partial_json)
                    }
                    (b, d) => return Err(format!("delta {d:?} does not fit block {}", b.kind())),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                let m = self
                    .message
                    .as_mut()
                    .ok_or("content_block_stop before message_start")?;
                let json = std::mem::take(&mut self.partial_json[*index]);
                if let Some(ContentBlock::ToolUse(t)) = m.content.get_mut(*index)
                    && !json.is_empty()
                {
                    t.input = serde_json::from_str::<Value>(&json)
                        .map_err(|e| format!("tool input is not JSON: {e}"))?;
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
