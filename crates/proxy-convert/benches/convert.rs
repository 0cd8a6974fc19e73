//! Conversion cost of a typical request (the Claude Code first-turn fixture: 24 tools, ~25 KB) on
//! both routes, and of one stream event through the state machine.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockDeltaEvent, ConverseStreamOutput, MessageStartEvent,
};
use criterion::{Criterion, criterion_group, criterion_main};
use proxy_convert::{
    ConverseOptions, StreamConverter, to_converse, to_messages_body, to_messages_json,
    to_native_body, to_native_json,
};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn fixture() -> (Vec<u8>, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/claude-code/01-first-turn-stream.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("tests/fixtures/claude-code")).unwrap();
    let beta = fixture["headers"]["anthropic-beta"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (serde_json::to_vec(&fixture["body"]).unwrap(), beta)
}

/// A later turn of a Claude Code session: the tool-result fixture's history, its tool call and
/// result repeated 40 times, each result 2 KB of a file (blocks are then most of the body).
fn conversation() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/claude-code/02-tool-result-turn.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("tests/fixtures/claude-code")).unwrap();
    let mut body = fixture["body"].clone();
    let messages = body["messages"].as_array_mut().unwrap();
    let (call, result) = (messages[2].clone(), messages[3].clone());
    let file: String = (1..=40)
        .map(|i| format!("{i}\tfn line_{i}() {{ let value = compute({i}); }}\n"))
        .collect();
    for turn in 0..40 {
        let mut call = call.clone();
        call["content"][0]["id"] = format!("toolu_{turn:02}").into();
        let mut result = result.clone();
        result["content"][0]["tool_use_id"] = format!("toolu_{turn:02}").into();
        result["content"][0]["content"] = file.clone().into();
        messages.push(call);
        messages.push(result);
    }
    serde_json::to_vec(&body).unwrap()
}

fn requests(c: &mut Criterion) {
    let (body, beta) = fixture();
    let opts = ConverseOptions {
        bedrock_model_id: CLAUDE,
        anthropic_beta: Some(&beta),
        prompt_caching: true,
    };
    c.bench_function("parse claude-code request", |b| {
        b.iter(|| proxy_schema::parse_messages_request(black_box(&body)).unwrap())
    });
    let conversation = conversation();
    c.bench_function("parse claude-code conversation (40 tool turns)", |b| {
        b.iter(|| proxy_schema::parse_messages_request(black_box(&conversation)).unwrap())
    });
    let req = proxy_schema::parse_messages_request(&body).unwrap();
    c.bench_function("to_converse (parsed claude-code request)", |b| {
        b.iter(|| {
            to_converse(black_box(&req), &opts)
                .unwrap()
                .into_converse_stream_input(CLAUDE)
        })
    });
    c.bench_function("to_native_body (parsed claude-code request)", |b| {
        b.iter(|| to_native_body(black_box(&req), CLAUDE, Some(&beta)).unwrap())
    });
    c.bench_function("to_messages_body (parsed claude-code request)", |b| {
        b.iter(|| to_messages_body(black_box(&req), CLAUDE, Some(&beta)).unwrap())
    });
    // What the gateway sends on the native and Messages API routes: the bodies as bytes.
    c.bench_function("to_native_json (parsed claude-code request)", |b| {
        b.iter(|| to_native_json(black_box(&req), CLAUDE, Some(&beta)).unwrap())
    });
    c.bench_function("to_messages_json (parsed claude-code request)", |b| {
        b.iter(|| to_messages_json(black_box(&req), CLAUDE, Some(&beta)).unwrap())
    });
}

fn stream_event(c: &mut Criterion) {
    let start = ConverseStreamOutput::MessageStart(
        MessageStartEvent::builder()
            .role("assistant".into())
            .build()
            .unwrap(),
    );
    let delta = ConverseStreamOutput::ContentBlockDelta(
        ContentBlockDeltaEvent::builder()
            .content_block_index(0)
            .delta(ContentBlockDelta::Text("Hello, streaming world ".into()))
            .build()
            .unwrap(),
    );
    let mut conv = StreamConverter::new("msg_1", "claude-sonnet-4-5");
    conv.on_event(&start);
    c.bench_function("stream text delta -> SSE bytes", |b| {
        b.iter(|| {
            let events = conv.on_event(black_box(&delta));
            events.iter().map(|e| e.to_sse().len()).sum::<usize>()
        })
    });
}

criterion_group!(benches, requests, stream_event);
criterion_main!(benches);
