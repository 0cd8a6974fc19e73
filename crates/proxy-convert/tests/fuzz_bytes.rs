//! Byte-level fuzzing of the request path (issue 12): real request bodies (the Claude Code fixtures
//! and small hand-written ones) mutated byte by byte (flips, deletions, insertions, duplicated
//! runs, deep nesting spliced in), through `parse_messages_request` / `parse_count_tokens_request`
//! and, when they parse, every body builder (`to_converse`, `to_native_body`,
//! `to_native_count_tokens_body`, `to_messages_body`). No input may panic or overflow the stack;
//! a request that parses serializes to a body that parses again.
//!
//! Bounded in CI (256 cases per property); longer runs: `FUZZ_CASES=100000 cargo nextest run
//! --release -p proxy-convert --test fuzz_bytes` (docs/RELIABILITY.md records the runs). Structured inputs
//! (random JSON shaped like requests) are `arbitrary_json.rs`.

use proptest::prelude::*;
use proxy_convert::{
    ConverseOptions, to_converse, to_messages_body, to_native_body, to_native_count_tokens_body,
};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";
const BETA: &str = "claude-code-20250219,interleaved-thinking-2025-05-14";

/// The seeds: the bodies of the Claude Code fixtures, and small requests with tools, thinking,
/// images and tool results.
fn seeds() -> Vec<Vec<u8>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/claude-code");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then_some(path)
        })
        .map(|path| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            serde_json::to_vec(&v["body"]).unwrap()
        })
        .collect();
    assert!(
        seeds.len() >= 3,
        "the Claude Code fixtures in {}",
        dir.display()
    );
    for small in [
        r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1024},"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","ttl":"1h"}}],"tools":[{"name":"f","description":"d","input_schema":{"type":"object","properties":{"a":{"type":"string"}}}}],"tool_choice":{"type":"auto"},"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"sig"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":"b"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"r"}],"is_error":false}]}]}"#,
        r#"{"model":"m","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":3,"stop_sequences":["\n\n"],"metadata":{"user_id":"u"},"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"citations":{"enabled":true}}]},{"role":"assistant","content":""}]}"#,
    ] {
        seeds.push(small.as_bytes().to_vec());
    }
    seeds
}

/// Cases per property: `FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// One edit of a body; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(u32, u8),
    Delete(u32, u16),
    Insert(u32, Vec<u8>),
    Duplicate(u32, u16, u32),
    /// `[[[...` or `{"a":{"a":...` `depth` deep, closed or not.
    Nest(u32, u32, bool, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        prop::sample::select(
            &[
                "\"",
                "\\",
                "\\u0000",
                "\\ud800",
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "null",
                "true",
                "-0",
                "1e999",
                "99999999999999999999",
                "\"type\":\"text\"",
                "\"content\":[]",
                "\"model\":\"\"",
                "\"max_tokens\":0",
                "\u{0}",
                "\u{feff}",
                "\u{10ffff}",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop_oneof![
        (any::<u32>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<u32>(), 1u16..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<u32>(), token).prop_map(|(p, t)| Mutation::Insert(p, t)),
        (any::<u32>(), 1u16..256, any::<u32>())
            .prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
        (any::<u32>(), 1u32..200_000, any::<bool>(), any::<bool>())
            .prop_map(|(p, d, o, c)| Mutation::Nest(p, d, o, c)),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let at = |p: u32, len: usize| if len == 0 { 0 } else { p as usize % (len + 1) };
    match m {
        Mutation::Flip(p, b) if !body.is_empty() => {
            let i = *p as usize % body.len();
            body[i] ^= b.max(&1);
        }
        Mutation::Flip(..) => {}
        Mutation::Delete(p, n) => {
            let i = at(*p, body.len());
            let end = (i + *n as usize).min(body.len());
            body.drain(i..end);
        }
        Mutation::Insert(p, t) => {
            let i = at(*p, body.len());
            body.splice(i..i, t.iter().copied());
        }
        Mutation::Duplicate(p, n, to) => {
            let i = at(*p, body.len());
            let end = (i + *n as usize).min(body.len());
            let run = body[i..end].to_vec();
            let j = at(*to, body.len());
            body.splice(j..j, run);
        }
        Mutation::Nest(p, depth, objects, closed) => {
            let i = at(*p, body.len());
            let (open, close): (&[u8], &[u8]) = if *objects {
                (b"{\"a\":", b"}")
            } else {
                (b"[", b"]")
            };
            let mut nest = open.repeat(*depth as usize);
            if *closed {
                nest.extend(b"1");
                nest.extend(close.repeat(*depth as usize));
            }
            body.splice(i..i, nest);
        }
    }
}

/// Everything the request path does with a body: parse, and on success convert every way and
/// serialize back.
fn through_the_request_path(body: &[u8]) -> Result<bool, TestCaseError> {
    let mut parsed_any = false;
    for parsed in [
        proxy_schema::parse_messages_request(body),
        proxy_schema::parse_count_tokens_request(body),
    ] {
        let req = match parsed {
            Ok(req) => req,
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                continue;
            }
        };
        parsed_any = true;
        for model in [CLAUDE, QWEN] {
            let opts = ConverseOptions {
                anthropic_beta: Some(BETA),
                ..ConverseOptions::new(model)
            };
            let _ = to_converse(&req, &opts);
        }
        let _ = to_native_body(&req, CLAUDE, Some(BETA));
        let _ = to_native_count_tokens_body(&req, CLAUDE, Some(BETA));
        let _ = to_messages_body(&req, CLAUDE, Some(BETA));
        let again = serde_json::to_vec(&req).unwrap();
        let reparsed = proxy_schema::parse_count_tokens_request(&again);
        prop_assert!(reparsed.is_ok(), "{:?}", reparsed.err());
    }
    Ok(parsed_any)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let mut body = seed.get(&seeds).clone();
        for m in &edits {
            apply(&mut body, m);
        }
        through_the_request_path(&body)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        through_the_request_path(&body)?;
    }
}

#[test]
fn the_seeds_parse_and_convert() {
    for seed in seeds() {
        assert!(through_the_request_path(&seed).unwrap());
    }
}
