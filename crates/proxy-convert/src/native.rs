//! The native route: the Anthropic body rewritten for Claude's InvokeModel, and the response and
//! stream chunks passed back with the client's model name restored.

use std::borrow::Cow;

use proxy_schema::{
    InputMessage, MessageContent, MessagesRequest, Metadata, Role, System, TaggedText,
};
use serde_json::{Map, Value, json};

use crate::ConvertError;
use crate::family::{BetaSplit, has_beta, header_betas};
use crate::rewrite::{Removal, RemovalKind, scrub_fields, scrub_removes, scrubbed_metadata};

/// The `anthropic_version` Bedrock requires in the native body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Top-level fields Bedrock's Claude body accepts; any other is dropped (Bedrock answers an unknown
/// field with "extraneous key ... is not permitted").
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

/// Client-tool fields Bedrock accepts; others (`defer_loading`, `eager_input_streaming`,
/// `allowed_callers`, ...) are removed.
const TOOL_KEYS: &[&str] = &[
    "type",
    "name",
    "description",
    "input_schema",
    "cache_control",
    "strict",
];

/// Anthropic-defined tools Bedrock runs for Claude (versioned type prefixes); server tools such as
/// web search are not available on Bedrock and are removed.
const BEDROCK_TOOL_TYPES: &[&str] = &["bash_", "text_editor_", "computer_", "memory_"];

/// Whether Bedrock runs the Anthropic-defined tool of this type (see [`BEDROCK_TOOL_TYPES`]).
fn bedrock_runs(tool_type: &str) -> bool {
    BEDROCK_TOOL_TYPES.iter().any(|p| tool_type.starts_with(p))
}

fn count_cache_controls(v: &Value) -> usize {
    match v {
        Value::Object(o) => {
            usize::from(o.get("cache_control").is_some_and(|c| !c.is_null()))
                + o.iter()
                    .filter(|(k, _)| *k != "cache_control" && *k != "input_schema")
                    .map(|(_, v)| count_cache_controls(v))
                    .sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_cache_controls).sum(),
        _ => 0,
    }
}

/// A body for Bedrock and what the rules of this crate removed on the way (see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeBody {
    /// The InvokeModel (and InvokeModelWithResponseStream, CountTokens) body.
    pub body: Value,
    /// What was removed: count it, log it; the request goes on without it.
    pub removals: Vec<Removal>,
}

/// Rewrites a client's `/v1/messages` request into the InvokeModel body for `bedrock_model_id`:
/// `anthropic_version` set, `model` and `stream` removed, betas from the `anthropic-beta` header
/// (and a body `anthropic_beta`) filtered into `anthropic_beta`, `role: "system"` messages moved
/// into `system`, top-level `cache_control` applied to the last block, and fields Bedrock rejects
/// removed (the removals listed in the crate docs are reported in [`NativeBody::removals`]).
///
/// Errors (never panics) when the request has no `max_tokens`, which Bedrock requires.
pub fn to_native_body(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<NativeBody, ConvertError> {
    if req.max_tokens.is_none() {
        return Err(ConvertError::new("max_tokens", "Field required"));
    }
    native_body(req.clone(), bedrock_model_id, anthropic_beta)
}

/// [`to_native_body`] written as JSON bytes, what a caller sends: the same bytes as serializing
/// [`NativeBody::body`], without building the `Value` tree (the typed request is written directly,
/// `role: "system"` messages moved on the way) unless a top-level `cache_control` has to be placed
/// or a tool Bedrock does not take has to go. Every Claude Code request takes the direct path.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeJson {
    /// The JSON body.
    pub body: Vec<u8>,
    /// As [`NativeBody::removals`].
    pub removals: Vec<Removal>,
}

