//! No input panics: arbitrary JSON shapes (request-like ones most of the time, so that the typed
//! parse often succeeds) through every public function of proxy-convert that takes JSON or a
//! request parsed from it, and the Claude body builders never let through what Bedrock rejects.

use proptest::prelude::*;
use proxy_convert::{
    ConverseOptions, native_chunk, restore_model, to_converse, to_document, to_json,
    to_messages_body, to_messages_json, to_native_body, to_native_count_tokens_body,
    to_native_json,
};
use serde_json::{Map, Value, json};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";

/// Keys a request has (so random objects look like requests and blocks).
const KEYS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "cache_control",
    "scope",
    "ttl",
    "system",
    "tools",
    "name",
    "input_schema",
    "eager_input_streaming",
    "metadata",
    "user_id",
    "anthropic_beta",
    "tool_use_id",
    "id",
    "input",
    "thinking",
    "signature",
    "source",
    "stream",
    "context_management",
];

/// Strings a request has.
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "text",
    "ephemeral",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "image",
    "document",
    "search_result",
    "server_tool_use",
    "custom",
    "bash_20250124",
    "web_search_20250305",
    "global",
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "{\"device_id\":\"x\"}",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u32..70_000).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A content block: a known shape with random extras and cache_control, or anything.
fn block() -> impl Strategy<Value = Value> {
    let cache = prop_oneof![
        Just(None),
        Just(Some(json!({"type": "ephemeral"}))),
        Just(Some(
            json!({"type": "ephemeral", "scope": "global", "ttl": "1h"})
        )),
        value().prop_map(Some),
    ];
    let shape = prop_oneof![
        "\\PC{0,8}".prop_map(|t| json!({"type": "text", "text": t})),
        Just(json!({"type": "thinking", "thinking": "t", "signature": "s"})),
        Just(json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}})),
        value()
            .prop_map(|c| json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": c})),
        value().prop_map(|v| json!({"type": "server_tool_use", "x": v})),
        value(),
    ];
    (shape, cache).prop_map(|(mut b, cc)| {
        if let (Value::Object(o), Some(cc)) = (&mut b, cc) {
            o.insert("cache_control".into(), cc);
        }
        b
    })
}

fn message() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["user", "assistant", "system"][..]),
        prop_oneof![
            "\\PC{0,8}".prop_map(Value::String),
            prop::collection::vec(block(), 0..4).prop_map(Value::Array),
            value(),
        ],
    )
        .prop_map(|(role, content)| json!({"role": role, "content": content}))
}

/// A request skeleton with random parts, optional fields given or not.
fn request() -> impl Strategy<Value = Value> {
    let optional = prop::collection::vec(
        (
            prop::sample::select(
                &[
                    "cache_control",
                    "system",
                    "tools",
                    "metadata",
                    "anthropic_beta",
                    "stream",
                    "thinking",
                    "context_management",
                ][..],
            ),
            prop_oneof![
                value(),
                prop::collection::vec(block(), 0..3).prop_map(Value::Array),
                Just(json!({"type": "ephemeral", "scope": "global"})),
                Just(json!({"user_id": "{\"device_id\":\"x\"}"})),
                Just(
                    json!([{"name": "t", "input_schema": {"type": "object"}, "eager_input_streaming": true,
                    "cache_control": {"type": "ephemeral", "scope": "global"}}])
                ),
                Just(json!(["oauth-2025-04-20", "context-1m-2025-08-07", 5])),
            ],
        ),
        0..5,
    );
    (
        prop::collection::vec(message(), 0..4),
        optional,
        prop::option::of(0u32..5000),
    )
        .prop_map(|(messages, optional, max_tokens)| {
            let mut o = Map::new();
            o.insert("model".into(), json!("claude-sonnet-4-5"));
            if let Some(n) = max_tokens {
                o.insert("max_tokens".into(), json!(n));
            }
            o.insert("messages".into(), Value::Array(messages));
            for (k, v) in optional {
                o.insert(k.into(), v);
            }
            Value::Object(o)
        })
}

/// The `cache_control` of every place a breakpoint sits: the request, system blocks, tools,
/// message blocks and the blocks inside tool results.
fn cache_controls(body: &Value) -> Vec<&Value> {
    fn blocks(v: &Value) -> Vec<&Value> {
        v.as_array().into_iter().flatten().collect()
    }
    let mut places = vec![body];
    places.extend(blocks(&body["system"]));
    places.extend(blocks(&body["tools"]));
    for m in blocks(&body["messages"]) {
        for b in blocks(&m["content"]) {
            places.push(b);
            if b["type"] == "tool_result" || b["type"] == "search_result" {
                places.extend(blocks(&b["content"]));
            }
        }
    }
    places
        .into_iter()
        .filter_map(|p| p.get("cache_control"))
        .collect()
}

