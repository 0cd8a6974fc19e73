//! Request validation: the Bedrock request shapes (Converse, ConverseStream, CountTokens) as a small
//! declarative schema, the native Anthropic body for Claude, and the semantic rules Bedrock and Claude
//! enforce on top of the shapes. Every failure is a message for a 400 `ValidationException`.
//!
//! Shapes follow the botocore `bedrock-runtime` 2023-09-30 model as summarised in
//! `docs/WIRE-NOTES.md`. Where a rule is not verified, the comment at the check says so (`⚠`).

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Map, Value};

use crate::catalog::Model;

/// A validation failure: the message of the `ValidationException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// String constraints beyond length.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// No constraint.
    Any,
    /// `[a-zA-Z0-9_-]{1,64}`.
    ToolName,
    /// `[a-zA-Z0-9_.:-]{1,64}`.
    ToolUseId,
    /// Alphanumerics, single whitespace, hyphens, parentheses, square brackets; 1-200.
    DocumentName,
    /// One of the listed values.
    OneOf(&'static [&'static str]),
}

/// A request shape.
#[derive(Debug)]
pub enum Shape {
    /// An object with these members; others are rejected.
    Struct(&'static [Field]),
    /// An object with exactly one of these members.
    Union(&'static [Field]),
    /// A list with a minimum and maximum length.
    List(&'static Shape, usize, usize),
    /// A string map with a minimum and maximum number of entries.
    Map(&'static Shape, usize, usize),
    /// A string with a minimum and maximum length and a pattern.
    Str(usize, usize, Pattern),
    /// An integer within bounds.
    Int(i64, i64),
    /// A number within bounds.
    Float(f64, f64),
    /// A boolean.
    Bool,
    /// Any JSON value (a smithy document).
    Document,
    /// A base64 string (a blob on the JSON wire).
    Blob,
}

/// A member of a struct or union.
#[derive(Debug)]
pub struct Field {
    name: &'static str,
    shape: &'static Shape,
    required: bool,
}

const fn req(name: &'static str, shape: &'static Shape) -> Field {
    Field {
        name,
        shape,
        required: true,
    }
}
const fn opt(name: &'static str, shape: &'static Shape) -> Field {
    Field {
        name,
        shape,
        required: false,
    }
}

static ANY_STR: Shape = Shape::Str(0, usize::MAX, Pattern::Any);
static NON_EMPTY: Shape = Shape::Str(1, usize::MAX, Pattern::Any);
static BLOB: Shape = Shape::Blob;
static DOC: Shape = Shape::Document;
static BOOL: Shape = Shape::Bool;
static EMPTY: Shape = Shape::Struct(&[]);

static S3_LOCATION: Shape = Shape::Struct(&[req("uri", &NON_EMPTY), opt("bucketOwner", &ANY_STR)]);
static BYTES_OR_S3: Shape = Shape::Union(&[opt("bytes", &BLOB), opt("s3Location", &S3_LOCATION)]);
static IMAGE_FORMAT: Shape = Shape::Str(0, 16, Pattern::OneOf(&["png", "jpeg", "gif", "webp"]));
static IMAGE: Shape = Shape::Struct(&[req("format", &IMAGE_FORMAT), req("source", &BYTES_OR_S3)]);
static DOC_FORMAT: Shape = Shape::Str(
    0,
    16,
    Pattern::OneOf(&[
        "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
    ]),
);
static DOC_NAME: Shape = Shape::Str(1, 200, Pattern::DocumentName);
static TEXT_ONLY: Shape = Shape::Union(&[opt("text", &ANY_STR)]);
static TEXT_LIST: Shape = Shape::List(&TEXT_ONLY, 0, usize::MAX);
static DOC_SOURCE: Shape = Shape::Union(&[
    opt("bytes", &BLOB),
    opt("s3Location", &S3_LOCATION),
    opt("text", &ANY_STR),
    opt("content", &TEXT_LIST),
]);
static CITATIONS_CONFIG: Shape = Shape::Struct(&[req("enabled", &BOOL)]);
static DOCUMENT: Shape = Shape::Struct(&[
    opt("format", &DOC_FORMAT),
    req("name", &DOC_NAME),
    req("source", &DOC_SOURCE),
    opt("context", &ANY_STR),
    opt("citations", &CITATIONS_CONFIG),
]);
static VIDEO_FORMAT: Shape = Shape::Str(
    0,
    16,
    Pattern::OneOf(&[
        "mkv", "mov", "mp4", "webm", "flv", "mpeg", "mpg", "wmv", "three_gp",
    ]),
);
static VIDEO: Shape = Shape::Struct(&[req("format", &VIDEO_FORMAT), req("source", &BYTES_OR_S3)]);
static AUDIO_FORMAT: Shape = Shape::Str(
    0,
    16,
    Pattern::OneOf(&[
        "mp3", "opus", "wav", "aac", "flac", "mp4", "ogg", "mkv", "mka", "x-aac", "m4a", "mpeg",
        "mpga", "pcm", "webm",
    ]),
);
static AUDIO: Shape = Shape::Struct(&[req("format", &AUDIO_FORMAT), req("source", &BYTES_OR_S3)]);
static TOOL_NAME: Shape = Shape::Str(1, 64, Pattern::ToolName);
static TOOL_USE_ID: Shape = Shape::Str(1, 64, Pattern::ToolUseId);
static TOOL_USE_TYPE: Shape = Shape::Str(0, 32, Pattern::OneOf(&["server_tool_use"]));
static TOOL_USE: Shape = Shape::Struct(&[
    req("toolUseId", &TOOL_USE_ID),
    req("name", &TOOL_NAME),
    req("input", &DOC),
    opt("type", &TOOL_USE_TYPE),
]);
static SEARCH_RESULT_TEXT: Shape = Shape::Struct(&[req("text", &ANY_STR)]);
static SEARCH_RESULT_CONTENT: Shape = Shape::List(&SEARCH_RESULT_TEXT, 0, usize::MAX);
static SEARCH_RESULT: Shape = Shape::Struct(&[
    req("source", &ANY_STR),
    req("title", &ANY_STR),
    req("content", &SEARCH_RESULT_CONTENT),
    opt("citations", &CITATIONS_CONFIG),
]);
static TOOL_RESULT_BLOCK: Shape = Shape::Union(&[
    opt("json", &DOC),
    opt("text", &ANY_STR),
    opt("image", &IMAGE),
    opt("document", &DOCUMENT),
    opt("video", &VIDEO),
    opt("searchResult", &SEARCH_RESULT),
]);
static TOOL_RESULT_CONTENT: Shape = Shape::List(&TOOL_RESULT_BLOCK, 0, usize::MAX);
static TOOL_RESULT_STATUS: Shape = Shape::Str(0, 16, Pattern::OneOf(&["success", "error"]));
static TOOL_RESULT: Shape = Shape::Struct(&[
    req("toolUseId", &TOOL_USE_ID),
    req("content", &TOOL_RESULT_CONTENT),
    opt("status", &TOOL_RESULT_STATUS),
    opt("type", &ANY_STR),
]);
static QUALIFIERS: Shape = Shape::List(
    &Shape::Str(
        0,
        32,
        Pattern::OneOf(&["grounding_source", "query", "guard_content"]),
    ),
    0,
    usize::MAX,
);
static GUARD_TEXT: Shape = Shape::Struct(&[req("text", &ANY_STR), opt("qualifiers", &QUALIFIERS)]);
static GUARD_IMAGE: Shape = Shape::Struct(&[
    req(
        "format",
        &Shape::Str(0, 8, Pattern::OneOf(&["png", "jpeg"])),
    ),
    req("source", &Shape::Union(&[opt("bytes", &BLOB)])),
]);
static GUARD_CONTENT: Shape = Shape::Union(&[opt("text", &GUARD_TEXT), opt("image", &GUARD_IMAGE)]);
static CACHE_POINT: Shape = Shape::Struct(&[
    req("type", &Shape::Str(0, 16, Pattern::OneOf(&["default"]))),
    opt("ttl", &Shape::Str(0, 8, Pattern::OneOf(&["5m", "1h"]))),
]);
static REASONING_TEXT: Shape = Shape::Struct(&[req("text", &ANY_STR), opt("signature", &ANY_STR)]);
static REASONING: Shape = Shape::Union(&[
    opt("reasoningText", &REASONING_TEXT),
    opt("redactedContent", &BLOB),
]);
// Citation locations are a deep union that no proxy test needs checked member by member.
static CITATIONS_CONTENT: Shape = Shape::Struct(&[
    opt("content", &TEXT_LIST),
    opt("citations", &Shape::List(&DOC, 0, usize::MAX)),
]);
static CONTENT_BLOCK: Shape = Shape::Union(&[
    opt("text", &ANY_STR),
    opt("image", &IMAGE),
    opt("document", &DOCUMENT),
    opt("video", &VIDEO),
    opt("audio", &AUDIO),
    opt("toolUse", &TOOL_USE),
    opt("toolResult", &TOOL_RESULT),
    opt("guardContent", &GUARD_CONTENT),
    opt("cachePoint", &CACHE_POINT),
    opt("reasoningContent", &REASONING),
    opt("citationsContent", &CITATIONS_CONTENT),
    opt("searchResult", &SEARCH_RESULT),
    opt("toolAddition", &DOC),
    opt("toolRemoval", &DOC),
]);
static ROLE: Shape = Shape::Str(0, 16, Pattern::OneOf(&["user", "assistant", "system"]));
static MESSAGE: Shape = Shape::Struct(&[
    req("role", &ROLE),
    req("content", &Shape::List(&CONTENT_BLOCK, 0, usize::MAX)),
]);
static MESSAGES: Shape = Shape::List(&MESSAGE, 0, usize::MAX);
static SYSTEM_BLOCK: Shape = Shape::Union(&[
    opt("text", &ANY_STR),
    opt("guardContent", &GUARD_CONTENT),
    opt("cachePoint", &CACHE_POINT),
]);
static SYSTEM: Shape = Shape::List(&SYSTEM_BLOCK, 0, usize::MAX);
static INFERENCE_CONFIG: Shape = Shape::Struct(&[
    opt("maxTokens", &Shape::Int(1, i32::MAX as i64)),
    opt("temperature", &Shape::Float(0.0, 1.0)),
    opt("topP", &Shape::Float(0.0, 1.0)),
    opt("stopSequences", &Shape::List(&NON_EMPTY, 0, 2500)),
]);
static TOOL_SPEC: Shape = Shape::Struct(&[
    req("name", &TOOL_NAME),
    opt("description", &NON_EMPTY),
    req("inputSchema", &Shape::Union(&[opt("json", &DOC)])),
    opt("strict", &BOOL),
]);
static TOOL: Shape = Shape::Union(&[
    opt("toolSpec", &TOOL_SPEC),
    opt("systemTool", &Shape::Struct(&[req("name", &NON_EMPTY)])),
    opt("cachePoint", &CACHE_POINT),
]);
static TOOL_CHOICE: Shape = Shape::Union(&[
    opt("auto", &EMPTY),
    opt("any", &EMPTY),
    opt("tool", &Shape::Struct(&[req("name", &TOOL_NAME)])),
]);
static TOOL_CONFIG: Shape = Shape::Struct(&[
    req("tools", &Shape::List(&TOOL, 1, usize::MAX)),
    opt("toolChoice", &TOOL_CHOICE),
]);
static GUARDRAIL_CONFIG: Shape = Shape::Struct(&[
    req("guardrailIdentifier", &NON_EMPTY),
    req("guardrailVersion", &NON_EMPTY),
    opt(
        "trace",
        &Shape::Str(
            0,
            16,
            Pattern::OneOf(&["enabled", "disabled", "enabled_full"]),
        ),
    ),
    opt(
        "streamProcessingMode",
        &Shape::Str(0, 8, Pattern::OneOf(&["sync", "async"])),
    ),
]);
static PROMPT_VARIABLES: Shape = Shape::Map(&TEXT_ONLY, 0, usize::MAX);
static REQUEST_METADATA: Shape = Shape::Map(&Shape::Str(0, 256, Pattern::Any), 1, 16);
static OUTPUT_CONFIG: Shape = Shape::Struct(&[
    opt(
        "textFormat",
        &Shape::Struct(&[
            req("type", &Shape::Str(0, 16, Pattern::OneOf(&["json_schema"]))),
            req(
                "structure",
                &Shape::Union(&[opt(
                    "jsonSchema",
                    &Shape::Struct(&[
                        req("schema", &NON_EMPTY),
                        opt("name", &ANY_STR),
                        opt("description", &ANY_STR),
                    ]),
                )]),
            ),
        ]),
    ),
    opt("effort", &Shape::Str(1, 16, Pattern::Any)),
]);

/// The Converse / ConverseStream request body (the model id is in the path).
pub static CONVERSE_REQUEST: Shape = Shape::Struct(&[
    opt("messages", &MESSAGES),
    opt("system", &SYSTEM),
    opt("inferenceConfig", &INFERENCE_CONFIG),
    opt("toolConfig", &TOOL_CONFIG),
    opt("guardrailConfig", &GUARDRAIL_CONFIG),
    opt("additionalModelRequestFields", &DOC),
    opt(
        "additionalModelResponseFieldPaths",
        &Shape::List(&Shape::Str(1, 256, Pattern::Any), 0, 10),
    ),
    opt("promptVariables", &PROMPT_VARIABLES),
    opt("requestMetadata", &REQUEST_METADATA),
    opt(
        "performanceConfig",
        &Shape::Struct(&[opt(
            "latency",
            &Shape::Str(0, 16, Pattern::OneOf(&["standard", "optimized"])),
        )]),
    ),
    opt(
        "serviceTier",
        &Shape::Struct(&[req(
            "type",
            &Shape::Str(
                0,
                16,
                Pattern::OneOf(&["priority", "default", "flex", "reserved"]),
            ),
        )]),
    ),
    opt("outputConfig", &OUTPUT_CONFIG),
    opt("projectIdentifier", &ANY_STR),
]);

static COUNT_CONVERSE: Shape = Shape::Struct(&[
    opt("messages", &MESSAGES),
    opt("system", &SYSTEM),
    opt("toolConfig", &TOOL_CONFIG),
    opt("additionalModelRequestFields", &DOC),
]);

/// The CountTokens request body.
pub static COUNT_TOKENS_REQUEST: Shape = Shape::Struct(&[req(
    "input",
    &Shape::Union(&[
        opt("converse", &COUNT_CONVERSE),
        opt("invokeModel", &Shape::Struct(&[req("body", &BLOB)])),
    ]),
)]);

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn constraint(path: &str, value: &Value, what: &str) -> Invalid {
    let shown = match value {
        Value::String(s) if s.len() > 60 => format!("'{}...'", &s[..s.floor_char_boundary(60)]),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    Invalid(format!(
        "1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: {what}"
    ))
}

/// Checks a JSON value against a shape; `path` names it in messages (e.g. `messages.0.content.1`).
pub fn check(shape: &Shape, value: &Value, path: &str) -> Result<(), Invalid> {
    match shape {
        Shape::Struct(fields) | Shape::Union(fields) => {
            let Value::Object(obj) = value else {
                return invalid(format!(
                    "Malformed input request: #/{}: expected type: JSONObject, found: {}",
                    path.replace('.', "/"),
                    type_name(value)
                ));
            };
            for key in obj.keys() {
                if !fields.iter().any(|f| f.name == key) {
                    return invalid(format!(
                        "Malformed input request: #/{}: extraneous key [{key}] is not permitted, please reformat your input and try again.",
                        path.replace('.', "/")
                    ));
                }
            }
            if let Shape::Union(_) = shape {
                let set: Vec<&String> = obj
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k)
                    .collect();
                if set.len() != 1 {
                    return invalid(format!(
                        "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have exactly one member set, found {}",
                        if path.is_empty() { "#" } else { path },
                        set.len()
                    ));
                }
            }
            for f in fields.iter() {
                match obj.get(f.name) {
                    None | Some(Value::Null) if f.required => {
                        return Err(constraint(
                            &join(path, f.name),
                            &Value::Null,
                            "Member must not be null",
                        ));
                    }
                    None | Some(Value::Null) => {}
                    Some(v) => check(f.shape, v, &join(path, f.name))?,
                }
            }
            Ok(())
        }
        Shape::List(item, min, max) => {
            let Value::Array(items) = value else {
                return Err(constraint(path, value, "Member must be a list"));
            };
            if items.len() < *min {
                return Err(constraint(
                    path,
                    value,
                    &format!("Member must have length greater than or equal to {min}"),
                ));
            }
            if items.len() > *max {
                return Err(constraint(
                    path,
                    value,
                    &format!("Member must have length less than or equal to {max}"),
                ));
            }
            for (i, v) in items.iter().enumerate() {
                check(item, v, &join(path, &i.to_string()))?;
            }
            Ok(())
        }
        Shape::Map(item, min, max) => {
            let Value::Object(obj) = value else {
                return Err(constraint(path, value, "Member must be a map"));
            };
            if obj.len() < *min || obj.len() > *max {
                return Err(constraint(
                    path,
                    value,
                    &format!("Member must have between {min} and {max} entries"),
                ));
            }
            for (k, v) in obj {
                check(item, v, &join(path, k))?;
            }
            Ok(())
        }
        Shape::Str(min, max, pattern) => {
            let Value::String(s) = value else {
                return Err(constraint(path, value, "Member must be a string"));
            };
            let len = s.chars().count();
            if len < *min {
                return Err(constraint(
                    path,
                    value,
                    &format!("Member must have length greater than or equal to {min}"),
                ));
            }
            if len > *max {
                return Err(constraint(
                    path,
                    value,
                    &format!("Member must have length less than or equal to {max}"),
                ));
            }
            let ok = match pattern {
                Pattern::Any => true,
                Pattern::ToolName => s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                Pattern::ToolUseId => s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)),
                Pattern::DocumentName => document_name_ok(s),
                Pattern::OneOf(values) => values.contains(&s.as_str()),
            };
            if ok {
                return Ok(());
            }
            let what = match pattern {
                Pattern::OneOf(values) => format!("Member must satisfy enum value set: [{}]", values.join(", ")),
                Pattern::ToolName => "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+".to_owned(),
                Pattern::ToolUseId => "Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+".to_owned(),
                _ => "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character.".to_owned(),
            };
            Err(constraint(path, value, &what))
        }
        Shape::Int(min, max) => match value.as_i64() {
            Some(n) if n >= *min && n <= *max => Ok(()),
            Some(_) => Err(constraint(
                path,
                value,
                &format!("Member must have value between {min} and {max}"),
            )),
            None => Err(constraint(path, value, "Member must be an integer")),
        },
        Shape::Float(min, max) => match value.as_f64() {
            Some(n) if n >= *min && n <= *max => Ok(()),
            Some(_) => Err(constraint(
                path,
                value,
                &format!("Member must have value between {min} and {max}"),
            )),
            None => Err(constraint(path, value, "Member must be a number")),
        },
        Shape::Bool => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(constraint(path, value, "Member must be a boolean")),
        },
        Shape::Document => Ok(()),
        Shape::Blob => match value
            .as_str()
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
        {
            Some(Ok(_)) => Ok(()),
            _ => Err(constraint(
                path,
                value,
                "Member must be base64-encoded binary data",
            )),
        },
    }
}

fn document_name_ok(s: &str) -> bool {
    let mut prev_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if prev_space {
                return false;
            }
            prev_space = true;
            continue;
        }
        prev_space = false;
        if !(c.is_alphanumeric() || "-()[]".contains(c)) {
            return false;
        }
    }
    true
}

