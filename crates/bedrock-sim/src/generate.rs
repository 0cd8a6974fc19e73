//! Deterministic replies: a [`Plan`] (the blocks, stop reason and usage of one answer) built from a
//! request and its directives, rendered as a Converse response, ConverseStream events, a native
//! Claude message, or native Claude stream events.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde_json::{Value, json};

use crate::catalog::Model;
use crate::directives::Directives;
use crate::validate::{REDACTED_PREFIX, signature_for};

/// The request format a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Converse,
    Native,
}

/// One block of a reply.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    Reasoning {
        pieces: Vec<String>,
        signature: Option<String>,
    },
    Redacted(String),
    Text(Vec<String>),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// A reply: what the model "said", why it stopped, and what it cost.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub blocks: Vec<Block>,
    pub stop_reason: String,
    pub stop_sequence: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Converse asked for `/stop_sequence` in `additionalModelResponseFieldPaths`.
    pub wants_stop_sequence: bool,
    /// The Anthropic model name (native responses).
    pub model_name: String,
    pub message_id: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique, URL-safe id body of 24 characters.
pub(crate) fn unique_id() -> String {
    unique_from(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        24,
    )
}

/// A unique string of `len` lowercase hex digits.
pub(crate) fn unique_hex(len: usize) -> String {
    unique_from(b"0123456789abcdef", len)
}

fn unique_from(alphabet: &[u8], len: usize) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut x = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(len);
    for i in 0..len as u64 {
        // xorshift64*: cheap, well mixed, good enough for ids.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i);
        out.push(alphabet[(v % alphabet.len() as u64) as usize] as char);
    }
    out
}

/// The texts of the last user message: (its own text, the texts of its tool results).
pub(crate) fn last_user_texts(body: &Value, format: Format) -> (Vec<String>, Vec<String>) {
    let mut own = Vec::new();
    let mut results = Vec::new();
    let Some(msg) = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
    else {
        return (own, results);
    };
    match format {
        Format::Converse => {
            for block in msg["content"].as_array().into_iter().flatten() {
                if let Some(t) = block["text"].as_str() {
                    own.push(t.to_owned());
                }
                for item in block
                    .pointer("/toolResult/content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = item["text"].as_str() {
                        results.push(t.to_owned());
                    } else if let Some(j) = item.get("json") {
                        results.push(j.to_string());
                    }
                }
            }
        }
        Format::Native => match &msg["content"] {
            Value::String(s) => own.push(s.clone()),
            Value::Array(blocks) => {
                for block in blocks {
                    match block["type"].as_str() {
                        Some("text") => own.extend(block["text"].as_str().map(str::to_owned)),
                        Some("tool_result") => match &block["content"] {
                            Value::String(s) => results.push(s.clone()),
                            Value::Array(items) => results.extend(
                                items
                                    .iter()
                                    .filter_map(|i| i["text"].as_str().map(str::to_owned)),
                            ),
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            _ => {}
        },
    }
    (own, results)
}

/// Input tokens of a request: one per 4 bytes of its conversation, system prompt and tools, as JSON.
/// CountTokens returns the same figure for the same request.
pub(crate) fn estimate_input_tokens(body: &Value, format: Format) -> u64 {
    let keys: &[&str] = match format {
        Format::Converse => &["messages", "system", "toolConfig"],
        Format::Native => &["messages", "system", "tools"],
    };
    let bytes: usize = keys
        .iter()
        .filter_map(|k| body.get(*k))
        .map(|v| {
            serde_json::to_string(v)
                .map(|s| s.len())
                .unwrap_or_default()
        })
        .sum();
    (bytes as u64).div_ceil(4).max(1)
}

/// An input value for a JSON schema: the required properties, each with a plain value of its type.
pub(crate) fn example_input(schema: &Value) -> Value {
    fn value_for(schema: &Value, depth: usize) -> Value {
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        let ty = match &schema["type"] {
            Value::String(s) => s.as_str(),
            Value::Array(types) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("string"),
            _ if schema.get("properties").is_some() => "object",
            _ => "string",
        };
        match ty {
            "integer" => json!(1),
            "number" => json!(1.5),
            "boolean" => json!(true),
            "array" => json!([]),
            "null" => Value::Null,
            "object" if depth < 4 => {
                let mut out = serde_json::Map::new();
                for name in schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    out.insert(
                        name.to_owned(),
                        value_for(&schema["properties"][name], depth + 1),
                    );
                }
                Value::Object(out)
            }
            "object" => json!({}),
            _ => json!("bedrock-sim"),
        }
    }
    value_for(schema, 0)
}

const VOCABULARY: &[&str] = &[
    "the", "gateway", "streams", "tokens", "from", "bedrock", "to", "every", "client", "and",
    "counts", "them", "exactly", "while", "keys", "stay", "hashed", "in", "store",
];

fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn json_fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(12).map(|c| c.iter().collect()).collect()
}

fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// What a plan needs from a request, in either format.
pub(crate) struct Request<'a> {
    pub body: &'a Value,
    pub format: Format,
    pub model: &'a Model,
    pub directives: &'a Directives,
    /// The last user message's own text with markers removed.
    pub said: String,
    /// The texts of its tool results.
    pub tool_results: Vec<String>,
}

