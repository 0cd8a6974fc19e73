//! `POST /v1/messages` and `/v1/messages/count_tokens` bodies through the schema's parsers. Beyond
//! "no panic": a refusal has a message (it becomes a 400 `invalid_request_error`), an accepted
//! request keeps the rules every route relies on (a model, `max_tokens` >= 1 on messages), and it
//! serializes to a body that parses again to the same request (as JSON values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_schema::{MessagesRequest, SchemaError};

type Parser = fn(&[u8]) -> Result<MessagesRequest, SchemaError>;

fuzz_target!(|data: &[u8]| {
    let parsers: [(Parser, bool); 2] = [
        (proxy_schema::parse_messages_request, true),
        (proxy_schema::parse_count_tokens_request, false),
    ];
    for (parse, needs_max_tokens) in parsers {
        let req = match parse(data) {
            Ok(req) => req,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a refusal without a message");
                continue;
            }
        };
        assert!(!req.model.is_empty(), "an empty model was accepted");
        if needs_max_tokens {
            assert!(
                req.max_tokens.is_some_and(|n| n >= 1),
                "max_tokens < 1 accepted"
            );
        }
        let once = serde_json::to_vec(&req).expect("a parsed request serializes");
        let again = parse(&once).unwrap_or_else(|e| {
            panic!(
                "a parsed request does not parse again: {e}\n{}",
                String::from_utf8_lossy(&once)
            )
        });
        // Compared as JSON values: the order of a block's unknown fields may change (found by
        // this target; JSON objects are unordered, and nothing downstream reads that order).
        let twice = serde_json::to_value(&again).expect("serializes");
        let once: serde_json::Value = serde_json::from_slice(&once).expect("JSON");
        assert_eq!(once, twice, "parse(serialize(request)) is another request");
    }
});
