//! bedrock-sim driven by the official AWS SDK for Rust (`aws-sdk-bedrockruntime`): every operation,
//! every stream event kind, in-stream exceptions and HTTP errors must surface as the SDK's own types.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseOutput as Output,
    ConverseStreamOutput, ConverseTokensRequest, CountTokensInput, InferenceConfiguration,
    InvokeModelTokensRequest, Message, ReasoningContentBlock, ReasoningContentBlockDelta,
    ReasoningTextBlock, ResponseStream, StopReason, Tool, ToolConfiguration, ToolInputSchema,
    ToolResultBlock, ToolResultContentBlock, ToolSpecification, error::ConverseStreamOutputError,
};
use aws_smithy_types::{Document, Number};
use serde_json::{Value, json};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const CLAUDE_BARE: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";

struct Harness {
    sim: bedrock_sim::testing::LocalSim,
    client: Client,
}

async fn start() -> Harness {
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
    Harness {
        sim,
        client: Client::from_conf(conf),
    }
}

fn doc(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Document::Number(Number::NegInt(i)),
            None => Document::Number(Number::Float(n.as_f64().unwrap())),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(doc).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), doc(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => json!(b),
        Document::Number(n) => match *n {
            Number::PosInt(u) => json!(u),
            Number::NegInt(i) => json!(i),
            Number::Float(f) => json!(f),
        },
        Document::String(s) => json!(s),
        Document::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Document::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.into()))
        .build()
        .unwrap()
}

fn weather_tools() -> ToolConfiguration {
    let schema = json!({"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"]});
    let spec = ToolSpecification::builder()
        .name("get_weather")
        .description("Weather for a city")
        .input_schema(ToolInputSchema::Json(doc(&schema)))
        .build()
        .unwrap();
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .build()
        .unwrap()
}

fn thinking_fields() -> Document {
    doc(&json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}))
}

fn texts(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|b| b.as_text().ok().cloned())
        .collect()
}

#[tokio::test]
async fn converse_returns_text_usage_and_is_recorded() {
    let h = start().await;
    for model in [CLAUDE, QWEN] {
        let out = h
            .client
            .converse()
            .model_id(model)
            .messages(user("What is Bedrock?"))
            .send()
            .await
            .unwrap();
        let Some(Output::Message(msg)) = out.output() else {
            panic!("no message")
        };
        assert_eq!(msg.role(), &ConversationRole::Assistant);
        assert!(
            texts(msg.content()).contains("What is Bedrock?"),
            "echoes the user text"
        );
        assert_eq!(out.stop_reason(), &StopReason::EndTurn);
        let usage = out.usage().unwrap();
        assert!(usage.input_tokens() > 0 && usage.output_tokens() > 0);
        assert_eq!(
            usage.total_tokens(),
            usage.input_tokens() + usage.output_tokens()
        );
    }
    let rec = h.sim.recorded().await.unwrap();
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0]["operation"], "Converse");
    assert_eq!(rec[0]["model_id"], CLAUDE, "model id decoded from %3A");
    assert!(rec[0]["path"].as_str().unwrap().contains("%3A"));
    let auth = rec[0]["headers"]["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && auth.contains("/us-east-1/bedrock/aws4_request")
    );
    assert_eq!(
        rec[0]["body"]["messages"][0]["content"][0]["text"],
        "What is Bedrock?"
    );
    assert_eq!(rec[1]["model_id"], QWEN);
}