fn decode_b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

/// Whether `data` looks like an image of `format` (magic bytes). Bedrock and Anthropic both reject an
/// image whose bytes do not match the declared type.
fn image_matches(format: &str, data: &[u8]) -> bool {
    match format {
        "png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "jpeg" => data.starts_with(&[0xff, 0xd8, 0xff]),
        "gif" => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        "webp" => data.len() >= 12 && &data[0..4] == b"RIFF" && &data[8..12] == b"WEBP",
        _ => true,
    }
}

/// The signature the emulator issues for a thinking text: a proxy must hand it back unchanged with
/// exactly that text.
pub fn signature_for(thinking: &str) -> String {
    // FNV-1a 64: stable across runs and processes, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in thinking.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut raw = b"bedrock-sim-signature:".to_vec();
    raw.extend_from_slice(&h.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The prefix of every redacted-thinking payload the emulator issues.
pub const REDACTED_PREFIX: &str = "bedrock-sim-redacted:";

/// The Anthropic `anthropic_beta` flags this emulator accepts for Claude (a subset of what Bedrock
/// documents); anything else is "invalid beta flag", as on Bedrock.
pub const KNOWN_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "fine-grained-tool-streaming-2025-05-14",
];

/// Top-level keys of the native Claude body on Bedrock.
const NATIVE_KEYS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];

