//! proxy-convert against bedrock-sim through the official AWS SDK: what we send is validated by the
//! emulator (not just serialised), and what comes back converts into the Anthropic shape, streaming
//! and non-streaming alike.

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::ResponseStream;
use proxy_convert::{
    ConverseOptions, StreamConverter, converse_body, converse_body_bytes, converse_output,
    converse_stream_error_type, converse_stream_event, from_converse, native_chunk, to_converse,
    to_native_body,
};
use proxy_schema::{
    Accumulator, ContentBlock, ErrorType, Message, StreamEvent, parse_messages_request,
};
use serde_json::{Value, json};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";

struct Sim {
    sim: bedrock_sim::testing::LocalSim,
    client: Client,
}

/// The body the gateway sends (`converse_body_bytes`), which must be the bytes of `converse_body`'s
/// value (the one compared with the SDK's body).
fn written(conv: &proxy_convert::ConverseRequest, lean: &Value) -> Vec<u8> {
    let written = converse_body_bytes(conv).expect("every converted request is written");
    assert_eq!(
        String::from_utf8(written.clone()).unwrap(),
        serde_json::to_string(lean).unwrap(),
        "converse_body_bytes differs from converse_body"
    );
    written
}

async fn sim() -> Sim {
    let sim = bedrock_sim::testing::LocalSim::start(bedrock_sim::Config::default())
        .await
        .unwrap();
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(sim.url())
        .retry_config(RetryConfig::disabled())
        .build();
    Sim {
        sim,
        client: Client::from_conf(conf),
    }
}

impl Sim {
    async fn last_received(&self) -> Value {
        let all = self.sim.recorded().await.unwrap();
        all.last().cloned().unwrap()
    }

    /// Converse (non-streaming) through the conversion; errors as (status-ish code, message).
    async fn converse(
        &self,
        body: &Value,
        model: &str,
        beta: Option<&str>,
    ) -> Result<Message, String> {
        let req = parse_messages_request(&serde_json::to_vec(body).unwrap())
            .map_err(|e| e.to_string())?;
        let opts = ConverseOptions {
            bedrock_model_id: model,
            anthropic_beta: beta,
            prompt_caching: true,
        };
        let conv = to_converse(&req, &opts).map_err(|e| e.to_string())?;
        let lean = converse_body(&conv).expect("every converted request serializes");
        let written = written(&conv, &lean);
        let out = conv
            .converse(&self.client, model)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))
            })?;
        // The gateway sends Converse without the SDK: its serializer must write what the SDK did.
        assert_eq!(
            self.last_received().await["body"],
            lean,
            "converse_body differs from the SDK's body"
        );
        let sdk = from_converse(&out, "msg_test", &req.model);
        // The same request without the SDK: the body serialized above, the answer read by
        // converse_output. Both must give the client the same message.
        let (status, _, raw) = self
            .sim
            .post(&model_path(model, "converse"), &written)
            .await
            .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
        let read = converse_output(&raw).expect("the answer reads");
        assert_eq!(
            without_ids(&from_converse(&read, "msg_test", &req.model)),
            without_ids(&sdk),
            "converse_output reads the answer differently from the SDK"
        );
        Ok(sdk)
    }

    /// ConverseStream through the state machine; returns the events.
    async fn converse_stream(&self, body: &Value, model: &str) -> Vec<StreamEvent> {
        let req = parse_messages_request(&serde_json::to_vec(body).unwrap()).unwrap();
        let conv = to_converse(&req, &ConverseOptions::new(model)).unwrap();
        let lean = converse_body(&conv).expect("every converted request serializes");
        let written = written(&conv, &lean);
        let mut out = conv
            .converse_stream(&self.client, model)
            .send()
            .await
            .unwrap();
        assert_eq!(
            self.last_received().await["body"],
            lean,
            "converse_body differs from the SDK's ConverseStream body"
        );
        // The same request without the SDK, its frames read by converse_stream_event.
        let (status, _, raw) = self
            .sim
            .post(&model_path(model, "converse-stream"), &written)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let mut decoder = bedrock_sim::eventstream::Decoder::default();
        decoder.push(&raw);
        let mut conv = StreamConverter::new("msg_test", &req.model);
        let mut lean_events = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            if frame.header(":message-type") != Some("event") {
                lean_events.extend(conv.on_error(ErrorType::ApiError, "exception"));
                break;
            }
            let event_type = frame.header(":event-type").unwrap();
            if let Some(ev) = converse_stream_event(event_type, &frame.payload).unwrap() {
                lean_events.extend(conv.on_event(&ev));
            }
        }
        lean_events.extend(conv.finish());

        let mut conv = StreamConverter::new("msg_test", &req.model);
        let mut events = Vec::new();
        loop {
            match out.stream.recv().await {
                Ok(Some(ev)) => events.extend(conv.on_event(&ev)),
                Ok(None) => {
                    events.extend(conv.finish());
                    break;
                }
                Err(e) => {
                    let kind = e
                        .as_service_error()
                        .map(converse_stream_error_type)
                        .unwrap_or(ErrorType::ApiError);
                    events.extend(conv.on_error(kind, format!("{e}")));
                    break;
                }
            }
        }
        let failed =
            |evs: &[StreamEvent]| evs.iter().any(|e| matches!(e, StreamEvent::Error { .. }));
        assert_eq!(failed(&lean_events), failed(&events));
        if !failed(&events) {
            assert_eq!(
                without_ids(&accumulate(&lean_events)),
                without_ids(&accumulate(&events)),
                "the stream reads differently without the SDK"
            );
        }
        events
    }
}