impl Request<'_> {
    /// (name, input schema) of each offered tool.
    fn tools(&self) -> Vec<(String, Value)> {
        match self.format {
            Format::Converse => self
                .body
                .pointer("/toolConfig/tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("toolSpec"))
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_owned(),
                        s["inputSchema"]["json"].clone(),
                    )
                })
                .collect(),
            Format::Native => self.body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["input_schema"].clone(),
                    )
                })
                .collect(),
        }
    }

    /// Whether the request turns Claude's extended thinking on (`enabled`): Claude then always
    /// starts its answer with a thinking block, whatever the directives say.
    fn thinking_enabled(&self) -> bool {
        let thinking = match self.format {
            Format::Converse => self.body.pointer("/additionalModelRequestFields/thinking"),
            Format::Native => self.body.get("thinking"),
        };
        self.model.is_claude()
            && thinking
                .and_then(|t| t.get("type"))
                .is_some_and(|t| t == "enabled")
    }

    fn max_tokens(&self) -> u64 {
        match self.format {
            Format::Converse => self
                .body
                .pointer("/inferenceConfig/maxTokens")
                .and_then(Value::as_u64),
            Format::Native => self.body["max_tokens"].as_u64(),
        }
        .unwrap_or(4096)
    }

    fn stop_sequences(&self) -> Vec<String> {
        let list = match self.format {
            Format::Converse => self.body.pointer("/inferenceConfig/stopSequences"),
            Format::Native => self.body.get("stop_sequences"),
        };
        list.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    }
}