/// One message of a conversation, reduced to what the semantic rules need, in either format.
#[derive(Debug, Default)]
struct Turn {
    role: String,
    /// Path of the message, e.g. `messages.3`.
    path: String,
    /// Kinds of the blocks in order (`text`, `tool_use`, `thinking`, ...).
    kinds: Vec<&'static str>,
    tool_use_ids: Vec<String>,
    /// (path, tool_use_id) of each tool result.
    tool_results: Vec<(String, String)>,
}

/// Checks what Bedrock and Claude check beyond the shapes, on a conversation in either format.
fn check_turns(turns: &[Turn], model: &Model, thinking_enabled: bool) -> Result<(), Invalid> {
    for (i, turn) in turns.iter().enumerate() {
        if turn.role != "user" || turn.tool_results.is_empty() {
            continue;
        }
        let prev_ids: Vec<&String> = match i.checked_sub(1).map(|p| &turns[p]) {
            Some(prev) if prev.role == "assistant" => prev.tool_use_ids.iter().collect(),
            _ => Vec::new(),
        };
        for (path, id) in &turn.tool_results {
            if !prev_ids.contains(&id) {
                return invalid(format!(
                    "{path}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    for (i, turn) in turns.iter().enumerate() {
        if turn.role != "assistant" || turn.tool_use_ids.is_empty() {
            continue;
        }
        let Some(next) = turns.get(i + 1) else {
            continue;
        };
        let missing: Vec<&String> = turn
            .tool_use_ids
            .iter()
            .filter(|id| !next.tool_results.iter().any(|(_, r)| r == *id))
            .collect();
        if !missing.is_empty() {
            return invalid(format!(
                "{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                next.path,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if model.is_claude() && thinking_enabled {
        // Claude: with thinking on, the last assistant turn of a tool loop must start with thinking.
        if let Some(last) = turns.iter().rev().find(|t| t.role == "assistant")
            && !last.tool_use_ids.is_empty()
            && !matches!(
                last.kinds.first(),
                Some(&"thinking") | Some(&"redacted_thinking")
            )
        {
            return invalid(format!(
                "{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`.",
                last.path,
                last.kinds.first().copied().unwrap_or("nothing")
            ));
        }
    }
    Ok(())
}

fn check_signature(
    model: &Model,
    path: &str,
    text: &str,
    signature: Option<&str>,
) -> Result<(), Invalid> {
    if !model.is_claude() {
        return Ok(());
    }
    match signature {
        None => invalid(format!("{path}.signature: Field required")),
        Some(sig) if sig == signature_for(text) => Ok(()),
        Some(_) => invalid(format!(
            "{path}: Invalid `signature` in `thinking` block (bedrock-sim issued no such signature for this thinking text)"
        )),
    }
}

fn check_redacted(path: &str, data: &str) -> Result<(), Invalid> {
    if data.starts_with(REDACTED_PREFIX) {
        Ok(())
    } else {
        invalid(format!(
            "{path}: Invalid `data` in `redacted_thinking` block"
        ))
    }
}

fn check_thinking_config(
    model: &Model,
    thinking: Option<&Value>,
    max_tokens: Option<i64>,
) -> Result<bool, Invalid> {
    let Some(thinking) = thinking else {
        return Ok(false);
    };
    if !model.is_claude() {
        return Ok(false);
    }
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") if model.adaptive_thinking => invalid(
            "\"thinking.type.enabled\" is not supported for this model. Use \"thinking.type.adaptive\" and \"output_config.effort\" to control thinking behavior.",
        ),
        Some("enabled") => {
            let budget = thinking.get("budget_tokens").and_then(Value::as_i64);
            match budget {
                None => invalid("thinking.enabled.budget_tokens: Field required"),
                Some(b) if b < 1024 => invalid(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ),
                Some(b) if max_tokens.is_some_and(|m| m <= b) => invalid(format!(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size (budget {b}, max_tokens {})",
                    max_tokens.unwrap_or_default()
                )),
                Some(_) => Ok(true),
            }
        }
        // With adaptive thinking the model may answer a turn without thinking, so an assistant turn
        // without a thinking block is legitimate (Claude Code's captured tool turns look like that).
        Some("adaptive") => Ok(false),
        Some("disabled") => Ok(false),
        other => invalid(format!(
            "thinking: Input tag '{}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
            other.unwrap_or("")
        )),
    }
}

/// Prefixes of the betas only Anthropic's own API serves. Bedrock's acceptance of these varies by
/// endpoint and date (one field report saw `claude-code-*` accepted on runtime `/anthropic`, another
/// saw `prompt-caching-scope-*` refused): the emulator takes the strict side and refuses them all,
/// everywhere, with the message runtime `/anthropic` was seen to send.
pub const FIRST_PARTY_ONLY_BETAS: &[&str] = &[
    "claude-code-",
    "oauth-",
    "prompt-caching-scope-",
    "files-api-",
    "mcp-client-",
    "code-execution-",
    "web-fetch-",
    "skills-",
    "advisor-tool-",
];

/// Whether `beta` is a first-party-only beta (see [`FIRST_PARTY_ONLY_BETAS`]).
pub fn first_party_only_beta(beta: &str) -> bool {
    FIRST_PARTY_ONLY_BETAS.iter().any(|p| beta.starts_with(p))
}

/// Refuses the first-party-only betas among `betas` (header values or body flags).
pub fn check_first_party_betas<'a>(
    betas: impl IntoIterator<Item = &'a str>,
) -> Result<(), Invalid> {
    let refused: Vec<String> = betas
        .into_iter()
        .filter(|b| first_party_only_beta(b))
        .map(|b| format!("`{b}`"))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    invalid(format!(
        "Unexpected value(s) {} for the `anthropic-beta` header. Please consult our documentation at docs.claude.com or try again without the header.",
        refused.join(", ")
    ))
}

/// Checks body `anthropic_beta` flags: first-party-only ones are refused as on `/anthropic`; on the
/// AWS operations any other flag outside [`KNOWN_BETAS`] is an "invalid beta flag". The Messages
/// API takes other flags: runtime `/anthropic` was seen accepting a wider set than InvokeModel.
fn check_betas(betas: &Value, path: &str, dialect: Dialect) -> Result<(), Invalid> {
    let Value::Array(list) = betas else {
        return invalid(format!("{path}: Input should be a valid list"));
    };
    check_first_party_betas(list.iter().filter_map(Value::as_str))?;
    for b in list {
        match b.as_str() {
            Some(_) if dialect != Dialect::InvokeModel => {}
            Some(name) if KNOWN_BETAS.contains(&name) => {}
            _ => return invalid(format!("invalid beta flag: {b}")),
        }
    }
    Ok(())
}

/// A `cache_control` object: `{"type": "ephemeral"}` with an optional `ttl`. Bedrock refuses the
/// first-party `scope` (and any other key) with "Extra inputs are not permitted".
fn check_cache_control(value: &Value, path: &str) -> Result<(), Invalid> {
    if value.is_null() {
        return Ok(());
    }
    let Some(obj) = value.as_object() else {
        return invalid(format!("{path}: Input should be a valid dictionary"));
    };
    if obj.get("type").and_then(Value::as_str) != Some("ephemeral") {
        return invalid(format!(
            "{path}: Input tag '{}' found using 'type' does not match any of the expected tags: 'ephemeral'",
            obj.get("type").and_then(Value::as_str).unwrap_or_default()
        ));
    }
    if let Some(key) = obj.keys().find(|k| *k != "type" && *k != "ttl") {
        return invalid(format!(
            "{path}.ephemeral.{key}: Extra inputs are not permitted"
        ));
    }
    match obj.get("ttl") {
        None | Some(Value::Null) => Ok(()),
        Some(t) if t == "5m" || t == "1h" => Ok(()),
        Some(_) => invalid(format!(
            "{path}.ephemeral.ttl: Input should be '5m' or '1h'"
        )),
    }
}

/// `metadata.user_id` must match a pattern: hex, uuid-like and empty values pass, Claude Code's
/// JSON-string value (with `{`, `"`, `:`) does not. The exact expression is not published; the
/// emulator assumes `^[a-zA-Z0-9_-]{0,256}$`.
fn check_user_id(value: &Value) -> Result<(), Invalid> {
    let ok = match value {
        Value::Null => true,
        Value::String(s) => {
            s.len() <= 256
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        _ => return invalid("metadata.user_id: Input should be a valid string"),
    };
    if ok {
        Ok(())
    } else {
        invalid(
            "metadata.user_id: Request metadata contains a value that violates the regular expression",
        )
    }
}

fn too_many_cache_points(found: usize) -> Result<(), Invalid> {
    if found > 4 {
        return invalid(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {found}."
        ));
    }
    Ok(())
}

/// Validates a Converse or ConverseStream body for `model`: shape and semantics.
pub fn converse(body: &Value, model: &Model) -> Result<(), Invalid> {
    check(&CONVERSE_REQUEST, body, "")?;
    converse_semantics(body, model, true)
}

/// Semantic rules of a Converse-shaped body (shared with CountTokens' `input.converse`).
fn converse_semantics(body: &Value, model: &Model, needs_messages: bool) -> Result<(), Invalid> {
    let empty = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut cache_points = 0;
    let mut doc_names = HashSet::new();
    for (j, block) in body
        .get("system")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        if let Some(text) = block.get("text").and_then(Value::as_str)
            && text.trim().is_empty()
        {
            return invalid(format!(
                "The text field in the SystemContentBlock object at system.{j} is blank. Add text to the text field, and try again."
            ));
        }
        cache_points += usize::from(block.get("cachePoint").is_some());
    }
    if let Some(tools) = body.pointer("/toolConfig/tools").and_then(Value::as_array) {
        cache_points += tools
            .iter()
            .filter(|t| t.get("cachePoint").is_some())
            .count();
        let mut names = HashSet::new();
        for (i, t) in tools.iter().enumerate() {
            if let Some(name) = t.pointer("/toolSpec/name").and_then(Value::as_str)
                && !names.insert(name)
            {
                return invalid(format!(
                    "toolConfig.tools.{i}: Tool names must be unique. Duplicate name: {name}"
                ));
            }
        }
    }
    if needs_messages && messages.is_empty() {
        return invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        );
    }
    let mut turns = Vec::new();
    let mut has_tool_blocks = false;
    for (i, msg) in messages.iter().enumerate() {
        let role = msg["role"].as_str().unwrap_or_default().to_owned();
        let mut turn = Turn {
            role,
            path: format!("messages.{i}"),
            ..Turn::default()
        };
        for (j, block) in msg["content"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let path = format!("messages.{i}.content.{j}");
            let Some((kind, inner)) = block
                .as_object()
                .and_then(|o| o.iter().find(|(_, v)| !v.is_null()))
            else {
                continue;
            };
            match kind.as_str() {
                "text" => {
                    if inner.as_str().unwrap_or_default().trim().is_empty() {
                        return invalid(format!(
                            "The text field in the ContentBlock object at {path} is blank. Add text to the text field, and try again."
                        ));
                    }
                    turn.kinds.push("text");
                }
                "cachePoint" => cache_points += 1,
                "image" => {
                    check_image(inner, &path)?;
                    turn.kinds.push("image");
                }
                "document" => {
                    check_document(inner, &path, &mut doc_names)?;
                    turn.kinds.push("document");
                }
                "toolUse" => {
                    has_tool_blocks = true;
                    turn.kinds.push("tool_use");
                    turn.tool_use_ids
                        .push(inner["toolUseId"].as_str().unwrap_or_default().to_owned());
                }
                "toolResult" => {
                    has_tool_blocks = true;
                    turn.kinds.push("tool_result");
                    turn.tool_results.push((
                        path.clone(),
                        inner["toolUseId"].as_str().unwrap_or_default().to_owned(),
                    ));
                    for (k, item) in inner["content"]
                        .as_array()
                        .unwrap_or(&empty)
                        .iter()
                        .enumerate()
                    {
                        let ipath = format!("{path}.toolResult.content.{k}");
                        // ⚠ unverified (docs/WIRE-NOTES.md, item 5): Bedrock's handling of blank text inside
                        // a toolResult. Claude rejects whitespace-only text blocks everywhere, so we do too.
                        if let Some(t) = item.get("text").and_then(Value::as_str)
                            && t.trim().is_empty()
                        {
                            return invalid(format!(
                                "The text field in the ToolResultContentBlock object at {ipath} is blank. Add text to the text field, and try again."
                            ));
                        }
                        if let Some(img) = item.get("image") {
                            check_image(img, &ipath)?;
                        }
                        if let Some(doc) = item.get("document") {
                            check_document(doc, &ipath, &mut doc_names)?;
                        }
                    }
                }
                "reasoningContent" => {
                    if let Some(rt) = inner.get("reasoningText") {
                        turn.kinds.push("thinking");
                        let text = rt["text"].as_str().unwrap_or_default();
                        check_signature(
                            model,
                            &format!("{path}.reasoningContent.reasoningText"),
                            text,
                            rt["signature"].as_str(),
                        )?;
                    } else {
                        turn.kinds.push("redacted_thinking");
                        if model.is_claude() {
                            let raw =
                                decode_b64(inner["redactedContent"].as_str().unwrap_or_default());
                            check_redacted(
                                &format!("{path}.reasoningContent.redactedContent"),
                                &String::from_utf8_lossy(&raw),
                            )?;
                        }
                    }
                }
                _ => turn.kinds.push("other"),
            }
        }
        turns.push(turn);
    }
    if has_tool_blocks && body.get("toolConfig").is_none() {
        return invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        );
    }
    too_many_cache_points(cache_points)?;
    // Conversation shape (system-role messages do not take part in the alternation).
    let dialog: Vec<&Turn> = turns.iter().filter(|t| t.role != "system").collect();
    if needs_messages {
        if dialog.first().is_none_or(|t| t.role != "user") {
            return invalid(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            );
        }
        if dialog.windows(2).any(|w| w[0].role == w[1].role) {
            return invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            );
        }
    }
    let extra = body.get("additionalModelRequestFields");
    let max_tokens = body
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_i64);
    let mut thinking_enabled = false;
    if model.is_claude()
        && let Some(extra) = extra
    {
        let Value::Object(fields) = extra else {
            return invalid("additionalModelRequestFields: must be a JSON object");
        };
        for key in fields.keys() {
            // Claude receives these fields in its native body, so the native key list applies.
            if !NATIVE_KEYS.contains(&key.as_str())
                || ["anthropic_version", "messages", "system", "max_tokens"].contains(&key.as_str())
            {
                return invalid(format!(
                    "The model returned the following errors: {key}: Extra inputs are not permitted"
                ));
            }
        }
        if let Some(betas) = fields.get("anthropic_beta") {
            check_betas(
                betas,
                "additionalModelRequestFields.anthropic_beta",
                Dialect::InvokeModel,
            )?;
        }
        thinking_enabled = check_thinking_config(model, fields.get("thinking"), max_tokens)?;
    }
    let dialog_owned: Vec<Turn> = turns.into_iter().filter(|t| t.role != "system").collect();
    check_turns(&dialog_owned, model, thinking_enabled)
}