/// [`to_native_body`], written as JSON ([`NativeJson`]).
pub fn to_native_json(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<NativeJson, ConvertError> {
    if req.max_tokens.is_none() {
        return Err(ConvertError::new("max_tokens", "Field required"));
    }
    let mut body = Vec::with_capacity(1024);
    let mut removals = Vec::new();
    if let Some((betas, metadata)) =
        rules_in_place(req, anthropic_beta, bedrock_model_id, &mut removals)
        && let Some(view) = NativeView::of(req, &betas, metadata.as_deref())
    {
        serde_json::to_writer(&mut body, &view).map_err(unserializable)?;
        return Ok(NativeJson { body, removals });
    }
    let mut req = req.clone();
    let mut removals = Vec::new();
    let betas = take_betas(&mut req, anthropic_beta, bedrock_model_id, &mut removals);
    scrub_fields(&mut req, &mut removals);
    let Some(view) = NativeView::of(&req, &betas, req.metadata.as_ref()) else {
        let built = native_tree(req, betas, removals)?;
        return Ok(NativeJson {
            body: serde_json::to_vec(&built.body).map_err(unserializable)?,
            removals: built.removals,
        });
    };
    serde_json::to_writer(&mut body, &view).map_err(unserializable)?;
    Ok(NativeJson { body, removals })
}

/// The native body as the typed request writes it, in the tree's key order: `anthropic_version`,
/// `anthropic_beta`, then the request's fields Bedrock takes in their serialization order, the
/// unknown ones (only `context_management` is kept of those) last, and a `system` the request did
/// not have (made of its system messages) after them.
#[derive(serde::Serialize)]
struct NativeView<'a> {
    anthropic_version: &'static str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    anthropic_beta: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    messages: Conversation<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<UserId<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [proxy_schema::Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a proxy_schema::ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a proxy_schema::Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a proxy_schema::OutputConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_management: Option<&'a Value>,
    #[serde(rename = "system", skip_serializing_if = "Option::is_none")]
    system_added: Option<SystemOut<'a>>,
}

/// `messages` less its `role: "system"` messages (they move into `system`).
pub(crate) struct Conversation<'a>(pub(crate) &'a [InputMessage]);

impl serde::Serialize for Conversation<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|m| m.role != Role::System))
    }
}

/// `system` as [`move_system_messages`] leaves it.
pub(crate) enum SystemOut<'a> {
    /// No system message had content to move.
    Kept(&'a System),
    /// The request's system prompt as blocks (an empty string none), then what the system
    /// messages said.
    Merged(Option<&'a System>, &'a [InputMessage]),
}

impl serde::Serialize for SystemOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        /// A text block made of a string.
        #[derive(serde::Serialize)]
        struct Plain<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            text: &'a str,
        }
        let (system, messages) = match self {
            SystemOut::Kept(system) => return system.serialize(s),
            SystemOut::Merged(system, messages) => (system, messages),
        };
        let plain = |text| Plain { kind: "text", text };
        let mut seq = s.serialize_seq(None)?;
        match system {
            Some(System::Text(t)) if !t.is_empty() => seq.serialize_element(&plain(t))?,
            Some(System::Blocks(blocks)) => {
                for block in blocks {
                    seq.serialize_element(&TaggedText { block })?;
                }
            }
            _ => {}
        }
        for m in messages.iter().filter(|m| m.role == Role::System) {
            match &m.content {
                MessageContent::Text(t) => seq.serialize_element(&plain(t))?,
                MessageContent::Blocks(blocks) => {
                    for block in blocks {
                        seq.serialize_element(block)?;
                    }
                }
            }
        }
        seq.end()
    }
}

impl<'a> SystemOut<'a> {
    /// `system` where the request has it, and `system` added after the other fields where it has
    /// none and its system messages make one, as [`move_system_messages`] leaves them: system
    /// messages leave `messages`; when one of them has content (an empty string counts, an empty
    /// block list does not), `system` becomes blocks.
    pub(crate) fn of(req: &'a MessagesRequest) -> (Option<Self>, Option<Self>) {
        let moves = req.messages.iter().any(|m| {
            m.role == Role::System
                && match &m.content {
                    MessageContent::Text(_) => true,
                    MessageContent::Blocks(b) => !b.is_empty(),
                }
        });
        match (&req.system, moves) {
            (Some(system), false) => (Some(SystemOut::Kept(system)), None),
            (None, false) => (None, None),
            (system, true) => {
                let merged = SystemOut::Merged(system.as_ref(), &req.messages);
                if system.is_some() {
                    (Some(merged), None)
                } else {
                    (None, Some(merged))
                }
            }
        }
    }
}

/// `metadata` as Bedrock takes it: the user id alone.
#[derive(serde::Serialize)]
struct UserId<'a> {
    user_id: &'a str,
}

