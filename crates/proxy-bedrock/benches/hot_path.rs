//! The per-request hot path of the gateway, step by step, so that a regression in one step shows in
//! review: parse the client's request, convert it for each route, build and sign the upstream HTTP
//! request, and decode each kind of reply (a native message, native stream chunks, Messages API SSE,
//! a Converse output, ConverseStream events). Pure CPU: no sockets, no runtime.
//!
//! `cargo bench -p proxy-bedrock --bench hot_path`; pass a filter (`-- parse/`) to run a part.
//! Requests: the Claude Code first-turn fixture (24 tools, ~25 KB) and a one-sentence prompt (the
//! request `cargo xtask bench` sends).

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockDeltaEvent, ContentBlockStopEvent,
    ConversationRole, ConverseMetrics, ConverseStreamMetadataEvent, ConverseStreamMetrics,
    ConverseStreamOutput, Message as BedrockMessage, MessageStartEvent, MessageStopEvent,
    StopReason, TokenUsage,
};
use base64::Engine as _;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};
use proxy_bedrock::ReplyEvent;
use proxy_bedrock::eventstream::FrameDecoder;
use proxy_bedrock::signed::{SigningKeys, build_request, sign_cached, sign_request};
use proxy_bedrock::sse::SseDecoder;
use proxy_convert::{
    ConverseOptions, StreamConverter, from_converse, to_converse, to_messages_body,
    to_messages_json, to_native_body,
};

/// A Claude model on Bedrock (the native and Messages routes), and a Converse-only model.
const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";
const MODEL: &str = "claude-sonnet-4-5-20250929";
const URL: &str = "https://bedrock-runtime.us-east-1.amazonaws.com/anthropic/v1/messages";

/// The sentence `cargo xtask bench` sends.
const SENTENCE: &str = r#"{"model":"qwen.qwen3-coder-480b-a35b-v1:0","max_tokens":256,"messages":[{"role":"user","content":"Summarise the benefits of connection reuse in two sentences."}]}"#;

/// The reply text, in the ~12 pieces bedrock-sim streams by default.
const PIECES: [&str; 12] = [
    "Connection ",
    "reuse ",
    "avoids ",
    "a new ",
    "TCP and TLS ",
    "handshake ",
    "per request, ",
    "cutting latency. ",
    "It also ",
    "saves CPU ",
    "on both ",
    "ends.",
];

fn claude_code() -> (Vec<u8>, String) {
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

fn parse(c: &mut Criterion) {
    let (body, _) = claude_code();
    c.bench_function("parse/claude-code", |b| {
        b.iter(|| proxy_schema::parse_messages_request(black_box(&body)).unwrap())
    });
    c.bench_function("parse/sentence", |b| {
        b.iter(|| proxy_schema::parse_messages_request(black_box(SENTENCE.as_bytes())).unwrap())
    });
}

fn convert(c: &mut Criterion) {
    let (body, beta) = claude_code();
    let code = proxy_schema::parse_messages_request(&body).unwrap();
    let sentence = proxy_schema::parse_messages_request(SENTENCE.as_bytes()).unwrap();
    let claude = ConverseOptions {
        bedrock_model_id: CLAUDE,
        anthropic_beta: Some(&beta),
        prompt_caching: true,
    };
    let qwen = ConverseOptions::new(QWEN);
    c.bench_function("convert/converse/claude-code", |b| {
        b.iter(|| {
            to_converse(black_box(&code), &claude)
                .unwrap()
                .into_converse_input(CLAUDE)
        })
    });
    c.bench_function("convert/converse/sentence", |b| {
        b.iter(|| {
            to_converse(black_box(&sentence), &qwen)
                .unwrap()
                .into_converse_input(QWEN)
        })
    });
    // As the native and Messages routes do: the body built, then serialized.
    c.bench_function("convert/native/claude-code", |b| {
        b.iter(|| {
            let native = to_native_body(black_box(&code), CLAUDE, Some(&beta)).unwrap();
            serde_json::to_vec(&native.body).unwrap()
        })
    });
    c.bench_function("convert/native/sentence", |b| {
        b.iter(|| {
            let native = to_native_body(black_box(&sentence), CLAUDE, None).unwrap();
            serde_json::to_vec(&native.body).unwrap()
        })
    });
    // What the gateway sends: the typed request written as JSON (no tree unless a system message
    // moves; the Claude Code request has none).
    c.bench_function("convert/messages/claude-code", |b| {
        b.iter(|| {
            to_messages_json(black_box(&code), CLAUDE, Some(&beta))
                .unwrap()
                .body
        })
    });
    c.bench_function("convert/messages/sentence", |b| {
        b.iter(|| {
            to_messages_json(black_box(&sentence), CLAUDE, None)
                .unwrap()
                .body
        })
    });
    // The tree, for comparison (and what embedders of `to_messages_body` pay).
    c.bench_function("convert/messages/claude-code (through a Value tree)", |b| {
        b.iter(|| {
            let built = to_messages_body(black_box(&code), CLAUDE, Some(&beta)).unwrap();
            serde_json::to_vec(&built.body).unwrap()
        })
    });
}

/// The headers `MessagesClient` sends.
fn upstream_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    headers
}