/// `/model/{id}/{operation}` with the id encoded as the SDK encodes it.
fn model_path(model: &str, operation: &str) -> String {
    format!("/model/{}/{operation}", model.replace(':', "%3A"))
}

fn accumulate(events: &[StreamEvent]) -> Message {
    let mut acc = Accumulator::new();
    for e in events {
        acc.push(e).unwrap();
    }
    acc.into_message().unwrap()
}

/// Tool ids and redacted data differ between two calls; everything else must be equal.
fn without_ids(m: &Message) -> Value {
    let mut v = serde_json::to_value(m).unwrap();
    for b in v["content"].as_array_mut().unwrap() {
        if b["type"] == "tool_use" {
            b["id"] = json!("toolu_X");
        }
        if b["type"] == "redacted_thinking" {
            b["data"] = json!("X");
        }
    }
    v
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}])
}

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const PDF: &str = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK";

#[tokio::test]
async fn claude_code_fixtures_convert_to_requests_the_sim_accepts() {
    let s = sim().await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/claude-code");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fixture: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let body = &fixture["body"];
        let beta = fixture["headers"]["anthropic-beta"].as_str();
        for model in [CLAUDE, QWEN] {
            let msg = s
                .converse(body, model, beta)
                .await
                .unwrap_or_else(|e| panic!("{} via {model}: {e}", path.display()));
            assert_eq!(
                msg.model, body["model"],
                "the client's model name comes back"
            );
            assert!(!msg.content.is_empty());
        }
        // The native route: the rewritten body is accepted by InvokeModel and its stream.
        let request = parse_messages_request(&serde_json::to_vec(body).unwrap()).unwrap();
        let native = to_native_body(&request, CLAUDE, beta).unwrap();
        let labels: Vec<&str> = native.removals.iter().map(|r| r.label()).collect();
        assert!(labels.contains(&"beta") && labels.contains(&"metadata_user_id"));
        let bytes = serde_json::to_vec(&native.body).unwrap();
        let out = s
            .client
            .invoke_model()
            .model_id(CLAUDE)
            .body(Blob::new(bytes.clone()))
            .send()
            .await;
        let out = out
            .unwrap_or_else(|e| panic!("{} native: {:?}", path.display(), e.into_service_error()));
        let mut message: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
        proxy_convert::restore_model(&mut message, body["model"].as_str().unwrap());
        assert_eq!(message["model"], body["model"]);
        let received = s.last_received().await;
        assert!(
            received["body"]["anthropic_beta"]
                .as_array()
                .is_none_or(|b| {
                    !b.iter().any(|x| {
                        x == "claude-code-20250219" || x == "prompt-caching-scope-2026-01-05"
                    })
                })
        );
        let user_id = received["body"]["metadata"]["user_id"].as_str().unwrap();
        assert!(user_id.len() == 64 && user_id.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut stream = s
            .client
            .invoke_model_with_response_stream()
            .model_id(CLAUDE)
            .body(Blob::new(bytes))
            .send()
            .await
            .unwrap();
        let mut events = Vec::new();
        while let Some(ResponseStream::Chunk(part)) = stream.body.recv().await.unwrap() {
            let chunk = native_chunk(
                part.bytes().unwrap().as_ref(),
                body["model"].as_str().unwrap(),
            )
            .unwrap();
            events.push(serde_json::from_value::<StreamEvent>(chunk.event).unwrap());
        }
        let streamed = accumulate(&events);
        assert_eq!(streamed.model, body["model"]);
        assert_eq!(
            serde_json::to_value(&streamed.content).unwrap(),
            message["content"]
        );
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn system_messages_caching_and_merging_reach_bedrock_correctly() {
    let s = sim().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}, {"type": "text", "text": "  "}],
        "messages": [user("first"), {"role": "system", "content": "mid-conversation rule"}, user("second"),
                     {"role": "assistant", "content": [{"type": "text", "text": ""}]}, user("third")]});
    let msg = s.converse(&body, CLAUDE, None).await.unwrap();
    assert!(matches!(&msg.content[0], ContentBlock::Text(t) if t.text.contains("third")));
    let sent = &s.last_received().await["body"];
    assert_eq!(
        sent["system"],
        json!([{"text": "You are terse."}, {"cachePoint": {"type": "default", "ttl": "1h"}}, {"text": "mid-conversation rule"}])
    );
    assert_eq!(
        sent["messages"].as_array().unwrap().len(),
        1,
        "user turns merged, blank assistant turn dropped"
    );
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"text": "first"}, {"text": "second"}, {"text": "third"}])
    );

    // Qwen takes no cache points.
    s.converse(&body, QWEN, None).await.unwrap();
    let sent = &s.last_received().await["body"];
    assert!(!sent.to_string().contains("cachePoint"));

    let mut too_many = body.clone();
    let cc = json!({"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}});
    too_many["messages"] = json!([{"role": "user", "content": [cc, cc, cc, cc]}]);
    let err = s.converse(&too_many, CLAUDE, None).await.unwrap_err();
    assert!(
        err.contains("A maximum of 4 blocks with cache_control"),
        "{err}"
    );
}

#[tokio::test]
async fn sampling_stop_sequences_and_stop_reasons() {
    let s = sim().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "temperature": 0.3, "top_p": 0.9, "top_k": 7,
        "stop_sequences": ["STOP"], "messages": [user("go [sim reply='one two STOP three']")]});
    let msg = s.converse(&body, CLAUDE, None).await.unwrap();
    assert_eq!(msg.stop_reason.as_deref(), Some("stop_sequence"));
    assert_eq!(msg.stop_sequence.as_deref(), Some("STOP"));
    let sent = &s.last_received().await["body"];
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 50);
    assert_eq!(sent["inferenceConfig"]["stopSequences"], json!(["STOP"]));
    assert_eq!(sent["additionalModelRequestFields"]["top_k"], 7);
    assert_eq!(
        sent["additionalModelResponseFieldPaths"],
        json!(["/stop_sequence"])
    );
    assert!((sent["inferenceConfig"]["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);

    for (directive, expected) in [
        ("stop=max_tokens", "max_tokens"),
        ("stop=guardrail_intervened", "refusal"),
        ("stop=content_filtered", "refusal"),
        (
            "stop=model_context_window_exceeded",
            "model_context_window_exceeded",
        ),
        ("", "end_turn"),
    ] {
        let body = json!({"model": "m", "max_tokens": 50, "messages": [user(&format!("x [sim {directive}]"))]});
        let msg = s.converse(&body, QWEN, None).await.unwrap();
        assert_eq!(msg.stop_reason.as_deref(), Some(expected), "{directive}");
    }
    // Qwen gets no Claude-only fields.
    s.converse(
        &json!({"model": "m", "max_tokens": 5, "top_k": 3, "messages": [user("x")]}),
        QWEN,
        None,
    )
    .await
    .unwrap();
    assert!(
        s.last_received().await["body"]
            .get("additionalModelRequestFields")
            .is_none()
    );
}

#[tokio::test]
async fn tool_choice_variants() {
    let s = sim().await;
    let cases = [
        (json!({"type": "auto"}), Some(json!({"auto": {}}))),
        (
            json!({"type": "any", "disable_parallel_tool_use": true}),
            Some(json!({"any": {}})),
        ),
        (
            json!({"type": "tool", "name": "get_time"}),
            Some(json!({"tool": {"name": "get_time"}})),
        ),
        (json!({"type": "none"}), None),
    ];
    for (choice, expected) in cases {
        let body = json!({"model": "m", "max_tokens": 100, "tools": weather_tools(), "tool_choice": choice, "messages": [user("hi")]});
        s.converse(&body, CLAUDE, None).await.unwrap();
        let sent = &s.last_received().await["body"];
        match expected {
            Some(tc) => assert_eq!(sent["toolConfig"]["toolChoice"], tc),
            None => assert!(sent.get("toolConfig").is_none(), "none offers no tools"),
        }
    }
}

#[tokio::test]
async fn tool_round_trip_with_thinking_signatures_images_and_errors() {
    let s = sim().await;
    let thinking = json!({"type": "enabled", "budget_tokens": 1024});
    let first = json!({"model": "claude-sonnet-4-5", "max_tokens": 4000, "thinking": thinking, "tools": weather_tools(),
        "messages": [user("Weather in Paris? [sim thinking tool tools=2]")]});
    let msg = s
        .converse(&first, CLAUDE, Some("interleaved-thinking-2025-05-14"))
        .await
        .unwrap();
    assert_eq!(msg.stop_reason.as_deref(), Some("tool_use"));
    let ContentBlock::Thinking(t) = &msg.content[0] else {
        panic!("thinking first: {msg:?}")
    };
    assert!(!t.signature.is_empty());
    let tool_ids: Vec<String> = msg
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse(t) => Some(t.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tool_ids.len(), 2, "parallel tool calls");
    assert_eq!(
        s.last_received().await["body"]["additionalModelRequestFields"]["anthropic_beta"],
        json!(["interleaved-thinking-2025-05-14"])
    );

    // The assistant turn goes back exactly as the client got it (thinking + signature + tool_use),
    // with results as a string, as blocks with an image, and as an error; cache_control inside a
    // tool_result becomes a cache point after it.
    let assistant = serde_json::to_value(&msg.content).unwrap();
    let second = json!({"model": "claude-sonnet-4-5", "max_tokens": 4000, "thinking": thinking, "tools": weather_tools(),
        "messages": [user("Weather in Paris? [sim thinking tool tools=2]"), {"role": "assistant", "content": assistant},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_ids[0], "content": [
                    {"type": "text", "text": "18C sunny"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}, "cache_control": {"type": "ephemeral"}}]},
                {"type": "tool_result", "tool_use_id": tool_ids[1], "content": "no such tz", "is_error": true}]}]});
    let done = s.converse(&second, CLAUDE, None).await.unwrap();
    assert!(
        matches!(&done.content[0], ContentBlock::Thinking(_)),
        "thinking enabled: Claude thinks first"
    );
    assert!(
        matches!(&done.content[1], ContentBlock::Text(t) if t.text.contains("18C sunny")),
        "{done:?}"
    );
    let sent = &s.last_received().await["body"];
    let content = &sent["messages"][2]["content"];
    assert_eq!(
        content[0]["toolResult"]["content"][0],
        json!({"text": "18C sunny"})
    );
    assert_eq!(
        content[0]["toolResult"]["content"][1]["image"]["format"],
        "png"
    );
    assert!(
        content[1].get("cachePoint").is_some(),
        "cache point after the tool result: {content}"
    );
    assert_eq!(content[2]["toolResult"]["status"], "error");

    // A lost signature is caught by the emulator as Bedrock would.
    let mut tampered = second.clone();
    tampered["messages"][1]["content"][0]["signature"] = json!("forged");
    let err = s.converse(&tampered, CLAUDE, None).await.unwrap_err();
    assert!(err.contains("signature"), "{err}");

    // Redacted thinking round-trips too.
    let body = json!({"model": "m", "max_tokens": 4000, "thinking": thinking, "tools": weather_tools(), "messages": [user("x [sim redacted tool]")]});
    let msg = s.converse(&body, CLAUDE, None).await.unwrap();
    assert!(matches!(&msg.content[0], ContentBlock::RedactedThinking(_)));
    let id = msg
        .content
        .iter()
        .find_map(|b| match b {
            ContentBlock::ToolUse(t) => Some(t.id.clone()),
            _ => None,
        })
        .unwrap();
    let next = json!({"model": "m", "max_tokens": 4000, "thinking": thinking, "tools": weather_tools(), "messages": [
        user("x [sim redacted tool]"), {"role": "assistant", "content": serde_json::to_value(&msg.content).unwrap()},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "ok"}]}]});
    s.converse(&next, CLAUDE, None).await.unwrap();

    // History with tool blocks but no tools offered any more: a toolConfig is still declared.
    let mut no_tools = next.clone();
    no_tools.as_object_mut().unwrap().remove("tools");
    no_tools.as_object_mut().unwrap().remove("thinking");
    s.converse(&no_tools, QWEN, None).await.unwrap();
    assert_eq!(
        s.last_received().await["body"]["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn documents_get_unique_valid_names() {
    let s = sim().await;
    let body = json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}, "title": "report.v2 final!!"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}, "title": "report v2 final"},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]}, "context": "ctx", "citations": {"enabled": true}},
        {"type": "text", "text": "Summarise."}]}]});
    s.converse(&body, CLAUDE, None).await.unwrap();
    let sent = &s.last_received().await["body"]["messages"][0]["content"];
    let names: Vec<&str> = (0..5)
        .map(|i| sent[i]["document"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "document-1",
            "document-2",
            "report v2 final",
            "report v2 final (2)",
            "document-5"
        ]
    );
    assert_eq!(sent[2]["document"]["format"], "txt");
    assert_eq!(sent[4]["document"]["citations"]["enabled"], true);

    let url = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]});
    let err = s.converse(&url, CLAUDE, None).await.unwrap_err();
    assert!(
        err.starts_with("messages.0.content.0.source.type:"),
        "{err}"
    );
}