fn check_image(image: &Value, path: &str) -> Result<(), Invalid> {
    if let (Some(format), Some(bytes)) = (
        image["format"].as_str(),
        image.pointer("/source/bytes").and_then(Value::as_str),
    ) && !image_matches(format, &decode_b64(bytes))
    {
        return invalid(format!(
            "{path}: The provided image does not match the specified image format ({format})."
        ));
    }
    Ok(())
}

/// Document names must be unique within a request. ⚠ Known from peers' issue trackers (documents all
/// named "document" are rejected), not from the AWS model.
fn check_document<'a>(
    doc: &'a Value,
    path: &str,
    names: &mut HashSet<&'a str>,
) -> Result<(), Invalid> {
    let name = doc["name"].as_str().unwrap_or_default();
    if !names.insert(name) {
        return invalid(format!(
            "{path}: The document name '{name}' is used more than once in this request. Document names must be unique."
        ));
    }
    if doc["format"].as_str() == Some("pdf")
        && let Some(bytes) = doc.pointer("/source/bytes").and_then(Value::as_str)
        && !decode_b64(bytes).starts_with(b"%PDF")
    {
        return invalid(format!(
            "{path}: The provided document is not a valid pdf file."
        ));
    }
    Ok(())
}

/// Validates a CountTokens body for `model`, returning the request it counts.
pub fn count_tokens(body: &Value, model: &Model) -> Result<CountInput, Invalid> {
    check(&COUNT_TOKENS_REQUEST, body, "")?;
    if let Some(conv) = body.pointer("/input/converse") {
        converse_semantics(conv, model, true)?;
        return Ok(CountInput::Converse(conv.clone()));
    }
    let raw = decode_b64(
        body.pointer("/input/invokeModel/body")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let native: Value = serde_json::from_slice(&raw).map_err(|e| {
        Invalid(format!(
            "Malformed input request: input.invokeModel.body is not valid JSON: {e}"
        ))
    })?;
    self::native(&native, model)?;
    Ok(CountInput::Native(native))
}

/// What a CountTokens request counts.
#[derive(Debug, Clone)]
pub enum CountInput {
    /// A Converse-shaped request.
    Converse(Value),
    /// A native InvokeModel body.
    Native(Value),
}

/// A content block with its path, e.g. `messages.2.content.0`.
type PathedBlock<'a> = (String, &'a Map<String, Value>);