impl<'a> NativeView<'a> {
    /// The view of a request whose betas are taken out and fields scrubbed, or None when the tree
    /// has work to do: a top-level `cache_control` to place, a tool to drop or trim (the rules of
    /// [`native_tree`]).
    fn of(
        req: &'a MessagesRequest,
        betas: &'a [String],
        metadata: Option<&'a proxy_schema::Metadata>,
    ) -> Option<Self> {
        if req.cache_control.is_some() {
            return None;
        }
        if let Some(tools) = &req.tools {
            let keep_examples = has_beta(betas, "tool-examples-");
            let unchanged = |t: &proxy_schema::Tool| match t.kind.as_deref() {
                None | Some("custom") => t
                    .extra
                    .keys()
                    .all(|k| keep_examples && k == "input_examples"),
                Some(t) => bedrock_runs(t),
            };
            if tools.is_empty() || !tools.iter().all(unchanged) {
                return None;
            }
        }
        let context_management = req
            .extra
            .get("context_management")
            .filter(|_| has_beta(betas, "context-management-"));
        let (system, system_added) = SystemOut::of(req);
        Some(NativeView {
            anthropic_version: BEDROCK_ANTHROPIC_VERSION,
            anthropic_beta: betas,
            max_tokens: req.max_tokens,
            messages: Conversation(&req.messages),
            system,
            metadata: metadata
                .and_then(|m| m.user_id.as_deref())
                .map(|user_id| UserId { user_id }),
            stop_sequences: req.stop_sequences.as_deref(),
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            tools: req.tools.as_deref(),
            tool_choice: req.tool_choice.as_ref(),
            thinking: req.thinking.as_ref(),
            output_config: req.output_config.as_ref(),
            context_management,
            system_added,
        })
    }
}