fn sign(c: &mut Criterion) {
    let (body, beta) = claude_code();
    let code = proxy_schema::parse_messages_request(&body).unwrap();
    let built = to_messages_body(&code, CLAUDE, Some(&beta)).unwrap();
    let code_body = Bytes::from(serde_json::to_vec(&built.body).unwrap());
    let sentence = proxy_schema::parse_messages_request(SENTENCE.as_bytes()).unwrap();
    let built = to_messages_body(&sentence, CLAUDE, None).unwrap();
    let sentence_body = Bytes::from(serde_json::to_vec(&built.body).unwrap());
    let credentials = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token".into()),
        None,
        "bench",
    );
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);

    c.bench_function("request/build", |b| {
        b.iter(|| {
            build_request(
                Method::POST,
                black_box(URL),
                upstream_headers(),
                sentence_body.clone(),
            )
            .unwrap()
        })
    });
    let keys = SigningKeys::default();
    c.bench_function("request/sign/sentence (signing key kept)", |b| {
        b.iter_batched(
            || build_request(Method::POST, URL, upstream_headers(), sentence_body.clone()).unwrap(),
            |mut request| {
                sign_cached(
                    &mut request,
                    &sentence_body,
                    &credentials,
                    "bedrock",
                    "us-east-1",
                    time,
                    Some(&keys),
                )
                .unwrap();
                request
            },
            BatchSize::SmallInput,
        )
    });
    for (name, body) in [("sentence", &sentence_body), ("claude-code", &code_body)] {
        c.bench_function(&format!("request/sign/{name}"), |b| {
            b.iter_batched(
                || build_request(Method::POST, URL, upstream_headers(), body.clone()).unwrap(),
                |mut request| {
                    sign_request(
                        &mut request,
                        body,
                        &credentials,
                        "bedrock",
                        "us-east-1",
                        time,
                    )
                    .unwrap();
                    request
                },
                BatchSize::SmallInput,
            )
        });
    }
}

/// The Anthropic events of one reply (what Bedrock's native stream and Messages API send): start,
/// a text block in [`PIECES`], its stop, the final delta and stop.
fn anthropic_events(model_id: &str) -> Vec<(&'static str, String)> {
    let mut events = vec![
        (
            "message_start",
            format!(
                r#"{{"type":"message_start","message":{{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"{model_id}","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}}}}"#
            ),
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                .to_owned(),
        ),
    ];
    for piece in PIECES {
        events.push((
            "content_block_delta",
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{piece}"}}}}"#
            ),
        ));
    }
    events.push((
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.to_owned(),
    ));
    events.push((
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":24}}"#
            .to_owned(),
    ));
    events.push(("message_stop", r#"{"type":"message_stop"}"#.to_owned()));
    events
}

fn native_message() -> String {
    let text: String = PIECES.concat();
    format!(
        r#"{{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"{CLAUDE}","content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":24}}}}"#
    )
}

fn converse_output() -> ConverseOutput {
    let message = BedrockMessage::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text(PIECES.concat()))
        .build()
        .unwrap();
    ConverseOutput::builder()
        .output(aws_sdk_bedrockruntime::types::ConverseOutput::Message(
            message,
        ))
        .stop_reason(StopReason::EndTurn)
        .usage(
            TokenUsage::builder()
                .input_tokens(21)
                .output_tokens(24)
                .total_tokens(45)
                .build()
                .unwrap(),
        )
        .metrics(ConverseMetrics::builder().latency_ms(120).build().unwrap())
        .build()
        .unwrap()
}

fn converse_stream() -> Vec<ConverseStreamOutput> {
    let mut events = vec![ConverseStreamOutput::MessageStart(
        MessageStartEvent::builder()
            .role(ConversationRole::Assistant)
            .build()
            .unwrap(),
    )];
    for piece in PIECES {
        events.push(ConverseStreamOutput::ContentBlockDelta(
            ContentBlockDeltaEvent::builder()
                .content_block_index(0)
                .delta(ContentBlockDelta::Text(piece.into()))
                .build()
                .unwrap(),
        ));
    }
    events.push(ConverseStreamOutput::ContentBlockStop(
        ContentBlockStopEvent::builder()
            .content_block_index(0)
            .build()
            .unwrap(),
    ));
    events.push(ConverseStreamOutput::MessageStop(
        MessageStopEvent::builder()
            .stop_reason(StopReason::EndTurn)
            .build()
            .unwrap(),
    ));
    events.push(ConverseStreamOutput::Metadata(
        ConverseStreamMetadataEvent::builder()
            .usage(
                TokenUsage::builder()
                    .input_tokens(21)
                    .output_tokens(24)
                    .total_tokens(45)
                    .build()
                    .unwrap(),
            )
            .metrics(
                ConverseStreamMetrics::builder()
                    .latency_ms(120)
                    .build()
                    .unwrap(),
            )
            .build(),
    ));
    events
}