#[tokio::test]
async fn converse_tool_round_trip_and_thinking_signature() {
    let h = start().await;
    let first = user("Weather in Paris? [sim tool thinking]");
    let out = h
        .client
        .converse()
        .model_id(CLAUDE)
        .messages(first.clone())
        .tool_config(weather_tools())
        .inference_config(InferenceConfiguration::builder().max_tokens(4000).build())
        .additional_model_request_fields(thinking_fields())
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::ToolUse);
    let Some(Output::Message(assistant)) = out.output() else {
        panic!()
    };
    let ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(reasoning)) =
        &assistant.content()[0]
    else {
        panic!("reasoning block first: {:?}", assistant.content())
    };
    assert!(reasoning.signature().is_some_and(|s| !s.is_empty()));
    let tool_use = assistant
        .content()
        .iter()
        .find_map(|b| b.as_tool_use().ok())
        .expect("a toolUse block");
    assert_eq!(tool_use.name(), "get_weather");
    let input = to_json(tool_use.input());
    assert!(
        input["city"].is_string() && input["days"].is_number(),
        "required properties filled: {input}"
    );

    let result = ToolResultBlock::builder()
        .tool_use_id(tool_use.tool_use_id())
        .content(ToolResultContentBlock::Text("18 degrees and sunny".into()))
        .build()
        .unwrap();
    let reply = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::ToolResult(result))
        .build()
        .unwrap();
    let second = h
        .client
        .converse()
        .model_id(CLAUDE)
        .messages(first.clone())
        .messages(assistant.clone())
        .messages(reply.clone())
        .tool_config(weather_tools())
        .inference_config(InferenceConfiguration::builder().max_tokens(4000).build())
        .additional_model_request_fields(thinking_fields())
        .send()
        .await
        .unwrap();
    let Some(Output::Message(done)) = second.output() else {
        panic!()
    };
    assert!(
        texts(done.content()).contains("18 degrees and sunny"),
        "tool result reached the model"
    );
    assert_eq!(second.stop_reason(), &StopReason::EndTurn);

    // The same history with the thinking text edited: the signature no longer matches.
    let mut tampered = assistant.clone().content;
    tampered[0] = ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(
        ReasoningTextBlock::builder()
            .text(format!("{} (edited)", reasoning.text()))
            .set_signature(reasoning.signature().map(str::to_owned))
            .build()
            .unwrap(),
    ));
    let tampered = Message::builder()
        .role(ConversationRole::Assistant)
        .set_content(Some(tampered))
        .build()
        .unwrap();
    let err = h
        .client
        .converse()
        .model_id(CLAUDE)
        .messages(first)
        .messages(tampered)
        .messages(reply)
        .tool_config(weather_tools())
        .inference_config(InferenceConfiguration::builder().max_tokens(4000).build())
        .additional_model_request_fields(thinking_fields())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("signature"));
}

#[tokio::test]
async fn converse_stream_yields_every_event_kind() {
    let h = start().await;
    let mut out = h
        .client
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("Weather? [sim thinking tool tools=2]"))
        .tool_config(weather_tools())
        .inference_config(InferenceConfiguration::builder().max_tokens(4000).build())
        .additional_model_request_fields(thinking_fields())
        .send()
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let (mut reasoning, mut signature, mut text) = (String::new(), String::new(), String::new());
    let mut tool_json: HashMap<i32, String> = HashMap::new();
    let mut tool_starts = Vec::new();
    let mut usage = None;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match &event {
            ConverseStreamOutput::MessageStart(e) => {
                assert_eq!(e.role(), &ConversationRole::Assistant);
                kinds.push("messageStart")
            }
            ConverseStreamOutput::ContentBlockStart(e) => {
                if let Some(ContentBlockStart::ToolUse(t)) = e.start() {
                    assert_eq!(t.name(), "get_weather");
                    tool_starts.push((e.content_block_index(), t.tool_use_id().to_owned()));
                }
                kinds.push("contentBlockStart")
            }
            ConverseStreamOutput::ContentBlockDelta(e) => {
                match e.delta() {
                    Some(ContentBlockDelta::Text(t)) => text.push_str(t),
                    Some(ContentBlockDelta::ToolUse(t)) => tool_json
                        .entry(e.content_block_index())
                        .or_default()
                        .push_str(t.input()),
                    Some(ContentBlockDelta::ReasoningContent(
                        ReasoningContentBlockDelta::Text(t),
                    )) => reasoning.push_str(t),
                    Some(ContentBlockDelta::ReasoningContent(
                        ReasoningContentBlockDelta::Signature(s),
                    )) => signature.push_str(s),
                    other => panic!("unexpected delta {other:?}"),
                }
                kinds.push("contentBlockDelta")
            }
            ConverseStreamOutput::ContentBlockStop(_) => kinds.push("contentBlockStop"),
            ConverseStreamOutput::MessageStop(e) => {
                assert_eq!(e.stop_reason(), &StopReason::ToolUse);
                kinds.push("messageStop")
            }
            ConverseStreamOutput::Metadata(e) => {
                usage = e.usage().cloned();
                assert!(e.metrics().is_some());
                kinds.push("metadata")
            }
            other => panic!("unknown event {other:?}"),
        }
    }
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(&kinds[kinds.len() - 2..], &["messageStop", "metadata"]);
    for k in ["contentBlockStart", "contentBlockDelta", "contentBlockStop"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(!reasoning.is_empty() && !signature.is_empty() && !text.is_empty());
    assert_eq!(tool_starts.len(), 2, "two parallel tool calls");
    assert_ne!(tool_starts[0].1, tool_starts[1].1);
    for (index, _) in &tool_starts {
        let input: Value =
            serde_json::from_str(&tool_json[index]).expect("tool input deltas join into JSON");
        assert!(input["city"].is_string());
    }
    let usage = usage.expect("usage in metadata");
    assert!(usage.input_tokens() > 0 && usage.output_tokens() > 0);
}