fn native_blocks<'a>(content: &'a Value, path: &str) -> Result<Vec<PathedBlock<'a>>, Invalid> {
    match content {
        Value::String(s) => {
            if s.is_empty() {
                return invalid(format!("{path}: text content blocks must be non-empty"));
            }
            Ok(Vec::new())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, b)| match b {
                Value::Object(o) => Ok((format!("{path}.{j}"), o)),
                other => invalid(format!(
                    "{path}.{j}: Input should be a valid dictionary, found {}",
                    type_name(other)
                )),
            })
            .collect(),
        other => invalid(format!(
            "{path}: Input should be a valid string or list, found {}",
            type_name(other)
        )),
    }
}

fn native_block_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "text" => &["type", "text", "citations", "cache_control"],
        "image" => &["type", "source", "cache_control"],
        "document" => &[
            "type",
            "source",
            "title",
            "context",
            "citations",
            "cache_control",
        ],
        "search_result" => &[
            "type",
            "source",
            "title",
            "content",
            "citations",
            "cache_control",
        ],
        "tool_use" => &["type", "id", "name", "input", "cache_control"],
        "tool_result" => &[
            "type",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
        ],
        "thinking" => &["type", "thinking", "signature"],
        "redacted_thinking" => &["type", "data"],
        _ => return None,
    })
}