impl Plan {
    /// Builds the reply to `req`.
    pub(crate) fn new(req: &Request<'_>) -> Plan {
        let d = req.directives;
        let claude = req.model.is_claude();
        let tool_id = |n: usize| match req.format {
            Format::Converse => format!("tooluse_{}{n}", &unique_id()[..20]),
            Format::Native => format!("toolu_bdrk_01{}{n}", &unique_id()[..20]),
        };
        let mut blocks = Vec::new();
        if d.redacted {
            blocks.push(Block::Redacted(format!("{REDACTED_PREFIX}{}", unique_id())));
        }
        let tools = req.tools();
        let chosen: Vec<(String, Value)> = match &d.tool {
            None => Vec::new(),
            Some(wanted) => {
                let start = wanted
                    .as_ref()
                    .and_then(|w| tools.iter().position(|(n, _)| n == w))
                    .unwrap_or(0);
                let count = d.tools.unwrap_or(1);
                if tools.is_empty() {
                    Vec::new()
                } else {
                    (0..count)
                        .map(|i| tools[(start + i) % tools.len()].clone())
                        .collect()
                }
            }
        };
        if d.thinking || req.thinking_enabled() {
            let thought = match chosen.first() {
                Some((name, _)) => format!(
                    "The user asked something that the {name} tool can answer, so I will call it."
                ),
                None if req.said.is_empty() => {
                    "The tool result is in, so I can answer now.".to_owned()
                }
                None => format!(
                    "The user said: {}. I will answer directly.",
                    truncate_chars(&req.said, 80)
                ),
            };
            let signature = claude.then(|| signature_for(&thought));
            blocks.push(Block::Reasoning {
                pieces: pieces(&thought),
                signature,
            });
        }
        let mut text = if let Some(reply) = &d.reply {
            reply.clone()
        } else if let Some(n) = d.words {
            let mut words: Vec<&str> = (0..n).map(|i| VOCABULARY[i % VOCABULARY.len()]).collect();
            if let Some(first) = words.first_mut() {
                *first = "The";
            }
            words.join(" ")
        } else if !chosen.is_empty() {
            format!("I will call {}.", chosen[0].0)
        } else if !req.said.is_empty() {
            format!(
                "Hello from bedrock-sim. You said: {}",
                truncate_chars(&req.said, 300)
            )
        } else if !req.tool_results.is_empty() {
            format!(
                "Tool result received: {}",
                truncate_chars(&req.tool_results.join(" | "), 300)
            )
        } else {
            "Hello from bedrock-sim.".to_owned()
        };
        let mut stop_reason = if chosen.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
        .to_owned();
        let mut stop_sequence = None;
        let mut keep_tools = true;
        let sequences = req.stop_sequences();
        if let Some((pos, seq)) = sequences
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|p| (p, s)))
            .min_by_key(|(p, _)| *p)
        {
            text.truncate(pos);
            stop_reason = "stop_sequence".into();
            stop_sequence = Some(seq.clone());
            keep_tools = false;
        }
        let mut text_pieces = pieces(&text);
        let reasoning_cost: usize = blocks
            .iter()
            .map(|b| match b {
                Block::Reasoning { pieces, .. } => pieces.len(),
                _ => 0,
            })
            .sum();
        let budget = (req.max_tokens() as usize).saturating_sub(reasoning_cost);
        if text_pieces.len() > budget {
            text_pieces.truncate(budget);
            stop_reason = "max_tokens".into();
            stop_sequence = None;
            keep_tools = false;
        }
        if !text_pieces.is_empty() {
            blocks.push(Block::Text(text_pieces));
        }
        if keep_tools {
            let input_override = d
                .input
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            for (n, (name, schema)) in chosen.iter().enumerate() {
                let input = input_override
                    .clone()
                    .unwrap_or_else(|| example_input(schema));
                blocks.push(Block::ToolUse {
                    id: tool_id(n),
                    name: name.clone(),
                    input,
                });
            }
        }
        if let Some(stop) = &d.stop {
            if stop == "stop_sequence" && stop_sequence.is_none() {
                stop_sequence = sequences.first().cloned();
            }
            stop_reason = stop.clone();
        }
        let output_tokens = blocks
            .iter()
            .map(|b| match b {
                Block::Reasoning { pieces, signature } => {
                    pieces.len() + usize::from(signature.is_some())
                }
                Block::Redacted(_) => 1,
                Block::Text(p) => p.len(),
                Block::ToolUse { input, .. } => json_fragments(&input.to_string()).len(),
            })
            .sum::<usize>()
            .max(1) as u64;
        let estimate = estimate_input_tokens(req.body, req.format);
        let cache_read = d.cache_read.unwrap_or(0);
        let cache_write = d.cache_write.unwrap_or(0);
        let wants_stop_sequence = req
            .body
            .get("additionalModelResponseFieldPaths")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|p| p == "/stop_sequence"));
        Plan {
            blocks,
            stop_reason,
            stop_sequence,
            input_tokens: estimate.saturating_sub(cache_read + cache_write),
            output_tokens,
            cache_read,
            cache_write,
            wants_stop_sequence: wants_stop_sequence && claude,
            model_name: req.model.anthropic_name(),
            message_id: format!("msg_bdrk_01{}", unique_id()),
        }
    }

    fn converse_usage(&self) -> Value {
        let mut usage = json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens + self.cache_read + self.cache_write,
        });
        if self.cache_read > 0 || self.cache_write > 0 {
            usage["cacheReadInputTokens"] = json!(self.cache_read);
            usage["cacheWriteInputTokens"] = json!(self.cache_write);
        }
        usage
    }

    fn additional_fields(&self) -> Option<Value> {
        self.wants_stop_sequence
            .then(|| json!({ "stop_sequence": self.stop_sequence }))
    }

    /// The Converse response body.
    pub(crate) fn converse_response(&self, latency_ms: u64) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b {
                Block::Reasoning { pieces, signature } => {
                    let mut rt = json!({ "text": pieces.concat() });
                    if let Some(s) = signature {
                        rt["signature"] = json!(s);
                    }
                    json!({ "reasoningContent": { "reasoningText": rt } })
                }
                Block::Redacted(data) => {
                    json!({ "reasoningContent": { "redactedContent": b64(data) } })
                }
                Block::Text(p) => json!({ "text": p.concat() }),
                Block::ToolUse { id, name, input } => {
                    json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } })
                }
            })
            .collect();
        let mut out = json!({
            "output": { "message": { "role": "assistant", "content": content } },
            "stopReason": self.stop_reason,
            "usage": self.converse_usage(),
            "metrics": { "latencyMs": latency_ms },
        });
        if let Some(fields) = self.additional_fields() {
            out["additionalModelResponseFields"] = fields;
        }
        out
    }

    /// The ConverseStream events: (`:event-type`, payload). `metadata` carries latency 0: the server
    /// patches in the measured figure.
    pub(crate) fn converse_events(&self) -> Vec<(&'static str, Value)> {
        let mut ev = vec![("messageStart", json!({ "role": "assistant" }))];
        for (i, b) in self.blocks.iter().enumerate() {
            let delta = |d: Value| {
                (
                    "contentBlockDelta",
                    json!({ "contentBlockIndex": i, "delta": d }),
                )
            };
            match b {
                Block::Reasoning { pieces, signature } => {
                    ev.extend(
                        pieces
                            .iter()
                            .map(|p| delta(json!({ "reasoningContent": { "text": p } }))),
                    );
                    if let Some(s) = signature {
                        ev.push(delta(json!({ "reasoningContent": { "signature": s } })));
                    }
                }
                Block::Redacted(data) => ev.push(delta(
                    json!({ "reasoningContent": { "redactedContent": b64(data) } }),
                )),
                Block::Text(p) => ev.extend(p.iter().map(|p| delta(json!({ "text": p })))),
                Block::ToolUse { id, name, input } => {
                    ev.push((
                        "contentBlockStart",
                        json!({ "contentBlockIndex": i, "start": { "toolUse": { "toolUseId": id, "name": name } } }),
                    ));
                    ev.extend(
                        json_fragments(&input.to_string())
                            .into_iter()
                            .map(|f| delta(json!({ "toolUse": { "input": f } }))),
                    );
                }
            }
            ev.push(("contentBlockStop", json!({ "contentBlockIndex": i })));
        }
        let mut stop = json!({ "stopReason": self.stop_reason });
        if let Some(fields) = self.additional_fields() {
            stop["additionalModelResponseFields"] = fields;
        }
        ev.push(("messageStop", stop));
        ev.push((
            "metadata",
            json!({ "usage": self.converse_usage(), "metrics": { "latencyMs": 0 } }),
        ));
        ev
    }

    fn native_usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output_tokens,
        })
    }

    /// The native Claude message (InvokeModel response body).
    pub(crate) fn native_response(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b {
                Block::Reasoning { pieces, signature } => {
                    json!({ "type": "thinking", "thinking": pieces.concat(), "signature": signature.clone().unwrap_or_default() })
                }
                Block::Redacted(data) => json!({ "type": "redacted_thinking", "data": data }),
                Block::Text(p) => json!({ "type": "text", "text": p.concat() }),
                Block::ToolUse { id, name, input } => json!({ "type": "tool_use", "id": id, "name": name, "input": input }),
            })
            .collect();
        json!({
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model_name,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.native_usage(self.output_tokens),
        })
    }

    /// The native Claude stream events, in order. The last (`message_stop`) carries
    /// `amazon-bedrock-invocationMetrics` with latencies 0: the server patches in measured figures.
    pub(crate) fn native_events(&self) -> Vec<Value> {
        let mut ev = vec![json!({
            "type": "message_start",
            "message": {
                "id": self.message_id, "type": "message", "role": "assistant", "model": self.model_name,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": self.native_usage(1),
            }
        })];
        for (i, b) in self.blocks.iter().enumerate() {
            let delta = |d: Value| json!({ "type": "content_block_delta", "index": i, "delta": d });
            let start =
                |c: Value| json!({ "type": "content_block_start", "index": i, "content_block": c });
            match b {
                Block::Reasoning { pieces, signature } => {
                    ev.push(start(
                        json!({ "type": "thinking", "thinking": "", "signature": "" }),
                    ));
                    ev.extend(
                        pieces
                            .iter()
                            .map(|p| delta(json!({ "type": "thinking_delta", "thinking": p }))),
                    );
                    if let Some(s) = signature {
                        ev.push(delta(json!({ "type": "signature_delta", "signature": s })));
                    }
                }
                Block::Redacted(data) => {
                    ev.push(start(json!({ "type": "redacted_thinking", "data": data })))
                }
                Block::Text(p) => {
                    ev.push(start(json!({ "type": "text", "text": "" })));
                    ev.extend(
                        p.iter()
                            .map(|p| delta(json!({ "type": "text_delta", "text": p }))),
                    );
                }
                Block::ToolUse { id, name, input } => {
                    ev.push(start(
                        json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                    ));
                    ev.push(delta(
                        json!({ "type": "input_json_delta", "partial_json": "" }),
                    ));
                    ev.extend(
                        json_fragments(&input.to_string()).into_iter().map(|f| {
                            delta(json!({ "type": "input_json_delta", "partial_json": f }))
                        }),
                    );
                }
            }
            ev.push(json!({ "type": "content_block_stop", "index": i }));
        }
        ev.push(json!({
            "type": "message_delta",
            "delta": { "stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence },
            "usage": { "output_tokens": self.output_tokens },
        }));
        ev.push(json!({
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": self.input_tokens,
                "outputTokenCount": self.output_tokens,
                "invocationLatency": 0,
                "firstByteLatency": 0,
                "cacheReadInputTokenCount": self.cache_read,
                "cacheWriteInputTokenCount": self.cache_write,
            }
        }));
        ev
    }
}

