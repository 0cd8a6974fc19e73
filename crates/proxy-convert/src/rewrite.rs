//! What Bedrock rejects never reaches it: the rules both Claude body routes (native InvokeModel and
//! Bedrock's Anthropic Messages API) apply to the typed request, each removal reported to the caller.

use std::borrow::Cow;

use proxy_schema::{
    CacheControl, ContentBlock, DocumentContent, MessageContent, MessagesRequest, Metadata, System,
    ToolResultContent,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a rewrite took out of a request (or replaced) on its way to Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovalKind {
    /// A beta Bedrock does not accept for the model (first-party-only, or unknown to Bedrock).
    Beta,
    /// `tools[].eager_input_streaming`.
    EagerInputStreaming,
    /// `cache_control.scope` (the cache breakpoint itself stays).
    CacheControlScope,
    /// A `metadata.user_id` Bedrock's pattern refuses, replaced by its SHA-256.
    MetadataUserId,
}

impl RemovalKind {
    /// A short label, fit for a metric label value: `beta`, `eager_input_streaming`,
    /// `cache_control_scope`, `metadata_user_id`.
    pub fn label(self) -> &'static str {
        match self {
            RemovalKind::Beta => "beta",
            RemovalKind::EagerInputStreaming => "eager_input_streaming",
            RemovalKind::CacheControlScope => "cache_control_scope",
            RemovalKind::MetadataUserId => "metadata_user_id",
        }
    }
}

/// One thing removed from a request: what kind, and a detail to log (the beta's name, the tool's
/// name, or where in the body). Never the removed value itself when that could identify a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// What kind of thing was removed.
    pub kind: RemovalKind,
    /// Which one: a beta name, a tool name, or a field path such as `messages.2.content.0`.
    pub detail: String,
}

impl Removal {
    /// A removal of `kind` with `detail`.
    pub fn new(kind: RemovalKind, detail: impl Into<String>) -> Self {
        Removal {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind's label (see [`RemovalKind::label`]).
    pub fn label(&self) -> &'static str {
        self.kind.label()
    }
}

/// Applies the field rules to `req` in place and appends what they removed to `removals`:
/// `tools[].eager_input_streaming` goes, `cache_control.scope` goes wherever a `cache_control` sits
/// (request, system blocks, message blocks at any depth, tools), and a `metadata.user_id` Bedrock
/// refuses is replaced by [`user_id_for_bedrock`].
pub(crate) fn scrub_fields(req: &mut MessagesRequest, removals: &mut Vec<Removal>) {
    strip_scope(req.cache_control.as_mut(), "cache_control", removals);
    if let Some(System::Blocks(blocks)) = &mut req.system {
        for (i, block) in blocks.iter_mut().enumerate() {
            strip_scope(
                block.cache_control.as_mut(),
                &format!("system.{i}"),
                removals,
            );
        }
    }
    for (i, message) in req.messages.iter_mut().enumerate() {
        if let proxy_schema::MessageContent::Blocks(blocks) = &mut message.content {
            strip_blocks(blocks, &format!("messages.{i}.content"), removals);
        }
    }
    for (i, tool) in req.tools.iter_mut().flatten().enumerate() {
        if tool.extra.remove("eager_input_streaming").is_some() {
            removals.push(Removal::new(
                RemovalKind::EagerInputStreaming,
                tool.name.clone(),
            ));
        }
        strip_scope(tool.cache_control.as_mut(), &format!("tools.{i}"), removals);
    }
    if let Some(Cow::Owned(m)) = scrubbed_metadata(req.metadata.as_ref(), removals) {
        req.metadata = Some(m);
    }
}

/// `metadata` with the user id [`user_id_for_bedrock`] replaces, if it replaces one (the removal
/// reported), else as it is.
pub(crate) fn scrubbed_metadata<'a>(
    metadata: Option<&'a Metadata>,
    removals: &mut Vec<Removal>,
) -> Option<Cow<'a, Metadata>> {
    let m = metadata?;
    let Some(replacement) = m.user_id.as_deref().and_then(user_id_for_bedrock) else {
        return Some(Cow::Borrowed(m));
    };
    removals.push(Removal::new(
        RemovalKind::MetadataUserId,
        "metadata.user_id",
    ));
    Some(Cow::Owned(Metadata {
        user_id: Some(replacement),
        extra: m.extra.clone(),
    }))
}