#[tokio::test]
async fn converse_stream_text_matches_converse() {
    let h = start().await;
    let whole = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("same words [sim words=40]"))
        .send()
        .await
        .unwrap();
    let Some(Output::Message(msg)) = whole.output() else {
        panic!()
    };
    let mut out = h
        .client
        .converse_stream()
        .model_id(QWEN)
        .messages(user("same words [sim words=40]"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let mut output_tokens = 0;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match event {
            ConverseStreamOutput::ContentBlockDelta(e) => {
                if let Some(ContentBlockDelta::Text(t)) = e.delta() {
                    text.push_str(t)
                }
            }
            ConverseStreamOutput::Metadata(e) => output_tokens = e.usage().unwrap().output_tokens(),
            _ => {}
        }
    }
    assert_eq!(text, texts(msg.content()));
    assert_eq!(text.split_whitespace().count(), 40);
    assert_eq!(output_tokens, whole.usage().unwrap().output_tokens());
}

#[tokio::test]
async fn in_stream_exceptions_surface_as_typed_errors() {
    let h = start().await;
    for (kind, after) in [
        ("throttling", 2),
        ("model_stream_error", 0),
        ("internal", 3),
        ("validation", 1),
        ("unavailable", 1),
    ] {
        let mut out = h
            .client
            .converse_stream()
            .model_id(QWEN)
            .messages(user(&format!("hi [sim stream_error={kind} after={after}]")))
            .send()
            .await
            .unwrap();
        let mut events = 0;
        let err = loop {
            match out.stream.recv().await {
                Ok(Some(_)) => events += 1,
                Ok(None) => panic!("{kind}: stream ended without the exception"),
                Err(e) => break e,
            }
        };
        assert_eq!(events, after, "{kind}: events before the exception");
        let SdkError::ServiceError(ctx) = err else {
            panic!("{kind}: not a service error: {err:?}")
        };
        let typed = ctx.err();
        let ok = match kind {
            "throttling" => matches!(typed, ConverseStreamOutputError::ThrottlingException(_)),
            "model_stream_error" => {
                matches!(typed, ConverseStreamOutputError::ModelStreamErrorException(e)
                if e.original_status_code() == Some(500))
            }
            "internal" => matches!(typed, ConverseStreamOutputError::InternalServerException(_)),
            "validation" => matches!(typed, ConverseStreamOutputError::ValidationException(_)),
            _ => matches!(
                typed,
                ConverseStreamOutputError::ServiceUnavailableException(_)
            ),
        };
        assert!(ok, "{kind}: got {typed:?}");
        assert!(typed.message().is_some_and(|m| !m.is_empty()));
    }
}

fn native_body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": text}],
    }))
    .unwrap()
}