#[tokio::test]
async fn cache_usage_comes_back() {
    let s = sim().await;
    let body = json!({"model": "m", "max_tokens": 10, "messages": [user("x [sim cache_read=5 cache_write=7]")]});
    let msg = s.converse(&body, CLAUDE, None).await.unwrap();
    assert_eq!(msg.usage.cache_read_input_tokens, Some(5));
    assert_eq!(msg.usage.cache_creation_input_tokens, Some(7));
    assert!(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0);
}

#[tokio::test]
async fn streams_accumulate_to_the_non_streaming_message() {
    let s = sim().await;
    let thinking = json!({"type": "enabled", "budget_tokens": 1024});
    for text in [
        "plain [sim words=30]",
        "weather [sim thinking tool tools=2]",
        "x [sim redacted]",
        "x [sim cache_read=3 stop=max_tokens]",
    ] {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 4000, "thinking": thinking, "tools": weather_tools(), "messages": [user(text)]});
        let whole = s.converse(&body, CLAUDE, None).await.unwrap();
        let events = s.converse_stream(&body, CLAUDE).await;
        assert!(matches!(
            events.first(),
            Some(StreamEvent::MessageStart { .. })
        ));
        assert!(matches!(events.last(), Some(StreamEvent::MessageStop)));
        let streamed = accumulate(&events);
        assert_eq!(without_ids(&streamed), without_ids(&whole), "{text}");
    }
}

#[tokio::test]
async fn a_stream_exception_becomes_an_sse_error_event() {
    let s = sim().await;
    let body = json!({"model": "m", "max_tokens": 100, "messages": [user("x [sim stream_error=throttling after=3]")]});
    let events = s.converse_stream(&body, QWEN).await;
    let Some(StreamEvent::Error { error }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.kind, ErrorType::RateLimitError);
    assert!(matches!(
        events.first(),
        Some(StreamEvent::MessageStart { .. })
    ));
}