/// Whether [`scrub_fields`] takes anything out of `req` beyond a `metadata.user_id` it replaces:
/// a `cache_control.scope` anywhere, a tool's `eager_input_streaming`. Where it does not, a caller
/// can write the request as it is (no copy of it) with [`scrubbed_metadata`]. The same walk as
/// `scrub_fields`, read only (a test holds the two to the same answer).
pub(crate) fn scrub_removes(req: &MessagesRequest) -> bool {
    has_scope(req.cache_control.as_ref())
        || matches!(&req.system, Some(System::Blocks(blocks))
            if blocks.iter().any(|b| has_scope(b.cache_control.as_ref())))
        || req.messages.iter().any(
            |m| matches!(&m.content, MessageContent::Blocks(blocks) if blocks_have_scope(blocks)),
        )
        || req.tools.iter().flatten().any(|t| {
            t.extra.contains_key("eager_input_streaming") || has_scope(t.cache_control.as_ref())
        })
}

fn has_scope(cc: Option<&CacheControl>) -> bool {
    cc.is_some_and(|cc| cc.extra.contains_key("scope"))
}

fn has_raw_scope(cc: Option<&Value>) -> bool {
    matches!(cc, Some(Value::Object(cc)) if cc.contains_key("scope"))
}

/// [`strip_blocks`]' walk, read only.
fn blocks_have_scope(blocks: &[ContentBlock]) -> bool {
    blocks.iter().any(|block| match block {
        ContentBlock::Text(b) => has_scope(b.cache_control.as_ref()),
        ContentBlock::Image(b) => has_scope(b.cache_control.as_ref()),
        ContentBlock::Document(b) => {
            has_scope(b.cache_control.as_ref())
                || matches!(&b.source, proxy_schema::DocumentSource::Content {
                    content: DocumentContent::Blocks(inner),
                } if blocks_have_scope(inner))
        }
        ContentBlock::SearchResult(b) => {
            has_scope(b.cache_control.as_ref())
                || b.content
                    .iter()
                    .any(|t| has_scope(t.cache_control.as_ref()))
        }
        ContentBlock::ToolUse(b) => has_scope(b.cache_control.as_ref()),
        ContentBlock::ToolResult(b) => {
            has_scope(b.cache_control.as_ref())
                || matches!(&b.content, Some(ToolResultContent::Blocks(inner))
                    if blocks_have_scope(inner))
        }
        ContentBlock::Thinking(b) => has_raw_scope(b.extra.get("cache_control")),
        ContentBlock::RedactedThinking(b) => has_raw_scope(b.extra.get("cache_control")),
        ContentBlock::Other(value) => has_raw_scope(value.get("cache_control")),
    })
}

fn strip_scope(cc: Option<&mut CacheControl>, path: &str, removals: &mut Vec<Removal>) {
    if let Some(cc) = cc
        && cc.extra.remove("scope").is_some()
    {
        removals.push(Removal::new(RemovalKind::CacheControlScope, path));
    }
}

fn strip_raw_scope(cc: Option<&mut Value>, path: String, removals: &mut Vec<Removal>) {
    if let Some(Value::Object(cc)) = cc
        && cc.remove("scope").is_some()
    {
        removals.push(Removal::new(RemovalKind::CacheControlScope, path));
    }
}