/// Checks one native content block; counts its cache_control; returns its kind.
fn native_block(
    path: &str,
    block: &Map<String, Value>,
    model: &Model,
    cache_points: &mut usize,
    turn: &mut Turn,
) -> Result<(), Invalid> {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(keys) = native_block_keys(kind) else {
        return invalid(format!(
            "{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'search_result', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"
        ));
    };
    for key in block.keys() {
        if !keys.contains(&key.as_str()) {
            return invalid(format!(
                "{path}.{kind}.{key}: Extra inputs are not permitted"
            ));
        }
    }
    if let Some(cc) = block.get("cache_control") {
        check_cache_control(cc, &format!("{path}.{kind}.cache_control"))?;
    }
    *cache_points += usize::from(block.get("cache_control").is_some_and(|c| !c.is_null()));
    let str_field = |name: &str| -> Result<&str, Invalid> {
        block
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid(format!("{path}.{kind}.{name}: Field required")))
    };
    match kind {
        "text" => {
            let text = str_field("text")?;
            if text.is_empty() {
                return invalid(format!("{path}: text content blocks must be non-empty"));
            }
            if text.trim().is_empty() {
                return invalid(format!(
                    "{path}: text content blocks must contain non-whitespace text"
                ));
            }
            turn.kinds.push("text");
        }
        "image" => {
            let source = block
                .get("source")
                .ok_or_else(|| Invalid(format!("{path}.image.source: Field required")))?;
            if source["type"] == "base64" {
                let media = source["media_type"].as_str().unwrap_or_default();
                let format = media.strip_prefix("image/").unwrap_or_default();
                if !["png", "jpeg", "gif", "webp"].contains(&format) {
                    return invalid(format!(
                        "{path}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                    ));
                }
                if !image_matches(
                    format,
                    &decode_b64(source["data"].as_str().unwrap_or_default()),
                ) {
                    return invalid(format!(
                        "{path}: Image does not match the provided media type {media}"
                    ));
                }
            }
            turn.kinds.push("image");
        }
        "tool_use" => {
            str_field("id")?;
            str_field("name")?;
            turn.kinds.push("tool_use");
            turn.tool_use_ids.push(str_field("id")?.to_owned());
        }
        "tool_result" => {
            turn.kinds.push("tool_result");
            turn.tool_results
                .push((path.to_owned(), str_field("tool_use_id")?.to_owned()));
            if let Some(content) = block.get("content") {
                for (ipath, inner) in native_blocks(content, &format!("{path}.content"))? {
                    if inner.get("type").and_then(Value::as_str) == Some("tool_result") {
                        return invalid(format!("{ipath}: tool_result blocks cannot be nested"));
                    }
                    let mut nested = Turn::default();
                    native_block(&ipath, inner, model, cache_points, &mut nested)?;
                }
            }
        }
        "thinking" => {
            turn.kinds.push("thinking");
            let thinking = str_field("thinking")?;
            check_signature(
                model,
                &format!("{path}.thinking"),
                thinking,
                block.get("signature").and_then(Value::as_str),
            )?;
        }
        "redacted_thinking" => {
            turn.kinds.push("redacted_thinking");
            check_redacted(
                &format!("{path}.redacted_thinking.data"),
                str_field("data")?,
            )?;
        }
        _ => turn.kinds.push("other"),
    }
    Ok(())
}

/// Where a native Anthropic body arrives: the rules differ in the envelope, not in the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// InvokeModel(-WithResponseStream) and CountTokens' `input.invokeModel`: `anthropic_version`
    /// required, no `model`, `stream` or top-level `cache_control`, only known `anthropic_beta`s.
    InvokeModel,
    /// The Anthropic Messages API (`POST /anthropic/v1/messages`): the first-party body with `model`.
    Messages,
    /// Mantle's `POST /anthropic/v1/messages/count_tokens`: `model` and the conversation, no
    /// `max_tokens`.
    CountTokens,
}

impl Dialect {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Dialect::InvokeModel => NATIVE_KEYS,
            Dialect::Messages => MESSAGES_KEYS,
            Dialect::CountTokens => COUNT_TOKENS_KEYS,
        }
    }

    fn required(self) -> &'static [&'static str] {
        match self {
            Dialect::InvokeModel => &["anthropic_version", "max_tokens", "messages"],
            Dialect::Messages => &["model", "max_tokens", "messages"],
            Dialect::CountTokens => &["model", "messages"],
        }
    }
}

/// Top-level keys of a Messages API body. `anthropic_version` in the body is tolerated: an older
/// AWS page asked runtime callers for it and one peer sends it next to the header (unverified).
const MESSAGES_KEYS: &[&str] = &[
    "model",
    "stream",
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
    "cache_control",
];

/// Top-level keys of a `count_tokens` body.
const COUNT_TOKENS_KEYS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
    "cache_control",
];

/// Validates a native Anthropic body for InvokeModel on a Claude `model`.
pub fn native(body: &Value, model: &Model) -> Result<(), Invalid> {
    native_body(body, model, Dialect::InvokeModel)
}

/// Validates a body of the Anthropic Messages API (or its `count_tokens`) for a Claude `model`,
/// with the `anthropic-beta` header's flags.
pub fn messages(
    body: &Value,
    model: &Model,
    dialect: Dialect,
    header_betas: &[String],
) -> Result<(), Invalid> {
    check_first_party_betas(header_betas.iter().map(String::as_str))?;
    native_body(body, model, dialect)
}

