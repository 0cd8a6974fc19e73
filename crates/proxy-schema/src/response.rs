//! Responses: the message object, usage, stream events, errors, and the Models API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::content::ContentBlock;

/// Per-TTL breakdown of cache writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Tokens written with the 5-minute TTL.
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with the 1-hour TTL.
    pub ephemeral_1h_input_tokens: u64,
}

/// Token usage. `input_tokens` counts uncached input only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes by TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// Other fields (`server_tool_use`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message from the model (the non-streaming response, and `message_start.message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `msg_...`
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The model name the client asked for.
    pub model: String,
    /// The content.
    pub content: Vec<ContentBlock>,
    /// Why it stopped (`end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`,
    /// `model_context_window_exceeded`); null only in `message_start`.
    pub stop_reason: Option<String>,
    /// The matched stop sequence.
    pub stop_sequence: Option<String>,
    /// Usage.
    pub usage: Usage,
    /// Other fields (`container`, `stop_details`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// An empty assistant message, as `message_start` carries it.
    pub fn start(id: impl Into<String>, model: impl Into<String>, usage: Usage) -> Self {
        Message {
            id: id.into(),
            kind: "message".into(),
            role: "assistant".into(),
            model: model.into(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage,
            extra: Map::new(),
        }
    }
}

/// A delta inside `content_block_delta`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// Append to a text block.
    TextDelta {
        /// Text.
        text: String,
    },
    /// Append to a tool input's JSON text.
    InputJsonDelta {
        /// A fragment of JSON.
        partial_json: String,
    },
    /// Append to a thinking block.
    ThinkingDelta {
        /// Thinking text.
        thinking: String,
    },
    /// Set a thinking block's signature.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// Add a citation to a text block.
    CitationsDelta {
        /// The citation object.
        citation: Value,
    },
}

/// `message_delta.delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// The matched stop sequence.
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage`: cumulative; fields present overwrite those of `message_start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaUsage {
    /// Output tokens so far.
    pub output_tokens: u64,
    /// Uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Cache writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// The `error` object of the envelope and of the SSE `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error type.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// A message for people.
    pub message: String,
}

/// A server-sent event of a streamed message. The SSE event name is [`StreamEvent::name`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First: the message with empty content.
    MessageStart {
        /// The message so far.
        message: Message,
    },
    /// A block begins at `index`.
    ContentBlockStart {
        /// Position in the final content.
        index: usize,
        /// The block's initial shape.
        content_block: ContentBlock,
    },
    /// A piece of the block at `index`.
    ContentBlockDelta {
        /// Position in the final content.
        index: usize,
        /// The piece.
        delta: Delta,
    },
    /// The block at `index` is complete.
    ContentBlockStop {
        /// Position in the final content.
        index: usize,
    },
    /// Stop reason and cumulative usage.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDeltaBody,
        /// Cumulative usage.
        usage: DeltaUsage,
    },
    /// Last.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// A failure after the stream started.
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
}

/// [`StreamEvent::from_json`]'s fast path: `Some` only for the exact text-delta shape, whose reading
/// then equals serde's (the index as JSON writes a number, the text valid UTF-8 with no control
/// character, which JSON would have escaped).
fn plain_text_delta(bytes: &[u8]) -> Option<StreamEvent> {
    let rest = bytes.strip_prefix(br#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // No leading zero (not JSON), and few enough digits that the index cannot overflow.
    if digits == 0 || digits > 9 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index = rest[..digits]
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let rest = rest[digits..].strip_prefix(br#","delta":{"type":"text_delta","text":""#)?;
    let text = rest.strip_suffix(br#""}}"#)?;
    if text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?.to_owned();
    Some(StreamEvent::ContentBlockDelta {
        index,
        delta: Delta::TextDelta { text },
    })
}

// Read `type` first (crate::tagged): serde's derive for internally tagged enums buffers the
// whole event before it reads it, on every event of every stream.
impl<'de> Deserialize<'de> for StreamEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::deserialize(d)
    }
}

impl crate::tagged::TypeFirst for StreamEvent {
    const NAME: &'static str = "StreamEvent";
    const VARIANTS: &'static [&'static str] = &[
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    ];

    fn variant<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        rest: D,
    ) -> Option<Result<Self, D::Error>> {
        #[derive(Deserialize)]
        struct Start {
            message: Message,
        }
        #[derive(Deserialize)]
        struct BlockStart {
            index: usize,
            content_block: ContentBlock,
        }
        #[derive(Deserialize)]
        struct BlockDelta {
            index: usize,
            delta: Delta,
        }
        #[derive(Deserialize)]
        struct BlockStop {
            index: usize,
        }
        #[derive(Deserialize)]
        struct MessageDelta {
            delta: MessageDeltaBody,
            usage: DeltaUsage,
        }
        #[derive(Deserialize)]
        struct Nothing {}
        #[derive(Deserialize)]
        struct Failure {
            error: ErrorBody,
        }
        Some(match kind {
            "message_start" => {
                Start::deserialize(rest).map(|s| StreamEvent::MessageStart { message: s.message })
            }
            "content_block_start" => {
                BlockStart::deserialize(rest).map(|s| StreamEvent::ContentBlockStart {
                    index: s.index,
                    content_block: s.content_block,
                })
            }
            "content_block_delta" => {
                BlockDelta::deserialize(rest).map(|s| StreamEvent::ContentBlockDelta {
                    index: s.index,
                    delta: s.delta,
                })
            }
            "content_block_stop" => BlockStop::deserialize(rest)
                .map(|s| StreamEvent::ContentBlockStop { index: s.index }),
            "message_delta" => MessageDelta::deserialize(rest).map(|s| StreamEvent::MessageDelta {
                delta: s.delta,
                usage: s.usage,
            }),
            "message_stop" => Nothing::deserialize(rest).map(|_| StreamEvent::MessageStop),
            "ping" => Nothing::deserialize(rest).map(|_| StreamEvent::Ping),
            "error" => Failure::deserialize(rest).map(|s| StreamEvent::Error { error: s.error }),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::deserialize(d)
    }
}

impl crate::tagged::TypeFirst for Delta {
    const NAME: &'static str = "Delta";
    const VARIANTS: &'static [&'static str] = &[
        "text_delta",
        "input_json_delta",
        "thinking_delta",
        "signature_delta",
        "citations_delta",
    ];

    fn variant<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        rest: D,
    ) -> Option<Result<Self, D::Error>> {
        #[derive(Deserialize)]
        struct Text {
            text: String,
        }
        #[derive(Deserialize)]
        struct InputJson {
            partial_json: String,
        }
        #[derive(Deserialize)]
        struct Thinking {
            thinking: String,
        }
        #[derive(Deserialize)]
        struct Signature {
            signature: String,
        }
        #[derive(Deserialize)]
        struct Citations {
            citation: Value,
        }
        Some(match kind {
            "text_delta" => Text::deserialize(rest).map(|s| Delta::TextDelta { text: s.text }),
            "input_json_delta" => InputJson::deserialize(rest).map(|s| Delta::InputJsonDelta {
                partial_json: s.partial_json,
            }),
            "thinking_delta" => Thinking::deserialize(rest).map(|s| Delta::ThinkingDelta {
                thinking: s.thinking,
            }),
            "signature_delta" => Signature::deserialize(rest).map(|s| Delta::SignatureDelta {
                signature: s.signature,
            }),
            "citations_delta" => Citations::deserialize(rest).map(|s| Delta::CitationsDelta {
                citation: s.citation,
            }),
            _ => return None,
        })
    }
}