fn strip_blocks(blocks: &mut [ContentBlock], path: &str, removals: &mut Vec<Removal>) {
    for (j, block) in blocks.iter_mut().enumerate() {
        let here = format!("{path}.{j}");
        match block {
            ContentBlock::Text(b) => strip_scope(b.cache_control.as_mut(), &here, removals),
            ContentBlock::Image(b) => strip_scope(b.cache_control.as_mut(), &here, removals),
            ContentBlock::Document(b) => {
                strip_scope(b.cache_control.as_mut(), &here, removals);
                if let proxy_schema::DocumentSource::Content {
                    content: DocumentContent::Blocks(inner),
                } = &mut b.source
                {
                    strip_blocks(inner, &format!("{here}.source.content"), removals);
                }
            }
            ContentBlock::SearchResult(b) => {
                strip_scope(b.cache_control.as_mut(), &here, removals);
                for (k, text) in b.content.iter_mut().enumerate() {
                    strip_scope(
                        text.cache_control.as_mut(),
                        &format!("{here}.content.{k}"),
                        removals,
                    );
                }
            }
            ContentBlock::ToolUse(b) => strip_scope(b.cache_control.as_mut(), &here, removals),
            ContentBlock::ToolResult(b) => {
                strip_scope(b.cache_control.as_mut(), &here, removals);
                if let Some(ToolResultContent::Blocks(inner)) = &mut b.content {
                    strip_blocks(inner, &format!("{here}.content"), removals);
                }
            }
            // Thinking blocks have no typed cache_control (Anthropic refuses one there), but a
            // client may still send it: it is among their unknown fields.
            ContentBlock::Thinking(b) => {
                strip_raw_scope(b.extra.get_mut("cache_control"), here, removals);
            }
            ContentBlock::RedactedThinking(b) => {
                strip_raw_scope(b.extra.get_mut("cache_control"), here, removals);
            }
            // Blocks newer than proxy-schema (server tool results, ...) are kept as JSON: only their
            // own cache_control is known to be one.
            ContentBlock::Other(value) => {
                strip_raw_scope(value.get_mut("cache_control"), here, removals);
            }
        }
    }
}

