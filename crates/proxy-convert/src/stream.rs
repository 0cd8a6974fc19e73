//! ConverseStream events -> Anthropic SSE events: a state machine fed one event at a time.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseStreamOutput, ReasoningContentBlockDelta,
};
use proxy_schema::{
    ContentBlock, Delta, DeltaUsage, ErrorBody, ErrorType, Message, MessageDeltaBody,
    RedactedThinkingBlock, StreamEvent, TextBlock, ThinkingBlock, ToolUseBlock, Usage,
};
use serde_json::{Map, json};

use crate::response::{citation_json, stop_reason, stop_sequence, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Redacted,
    ToolUse,
}

/// Turns a ConverseStream into the Anthropic event sequence: `message_start` first; a
/// `content_block_start` for blocks Converse starts implicitly (text, reasoning); deltas; stops; and
/// `message_delta` (stop reason, final usage) held until Converse's `metadata` event, then
/// `message_stop`. Indices are our own, dense from 0, whatever Converse's indices are.
#[derive(Debug)]
pub struct StreamConverter {
    id: String,
    model: String,
    started: bool,
    /// Converse index -> (our index, kind, open).
    blocks: HashMap<i32, (usize, Kind, bool)>,
    next_index: usize,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    usage: Usage,
    finished: bool,
}