impl StreamEvent {
    /// The SSE `event:` name (always equal to the JSON `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }

    /// An event from its JSON, as `serde_json::from_slice` reads it. The commonest event of a
    /// stream, a text delta written as Anthropic and Bedrock write it
    /// (`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"..."}}`, no
    /// whitespace, no escape in the text), is read without the deserializer; anything else goes
    /// to it.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<StreamEvent> {
        match plain_text_delta(bytes) {
            Some(event) => Ok(event),
            None => serde_json::from_slice(bytes),
        }
    }

    /// The event as SSE text: `event: NAME\ndata: JSON\n\n`.
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        format!("event: {}\ndata: {data}\n\n", self.name())
    }
}

/// The error types of the Anthropic API, with their HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// 400
    InvalidRequestError,
    /// 401
    AuthenticationError,
    /// 402
    BillingError,
    /// 403
    PermissionError,
    /// 404
    NotFoundError,
    /// 413
    RequestTooLarge,
    /// 429
    RateLimitError,
    /// 500
    ApiError,
    /// 504
    TimeoutError,
    /// 529
    OverloadedError,
}

impl ErrorType {
    /// The HTTP status Anthropic uses for it.
    pub fn status(self) -> u16 {
        match self {
            ErrorType::InvalidRequestError => 400,
            ErrorType::AuthenticationError => 401,
            ErrorType::BillingError => 402,
            ErrorType::PermissionError => 403,
            ErrorType::NotFoundError => 404,
            ErrorType::RequestTooLarge => 413,
            ErrorType::RateLimitError => 429,
            ErrorType::ApiError => 500,
            ErrorType::TimeoutError => 504,
            ErrorType::OverloadedError => 529,
        }
    }

    /// The wire name, e.g. `rate_limit_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequestError => "invalid_request_error",
            ErrorType::AuthenticationError => "authentication_error",
            ErrorType::BillingError => "billing_error",
            ErrorType::PermissionError => "permission_error",
            ErrorType::NotFoundError => "not_found_error",
            ErrorType::RequestTooLarge => "request_too_large",
            ErrorType::RateLimitError => "rate_limit_error",
            ErrorType::ApiError => "api_error",
            ErrorType::TimeoutError => "timeout_error",
            ErrorType::OverloadedError => "overloaded_error",
        }
    }
}

/// The error envelope: `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: ErrorBody,
    /// The request id (`req_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorResponse {
    /// An envelope for `kind` with `message`.
    pub fn new(kind: ErrorType, message: impl Into<String>, request_id: Option<String>) -> Self {
        ErrorResponse {
            kind: "error".into(),
            error: ErrorBody {
                kind,
                message: message.into(),
            },
            request_id,
        }
    }
}

/// `POST /v1/messages/count_tokens` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    /// Input tokens of the request.
    pub input_tokens: u64,
}

/// One model of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Always `model`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id clients send.
    pub id: String,
    /// A name for people.
    pub display_name: String,
    /// RFC 3339 release time (epoch when unknown).
    pub created_at: String,
}

/// A page of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The models, newest first.
    pub data: Vec<ModelInfo>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// Id of the first model of the page.
    pub first_id: Option<String>,
    /// Id of the last model of the page.
    pub last_id: Option<String>,
}