/// The `metadata.user_id` to send Bedrock in place of `user_id`, or `None` when it can go as it is.
///
/// Bedrock checks the id against a pattern it does not publish: ids made of letters, digits, `_`
/// and `-` (hex strings, UUIDs, the empty string) are seen accepted, and Claude Code's JSON string
/// (`{"device_id":...,"session_id":...}`) is refused. Anything outside that set is therefore replaced
/// by the lowercase hex SHA-256 of the whole original string: 64 characters from the accepted set,
/// the same for the same user, so per-user attribution on the AWS side keeps working.
pub fn user_id_for_bedrock(user_id: &str) -> Option<String> {
    if user_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(user_id.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    Some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> MessagesRequest {
        proxy_schema::parse_messages_request(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn scrubbed(body: Value) -> (Value, Vec<Removal>) {
        let mut req = parse(body);
        let mut removals = Vec::new();
        scrub_fields(&mut req, &mut removals);
        (serde_json::to_value(&req).unwrap(), removals)
    }

    #[test]
    fn user_ids_bedrock_accepts_pass_unchanged() {
        for id in [
            "",
            "u1",
            "ecc10e1c-db62-45fe-96a9-f2f594896df8",
            "user_42-A",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(user_id_for_bedrock(id), None, "{id}");
        }
    }

    #[test]
    fn other_user_ids_become_their_sha256() {
        let claude_code = r#"{"device_id":"ab12","account_uuid":"","session_id":"ecc10e1c-db62-45fe-96a9-f2f594896df8"}"#;
        let id = user_id_for_bedrock(claude_code).unwrap();
        assert_eq!(id.len(), 64);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Stable: the same user keeps one id; another user gets another.
        assert_eq!(user_id_for_bedrock(claude_code).unwrap(), id);
        assert_ne!(
            user_id_for_bedrock(&claude_code.replace("ab12", "ab13")).unwrap(),
            id
        );
        // Known vector (sha256sum of the same bytes).
        assert_eq!(
            user_id_for_bedrock("user@example.com").unwrap(),
            "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
        );
        assert_eq!(user_id_for_bedrock("é"), user_id_for_bedrock("é"));
        assert!(user_id_for_bedrock("é").is_some());
    }

    #[test]
    fn metadata_user_id_is_replaced_and_reported() {
        let (out, removals) = scrubbed(json!({
            "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "{\"device_id\":\"x\"}", "other": 1}
        }));
        assert_eq!(
            out["metadata"]["user_id"],
            "e4552d03b1c31cce9609ebd45229a29801b2da4fe891a0dcd7f5302d80fe7d74"
        );
        assert_eq!(out["metadata"]["other"], 1);
        assert_eq!(
            removals,
            [Removal::new(
                RemovalKind::MetadataUserId,
                "metadata.user_id"
            )]
        );
        let (out, removals) = scrubbed(json!({
            "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "u-1"}
        }));
        assert_eq!(out["metadata"]["user_id"], "u-1");
        assert!(removals.is_empty());
    }

    #[test]
    fn eager_input_streaming_goes_from_every_tool() {
        let (out, removals) = scrubbed(json!({
            "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"name": "a", "input_schema": {"type": "object"}, "eager_input_streaming": true},
                {"name": "b", "input_schema": {"type": "object", "properties": {"eager_input_streaming": {"type": "boolean"}}}},
                {"name": "c", "input_schema": {"type": "object"}, "eager_input_streaming": false, "defer_loading": true}
            ]
        }));
        assert_eq!(
            out["tools"],
            json!([
                {"name": "a", "input_schema": {"type": "object"}},
                {"name": "b", "input_schema": {"type": "object", "properties": {"eager_input_streaming": {"type": "boolean"}}}},
                {"name": "c", "input_schema": {"type": "object"}, "defer_loading": true}
            ])
        );
        assert_eq!(
            removals,
            [
                Removal::new(RemovalKind::EagerInputStreaming, "a"),
                Removal::new(RemovalKind::EagerInputStreaming, "c")
            ]
        );
        assert_eq!(removals[0].label(), "eager_input_streaming");
    }

    #[test]
    fn cache_control_scope_goes_wherever_cache_control_sits() {
        let cc = json!({"type": "ephemeral", "ttl": "1h", "scope": "global"});
        let (out, removals) = scrubbed(json!({
            "model": "m", "max_tokens": 1, "cache_control": cc,
            "system": [{"type": "text", "text": "s", "cache_control": cc}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "t", "cache_control": cc},
                    {"type": "document", "source": {"type": "content", "content": [
                        {"type": "text", "text": "d", "cache_control": cc}]}, "cache_control": cc},
                    {"type": "search_result", "source": "s", "title": "t", "content": [
                        {"type": "text", "text": "r", "cache_control": cc}]}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {"cache_control": cc}, "cache_control": cc},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}, "cache_control": cc},
                    {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": cc}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "cache_control": cc,
                     "content": [{"type": "text", "text": "out", "cache_control": cc}]}
                ]}
            ],
            "tools": [{"name": "a", "input_schema": {"type": "object"}, "cache_control": cc}]
        }));
        let kept = json!({"type": "ephemeral", "ttl": "1h"});
        for pointer in [
            "/cache_control",
            "/system/0/cache_control",
            "/messages/0/content/0/cache_control",
            "/messages/0/content/1/cache_control",
            "/messages/0/content/1/source/content/0/cache_control",
            "/messages/0/content/2/content/0/cache_control",
            "/messages/1/content/0/cache_control",
            "/messages/1/content/1/cache_control",
            "/messages/1/content/2/cache_control",
            "/messages/2/content/0/cache_control",
            "/messages/2/content/0/content/0/cache_control",
            "/tools/0/cache_control",
        ] {
            assert_eq!(out.pointer(pointer), Some(&kept), "{pointer}");
        }
        // A tool's input is the model's data, not a cache breakpoint: untouched.
        assert_eq!(
            out["messages"][1]["content"][0]["input"]["cache_control"],
            cc
        );
        let paths: Vec<&str> = removals.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cache_control",
                "system.0",
                "messages.0.content.0",
                "messages.0.content.1",
                "messages.0.content.1.source.content.0",
                "messages.0.content.2.content.0",
                "messages.1.content.0",
                "messages.1.content.1",
                "messages.1.content.2",
                "messages.2.content.0",
                "messages.2.content.0.content.0",
                "tools.0",
            ]
        );
        assert!(removals.iter().all(
            |r| r.kind == RemovalKind::CacheControlScope && r.label() == "cache_control_scope"
        ));
    }

    /// `scrub_removes` walks as `scrub_fields` does: for a scope at each place a `cache_control`
    /// sits, and for `eager_input_streaming`, it answers yes exactly when `scrub_fields` removes
    /// something other than a user id.
    #[test]
    fn scrub_removes_answers_as_scrub_fields_removes() {
        let kept = json!({"type": "ephemeral", "ttl": "1h"});
        let base = json!({
            "model": "m", "max_tokens": 1, "cache_control": kept,
            "system": [{"type": "text", "text": "s", "cache_control": kept}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "t", "cache_control": kept},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}, "cache_control": kept},
                    {"type": "document", "source": {"type": "content", "content": [
                        {"type": "text", "text": "d", "cache_control": kept}]}, "cache_control": kept},
                    {"type": "search_result", "source": "s", "title": "t", "content": [
                        {"type": "text", "text": "r", "cache_control": kept}], "cache_control": kept}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {"cache_control": {"scope": "x"}}, "cache_control": kept},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}, "cache_control": kept},
                    {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": kept},
                    {"type": "redacted_thinking", "data": "r", "cache_control": kept}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "cache_control": kept,
                     "content": [{"type": "text", "text": "out", "cache_control": kept}]}
                ]}
            ],
            "tools": [{"name": "a", "input_schema": {"type": "object"}, "cache_control": kept}],
            "metadata": {"user_id": "{\"device_id\":\"d\"}"}
        });
        let removes = |body: &Value| {
            let req = parse(body.clone());
            let mut scrubbed = req.clone();
            let mut removals = Vec::new();
            scrub_fields(&mut scrubbed, &mut removals);
            let removed = removals
                .iter()
                .filter(|r| r.kind != RemovalKind::MetadataUserId)
                .count();
            (scrub_removes(&req), removed)
        };
        assert_eq!(removes(&base), (false, 0));
        let scoped = json!({"type": "ephemeral", "ttl": "1h", "scope": "global"});
        for pointer in [
            "/cache_control",
            "/system/0/cache_control",
            "/messages/0/content/0/cache_control",
            "/messages/0/content/1/cache_control",
            "/messages/0/content/2/cache_control",
            "/messages/0/content/2/source/content/0/cache_control",
            "/messages/0/content/3/cache_control",
            "/messages/0/content/3/content/0/cache_control",
            "/messages/1/content/0/cache_control",
            "/messages/1/content/1/cache_control",
            "/messages/1/content/2/cache_control",
            "/messages/1/content/3/cache_control",
            "/messages/2/content/0/cache_control",
            "/messages/2/content/0/content/0/cache_control",
            "/tools/0/cache_control",
        ] {
            let mut body = base.clone();
            *body.pointer_mut(pointer).expect(pointer) = scoped.clone();
            assert_eq!(removes(&body), (true, 1), "{pointer}");
        }
        let mut body = base.clone();
        body["tools"][0]["eager_input_streaming"] = json!(true);
        assert_eq!(removes(&body), (true, 1));
    }

    #[test]
    fn a_request_with_nothing_to_remove_is_unchanged() {
        let body = json!({
            "model": "m", "max_tokens": 1, "cache_control": {"type": "ephemeral"},
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "a", "input_schema": {"type": "object"}}],
            "metadata": {"user_id": "u1"}
        });
        let (out, removals) = scrubbed(body.clone());
        assert!(removals.is_empty());
        assert_eq!(out, serde_json::to_value(parse(body)).unwrap());
    }
}