/// What Bedrock rejects is not in `body` and every removal has a known label.
fn assert_clean(body: &Value, labels: &[&str]) -> Result<(), TestCaseError> {
    for cc in cache_controls(body) {
        prop_assert!(cc.get("scope").is_none(), "scope left in {cc}");
    }
    for tool in body["tools"].as_array().into_iter().flatten() {
        prop_assert!(tool.get("eager_input_streaming").is_none());
    }
    if let Some(id) = body["metadata"]["user_id"].as_str() {
        prop_assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "user_id {id}"
        );
    }
    let betas_ok = body.get("anthropic_beta").is_none_or(|b| {
        b.as_array().is_some_and(|b| {
            !b.iter()
                .any(|x| x == "claude-code-20250219" || x == "oauth-2025-04-20")
        })
    });
    prop_assert!(betas_ok, "first-party betas in {}", body["anthropic_beta"]);
    for label in labels {
        prop_assert!(
            [
                "beta",
                "eager_input_streaming",
                "cache_control_scope",
                "metadata_user_id"
            ]
            .contains(label)
        );
    }
    Ok(())
}

fn through_everything(v: &Value) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(v).unwrap();
    let beta = Some("claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14");
    let _ = native_chunk(&bytes, "m");
    let mut copy = v.clone();
    restore_model(&mut copy, "m");
    prop_assert_eq!(to_json(&to_document(v)).is_object(), v.is_object());
    for parsed in [
        proxy_schema::parse_messages_request(&bytes),
        proxy_schema::parse_count_tokens_request(&bytes),
    ] {
        let Ok(req) = parsed else { continue };
        for model in [CLAUDE, QWEN] {
            let _ = to_converse(&req, &ConverseOptions::new(model));
        }
        match to_native_body(&req, CLAUDE, beta) {
            Ok(native) => {
                prop_assert!(req.max_tokens.is_some());
                prop_assert!(native.body.get("model").is_none());
                prop_assert!(native.body.get("stream").is_none());
                let labels: Vec<&str> = native.removals.iter().map(|r| r.label()).collect();
                assert_clean(&native.body, &labels)?;
                // The bytes written without the tree are the tree's bytes.
                let json = to_native_json(&req, CLAUDE, beta);
                prop_assert!(json.is_ok());
                if let Ok(json) = json {
                    the_trees_bytes(&json.body, &native.body)?;
                    prop_assert_eq!(&json.removals, &native.removals);
                }
            }
            Err(e) => {
                prop_assert!(req.max_tokens.is_none(), "{e}");
                prop_assert!(to_native_json(&req, CLAUDE, beta).is_err());
            }
        }
        let counted = to_native_count_tokens_body(&req, CLAUDE, beta);
        prop_assert!(counted.is_ok());
        if let Ok(counted) = counted {
            prop_assert!(counted.body["max_tokens"].is_u64());
        }
        let messages = to_messages_body(&req, CLAUDE, beta);
        prop_assert!(messages.is_ok());
        if let Ok(m) = messages {
            prop_assert_eq!(&m.body["model"], CLAUDE);
            prop_assert!(m.body.get("anthropic_version").is_none());
            prop_assert!(!m.betas.iter().any(|b| b.starts_with("claude-code-")));
            let labels: Vec<&str> = m.removals.iter().map(|r| r.label()).collect();
            assert_clean(&m.body, &labels)?;
            // The bytes written without the tree are the tree's bytes.
            let json = to_messages_json(&req, CLAUDE, beta);
            prop_assert!(json.is_ok());
            if let Ok(json) = json {
                the_trees_bytes(&json.body, &m.body)?;
                prop_assert_eq!(&json.betas, &m.betas);
                prop_assert_eq!(json.removals.len(), m.removals.len());
            }
        }
    }
    Ok(())
}

/// The bytes a direct writer wrote are the bytes of the tree it stands for.
fn the_trees_bytes(json: &[u8], tree: &Value) -> Result<(), TestCaseError> {
    let tree = serde_json::to_vec(tree).unwrap();
    prop_assert_eq!(
        String::from_utf8_lossy(json),
        String::from_utf8_lossy(&tree)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_shapes_never_panic(v in request()) {
        through_everything(&v)?;
    }

    #[test]
    fn any_json_never_panics(v in value()) {
        through_everything(&v)?;
    }
}

#[test]
fn the_body_that_panicked_is_refused_without_a_panic() {
    let v = json!({"cache_control": {"type": "ephemeral"}, "messages": [5]});
    through_everything(&v).unwrap();
    let bytes = serde_json::to_vec(&v).unwrap();
    assert!(proxy_schema::parse_messages_request(&bytes).is_err());
    // Also with the fields a request needs: still refused by the typed parse, never converted.
    let v = json!({"model": "m", "max_tokens": 1, "cache_control": {"type": "ephemeral"}, "messages": [5]});
    through_everything(&v).unwrap();
    let err = proxy_schema::parse_messages_request(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.path.starts_with("messages.0"), "{err}");
}
