//! Parsed requests through the Claude body builders: `to_native_body` (InvokeModel; the bytes of
//! `to_native_json` are its tree's),
//! `to_native_count_tokens_body` and `to_messages_body` (Bedrock's Messages API). Beyond "no panic":
//! a refusal has a message; an accepted native body carries `anthropic_version`, never `model` or
//! `stream`, keeps `max_tokens` and adds no message; a Messages body names the Bedrock model
//! and parses again as a request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_convert::{
    BEDROCK_ANTHROPIC_VERSION, to_messages_body, to_native_body, to_native_count_tokens_body,
    to_native_json,
};
use serde_json::Value;

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const BETA: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,oauth-2025-04-20";

fuzz_target!(|data: &[u8]| {
    let Ok(req) = proxy_schema::parse_messages_request(data) else {
        return;
    };
    for beta in [None, Some(BETA)] {
        match to_native_body(&req, CLAUDE, beta) {
            Ok(native) => {
                let body = native
                    .body
                    .as_object()
                    .expect("the native body is an object");
                assert_eq!(
                    body.get("anthropic_version").and_then(Value::as_str),
                    Some(BEDROCK_ANTHROPIC_VERSION)
                );
                assert!(!body.contains_key("model") && !body.contains_key("stream"));
                assert_eq!(
                    body.get("max_tokens").and_then(Value::as_u64),
                    req.max_tokens.map(u64::from)
                );
                // Messages may be merged or an empty final assistant turn dropped, never added.
                let n = body.get("messages").and_then(Value::as_array).map(Vec::len);
                assert!(
                    n.is_some_and(|n| n <= req.messages.len() && (n > 0 || req.messages.is_empty())),
                    "{n:?} messages from {}",
                    req.messages.len()
                );
                let tree = serde_json::to_vec(&native.body).expect("serializes");
                // The bytes written without the tree are the tree's bytes.
                let json = to_native_json(&req, CLAUDE, beta).expect("the tree was built");
                assert_eq!(
                    String::from_utf8_lossy(&json.body),
                    String::from_utf8_lossy(&tree)
                );
                assert_eq!(json.removals, native.removals);
            }
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a refusal without a message");
                assert!(to_native_json(&req, CLAUDE, beta).is_err());
            }
        }
        if let Err(e) = to_native_count_tokens_body(&req, CLAUDE, beta) {
            assert!(!e.to_string().is_empty());
        }
        match to_messages_body(&req, CLAUDE, beta) {
            Ok(m) => {
                assert_eq!(m.body["model"], CLAUDE);
                let bytes = serde_json::to_vec(&m.body).expect("serializes");
                if let Err(e) = proxy_schema::parse_messages_request(&bytes) {
                    panic!(
                        "a Messages API body does not parse as a request: {e}\n{}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