/// The InvokeModel body that Bedrock's CountTokens takes for a `/v1/messages/count_tokens`
/// request: as [`to_native_body`], with `max_tokens: 1` when the request has none (the body must
/// have one; counting generates nothing).
pub fn to_native_count_tokens_body(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<NativeBody, ConvertError> {
    let mut req = req.clone();
    req.max_tokens.get_or_insert(1);
    native_body(req, bedrock_model_id, anthropic_beta)
}

fn native_body(
    mut req: MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<NativeBody, ConvertError> {
    let mut removals = Vec::new();
    let betas = take_betas(&mut req, anthropic_beta, bedrock_model_id, &mut removals);
    scrub_fields(&mut req, &mut removals);
    native_tree(req, betas, removals)
}

/// The native body as a tree, of a request whose betas are taken out and fields scrubbed.
fn native_tree(
    mut req: MessagesRequest,
    betas: Vec<String>,
    removals: Vec<Removal>,
) -> Result<NativeBody, ConvertError> {
    let top_cache_control = req
        .cache_control
        .take()
        .map(|cc| serde_json::to_value(cc).map_err(unserializable))
        .transpose()?;
    let src = to_object(&req)?;

    let mut out = Map::new();
    out.insert("anthropic_version".into(), json!(BEDROCK_ANTHROPIC_VERSION));
    if !betas.is_empty() {
        out.insert("anthropic_beta".into(), json!(betas));
    }
    for (key, value) in src {
        match key.as_str() {
            "model" | "stream" | "anthropic_version" | "anthropic_beta" | "cache_control" => {}
            "context_management" if !has_beta(&betas, "context-management-") => {
                tracing::debug!("context_management without its beta; dropped");
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("metadata".into(), json!({"user_id": user}));
                }
            }
            k if NATIVE_KEYS.contains(&k) => {
                out.insert(key, value);
            }
            other => tracing::debug!(
                field = other,
                "no place for this field in Bedrock's Claude body; dropped"
            ),
        }
    }

    move_system_messages(&mut out);

    if let Some(Value::Array(tools)) = out.get_mut("tools") {
        let keep_examples = has_beta(&betas, "tool-examples-");
        tools.retain_mut(|tool| {
            let Some(obj) = tool.as_object_mut() else {
                return false;
            };
            match obj.get("type").and_then(Value::as_str) {
                None | Some("custom") => {
                    obj.retain(|k, _| {
                        TOOL_KEYS.contains(&k.as_str()) || (keep_examples && k == "input_examples")
                    });
                    true
                }
                Some(t) if bedrock_runs(t) => true,
                Some(t) => {
                    tracing::debug!(
                        tool_type = t,
                        "server tool not available on Bedrock; dropped"
                    );
                    false
                }
            }
        });
        if tools.is_empty() {
            out.remove("tools");
            out.remove("tool_choice");
        }
    }

    // Top-level cache_control marks the last cacheable block of the last message (the native body
    // has no top-level field for it), unless that would make more than 4 breakpoints.
    if let Some(cc) = top_cache_control
        && out.values().map(count_cache_controls).sum::<usize>() < 4
        && let Some(Value::Array(messages)) = out.get_mut("messages")
        && let Some(Value::Object(last)) = messages.last_mut()
    {
        if let Some(Value::String(s)) = last.get_mut("content") {
            let text = std::mem::take(s);
            last.insert("content".into(), json!([{"type": "text", "text": text}]));
        }
        if let Some(Value::Array(blocks)) = last.get_mut("content")
            && let Some(Value::Object(block)) = blocks.last_mut()
            && !block.contains_key("cache_control")
            && !matches!(
                block.get("type").and_then(Value::as_str),
                Some("thinking") | Some("redacted_thinking")
            )
        {
            block.insert("cache_control".into(), cc);
        }
    }
    Ok(NativeBody {
        body: Value::Object(out),
        removals,
    })
}

/// The betas for Bedrock from the `anthropic-beta` header and a body `anthropic_beta` list (taken
/// out of the request, with any body `anthropic_version`: each route sets its own), the dropped
/// ones appended to `removals`.
pub(crate) fn take_betas(
    req: &mut MessagesRequest,
    header: Option<&str>,
    bedrock_model_id: &str,
    removals: &mut Vec<Removal>,
) -> Vec<String> {
    let kept = kept_betas(req, header, bedrock_model_id, removals);
    for field in BETA_FIELDS {
        req.extra.remove(field);
    }
    kept
}

/// The fields of the request's unknown ones that [`take_betas`] takes out.
const BETA_FIELDS: [&str; 2] = ["anthropic_version", "anthropic_beta"];

/// The field rules of both Claude body routes ([`take_betas`], [`scrub_fields`]) applied without a
/// copy of the request, where they change nothing in it but `metadata.user_id`: the betas to send
/// and `metadata` as it is to be written (what they removed appended to `removals`). `None` when
/// they have more to change (a `cache_control.scope`, an `eager_input_streaming`, body betas): the
/// request has to be copied and rewritten. A copy of a Claude Code request, its tools' schemas and
/// its history, cost more than writing it.
pub(crate) fn rules_in_place<'a>(
    req: &'a MessagesRequest,
    header: Option<&str>,
    bedrock_model_id: &str,
    removals: &mut Vec<Removal>,
) -> Option<(Vec<String>, Option<Cow<'a, Metadata>>)> {
    if scrub_removes(req) || BETA_FIELDS.iter().any(|f| req.extra.contains_key(*f)) {
        return None;
    }
    let betas = kept_betas(req, header, bedrock_model_id, removals);
    Some((betas, scrubbed_metadata(req.metadata.as_ref(), removals)))
}

/// [`take_betas`] without taking anything out of the request.
fn kept_betas(
    req: &MessagesRequest,
    header: Option<&str>,
    bedrock_model_id: &str,
    removals: &mut Vec<Removal>,
) -> Vec<String> {
    let mut split = BetaSplit::of_header(header, bedrock_model_id);
    if let Some(Value::Array(body_betas)) = req.extra.get("anthropic_beta") {
        let names = body_betas
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|b| header_betas(Some(b)));
        split.extend(names, bedrock_model_id);
    }
    removals.extend(
        split
            .dropped
            .into_iter()
            .map(|d| Removal::new(RemovalKind::Beta, d)),
    );
    split.kept
}

/// The request as a JSON object (what serde makes of it: its known fields, then the unknown ones).
pub(crate) fn to_object(req: &MessagesRequest) -> Result<Map<String, Value>, ConvertError> {
    match serde_json::to_value(req).map_err(unserializable)? {
        Value::Object(map) => Ok(map),
        _ => Err(ConvertError::new("", "the request is not a JSON object")),
    }
}

