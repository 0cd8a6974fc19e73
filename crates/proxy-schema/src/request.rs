//! `POST /v1/messages` and `POST /v1/messages/count_tokens` request bodies.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::content::{
    CacheControl, ContentBlock, INNER_PATH, StringOrSeq, TextBlock, from_value_with_path,
    string_or_seq,
};

/// Who speaks in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
    /// A system message inside `messages` (SDK 2.x types; Claude Code sends it).
    System,
}

/// Message content: a string (one text block) or blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// One string.
    Text(String),
    /// Blocks.
    Blocks(Vec<ContentBlock>),
}

crate::content::deserialize_string_or_blocks!(MessageContent);

impl MessageContent {
    /// The content as blocks (a string becomes one text block).
    pub fn blocks(&self) -> std::borrow::Cow<'_, [ContentBlock]> {
        match self {
            MessageContent::Text(s) => {
                std::borrow::Cow::Owned(vec![ContentBlock::Text(TextBlock::new(s.clone()))])
            }
            MessageContent::Blocks(b) => std::borrow::Cow::Borrowed(b),
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: MessageContent,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The system prompt: a string or text blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum System {
    /// One string.
    Text(String),
    /// Text blocks (each may carry `cache_control`).
    Blocks(Vec<TextBlock>),
}

/// A system text block written with its `type` tag, as the wire has it (how [`System`] writes
/// each of its blocks).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "text")]
pub struct TaggedText<'a> {
    /// The block.
    #[serde(flatten)]
    pub block: &'a TextBlock,
}

impl Serialize for System {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            System::Text(t) => s.serialize_str(t),
            System::Blocks(blocks) => {
                s.collect_seq(blocks.iter().map(|block| TaggedText { block }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match string_or_seq(d)? {
            StringOrSeq::String(s) => Ok(System::Text(s)),
            StringOrSeq::Seq(blocks) => blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| match b {
                    ContentBlock::Text(t) => Ok(t),
                    other => Err(D::Error::custom(format!(
                        "{INNER_PATH}{i}.type{INNER_PATH}Input should be 'text', found '{}'",
                        other.kind()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(System::Blocks),
        }
    }
}

/// A tool the model may call: a client tool (`type` absent or `custom`) or an Anthropic-defined or
/// server tool (any other `type`, e.g. `web_search_20250305`, `bash_20250124`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `custom`, absent, or a versioned tool type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Tool name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of its input (client tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Other fields (`defer_loading`, `input_examples`, `max_uses`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// Whether this is a client tool the caller executes (not a server or Anthropic-defined tool).
    pub fn is_custom(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// At most one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        /// The tool.
        name: String,
        /// At most one tool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

impl ToolChoice {
    /// Whether parallel tool calls are switched off.
    pub fn disables_parallel(&self) -> bool {
        match self {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            }
            | ToolChoice::Any {
                disable_parallel_tool_use,
            }
            | ToolChoice::Tool {
                disable_parallel_tool_use,
                ..
            } => disable_parallel_tool_use.unwrap_or(false),
            ToolChoice::None => false,
        }
    }
}

/// Extended thinking settings. Types newer than this crate are kept whole in [`Thinking::Other`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// Thinking with a token budget.
    Enabled {
        /// Budget (>= 1024, counts toward max_tokens).
        budget_tokens: u32,
        /// Other fields (`display`).
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// No thinking.
    Disabled {
        /// Other fields.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// The model decides how much to think.
    Adaptive {
        /// Other fields (`display`).
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// Any other type (e.g. `between_tools`).
    #[serde(untagged)]
    Other(Value),
}

impl<'de> Deserialize<'de> for Thinking {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        fn rest<T: DeserializeOwned, E: Error>(mut v: Value) -> Result<T, E> {
            if let Some(o) = v.as_object_mut() {
                o.shift_remove("type");
            }
            from_value_with_path(v)
        }
        #[derive(Deserialize)]
        struct Budget {
            budget_tokens: u32,
            #[serde(flatten)]
            extra: Map<String, Value>,
        }
        match value.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let b: Budget = rest(value)?;
                Ok(Thinking::Enabled {
                    budget_tokens: b.budget_tokens,
                    extra: b.extra,
                })
            }
            Some("disabled") => Ok(Thinking::Disabled {
                extra: rest(value)?,
            }),
            Some("adaptive") => Ok(Thinking::Adaptive {
                extra: rest(value)?,
            }),
            Some(_) => Ok(Thinking::Other(value)),
            None => Err(D::Error::custom("missing field `type`")),
        }
    }
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `output_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// `low` | `medium` | `high` | `xhigh` | `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `{type: "json_schema", schema: {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /v1/messages` (and, without `max_tokens` and `stream`, of
/// `POST /v1/messages/count_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model name the client asked for.
    pub model: String,
    /// Output limit; required by `/v1/messages` (see [`crate::parse_messages_request`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream the answer as SSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature (2023-06-01 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling (2023-06-01 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling (2023-06-01 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Top-level cache breakpoint (marks the last cacheable block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Output settings (effort, structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Everything else (`service_tier`, `container`, `mcp_servers`, `context_management`, newer
    /// fields), kept for the native route.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}
