//! The native route: the Anthropic body rewritten for Claude's InvokeModel, and the response and
//! stream chunks passed back with the client's model name restored.

use serde_json::{Map, Value, json};

use crate::ConvertError;
use crate::family::bedrock_betas;

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

/// Rewrites a client's `/v1/messages` body (already validated by `proxy-schema`) into the InvokeModel
/// body for `bedrock_model_id`: `anthropic_version` set, `model` and `stream` removed, betas from the
/// `anthropic-beta` header filtered into `anthropic_beta`, `role: "system"` messages moved into
/// `system`, top-level `cache_control` applied to the last block, fields Bedrock rejects removed.
pub fn to_native_body(
    body: &Value,
    bedrock_model_id: &str,
    anthropic_beta: Option<&str>,
) -> Result<Value, ConvertError> {
    let Value::Object(src) = body else {
        return Err(ConvertError::new(
            "",
            "the request body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    out.insert("anthropic_version".into(), json!(BEDROCK_ANTHROPIC_VERSION));
    let mut betas = bedrock_betas(anthropic_beta, bedrock_model_id);
    if let Some(Value::Array(body_betas)) = src.get("anthropic_beta") {
        let joined: Vec<&str> = body_betas.iter().filter_map(Value::as_str).collect();
        for b in bedrock_betas(Some(&joined.join(",")), bedrock_model_id) {
            if !betas.contains(&b) {
                betas.push(b);
            }
        }
    }
    if !betas.is_empty() {
        out.insert("anthropic_beta".into(), json!(betas));
    }
    for (key, value) in src {
        match key.as_str() {
            "model" | "stream" | "anthropic_version" | "anthropic_beta" | "cache_control" => {}
            "context_management" if !betas.iter().any(|b| b.starts_with("context-management-")) => {
                tracing::debug!("context_management without its beta; dropped");
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("metadata".into(), json!({"user_id": user}));
                }
            }
            k if NATIVE_KEYS.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            other => tracing::debug!(
                field = other,
                "no place for this field in Bedrock's Claude body; dropped"
            ),
        }
    }

    // role: "system" messages -> system (Bedrock's Claude body has no system role in messages).
    if let Some(Value::Array(messages)) = out.get_mut("messages") {
        let mut moved = Vec::new();
        messages.retain(|m| {
            if m["role"] == "system" {
                match &m["content"] {
                    Value::String(s) => moved.push(json!({"type": "text", "text": s})),
                    Value::Array(blocks) => moved.extend(blocks.iter().cloned()),
                    _ => {}
                }
                false
            } else {
                true
            }
        });
        if !moved.is_empty() {
            let system = match out.remove("system") {
                Some(Value::String(s)) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
                Some(Value::Array(blocks)) => blocks,
                _ => Vec::new(),
            };
            out.insert(
                "system".into(),
                Value::Array(system.into_iter().chain(moved).collect()),
            );
        }
    }

    if let Some(Value::Array(tools)) = out.get_mut("tools") {
        let keep_examples = betas.iter().any(|b| b.starts_with("tool-examples-"));
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
                Some(t) if BEDROCK_TOOL_TYPES.iter().any(|p| t.starts_with(p)) => true,
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

    // Top-level cache_control marks the last cacheable block of the last message.
    if let Some(cc) = src.get("cache_control").filter(|c| !c.is_null())
        && count_cache_controls(&Value::Object(out.clone())) < 4
        && let Some(Value::Array(messages)) = out.get_mut("messages")
        && let Some(last) = messages.last_mut()
    {
        if let Value::String(s) = &last["content"] {
            last["content"] = json!([{"type": "text", "text": s}]);
        }
        if let Some(block) = last["content"].as_array_mut().and_then(|b| b.last_mut())
            && block.get("cache_control").is_none()
            && !matches!(
                block["type"].as_str(),
                Some("thinking") | Some("redacted_thinking")
            )
        {
            block["cache_control"] = cc.clone();
        }
    }
    Ok(Value::Object(out))
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
        let out = to_native_body(
            &body,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some("claude-code-20250219,interleaved-thinking-2025-05-14"),
        )
        .unwrap();
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