pub(crate) fn unserializable(e: serde_json::Error) -> ConvertError {
    ConvertError::new("", format!("the request cannot be written as JSON: {e}"))
}

/// Moves `role: "system"` messages into `system`, after what it already holds (Bedrock's Claude
/// bodies have no system role inside `messages`).
pub(crate) fn move_system_messages(out: &mut Map<String, Value>) {
    let Some(Value::Array(messages)) = out.get_mut("messages") else {
        return;
    };
    if !messages.iter().any(is_system_message) {
        return;
    }
    let mut moved = Vec::new();
    for mut m in std::mem::take(messages) {
        if !is_system_message(&m) {
            messages.push(m);
            continue;
        }
        match m.get_mut("content").map(Value::take) {
            Some(Value::String(s)) => moved.push(json!({"type": "text", "text": s})),
            Some(Value::Array(blocks)) => moved.extend(blocks),
            _ => {}
        }
    }
    if moved.is_empty() {
        return;
    }
    let system = match out.get_mut("system").map(Value::take) {
        Some(Value::String(s)) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(blocks)) => blocks,
        _ => Vec::new(),
    };
    out.insert(
        "system".into(),
        Value::Array(system.into_iter().chain(moved).collect()),
    );
}

fn is_system_message(m: &Value) -> bool {
    m.get("role").and_then(Value::as_str) == Some("system")
}

/// Puts the client's model name back into a native response message.
pub fn restore_model(message: &mut Value, model: &str) {
    if let Some(obj) = message.as_object_mut() {
        obj.insert("model".into(), json!(model));
    }
}

/// One decoded `chunk` of InvokeModelWithResponseStream.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeChunk {
    /// The Anthropic event (`type` is its SSE name), model name restored, Bedrock metrics removed.
    pub event: Value,
    /// `amazon-bedrock-invocationMetrics`, when the chunk carried them (the last one does).
    pub metrics: Option<Value>,
}

impl NativeChunk {
    /// The SSE event name.
    pub fn name(&self) -> &str {
        self.event["type"].as_str().unwrap_or("unknown")
    }

    /// The event as SSE text.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name(), self.event)
    }
}

