//! The Messages route: the body for Bedrock's Anthropic Messages API (`/anthropic/v1/messages` on
//! bedrock-runtime and bedrock-mantle), which takes Anthropic's own request shape.

use proxy_schema::MessagesRequest;
use serde_json::{Map, Value};

use crate::ConvertError;
use crate::native::{
    Conversation, SystemOut, move_system_messages, rules_in_place, take_betas, to_object,
    unserializable,
};
use crate::rewrite::{Removal, scrub_fields};

/// A body for Bedrock's Anthropic Messages API, the betas for its `anthropic-beta` header, and what
/// was removed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesBody {
    /// The JSON body: the client's request (unknown fields kept, `stream` kept) with `model` set to
    /// the Bedrock id.
    pub body: Value,
    /// The betas Bedrock accepts for the model, for the `anthropic-beta` header (none: no header).
    pub betas: Vec<String>,
    /// What was removed: count it, log it; the request goes on without it.
    pub removals: Vec<Removal>,
}

/// Builds the body of a call to Bedrock's Anthropic Messages API for `bedrock_model_id` (a profile
/// id on bedrock-runtime, a bare `anthropic.*` id on bedrock-mantle): near pass-through, so the
/// client's request with `model` rewritten, and only what Bedrock rejects taken out:
///
/// - betas (from the `anthropic-beta` header and a body `anthropic_beta`) go through the same
///   per-model filter as the native route and come back in [`MessagesBody::betas`] for the header
///   (this API takes them as a header, not in the body);
/// - `tools[].eager_input_streaming`, `cache_control.scope`, and a `metadata.user_id` Bedrock's
///   pattern refuses, as on the native route (see the crate docs);
/// - `role: "system"` messages move into `system`, as on the native route: their beta
///   (`mid-conversation-system-*`) is not on the filter's list, and without it a system role inside
///   `messages` is not expected to be accepted (not confirmed either way, so the safe form is sent);
/// - no `anthropic_version` in the body: the version travels as the `anthropic-version` header
///   (what peers send to the runtime endpoint; whether the runtime endpoint also accepts or requires
///   the body field is not confirmed, so none is sent).
///
/// `max_tokens` is not required, so a `/v1/messages/count_tokens` request makes the body of
/// Mantle's `/anthropic/v1/messages/count_tokens` the same way.
pub fn to_messages_body(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<MessagesBody, ConvertError> {
    let (req, betas, removals) = rewritten(req, bedrock_model_id, anthropic_beta);
    let mut body = to_object(&req)?;
    move_system_messages(&mut body);
    Ok(MessagesBody {
        body: Value::Object(body),
        betas,
        removals,
    })
}

/// [`to_messages_body`] written as JSON bytes, what a caller sends: the same bytes as serializing
/// [`MessagesBody::body`], written from the typed request without building the `Value` tree
/// (`role: "system"` messages, which Claude Code sends, moved on the way).
#[derive(Debug, Clone, PartialEq)]
pub struct MessagesJson {
    /// The JSON body.
    pub body: Vec<u8>,
    /// As [`MessagesBody::betas`].
    pub betas: Vec<String>,
    /// As [`MessagesBody::removals`].
    pub removals: Vec<Removal>,
}

/// [`to_messages_body`], written as JSON ([`MessagesJson`]).
pub fn to_messages_json(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<MessagesJson, ConvertError> {
    let mut body = Vec::with_capacity(1024);
    let mut removals = Vec::new();
    if let Some((betas, metadata)) =
        rules_in_place(req, anthropic_beta, bedrock_model_id, &mut removals)
    {
        let view = MessagesView::of(req, bedrock_model_id, metadata.as_deref());
        serde_json::to_writer(&mut body, &view).map_err(unserializable)?;
        return Ok(MessagesJson {
            body,
            betas,
            removals,
        });
    }
    let (req, betas, removals) = rewritten(req, bedrock_model_id, anthropic_beta);
    let view = MessagesView::of(&req, &req.model, req.metadata.as_ref());
    serde_json::to_writer(&mut body, &view).map_err(unserializable)?;
    Ok(MessagesJson {
        body,
        betas,
        removals,
    })
}

/// The Messages body as the typed request writes it, in the tree's key order: the request's fields
/// in their serialization order, its unknown fields, and a `system` the request did not have (made
/// of its system messages) after them, where [`move_system_messages`] appends it.
#[derive(serde::Serialize)]
struct MessagesView<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    messages: Conversation<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a proxy_schema::Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
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
    cache_control: Option<&'a proxy_schema::CacheControl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<&'a proxy_schema::OutputConfig>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    #[serde(rename = "system", skip_serializing_if = "Option::is_none")]
    system_added: Option<SystemOut<'a>>,
}

impl<'a> MessagesView<'a> {
    fn of(
        req: &'a MessagesRequest,
        model: &'a str,
        metadata: Option<&'a proxy_schema::Metadata>,
    ) -> Self {
        let (system, system_added) = SystemOut::of(req);
        MessagesView {
            model,
            max_tokens: req.max_tokens,
            messages: Conversation(&req.messages),
            system,
            metadata,
            stop_sequences: req.stop_sequences.as_deref(),
            stream: req.stream,
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            tools: req.tools.as_deref(),
            tool_choice: req.tool_choice.as_ref(),
            thinking: req.thinking.as_ref(),
            cache_control: req.cache_control.as_ref(),
            output_config: req.output_config.as_ref(),
            extra: &req.extra,
            system_added,
        }
    }
}

/// The request with its betas taken out (kept ones returned), what Bedrock rejects removed, and
/// the Bedrock model id.
fn rewritten(
    req: &MessagesRequest,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> (MessagesRequest, Vec<String>, Vec<Removal>) {
    let mut req = req.clone();
    let mut removals = Vec::new();
    let betas = take_betas(&mut req, anthropic_beta, bedrock_model_id, &mut removals);
    scrub_fields(&mut req, &mut removals);
    bedrock_model_id.clone_into(&mut req.model);
    (req, betas, removals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::RemovalKind;
    use serde_json::json;

    const OPUS: &str = "global.anthropic.claude-opus-4-8";

    #[test]
    fn the_json_is_the_trees_bytes_for_every_claude_code_request() {
        let mut seen = 0;
        for (path, body) in crate::claude_code_fixtures() {
            let req = parse(&body);
            for mut req in [req.clone(), {
                // And with a system message to move.
                let mut r = req;
                r.messages.insert(
                    0,
                    serde_json::from_value(json!({"role": "system", "content": "terse"})).unwrap(),
                );
                r
            }] {
                req.stream = Some(true);
                let tree =
                    to_messages_body(&req, OPUS, Some("context-management-2025-06-27")).unwrap();
                let json =
                    to_messages_json(&req, OPUS, Some("context-management-2025-06-27")).unwrap();
                assert_eq!(
                    json.body,
                    serde_json::to_vec(&tree.body).unwrap(),
                    "{}",
                    path.display()
                );
                assert_eq!((json.betas, json.removals), (tree.betas, tree.removals));
                seen += 1;
            }
        }
        assert!(seen >= 6, "fixtures read: {seen}");
    }

    #[test]
    fn system_messages_move_as_in_the_tree() {
        let systems = [
            None,
            Some(json!("")),
            Some(json!("be brief")),
            Some(json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}])),
        ];
        // (The parser refuses a message with empty content.)
        let moved = [
            None,
            Some(json!("terse")),
            Some(json!([{"type": "text", "text": "b"}, {"type": "text", "text": "c"}])),
        ];
        // As they are, with a scope to take out, with body betas to take out (the last two are
        // written from a copy of the request, the first from the request itself).
        let variants = [
            json!({}),
            json!({"cache_control": {"type": "ephemeral", "scope": "global"}}),
            json!({"anthropic_beta": ["context-management-2025-06-27", "no-such-beta"],
                   "anthropic_version": "bedrock-2023-05-31"}),
        ];
        for system in &systems {
            for content in &moved {
                for variant in &variants {
                    let mut messages = vec![json!({"role": "user", "content": "hi"})];
                    if let Some(content) = content {
                        messages.push(json!({"role": "system", "content": content}));
                        messages.push(json!({"role": "assistant", "content": "ok"}));
                    }
                    let mut body = json!({
                        "model": "claude-opus-4-8", "max_tokens": 10, "messages": messages,
                        "temperature": 0.5, "stream": false, "service_tier": "auto",
                        "context_management": {"edits": []}, "metadata": {"user_id": "u1"},
                    });
                    if let Some(system) = system {
                        body["system"] = system.clone();
                    }
                    for (k, v) in variant.as_object().unwrap() {
                        body[k] = v.clone();
                    }
                    let req = parse(&body);
                    assert_eq!(
                        rules_in_place(&req, None, OPUS, &mut Vec::new()).is_some(),
                        variant == &json!({})
                    );
                    let tree = to_messages_body(&req, OPUS, None).unwrap();
                    let json = to_messages_json(&req, OPUS, None).unwrap();
                    assert_eq!(
                        String::from_utf8(json.body).unwrap(),
                        serde_json::to_string(&tree.body).unwrap(),
                        "system {system:?}, system message {content:?}, {variant}"
                    );
                    assert_eq!((json.betas, json.removals), (tree.betas, tree.removals));
                }
            }
        }
    }

    fn parse(body: &Value) -> MessagesRequest {
        proxy_schema::parse_messages_request(&serde_json::to_vec(body).unwrap()).unwrap()
    }

    #[test]
    fn passes_the_request_through_with_the_bedrock_model() {
        let body = json!({
            "model": "claude-opus-4-8", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
            "system": [{"type": "text", "text": "terse"}],
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "defer_loading": true}],
            "service_tier": "auto", "some_new_field": {"x": 1},
            "metadata": {"user_id": "u1"}
        });
        let out = to_messages_body(
            &parse(&body),
            OPUS,
            Some("interleaved-thinking-2025-05-14,context-management-2025-06-27"),
        )
        .unwrap();
        let mut expected = body.clone();
        expected["model"] = json!(OPUS);
        assert_eq!(out.body, expected);
        assert_eq!(
            out.betas,
            [
                "interleaved-thinking-2025-05-14",
                "context-management-2025-06-27"
            ]
        );
        assert!(out.removals.is_empty());
        assert!(out.body.get("anthropic_version").is_none());
    }

    #[test]
    fn removes_what_bedrock_rejects_and_reports_it() {
        let body = json!({
            "model": "claude-opus-4-8", "max_tokens": 100,
            "anthropic_version": "bedrock-2023-05-31",
            "anthropic_beta": ["oauth-2025-04-20", "fine-grained-tool-streaming-2025-05-14"],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "scope": "global"}}]}
            ],
            "system": "You are terse.",
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "eager_input_streaming": true}],
            "metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s\"}"}
        });
        let out = to_messages_body(
            &parse(&body),
            OPUS,
            Some("claude-code-20250219,prompt-caching-scope-2026-01-05,interleaved-thinking-2025-05-14"),
        )
        .unwrap();
        assert_eq!(
            out.betas,
            [
                "interleaved-thinking-2025-05-14",
                "fine-grained-tool-streaming-2025-05-14"
            ]
        );
        assert_eq!(
            out.body,
            json!({
                "model": OPUS, "max_tokens": 100,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
                "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "be brief"}],
                "metadata": {"user_id": crate::user_id_for_bedrock("{\"device_id\":\"d\",\"session_id\":\"s\"}").unwrap()},
                "tools": [{"name": "t", "input_schema": {"type": "object"}}]
            })
        );
        let seen: Vec<(&str, &str)> = out
            .removals
            .iter()
            .map(|r| (r.label(), r.detail.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("beta", "claude-code-20250219"),
                ("beta", "prompt-caching-scope-2026-01-05"),
                ("beta", "oauth-2025-04-20"),
                ("cache_control_scope", "messages.1.content.0"),
                ("eager_input_streaming", "t"),
                ("metadata_user_id", "metadata.user_id"),
            ]
        );
        assert!(
            out.removals
                .iter()
                .any(|r| r.kind == RemovalKind::MetadataUserId)
        );
    }

    #[test]
    fn count_tokens_requests_need_no_max_tokens() {
        let req = proxy_schema::parse_count_tokens_request(
            br#"{"model":"claude-sonnet-5","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let out = to_messages_body(&req, "anthropic.claude-sonnet-5", None).unwrap();
        assert_eq!(
            out.body,
            json!({"model": "anthropic.claude-sonnet-5", "messages": [{"role": "user", "content": "hi"}]})
        );
        assert!(out.betas.is_empty());
    }
}