fn native_body(body: &Value, model: &Model, dialect: Dialect) -> Result<(), Invalid> {
    let Value::Object(obj) = body else {
        return invalid(match dialect {
            Dialect::InvokeModel => {
                "Malformed input request: #: expected type: JSONObject, please reformat your input and try again."
            }
            _ => "Input should be a valid dictionary",
        });
    };
    for key in obj.keys() {
        if !dialect.keys().contains(&key.as_str()) {
            return invalid(match dialect {
                Dialect::InvokeModel => format!(
                    "Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
                ),
                _ => format!("{key}: Extra inputs are not permitted"),
            });
        }
    }
    for key in dialect.required() {
        if !obj.contains_key(*key) {
            return invalid(match dialect {
                Dialect::InvokeModel => format!(
                    "Malformed input request: #: required key [{key}] not found, please reformat your input and try again."
                ),
                _ => format!("{key}: Field required"),
            });
        }
    }
    // The Anthropic SDK's Bedrock client (2.x) sends `2026-10-21`, which Bedrock takes only for
    // Claude 4.7 and later (the adaptive-thinking generation); ARN-versioned models may refuse it.
    if let Some(version) = obj.get("anthropic_version")
        && version != "bedrock-2023-05-31"
        && !(version == "2026-10-21" && model.adaptive_thinking)
    {
        return invalid(format!(
            "Invalid API version: {version}. Use bedrock-2023-05-31."
        ));
    }
    if obj.get("model").is_some_and(|m| !m.is_string()) {
        return invalid("model: Input should be a valid string");
    }
    if obj
        .get("stream")
        .is_some_and(|s| !s.is_boolean() && !s.is_null())
    {
        return invalid("stream: Input should be a valid boolean");
    }
    let max_tokens = obj.get("max_tokens").and_then(Value::as_i64);
    if dialect != Dialect::CountTokens && max_tokens.is_none_or(|m| m < 1) {
        return invalid("max_tokens: Input should be greater than or equal to 1");
    }
    if let Some(betas) = obj.get("anthropic_beta") {
        check_betas(betas, "anthropic_beta", dialect)?;
    }
    if let Some(meta) = obj.get("metadata").and_then(Value::as_object) {
        if let Some(key) = meta.keys().find(|k| *k != "user_id") {
            return invalid(format!("metadata.{key}: Extra inputs are not permitted"));
        }
        if let Some(user_id) = meta.get("user_id") {
            check_user_id(user_id)?;
        }
    }
    if let Some(cc) = obj.get("cache_control") {
        check_cache_control(cc, "cache_control")?;
    }
    let mut cache_points = 0;
    if let Some(system) = obj.get("system") {
        for (path, block) in native_blocks(system, "system")? {
            if block.get("type").and_then(Value::as_str) != Some("text") {
                return invalid(format!("{path}: system content blocks must be text blocks"));
            }
            let mut t = Turn::default();
            native_block(&path, block, model, &mut cache_points, &mut t)?;
        }
    }
    if let Some(tools) = obj.get("tools") {
        let Value::Array(tools) = tools else {
            return invalid("tools: Input should be a valid list");
        };
        for (i, tool) in tools.iter().enumerate() {
            let Some(tool) = tool.as_object() else {
                return invalid(format!("tools.{i}: Input should be a valid dictionary"));
            };
            match tool.get("type").and_then(Value::as_str) {
                None | Some("custom") => {
                    for key in tool.keys() {
                        if ![
                            "type",
                            "name",
                            "description",
                            "input_schema",
                            "cache_control",
                            "strict",
                            "input_examples",
                        ]
                        .contains(&key.as_str())
                        {
                            return invalid(format!(
                                "tools.{i}.custom.{key}: Extra inputs are not permitted"
                            ));
                        }
                    }
                    if !tool.contains_key("input_schema") {
                        return invalid(format!("tools.{i}.custom.input_schema: Field required"));
                    }
                    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                    if name.is_empty()
                        || name.len() > 64
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return invalid(format!(
                            "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                        ));
                    }
                }
                // Anthropic-defined client tools that Bedrock serves; server tools (web search, ...) are not.
                Some(t)
                    if ["bash_", "text_editor_", "computer_", "memory_"]
                        .iter()
                        .any(|p| t.starts_with(p)) => {}
                Some(t) => {
                    return invalid(format!(
                        "tools.{i}: Input tag '{t}' found using 'type' does not match any of the expected tags"
                    ));
                }
            }
            if let Some(cc) = tool.get("cache_control") {
                check_cache_control(cc, &format!("tools.{i}.cache_control"))?;
            }
            cache_points += usize::from(tool.get("cache_control").is_some_and(|c| !c.is_null()));
        }
    }
    let Value::Array(messages) = &obj["messages"] else {
        return invalid("messages: Input should be a valid list");
    };
    if messages.is_empty() {
        return invalid("messages: at least one message is required");
    }
    let mut turns = Vec::new();
    let mut doc_names = HashSet::new();
    for (i, msg) in messages.iter().enumerate() {
        let role = msg["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if let Some(key) = msg
            .as_object()
            .and_then(|m| m.keys().find(|k| *k != "role" && *k != "content"))
        {
            return invalid(format!(
                "messages.{i}.{key}: Extra inputs are not permitted"
            ));
        }
        let content = msg
            .get("content")
            .ok_or_else(|| Invalid(format!("messages.{i}.content: Field required")))?;
        let mut turn = Turn {
            role: role.to_owned(),
            path: format!("messages.{i}"),
            ..Turn::default()
        };
        if content.is_string() {
            turn.kinds.push("text");
        }
        for (path, block) in native_blocks(content, &format!("messages.{i}.content"))? {
            native_block(&path, block, model, &mut cache_points, &mut turn)?;
            if block.get("type").and_then(Value::as_str) == Some("document") {
                let title = block
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !title.is_empty() && !doc_names.insert(title.to_owned()) {
                    // Native Claude bodies allow repeated titles; nothing to reject.
                }
            }
        }
        turns.push(turn);
    }
    if turns.first().is_some_and(|t| t.role != "user") {
        return invalid("messages.0.role: the first message must use the \"user\" role");
    }
    too_many_cache_points(cache_points)?;
    let thinking_enabled = check_thinking_config(model, obj.get("thinking"), max_tokens)?;
    check_turns(&turns, model, thinking_enabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    fn claude() -> Model {
        Catalog::new(Vec::new(), "us-east-1")
            .resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap()
            .model
            .clone()
    }

    fn qwen() -> Model {
        Catalog::new(Vec::new(), "us-east-1")
            .resolve("qwen.qwen3-32b-v1:0")
            .unwrap()
            .model
            .clone()
    }

    fn err(r: Result<(), Invalid>) -> String {
        r.expect_err("should be rejected").0
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"text": text}]})
    }

    #[test]
    fn accepts_a_plain_converse_request() {
        converse(
            &json!({"messages": [user("hi")], "inferenceConfig": {"maxTokens": 10}}),
            &claude(),
        )
        .unwrap();
    }

    #[test]
    fn rejects_unknown_fields_missing_fields_and_bad_unions() {
        let m = claude();
        assert!(
            err(converse(&json!({"messages": [user("hi")], "foo": 1}), &m))
                .contains("extraneous key [foo]")
        );
        assert!(
            err(converse(&json!({"messages": [{"role": "user"}]}), &m))
                .contains("messages.0.content")
        );
        assert!(err(converse(&json!({"messages": [{"role": "user", "content": [{"text": "a", "image": null, "toolUse": {}}]}]}), &m)).contains("exactly one member"));
        assert!(
            err(converse(
                &json!({"messages": [user("hi")], "inferenceConfig": {"maxTokens": 0}}),
                &m
            ))
            .contains("inferenceConfig.maxTokens")
        );
        assert!(
            err(converse(
                &json!({"messages": [user("hi")], "inferenceConfig": {"temperature": 1.5}}),
                &m
            ))
            .contains("temperature")
        );
        assert!(
            err(converse(
                &json!({"messages": [{"role": "robot", "content": [{"text": "a"}]}]}),
                &m
            ))
            .contains("enum")
        );
    }

    #[test]
    fn rejects_blank_text_everywhere() {
        let m = claude();
        assert!(
            err(converse(&json!({"messages": [user("  ")]}), &m))
                .contains("messages.0.content.0 is blank")
        );
        assert!(
            err(converse(
                &json!({"messages": [user("hi")], "system": [{"text": ""}]}),
                &m
            ))
            .contains("system.0 is blank")
        );
    }

    fn tool_config() -> Value {
        json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]})
    }

    fn tool_history(result_id: &str) -> Value {
        json!([
            user("weather?"),
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": result_id, "content": [{"text": "sunny"}]}}]}
        ])
    }

    #[test]
    fn tool_blocks_need_tool_config_and_matching_ids() {
        let m = qwen();
        assert!(
            err(converse(
                &json!({"messages": tool_history("tooluse_1")}),
                &m
            ))
            .contains("toolConfig field must be defined")
        );
        converse(
            &json!({"messages": tool_history("tooluse_1"), "toolConfig": tool_config()}),
            &m,
        )
        .unwrap();
        assert!(
            err(converse(
                &json!({"messages": tool_history("tooluse_2"), "toolConfig": tool_config()}),
                &m
            ))
            .contains("unexpected `tool_use_id`")
        );
        let mut history = tool_history("tooluse_1");
        history[2] = user("never mind");
        assert!(
            err(converse(
                &json!({"messages": history, "toolConfig": tool_config()}),
                &m
            ))
            .contains("without `tool_result`")
        );
    }

    #[test]
    fn cache_points_are_limited_and_not_allowed_in_tool_results() {
        let m = claude();
        let cp = json!({"cachePoint": {"type": "default"}});
        let body = json!({"system": [{"text": "s"}, cp, cp], "messages": [{"role": "user", "content": [{"text": "a"}, cp, cp, cp]}]});
        assert!(err(converse(&body, &m)).contains("Found 5"));
        let mut history = tool_history("tooluse_1");
        history[2]["content"][0]["toolResult"]["content"] = json!([{"text": "x"}, cp]);
        assert!(
            err(converse(
                &json!({"messages": history, "toolConfig": tool_config()}),
                &m
            ))
            .contains("extraneous key [cachePoint]")
        );
    }

    #[test]
    fn conversation_must_start_with_user_and_alternate() {
        let m = qwen();
        let a = json!({"role": "assistant", "content": [{"text": "x"}]});
        assert!(err(converse(&json!({"messages": [a]}), &m)).contains("start with a user message"));
        assert!(
            err(converse(&json!({"messages": [user("a"), user("b")]}), &m)).contains("alternate")
        );
        let sys = json!({"role": "system", "content": [{"text": "be brief"}]});
        converse(&json!({"messages": [sys, user("a")]}), &m).unwrap();
    }

    #[test]
    fn signatures_must_be_ours_and_unchanged() {
        let m = claude();
        let thought = "Let me think.";
        let history = |text: &str, sig: Option<String>| {
            let mut rt = json!({"text": text});
            if let Some(s) = sig {
                rt["signature"] = json!(s);
            }
            json!({"messages": [
                user("q"),
                {"role": "assistant", "content": [{"reasoningContent": {"reasoningText": rt}}, {"text": "answer"}]},
                user("more")
            ]})
        };
        converse(&history(thought, Some(signature_for(thought))), &m).unwrap();
        assert!(
            err(converse(
                &history("Let me think!", Some(signature_for(thought))),
                &m
            ))
            .contains("Invalid `signature`")
        );
        assert!(err(converse(&history(thought, None), &m)).contains("signature: Field required"));
        // Other families do not sign reasoning.
        converse(&history(thought, None), &qwen()).unwrap();
    }

    #[test]
    fn thinking_tool_loops_must_keep_the_thinking_block() {
        let m = claude();
        let mut body = json!({"messages": tool_history("tooluse_1"), "toolConfig": tool_config(),
            "inferenceConfig": {"maxTokens": 4096},
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}});
        assert!(err(converse(&body, &m)).contains("must start with a thinking block"));
        let sig = signature_for("t");
        body["messages"][1]["content"] = json!([{"reasoningContent": {"reasoningText": {"text": "t", "signature": sig}}},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {}}}]);
        converse(&body, &m).unwrap();
        body["inferenceConfig"]["maxTokens"] = json!(1000);
        assert!(err(converse(&body, &m)).contains("max_tokens"));
    }

    #[test]
    fn claude_extra_fields_and_betas_are_checked() {
        let m = claude();
        let body =
            |extra: Value| json!({"messages": [user("hi")], "additionalModelRequestFields": extra});
        converse(
            &body(json!({"top_k": 5, "anthropic_beta": ["context-1m-2025-08-07"]})),
            &m,
        )
        .unwrap();
        assert!(
            err(converse(
                &body(json!({"anthropic_beta": ["claude-code-20250219"]})),
                &m
            ))
            .contains("Unexpected value(s) `claude-code-20250219` for the `anthropic-beta` header")
        );
        assert!(
            err(converse(
                &body(json!({"anthropic_beta": ["made-up-2025-01-01"]})),
                &m
            ))
            .contains("invalid beta flag")
        );
        assert!(err(converse(&body(json!({"frobnicate": true})), &m)).contains("frobnicate"));
        converse(&body(json!({"frobnicate": true})), &qwen()).unwrap();
    }

    #[test]
    fn images_and_documents_are_checked() {
        let m = claude();
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nrest");
        let img = |fmt: &str| json!({"messages": [{"role": "user", "content": [{"image": {"format": fmt, "source": {"bytes": png}}}, {"text": "what?"}]}]});
        converse(&img("png"), &m).unwrap();
        assert!(err(converse(&img("jpeg"), &m)).contains("does not match"));
        let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 x");
        let doc = |name: &str| json!({"document": {"format": "pdf", "name": name, "source": {"bytes": pdf}}});
        converse(&json!({"messages": [{"role": "user", "content": [doc("a"), doc("b"), {"text": "x"}]}]}), &m).unwrap();
        assert!(err(converse(&json!({"messages": [{"role": "user", "content": [doc("document"), doc("document"), {"text": "x"}]}]}), &m)).contains("more than once"));
        assert!(err(converse(&json!({"messages": [{"role": "user", "content": [doc("report.pdf"), {"text": "x"}]}]}), &m)).contains("document file name"));
    }

    #[test]
    fn native_body_rules() {
        let m = claude();
        let ok = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        native(&ok, &m).unwrap();
        for key in ["model", "stream", "cache_control"] {
            let mut b = ok.clone();
            b[key] = json!(true);
            assert!(err(native(&b, &m)).contains(&format!("extraneous key [{key}]")));
        }
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove("anthropic_version");
        assert!(err(native(&b, &m)).contains("required key [anthropic_version]"));
        let mut b = ok.clone();
        b["anthropic_beta"] = json!(["oauth-2025-04-20"]);
        assert!(err(native(&b, &m)).starts_with("Unexpected value(s) `oauth-2025-04-20`"));
        b["anthropic_beta"] = json!(["made-up-2025-01-01"]);
        assert!(err(native(&b, &m)).contains("invalid beta flag"));
        let mut b = ok.clone();
        b["tools"] =
            json!([{"name": "t", "input_schema": {"type": "object"}, "defer_loading": true}]);
        assert_eq!(
            err(native(&b, &m)),
            "tools.0.custom.defer_loading: Extra inputs are not permitted"
        );
        let mut b = ok.clone();
        b["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": " "}]}]);
        assert!(err(native(&b, &m)).contains("non-whitespace"));
        let mut b = ok.clone();
        let cc = json!({"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}});
        b["system"] = json!([cc, cc, cc]);
        b["messages"] = json!([{"role": "user", "content": [cc, cc]}]);
        assert!(err(native(&b, &m)).contains("Found 5"));
    }

    fn opus_4_8() -> Model {
        Catalog::new(Vec::new(), "us-east-1")
            .resolve("us.anthropic.claude-opus-4-8")
            .unwrap()
            .model
            .clone()
    }

    #[test]
    fn bedrock_refuses_first_party_only_fields() {
        let m = claude();
        let ok = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        for (edit, expected) in [
            (
                json!({"anthropic_beta": ["interleaved-thinking-2025-05-14", "prompt-caching-scope-2026-01-05", "files-api-2025-04-14"]}),
                "Unexpected value(s) `prompt-caching-scope-2026-01-05`, `files-api-2025-04-14` for the `anthropic-beta` header",
            ),
            (
                json!({"tools": [{"name": "t", "input_schema": {"type": "object"}, "eager_input_streaming": true}]}),
                "tools.0.custom.eager_input_streaming: Extra inputs are not permitted",
            ),
            (
                json!({"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "global"}}]}),
                "system.0.text.cache_control.ephemeral.scope: Extra inputs are not permitted",
            ),
            (
                json!({"tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "scope": "org"}}]}),
                "tools.0.cache_control.ephemeral.scope: Extra inputs are not permitted",
            ),
            (
                json!({"metadata": {"user_id": "{\"device_id\":\"abc\",\"session_id\":\"1\"}"}}),
                "Request metadata contains a value that violates the regular expression",
            ),
        ] {
            let mut b = ok.clone();
            for (k, v) in edit.as_object().unwrap() {
                b[k] = v.clone();
            }
            assert!(err(native(&b, &m)).contains(expected), "{edit}");
        }
        // What stays accepted: hex and uuid user ids, a cache breakpoint with a ttl, known betas.
        for edit in [
            json!({"metadata": {"user_id": "3f2a9c0e1b7d4a65b8c9d0e1f2a3b4c5"}}),
            json!({"metadata": {"user_id": "123e4567-e89b-12d3-a456-426614174000"}}),
            json!({"metadata": {"user_id": ""}}),
            json!({"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}),
            json!({"anthropic_beta": ["interleaved-thinking-2025-05-14"]}),
        ] {
            let mut b = ok.clone();
            for (k, v) in edit.as_object().unwrap() {
                b[k] = v.clone();
            }
            native(&b, &m).unwrap();
        }
    }

    #[test]
    fn opus_4_7_and_later_take_only_adaptive_thinking() {
        let m = opus_4_8();
        let mut b = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}});
        assert!(
            err(native(&b, &m)).contains("thinking.type.enabled\" is not supported for this model")
        );
        native(&b, &claude()).unwrap();
        b["thinking"] = json!({"type": "adaptive"});
        native(&b, &m).unwrap();
        b["anthropic_version"] = json!("2026-10-21");
        native(&b, &m).unwrap();
        assert!(err(native(&b, &claude())).contains("Invalid API version"));
        let conv = json!({"messages": [user("hi")], "inferenceConfig": {"maxTokens": 4096},
            "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}});
        assert!(err(converse(&conv, &m)).contains("adaptive"));
    }

    #[test]
    fn messages_api_bodies() {
        let m = opus_4_8();
        let ok = json!({"model": "us.anthropic.claude-opus-4-8", "max_tokens": 10, "stream": true,
            "cache_control": {"type": "ephemeral"},
            "messages": [{"role": "user", "content": "hi"}]});
        messages(&ok, &m, Dialect::Messages, &[]).unwrap();
        // Betas come in the header on /anthropic; flags Bedrock does not list are not refused there.
        messages(
            &ok,
            &m,
            Dialect::Messages,
            &[
                "context-management-2025-06-27".into(),
                "mid-conversation-system-2026-01-01".into(),
            ],
        )
        .unwrap();
        assert!(
            err(messages(&ok, &m, Dialect::Messages, &["claude-code-20250219".into(), "oauth-2025-04-20".into()]))
                .starts_with("Unexpected value(s) `claude-code-20250219`, `oauth-2025-04-20` for the `anthropic-beta` header")
        );
        let mut b = ok.clone();
        b["inference_geo"] = json!("us");
        assert_eq!(
            err(messages(&b, &m, Dialect::Messages, &[])),
            "inference_geo: Extra inputs are not permitted"
        );
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(
            err(messages(&b, &m, Dialect::Messages, &[])),
            "max_tokens: Field required"
        );
        let mut b = ok.clone();
        b["cache_control"] = json!({"type": "ephemeral", "scope": "global"});
        assert!(
            err(messages(&b, &m, Dialect::Messages, &[]))
                .contains("cache_control.ephemeral.scope: Extra inputs")
        );
        let count = json!({"model": "anthropic.claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]});
        messages(&count, &m, Dialect::CountTokens, &[]).unwrap();
        let mut b = count.clone();
        b["max_tokens"] = json!(5);
        assert!(
            err(messages(&b, &m, Dialect::CountTokens, &[])).contains("max_tokens: Extra inputs")
        );
        // The InvokeModel body still refuses what the Messages API takes.
        assert!(err(native(&ok, &m)).contains("extraneous key"));
    }

    #[test]
    fn count_tokens_accepts_both_inputs() {
        let m = claude();
        count_tokens(
            &json!({"input": {"converse": {"messages": [user("hi")]}}}),
            &m,
        )
        .unwrap();
        let body = base64::engine::general_purpose::STANDARD
            .encode(br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#);
        assert!(matches!(
            count_tokens(&json!({"input": {"invokeModel": {"body": body}}}), &m),
            Ok(CountInput::Native(_))
        ));
        assert!(count_tokens(&json!({"input": {}}), &m).is_err());
    }
}