impl StreamConverter {
    /// A converter for one stream; `id` is the message id to give it, `model` the client's name.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        StreamConverter {
            id: id.into(),
            model: model.into(),
            started: false,
            blocks: HashMap::new(),
            next_index: 0,
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::default(),
            finished: false,
        }
    }

    /// The usage known so far (final after `metadata`).
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Whether the stream was completed (`message_stop` emitted).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::MessageStart {
                message: Message::start(
                    self.id.clone(),
                    self.model.clone(),
                    Usage {
                        input_tokens: 0,
                        output_tokens: 0,
                        ..Usage::default()
                    },
                ),
            });
        }
    }

    /// Our index for a Converse block, opening it (`content_block_start`) if needed.
    fn open(
        &mut self,
        converse_index: i32,
        kind: Kind,
        start: impl FnOnce() -> ContentBlock,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        if let Some((index, k, open)) = self.blocks.get(&converse_index).copied() {
            if open && k == kind {
                return index;
            }
            // A different kind under the same Converse index: close the old block first.
            if open {
                out.push(StreamEvent::ContentBlockStop { index });
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        self.blocks.insert(converse_index, (index, kind, true));
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: start(),
        });
        index
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self
            .blocks
            .values_mut()
            .filter(|b| b.2)
            .map(|b| {
                b.2 = false;
                b.0
            })
            .collect();
        open.sort_unstable();
        out.extend(
            open.into_iter()
                .map(|index| StreamEvent::ContentBlockStop { index }),
        );
    }

    /// Feeds one Converse event; returns the Anthropic events it yields (possibly none).
    pub fn on_event(&mut self, event: &ConverseStreamOutput) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        match event {
            ConverseStreamOutput::MessageStart(_) => {}
            ConverseStreamOutput::ContentBlockStart(e) => {
                if let Some(ContentBlockStart::ToolUse(t)) = e.start() {
                    let block = ContentBlock::ToolUse(ToolUseBlock {
                        id: t.tool_use_id().to_owned(),
                        name: t.name().to_owned(),
                        input: json!({}),
                        cache_control: None,
                        extra: Map::new(),
                    });
                    self.open(e.content_block_index(), Kind::ToolUse, || block, &mut out);
                }
            }
            ConverseStreamOutput::ContentBlockDelta(e) => {
                let ci = e.content_block_index();
                match e.delta() {
                    Some(ContentBlockDelta::Text(t)) => {
                        let index = self.open(
                            ci,
                            Kind::Text,
                            || ContentBlock::Text(TextBlock::new("")),
                            &mut out,
                        );
                        out.push(StreamEvent::ContentBlockDelta {
                            index,
                            delta: Delta::TextDelta { text: t.clone() },
                        });
                    }
                    Some(ContentBlockDelta::ToolUse(t)) => {
                        // A tool block always starts with contentBlockStart; tolerate one that did not.
                        let index = self.open(
                            ci,
                            Kind::ToolUse,
                            || {
                                ContentBlock::ToolUse(ToolUseBlock {
                                    id: String::new(),
                                    name: String::new(),
                                    input: json!({}),
                                    cache_control: None,
                                    extra: Map::new(),
                                })
                            },
                            &mut out,
                        );
                        out.push(StreamEvent::ContentBlockDelta {
                            index,
                            delta: Delta::InputJsonDelta {
                                partial_json: t.input().to_owned(),
                            },
                        });
                    }
                    Some(ContentBlockDelta::ReasoningContent(r)) => match r {
                        ReasoningContentBlockDelta::Text(t) => {
                            let index = self.open(ci, Kind::Thinking, thinking_start, &mut out);
                            out.push(StreamEvent::ContentBlockDelta {
                                index,
                                delta: Delta::ThinkingDelta {
                                    thinking: t.clone(),
                                },
                            });
                        }
                        ReasoningContentBlockDelta::Signature(s) => {
                            let index = self.open(ci, Kind::Thinking, thinking_start, &mut out);
                            out.push(StreamEvent::ContentBlockDelta {
                                index,
                                delta: Delta::SignatureDelta {
                                    signature: s.clone(),
                                },
                            });
                        }
                        ReasoningContentBlockDelta::RedactedContent(b) => {
                            let data = String::from_utf8_lossy(b.as_ref()).into_owned();
                            // Redacted thinking arrives complete in its start event, with no deltas.
                            self.open(
                                ci,
                                Kind::Redacted,
                                || {
                                    ContentBlock::RedactedThinking(RedactedThinkingBlock {
                                        data,
                                        extra: Map::new(),
                                    })
                                },
                                &mut out,
                            );
                        }
                        other => tracing::debug!(?other, "unknown reasoning delta dropped"),
                    },
                    Some(ContentBlockDelta::Citation(c)) => {
                        let index = self.open(
                            ci,
                            Kind::Text,
                            || ContentBlock::Text(TextBlock::new("")),
                            &mut out,
                        );
                        let cited: String =
                            c.source_content().iter().filter_map(|s| s.text()).collect();
                        let citation = citation_json(c.title(), c.source(), cited, c.location());
                        out.push(StreamEvent::ContentBlockDelta {
                            index,
                            delta: Delta::CitationsDelta { citation },
                        });
                    }
                    other => {
                        tracing::debug!(?other, "Converse delta with no Anthropic form dropped")
                    }
                }
            }
            ConverseStreamOutput::ContentBlockStop(e) => {
                if let Some(b) = self.blocks.get_mut(&e.content_block_index())
                    && b.2
                {
                    b.2 = false;
                    out.push(StreamEvent::ContentBlockStop { index: b.0 });
                }
            }
            ConverseStreamOutput::MessageStop(e) => {
                self.close_all(&mut out);
                self.stop_reason = Some(stop_reason(e.stop_reason()));
                self.stop_sequence = stop_sequence(e.additional_model_response_fields());
            }
            ConverseStreamOutput::Metadata(e) => {
                self.usage = usage(e.usage());
                self.finish_into(&mut out);
            }
            other => tracing::debug!(?other, "unknown ConverseStream event dropped"),
        }
        out
    }

    fn finish_into(&mut self, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close_all(out);
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(
                    self.stop_reason
                        .clone()
                        .unwrap_or_else(|| "end_turn".into()),
                ),
                stop_sequence: self.stop_sequence.clone(),
            },
            usage: DeltaUsage {
                output_tokens: self.usage.output_tokens,
                input_tokens: Some(self.usage.input_tokens),
                cache_creation_input_tokens: self.usage.cache_creation_input_tokens,
                cache_read_input_tokens: self.usage.cache_read_input_tokens,
            },
        });
        out.push(StreamEvent::MessageStop);
        self.finished = true;
    }

    /// The stream ended: if Converse never sent `metadata`, flush with what is known.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// The upstream failed mid-stream: an SSE `error` event (after `message_start` if none was sent);
    /// the stream ends there.
    pub fn on_error(&mut self, kind: ErrorType, message: impl Into<String>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        out.push(StreamEvent::Error {
            error: ErrorBody {
                kind,
                message: message.into(),
            },
        });
        self.finished = true;
        out
    }
}

fn thinking_start() -> ContentBlock {
    ContentBlock::Thinking(ThinkingBlock {
        thinking: String::new(),
        signature: String::new(),
        extra: Map::new(),
    })
}
