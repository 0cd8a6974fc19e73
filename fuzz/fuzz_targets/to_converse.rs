//! Parsed requests through `to_converse` for each model family the Converse route serves, then to
//! the JSON body the lean client sends and the SDK's input types. Beyond "no panic": a refusal has
//! a message (a 400 `invalid_request_error`); an accepted request gives a body that is a JSON
//! object with the request's messages, inference settings within what was asked, and at most 4
//! cache points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_convert::{ConverseOptions, converse_body, to_converse};
use serde_json::Value;

const MODELS: &[&str] = &[
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.amazon.nova-pro-v1:0",
    "openai.gpt-oss-120b-1:0",
    "qwen.qwen3-coder-480b-a35b-v1:0",
];
const BETA: &str =
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27";

fn count_cache_points(v: &Value) -> usize {
    match v {
        Value::Object(o) => {
            usize::from(o.contains_key("cachePoint"))
                + o.values().map(count_cache_points).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_cache_points).sum(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = proxy_schema::parse_messages_request(data) else {
        return;
    };
    for (i, model) in MODELS.iter().enumerate() {
        let opts = ConverseOptions {
            anthropic_beta: (i % 2 == 0).then_some(BETA),
            prompt_caching: i != 3,
            ..ConverseOptions::new(model)
        };
        let conv = match to_converse(&req, &opts) {
            Ok(conv) => conv,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a refusal without a message");
                continue;
            }
        };
        let body = converse_body(&conv).expect("a converted request has a JSON body");
        let obj = body.as_object().expect("the body is an object");
        assert!(
            obj.get("messages").is_some_and(Value::is_array),
            "no messages: {body}"
        );
        if let Some(max) = body.pointer("/inferenceConfig/maxTokens") {
            assert_eq!(
                max.as_u64(),
                req.max_tokens.map(u64::from),
                "maxTokens changed"
            );
        }
        assert!(
            count_cache_points(&body) <= 4,
            "more than 4 cache points: {body}"
        );
        serde_json::to_vec(&body).expect("the body serializes");
        let _ = conv.clone().into_converse_input(model);
        let _ = conv.into_converse_stream_input(model);
    }
});