pub(crate) fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn plan(body: Value, format: Format, directives: &str) -> Plan {
        let catalog = Catalog::new(Vec::new(), "us-east-1");
        let model = catalog
            .resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap()
            .model;
        let mut d = Directives::default();
        d.apply(directives).unwrap();
        let (own, results) = last_user_texts(&body, format);
        let req = Request {
            body: &body,
            format,
            model,
            directives: &d,
            said: own.join(" "),
            tool_results: results,
        };
        Plan::new(&req)
    }

    fn converse_body(text: &str) -> Value {
        json!({"messages": [{"role": "user", "content": [{"text": text}]}],
               "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {
                   "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
                   "required": ["city", "days", "unit"]}}}}]}})
    }

    #[test]
    fn stream_and_whole_reply_agree() {
        let p = plan(converse_body("hello"), Format::Converse, "thinking tool");
        let whole = p.converse_response(5);
        let events = p.converse_events();
        let streamed_text: String = events
            .iter()
            .filter_map(|(_, e)| e.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        let whole_text = whole["output"]["message"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<String>();
        assert_eq!(streamed_text, whole_text);
        let tool_json: String = events
            .iter()
            .filter_map(|(_, e)| e.pointer("/delta/toolUse/input").and_then(Value::as_str))
            .collect();
        let input: Value = serde_json::from_str(&tool_json).unwrap();
        assert_eq!(
            input,
            json!({"city": "bedrock-sim", "days": 1, "unit": "c"})
        );
        assert_eq!(whole["stopReason"], "tool_use");
        assert_eq!(events.first().unwrap().0, "messageStart");
        assert_eq!(events.last().unwrap().0, "metadata");
    }

    #[test]
    fn max_tokens_and_stop_sequences_cut_the_reply() {
        let mut body = converse_body("x");
        body["inferenceConfig"] = json!({"maxTokens": 3});
        let p = plan(body, Format::Converse, "words=10");
        assert_eq!(p.stop_reason, "max_tokens");
        assert_eq!(p.output_tokens, 3);
        let mut body = converse_body("x");
        body["inferenceConfig"] = json!({"stopSequences": ["bedrock"]});
        body["additionalModelResponseFieldPaths"] = json!(["/stop_sequence"]);
        let p = plan(body, Format::Converse, "words=10");
        assert_eq!(p.stop_reason, "stop_sequence");
        let r = p.converse_response(1);
        assert_eq!(
            r["additionalModelResponseFields"]["stop_sequence"],
            "bedrock"
        );
        assert!(!r.to_string().contains("bedrock to"));
    }

    #[test]
    fn native_events_rebuild_the_native_message() {
        let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi [sim thinking]"}]});
        let p = plan(body, Format::Native, "thinking cache_read=2");
        let msg = p.native_response();
        let events = p.native_events();
        let text: String = events
            .iter()
            .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        assert_eq!(msg["content"][1]["text"], text);
        let sig = events
            .iter()
            .find_map(|e| e.pointer("/delta/signature"))
            .unwrap();
        assert_eq!(&msg["content"][0]["signature"], sig);
        assert_eq!(
            events.last().unwrap()["amazon-bedrock-invocationMetrics"]["outputTokenCount"],
            msg["usage"]["output_tokens"]
        );
        assert_eq!(msg["usage"]["cache_read_input_tokens"], 2);
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| unique_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
