//! Writes, for a set of scenarios run against an in-process bedrock-sim through the AWS SDK, the
//! non-streaming Anthropic message (`NAME.json`) and the SSE stream (`NAME.sse`) that proxy-convert
//! produces for the same request. The Python suite (tests/anthropic_sdk) serves both to the official
//! Anthropic SDK and checks that its stream accumulator builds the same message.
//!
//! Usage: `sse_scenarios OUT_DIR`

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use proxy_convert::{
    ConverseOptions, StreamConverter, converse_stream_error_type, from_converse, to_converse,
};
use proxy_schema::{ErrorType, parse_messages_request};
use serde_json::{Value, json};

const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out_dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: sse_scenarios OUT_DIR"),
    );
    std::fs::create_dir_all(&out_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(bedrock_sim::run(
        listener,
        bedrock_sim::Sim::new(bedrock_sim::Config::default()),
        std::future::pending(),
    ));
    let client = aws_sdk_bedrockruntime::Client::from_conf(
        aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "secret", None, None, "example"))
            .endpoint_url(&url)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let tools = json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}]);
    let thinking = json!({"type": "enabled", "budget_tokens": 1024});
    let scenarios: Vec<(&str, &str, Value)> = vec![
        (
            "text",
            CLAUDE,
            json!({"messages": [{"role": "user", "content": "Hello there"}]}),
        ),
        (
            "long_text",
            QWEN,
            json!({"messages": [{"role": "user", "content": "Write [sim words=120]"}]}),
        ),
        (
            "thinking_tools",
            CLAUDE,
            json!({"thinking": thinking, "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Paris and Rome? [sim thinking tool tools=2]"}]}),
        ),
        (
            "redacted",
            CLAUDE,
            json!({"thinking": thinking, "messages": [{"role": "user", "content": "x [sim redacted]"}]}),
        ),
        (
            "cache_usage",
            CLAUDE,
            json!({"messages": [{"role": "user", "content": "x [sim cache_read=11 cache_write=22]"}]}),
        ),
        (
            "stop_sequence",
            CLAUDE,
            json!({"stop_sequences": ["END"], "messages": [{"role": "user", "content": "x [sim reply='one two END three']"}]}),
        ),
        (
            "max_tokens",
            QWEN,
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x [sim words=50]"}]}),
        ),
    ];
    for (name, model, mut body) in scenarios {
        body["model"] = json!("claude-sonnet-4-5");
        if body.get("max_tokens").is_none() {
            body["max_tokens"] = json!(4000);
        }
        let req = parse_messages_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        let opts = ConverseOptions::new(model);

        let whole = to_converse(&req, &opts)
            .unwrap()
            .converse(&client, model)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {:?}", e.into_service_error()));
        let message = from_converse(&whole, "msg_scenario", &req.model);

        let mut stream = to_converse(&req, &opts)
            .unwrap()
            .converse_stream(&client, model)
            .send()
            .await
            .unwrap();
        let mut conv = StreamConverter::new("msg_scenario", &req.model);
        let mut sse = String::new();
        loop {
            let events = match stream.stream.recv().await {
                Ok(Some(ev)) => conv.on_event(&ev),
                Ok(None) => conv.finish(),
                Err(e) => conv.on_error(
                    e.as_service_error()
                        .map(converse_stream_error_type)
                        .unwrap_or(ErrorType::ApiError),
                    e.to_string(),
                ),
            };
            let done = conv.is_finished();
            for e in events {
                sse.push_str(&e.to_sse());
            }
            if done {
                break;
            }
        }
        std::fs::write(
            out_dir.join(format!("{name}.request.json")),
            serde_json::to_vec_pretty(&body).unwrap(),
        )
        .unwrap();
        std::fs::write(
            out_dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&message).unwrap(),
        )
        .unwrap();
        std::fs::write(out_dir.join(format!("{name}.sse")), sse).unwrap();
    }
    println!("{}", out_dir.display());
}