fn decode(c: &mut Criterion) {
    // Non-streaming replies.
    let native = native_message();
    c.bench_function("decode/native message", |b| {
        b.iter(|| {
            let mut m: proxy_schema::Message =
                serde_json::from_slice(black_box(native.as_bytes())).unwrap();
            m.model = MODEL.to_owned();
            serde_json::to_vec(&m).unwrap()
        })
    });
    let output = converse_output();
    c.bench_function("decode/converse output", |b| {
        b.iter(|| {
            let m = from_converse(black_box(&output), "msg_bdrk_01", MODEL);
            serde_json::to_vec(&m).unwrap()
        })
    });

    // Streams, whole (16 events), to the SSE bytes the client gets.
    let events = anthropic_events(CLAUDE);
    let mut chunks: Vec<String> = events.iter().map(|(_, data)| data.clone()).collect();
    // Bedrock adds its invocation metrics to the last chunk.
    chunks.last_mut().unwrap().replace_range(
        ..,
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":24,"invocationLatency":120,"firstByteLatency":40}}"#,
    );
    c.bench_function("decode/native stream (16 chunks)", |b| {
        b.iter(|| {
            let mut n = 0;
            for chunk in &chunks {
                let event =
                    ReplyEvent::from_native_chunk(black_box(chunk.as_bytes()), MODEL).unwrap();
                n += event.to_sse().len();
            }
            n
        })
    });

    // The same chunks as InvokeModelWithResponseStream frames them (bedrock-sim's encoder, with
    // Bedrock's `p` padding), as the body arrives, through the event-stream decoder to the decoded
    // chunk bytes.
    let framed: Vec<u8> = chunks
        .iter()
        .flat_map(|chunk| {
            let payload = format!(
                r#"{{"bytes":"{}","p":"abcdefghijklmnopqrstu"}}"#,
                base64::engine::general_purpose::STANDARD.encode(chunk)
            );
            bedrock_sim::eventstream::event_frame("chunk", payload.as_bytes()).to_vec()
        })
        .collect();
    let pieces: Vec<&[u8]> = framed.chunks(700).collect();
    c.bench_function(
        "decode/event stream frames to chunk bytes (16 chunks)",
        |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new();
                let mut n = 0;
                for piece in &pieces {
                    decoder.push(black_box(piece));
                    while let Some(frame) = decoder.next_frame().unwrap() {
                        n += proxy_bedrock::fuzzing::chunk_bytes(&frame)
                            .unwrap()
                            .map_or(0, |bytes| bytes.len());
                    }
                }
                n
            })
        },
    );

    let sse: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    // As the body arrives: in pieces of about one TCP segment's worth of events.
    let body: Vec<Bytes> = sse
        .as_bytes()
        .chunks(700)
        .map(Bytes::copy_from_slice)
        .collect();
    c.bench_function("decode/sse decoder (16 events)", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::default();
            let mut n = 0;
            for part in &body {
                decoder.push(black_box(part));
                while let Some(event) = decoder.next_event().unwrap() {
                    n += event.data.len();
                }
            }
            n
        })
    });
    let decoded: Vec<_> = {
        let mut decoder = SseDecoder::default();
        decoder.push(sse.as_bytes());
        std::iter::from_fn(|| decoder.next_event().unwrap()).collect()
    };
    c.bench_function("decode/sse events relayed (16 events)", |b| {
        b.iter_batched(
            || decoded.clone(),
            |decoded| {
                let mut n = 0;
                for event in decoded {
                    let mut event = ReplyEvent::relayed(event.event, event.data);
                    event.restore_model(MODEL);
                    n += event.to_sse().len();
                }
                n
            },
            BatchSize::SmallInput,
        )
    });

    let stream = converse_stream();
    c.bench_function("decode/converse stream (16 events)", |b| {
        b.iter(|| {
            let mut conv = StreamConverter::new("msg_bdrk_01", MODEL);
            let mut n = 0;
            for event in &stream {
                for e in conv.on_event(black_box(event)) {
                    n += ReplyEvent::typed(e).to_sse().len();
                }
            }
            for e in conv.finish() {
                n += ReplyEvent::typed(e).to_sse().len();
            }
            n
        })
    });
}

criterion_group!(benches, parse, convert, sign, decode);
criterion_main!(benches);