#[tokio::test]
async fn invoke_model_answers_with_the_native_message() {
    let h = start().await;
    let out = h
        .client
        .invoke_model()
        .model_id(CLAUDE)
        .content_type("application/json")
        .accept("application/json")
        .body(Blob::new(native_body("native hello")))
        .send()
        .await
        .unwrap();
    let msg: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(msg["type"], "message");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_bdrk_"));
    assert_eq!(msg["model"], "claude-sonnet-4-5-20250929");
    assert!(
        msg["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("native hello")
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert!(msg["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(out.content_type(), "application/json");

    let mut bad: Value = serde_json::from_slice(&native_body("x")).unwrap();
    bad["stream"] = json!(true);
    let err = h
        .client
        .invoke_model()
        .model_id(CLAUDE)
        .body(Blob::new(serde_json::to_vec(&bad).unwrap()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let err = err.into_service_error();
    assert!(err.is_validation_exception());
    assert!(err.message().unwrap().contains("extraneous key [stream]"));
}

#[tokio::test]
async fn invoke_model_with_response_stream_sends_anthropic_events() {
    let h = start().await;
    let mut out = h
        .client
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .content_type("application/json")
        .body(Blob::new(native_body("stream me [sim thinking tool=none]")))
        .send()
        .await
        .unwrap();
    let mut types = Vec::new();
    let mut last = Value::Null;
    while let Some(event) = out.body.recv().await.unwrap() {
        let ResponseStream::Chunk(part) = event else {
            panic!("unknown event")
        };
        let ev: Value = serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
        types.push(ev["type"].as_str().unwrap().to_owned());
        last = ev;
    }
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    assert_eq!(
        &types[types.len() - 2..],
        &["message_delta".to_owned(), "message_stop".to_owned()]
    );
    assert!(types.iter().any(|t| t == "content_block_delta"));
    let metrics = &last["amazon-bedrock-invocationMetrics"];
    assert!(metrics["inputTokenCount"].as_u64().unwrap() > 0);
    assert!(metrics["outputTokenCount"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn count_tokens_matches_converse_usage() {
    let h = start().await;
    let messages = user("count these words please");
    let converse = h
        .client
        .converse()
        .model_id(CLAUDE)
        .messages(messages.clone())
        .send()
        .await
        .unwrap();
    let counted = h
        .client
        .count_tokens()
        .model_id(CLAUDE_BARE)
        .input(CountTokensInput::Converse(
            ConverseTokensRequest::builder()
                .messages(messages.clone())
                .build(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        counted.input_tokens(),
        converse.usage().unwrap().input_tokens()
    );

    let invoke = h
        .client
        .count_tokens()
        .model_id(CLAUDE_BARE)
        .input(CountTokensInput::InvokeModel(
            InvokeModelTokensRequest::builder()
                .body(Blob::new(native_body("count me")))
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    assert!(invoke.input_tokens() > 0);

    let err = h
        .client
        .count_tokens()
        .model_id(CLAUDE)
        .input(CountTokensInput::Converse(
            ConverseTokensRequest::builder().messages(messages).build(),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception());
    assert!(
        err.message()
            .unwrap()
            .contains("doesn't support counting tokens")
    );
}

#[tokio::test]
async fn http_errors_surface_as_typed_errors() {
    let h = start().await;
    let cases: &[(&str, u16, &str)] = &[
        ("validation", 400, "ValidationException"),
        ("access_denied", 403, "AccessDeniedException"),
        ("not_found", 404, "ResourceNotFoundException"),
        ("throttling", 429, "ThrottlingException"),
        ("quota", 400, "ServiceQuotaExceededException"),
        ("not_ready", 429, "ModelNotReadyException"),
        ("timeout", 408, "ModelTimeoutException"),
        ("model_error", 424, "ModelErrorException"),
        ("internal", 500, "InternalServerException"),
        ("unavailable", 503, "ServiceUnavailableException"),
    ];
    for (kind, status, code) in cases {
        let err = h
            .client
            .invoke_model()
            .model_id(CLAUDE)
            .body(Blob::new(native_body(&format!("fail [sim error={kind}]"))))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(*status),
            "{kind}"
        );
        let e = err.into_service_error();
        assert_eq!(e.code(), Some(*code), "{kind}");
        let typed = match *kind {
            "validation" => e.is_validation_exception(),
            "access_denied" => e.is_access_denied_exception(),
            "not_found" => e.is_resource_not_found_exception(),
            "throttling" => e.is_throttling_exception(),
            "quota" => e.is_service_quota_exceeded_exception(),
            "not_ready" => e.is_model_not_ready_exception(),
            "timeout" => e.is_model_timeout_exception(),
            "model_error" => e.is_model_error_exception(),
            "internal" => e.is_internal_server_exception(),
            _ => e.is_service_unavailable_exception(),
        };
        assert!(typed, "{kind}: {e:?}");
    }
    // The same through Converse, and a model id Bedrock does not know.
    let e = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("x [sim error=throttling]"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_throttling_exception());
    let e = h
        .client
        .converse()
        .model_id("anthropic.claude-nope-v9")
        .messages(user("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception());
    assert_eq!(
        e.message(),
        Some("The provided model identifier is invalid.")
    );
    let e = h
        .client
        .converse()
        .model_id(CLAUDE_BARE)
        .messages(user("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.message().unwrap().contains("on-demand throughput"));
}

#[tokio::test]
async fn validation_rejects_what_bedrock_rejects() {
    let h = start().await;
    let blank = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("   "))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(blank.is_validation_exception());
    assert!(blank.message().unwrap().contains("is blank"));

    let tool_use = aws_sdk_bedrockruntime::types::ToolUseBlock::builder()
        .tool_use_id("tooluse_1")
        .name("get_weather")
        .input(doc(&json!({})))
        .build()
        .unwrap();
    let assistant = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::ToolUse(tool_use))
        .build()
        .unwrap();
    let result = ToolResultBlock::builder()
        .tool_use_id("tooluse_1")
        .content(ToolResultContentBlock::Text("ok".into()))
        .build()
        .unwrap();
    let reply = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::ToolResult(result))
        .build()
        .unwrap();
    let e = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("q"))
        .messages(assistant)
        .messages(reply)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        e.message()
            .unwrap()
            .contains("toolConfig field must be defined"),
        "{e:?}"
    );

    let e = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("a"))
        .messages(user("b"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.message().unwrap().contains("alternate"));
}

const OPUS_4_8_BARE: &str = "anthropic.claude-opus-4-8";
const OPUS_4_8: &str = "us.anthropic.claude-opus-4-8";
const ON_DEMAND_REFUSAL: &str = "Invocation of model ID anthropic.claude-opus-4-8 with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model.";

fn control(sim: &bedrock_sim::testing::LocalSim) -> aws_sdk_bedrock::Client {
    let conf = aws_sdk_bedrock::Config::builder()
        .behavior_version(aws_sdk_bedrock::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrock::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_bedrock::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(sim.url())
        .retry_config(aws_sdk_bedrock::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_bedrock::Client::from_conf(conf)
}

#[tokio::test]
async fn profile_only_models_refuse_their_bare_id_and_answer_through_profiles() {
    let h = start().await;
    let err = h
        .client
        .converse()
        .model_id(OPUS_4_8_BARE)
        .messages(user("hi"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let err = err.into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(err.message(), Some(ON_DEMAND_REFUSAL));

    let err = h
        .client
        .invoke_model()
        .model_id(OPUS_4_8_BARE)
        .body(Blob::new(native_body("hi")))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(err.message(), Some(ON_DEMAND_REFUSAL));

    let err = h
        .client
        .converse_stream()
        .model_id(OPUS_4_8_BARE)
        .messages(user("hi"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    for id in [
        OPUS_4_8,
        "global.anthropic.claude-opus-4-8",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-opus-4-8",
        "au.anthropic.claude-sonnet-5",
    ] {
        let out = h
            .client
            .converse()
            .model_id(id)
            .messages(user("profile hello"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let Some(Output::Message(msg)) = out.output() else {
            panic!("no message")
        };
        assert!(texts(msg.content()).contains("profile hello"), "{id}");
    }

    let out = h
        .client
        .invoke_model()
        .model_id(OPUS_4_8)
        .body(Blob::new(native_body("native opus")))
        .send()
        .await
        .unwrap();
    let msg: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(msg["model"], "claude-opus-4-8");
    assert!(
        msg["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("native opus")
    );

    // Opus 4.7 and later take adaptive thinking only.
    let mut body: Value = serde_json::from_slice(&native_body("think")).unwrap();
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let err = h
        .client
        .invoke_model()
        .model_id(OPUS_4_8)
        .body(Blob::new(serde_json::to_vec(&body).unwrap()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.message().unwrap().contains("thinking.type.adaptive"));
    body["thinking"] = json!({"type": "adaptive"});
    h.client
        .invoke_model()
        .model_id(OPUS_4_8)
        .body(Blob::new(serde_json::to_vec(&body).unwrap()))
        .send()
        .await
        .unwrap();

    let recorded = h.sim.recorded().await.unwrap();
    assert_eq!(recorded[0]["model_id"], OPUS_4_8_BARE);
    assert_eq!(recorded[0]["error"], "ValidationException");
}

#[tokio::test]
async fn control_plane_lists_profile_only_models_and_models_added_at_runtime() {
    use aws_sdk_bedrock::types::InferenceType;
    let h = start().await;
    let control = control(&h.sim);
    let models = control
        .list_foundation_models()
        .by_provider("Anthropic")
        .send()
        .await
        .unwrap();
    let summary = |models: &aws_sdk_bedrock::operation::list_foundation_models::ListFoundationModelsOutput, id: &str| {
        models
            .model_summaries()
            .iter()
            .find(|m| m.model_id() == id)
            .cloned()
    };
    let opus = summary(&models, OPUS_4_8_BARE).expect("Opus 4.8 is listed");
    assert_eq!(opus.model_name(), Some("Claude Opus 4.8"));
    // The SDK's enum predates INFERENCE_PROFILE: it arrives as an unknown variant.
    let types = |m: &aws_sdk_bedrock::types::FoundationModelSummary| {
        m.inference_types_supported()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(types(&opus), ["INFERENCE_PROFILE"]);
    let old = summary(&models, "anthropic.claude-3-haiku-20240307-v1:0").unwrap();
    assert!(
        old.inference_types_supported()
            .contains(&InferenceType::OnDemand)
    );

    let profiles: Vec<String> = control
        .list_inference_profiles()
        .max_results(1000)
        .send()
        .await
        .unwrap()
        .inference_profile_summaries()
        .iter()
        .map(|p| p.inference_profile_id().to_owned())
        .collect();
    for geo in ["us", "eu", "global"] {
        assert!(
            profiles.contains(&format!("{geo}.{OPUS_4_8_BARE}")),
            "{geo}"
        );
    }
    assert!(!profiles.contains(&format!("apac.{OPUS_4_8_BARE}")));
    assert!(profiles.contains(&"jp.anthropic.claude-opus-4-7".to_owned()));

    // A model added at runtime is listed by the next call, with its profiles, and is invocable.
    h.sim
        .add_model(
            &json!({"id": "anthropic.claude-opus-6", "name": "Claude Opus 6",
            "inference_types": ["INFERENCE_PROFILE"], "geos": ["us", "global"], "mantle": true,
            "adaptive_thinking": true}),
        )
        .await
        .unwrap();
    let models = control.list_foundation_models().send().await.unwrap();
    let added = summary(&models, "anthropic.claude-opus-6").expect("added model is listed");
    assert_eq!(added.model_name(), Some("Claude Opus 6"));
    assert_eq!(added.provider_name(), Some("Anthropic"));
    assert_eq!(types(&added), ["INFERENCE_PROFILE"]);
    let profile = control
        .get_inference_profile()
        .inference_profile_identifier("global.anthropic.claude-opus-6")
        .send()
        .await
        .unwrap();
    assert_eq!(profile.inference_profile_name(), "Global Claude Opus 6");
    h.client
        .converse()
        .model_id("us.anthropic.claude-opus-6")
        .messages(user("new model"))
        .send()
        .await
        .unwrap();
    let err = h
        .sim
        .add_model(&json!({"id": "acme.x", "name": "X"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("provider"), "{err}");
}

/// The transport faults are real to the official SDK, not only to our own decoder: each breaks a
/// ConverseStream after the events before it, as a dispatch or response error (never a service
/// error), and `fail_first` lets the second call with the same marker through. (`oversize` is left
/// out: the SDK's decoder does not judge a frame by its prelude, it waits for the bytes claimed.)
#[tokio::test]
async fn transport_faults_break_the_sdks_stream_and_fail_first_lets_later_calls_through() {
    let h = start().await;
    for fault in ["reset", "truncate", "bad_crc"] {
        let mut out = h
            .client
            .converse_stream()
            .model_id(QWEN)
            .messages(user(&format!("hi [sim words=20 {fault} after=2]")))
            .send()
            .await
            .unwrap();
        let mut events = 0;
        let err = loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(10), out.stream.recv()).await;
            match next {
                Err(_) => panic!("{fault}: the SDK still waits"),
                Ok(Ok(Some(_))) => events += 1,
                Ok(Ok(None)) => panic!("{fault}: the stream ended cleanly"),
                Ok(Err(e)) => break e,
            }
        };
        assert_eq!(events, 2, "{fault}");
        assert!(
            !matches!(err, SdkError::ServiceError(_)),
            "{fault}: {err:?}"
        );
    }
    // A plain call reset before its response: a dispatch failure.
    let err = h
        .client
        .converse()
        .model_id(QWEN)
        .messages(user("hi [sim reset]"))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    // Throttled once per marker, then served.
    for expect_ok in [false, true] {
        let r = h
            .client
            .converse()
            .model_id(QWEN)
            .messages(user("hi [sim error=throttling fail_first=1 id=sdk]"))
            .send()
            .await;
        assert_eq!(r.is_ok(), expect_ok, "{r:?}");
    }
    // Nothing is still being answered.
    let connections = h.sim.connections().await.unwrap();
    assert_eq!(connections["busy"], 0, "{connections}");
}