/// Decodes a chunk's bytes (one Anthropic event as JSON) and restores the client's model name.
pub fn native_chunk(bytes: &[u8], model: &str) -> Result<NativeChunk, ConvertError> {
    let mut event: Value = serde_json::from_slice(bytes).map_err(|e| {
        ConvertError::new(
            "",
            format!("Bedrock sent a stream chunk that is not JSON: {e}"),
        )
    })?;
    // The type becomes the SSE `event:` line: a line break in it would break the client's stream
    // (or smuggle events into it), and an empty one reads as an event named `message`.
    if event["type"]
        .as_str()
        .is_some_and(|t| t.is_empty() || t.contains(['\r', '\n']))
    {
        return Err(ConvertError::new(
            "type",
            "Bedrock sent a stream chunk whose type is not an event name",
        ));
    }
    let metrics = event
        .as_object_mut()
        .and_then(|o| o.remove("amazon-bedrock-invocationMetrics"));
    if event["type"] == "message_start" {
        restore_model(&mut event["message"], model);
    }
    Ok(NativeChunk { event, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    fn parse(body: &Value) -> MessagesRequest {
        proxy_schema::parse_messages_request(&serde_json::to_vec(body).unwrap()).unwrap()
    }

    fn native(body: &Value, beta: Option<&str>) -> NativeBody {
        to_native_body(&parse(body), SONNET, beta).unwrap()
    }

    /// The bytes of [`to_native_json`] against the tree's, and whether the direct path wrote them.
    fn json_matches_tree(body: &Value, beta: Option<&str>) -> bool {
        let req = parse(body);
        let tree = to_native_body(&req, SONNET, beta).unwrap();
        let json = to_native_json(&req, SONNET, beta).unwrap();
        assert_eq!(
            String::from_utf8(json.body).unwrap(),
            serde_json::to_string(&tree.body).unwrap(),
            "{body}"
        );
        assert_eq!(json.removals, tree.removals, "{body}");
        let mut req = req;
        let mut removals = Vec::new();
        let betas = take_betas(&mut req, beta, SONNET, &mut removals);
        scrub_fields(&mut req, &mut removals);
        NativeView::of(&req, &betas, req.metadata.as_ref()).is_some()
    }

    #[test]
    fn the_json_is_the_trees_bytes_for_every_claude_code_request() {
        for (path, body) in &crate::claude_code_fixtures() {
            let betas = "context-management-2025-06-27,interleaved-thinking-2025-05-14";
            // Claude Code's requests take the direct path, with its betas or without.
            assert!(json_matches_tree(body, Some(betas)), "{}", path.display());
            assert!(json_matches_tree(body, None), "{}", path.display());
            // Without its system prompt (the system messages make one, last), or with it as a
            // string.
            let mut no_system = body.clone();
            no_system.as_object_mut().unwrap().remove("system");
            assert!(json_matches_tree(&no_system, Some(betas)));
            let mut text_system = body.clone();
            text_system["system"] = json!("terse");
            assert!(json_matches_tree(&text_system, Some(betas)));
            // The tree's work is still done where there is some.
            let mut top_cache = body.clone();
            top_cache["cache_control"] = json!({"type": "ephemeral"});
            assert!(!json_matches_tree(&top_cache, Some(betas)));
        }
    }

    #[test]
    fn the_json_is_the_trees_bytes_for_each_rule() {
        let base = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        });
        let with = |extra: Value| {
            let mut b = base.clone();
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            b
        };
        let tool = json!({"name": "t", "input_schema": {"type": "object"}});
        // (body, beta header, written directly)
        let cases = [
            (base.clone(), None, true),
            (
                with(
                    json!({"temperature": 1.0, "top_p": 0.5, "top_k": 3, "stop_sequences": ["x"],
                    "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "global"}}],
                    "service_tier": "auto", "container": {"id": "c"}}),
                ),
                None,
                true,
            ),
            (
                with(json!({"metadata": {"user_id": "u1", "other": 1}})),
                None,
                true,
            ),
            (with(json!({"metadata": {"other": 1}})), None, true),
            (
                with(json!({"metadata": {"user_id": "has spaces and a @ sign"}})),
                None,
                true,
            ),
            (
                with(json!({"context_management": {"edits": []}})),
                Some("context-management-2025-06-27"),
                true,
            ),
            (
                with(json!({"context_management": {"edits": []}})),
                None,
                true,
            ),
            (
                with(
                    json!({"anthropic_beta": ["interleaved-thinking-2025-05-14", "not-a-beta"],
                    "anthropic_version": "x"}),
                ),
                Some("files-api-2025-04-14"),
                true,
            ),
            (
                with(
                    json!({"tools": [tool, {"type": "bash_20250124", "name": "bash"}],
                    "tool_choice": {"type": "auto"}}),
                ),
                None,
                true,
            ),
            (
                with(
                    json!({"tools": [{"name": "t", "input_schema": {}, "eager_input_streaming": true}]}),
                ),
                None,
                true,
            ),
            (
                with(json!({"tools": [{"name": "t", "input_schema": {}, "input_examples": [{}]}]})),
                Some("tool-examples-2025-10-29"),
                true,
            ),
            (
                with(json!({"tools": [{"name": "t", "input_schema": {}, "input_examples": [{}]}]})),
                None,
                false,
            ),
            (
                with(json!({"tools": [{"name": "t", "input_schema": {}, "defer_loading": true}]})),
                None,
                false,
            ),
            (
                with(
                    json!({"tools": [tool, {"type": "web_search_20250305", "name": "web_search"}],
                    "tool_choice": {"type": "any"}}),
                ),
                None,
                false,
            ),
            (
                with(json!({"tools": [], "tool_choice": {"type": "auto"}})),
                None,
                false,
            ),
            (with(json!({"tool_choice": {"type": "auto"}})), None, true),
            (
                with(json!({"cache_control": {"type": "ephemeral"}})),
                None,
                false,
            ),
            // System messages: moved after a string, after blocks, into a new `system`, with
            // blocks of their own; an empty string moves.
            (
                with(json!({"system": "terse", "messages": [
                    {"role": "system", "content": "a"}, {"role": "user", "content": "hi"},
                    {"role": "system", "content": [{"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]}]})),
                None,
                true,
            ),
            (
                with(
                    json!({"system": [{"type": "text", "text": "s"}], "temperature": 0.5,
                    "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": ""}]}),
                ),
                None,
                true,
            ),
            (
                with(
                    json!({"messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "hi"}],
                    "context_management": {}, "service_tier": "auto"}),
                ),
                Some("context-management-2025-06-27"),
                true,
            ),
            (
                with(
                    json!({"system": "", "messages": [{"role": "user", "content": "hi"},
                    {"role": "system", "content": "a"}]}),
                ),
                None,
                true,
            ),
        ];
        for (body, beta, direct) in cases {
            assert_eq!(json_matches_tree(&body, beta), direct, "{body}");
        }
        // A system message with no blocks (parsing refuses one; a caller may build it) leaves
        // `system` as it was.
        let mut req = parse(&with(json!({"system": "keep me a string", "messages": [
            {"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]})));
        req.messages[1].content = MessageContent::Blocks(Vec::new());
        let json = to_native_json(&req, SONNET, None).unwrap();
        let tree = to_native_body(&req, SONNET, None).unwrap();
        assert_eq!(json.body, serde_json::to_vec(&tree.body).unwrap());
        assert_eq!(tree.body["system"], json!("keep me a string"));
        assert_eq!(tree.body["messages"].as_array().unwrap().len(), 1);
        let mut no_max = parse(&base);
        no_max.max_tokens = None;
        assert_eq!(
            to_native_json(&no_max, SONNET, None).unwrap_err(),
            to_native_body(&no_max, SONNET, None).unwrap_err()
        );
    }

    #[test]
    fn rewrites_the_body_for_bedrock() {
        let body = json!({
            "model": "claude-sonnet-4-5", "stream": true, "max_tokens": 100, "service_tier": "auto",
            "cache_control": {"type": "ephemeral"},
            "metadata": {"user_id": "u1", "other": 1},
            "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"}],
            "system": "You are terse.",
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "defer_loading": true, "eager_input_streaming": true},
                      {"type": "web_search_20250305", "name": "web_search"},
                      {"type": "bash_20250124", "name": "bash"}],
            "context_management": {"edits": []}
        });
        let NativeBody {
            body: out,
            removals,
        } = native(
            &body,
            Some("claude-code-20250219,interleaved-thinking-2025-05-14"),
        );
        assert_eq!(out["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        assert_eq!(
            out["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14"])
        );
        for gone in [
            "model",
            "stream",
            "service_tier",
            "cache_control",
            "context_management",
        ] {
            assert!(out.get(gone).is_none(), "{gone} must be removed");
        }
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert_eq!(out["messages"].as_array().unwrap().len(), 1);
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "You are terse."}, {"type": "text", "text": "be brief"}])
        );
        assert_eq!(
            out["tools"],
            json!([{"name": "t", "input_schema": {"type": "object"}}, {"type": "bash_20250124", "name": "bash"}])
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            removals,
            [
                Removal::new(RemovalKind::Beta, "claude-code-20250219"),
                Removal::new(RemovalKind::EagerInputStreaming, "t")
            ]
        );
    }

    #[test]
    fn what_bedrock_rejects_is_removed_and_reported() {
        let claude_code_user = r#"{"device_id":"ab","account_uuid":"","session_id":"s"}"#;
        let scoped = json!({"type": "ephemeral", "scope": "global"});
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100,
            "anthropic_beta": ["files-api-2025-04-14", "context-1m-2025-08-07"],
            "metadata": {"user_id": claude_code_user},
            "system": [{"type": "text", "text": "s", "cache_control": scoped}],
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "r", "cache_control": scoped}]},
                {"type": "text", "text": "hi", "cache_control": scoped}]}],
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": scoped}]
        });
        let NativeBody {
            body: out,
            removals,
        } = native(
            &body,
            Some(
                "oauth-2025-04-20,prompt-caching-scope-2026-01-05,interleaved-thinking-2025-05-14",
            ),
        );
        assert_eq!(
            out["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"])
        );
        let plain = json!({"type": "ephemeral"});
        assert_eq!(out["system"][0]["cache_control"], plain);
        assert_eq!(
            out["messages"][0]["content"][0]["content"][0]["cache_control"],
            plain
        );
        assert_eq!(out["messages"][0]["content"][1]["cache_control"], plain);
        assert_eq!(out["tools"][0]["cache_control"], plain);
        let user_id = out["metadata"]["user_id"].as_str().unwrap();
        assert_eq!(
            Some(user_id.to_owned()),
            crate::user_id_for_bedrock(claude_code_user)
        );
        let seen: Vec<(&str, &str)> = removals
            .iter()
            .map(|r| (r.label(), r.detail.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("beta", "oauth-2025-04-20"),
                ("beta", "prompt-caching-scope-2026-01-05"),
                ("beta", "files-api-2025-04-14"),
                ("cache_control_scope", "system.0"),
                ("cache_control_scope", "messages.0.content.0.content.0"),
                ("cache_control_scope", "messages.0.content.1"),
                ("cache_control_scope", "tools.0"),
                ("metadata_user_id", "metadata.user_id"),
            ]
        );
    }

    #[test]
    fn the_body_that_panicked_is_an_error() {
        // `{"cache_control":...,"messages":[5]}` made the Value-based rewrite index into a number.
        for body in [
            &br#"{"cache_control":{"type":"ephemeral"},"messages":[5]}"#[..],
            br#"{"model":"m","max_tokens":1,"cache_control":{"type":"ephemeral"},"messages":[5]}"#,
            br#"{"model":"m","max_tokens":1,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":[5]}]}"#,
        ] {
            assert!(proxy_schema::parse_messages_request(body).is_err());
            assert!(proxy_schema::parse_count_tokens_request(body).is_err());
        }
    }

    #[test]
    fn top_level_cache_control_marks_the_last_cacheable_block_only() {
        let cc = json!({"type": "ephemeral"});
        // The last block is thinking: nothing to mark.
        let out = native(
            &json!({"model": "m", "max_tokens": 1, "cache_control": cc, "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}]}),
            None,
        );
        assert!(
            out.body["messages"][1]["content"][0]
                .get("cache_control")
                .is_none()
        );
        // An existing breakpoint on the last block is kept as it is.
        let ttl = json!({"type": "ephemeral", "ttl": "1h"});
        let out = native(
            &json!({"model": "m", "max_tokens": 1, "cache_control": cc, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": ttl}]}]}),
            None,
        );
        assert_eq!(out.body["messages"][0]["content"][0]["cache_control"], ttl);
        // Four breakpoints already: a fifth would be refused, so none is added.
        let block = json!({"type": "text", "text": "x", "cache_control": cc});
        let out = native(
            &json!({"model": "m", "max_tokens": 1, "cache_control": cc,
                "system": [block, block, block, block],
                "messages": [{"role": "user", "content": "q"}]}),
            None,
        );
        assert_eq!(out.body["messages"][0]["content"], "q");
    }

    #[test]
    fn max_tokens_is_required_except_for_counting() {
        let req = proxy_schema::parse_count_tokens_request(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        let err = to_native_body(&req, SONNET, None).unwrap_err();
        assert_eq!(err.path, "max_tokens");
        let out = to_native_count_tokens_body(&req, SONNET, None).unwrap();
        assert_eq!(
            out.body,
            json!({"anthropic_version": BEDROCK_ANTHROPIC_VERSION, "max_tokens": 1,
                   "messages": [{"role": "user", "content": "hi"}]})
        );
        let mut with_max = req.clone();
        with_max.max_tokens = Some(77);
        let out = to_native_count_tokens_body(&with_max, SONNET, None).unwrap();
        assert_eq!(out.body["max_tokens"], 77);
        assert_eq!(out, to_native_body(&with_max, SONNET, None).unwrap());
    }

    #[test]
    fn chunks_get_the_client_model_back() {
        let chunk = native_chunk(br#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_bdrk_1"}}"#, "my-alias").unwrap();
        assert_eq!(chunk.event["message"]["model"], "my-alias");
        assert_eq!(chunk.name(), "message_start");
        let stop = native_chunk(
            br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#,
            "m",
        )
        .unwrap();
        assert_eq!(stop.event, json!({"type": "message_stop"}));
        assert_eq!(stop.metrics.as_ref().unwrap()["inputTokenCount"], 3);
        assert_eq!(
            stop.to_sse(),
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }
}
