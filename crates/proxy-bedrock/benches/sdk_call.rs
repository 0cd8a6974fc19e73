//! What one Bedrock call costs on the client side, against bedrock-sim on a loopback socket (in
//! process, on one runtime worker thread; the calls are made from the bench thread, one at a time,
//! on a kept-alive connection). The same Converse request and reply three ways:
//!
//! - `sdk`: `aws-sdk-bedrockruntime` (retries off, fixed credentials): the typed input serialized by
//!   the SDK, its orchestrator (interceptors, endpoint resolution, identity, SigV4), the typed output;
//! - `signed`: the lean `SignedClient` (`sign_and_send`, SigV4 with the same credentials) with the
//!   same JSON body serialized here, the reply read and parsed as JSON;
//! - `raw`: a pre-built request on a plain pooled hyper-util client, no signing, the reply read and
//!   parsed as JSON: the emulator's own cost plus the transport, the floor of the other two.
//!
//! `cargo bench -p proxy-bedrock --bench sdk_call`. The difference to `raw` is each client's cost.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::time::Duration;

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proxy_bedrock::signed::{Auth, ClientSettings, SignedClient};

const MODEL: &str = "qwen.qwen3-coder-480b-a35b-v1:0";
const PATH: &str = "/model/qwen.qwen3-coder-480b-a35b-v1%3A0/converse";
const PROMPT: &str = "Summarise the benefits of connection reuse in two sentences.";

fn credentials() -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    )
}

/// The Converse body for this request: the fields the SDK sends.
fn converse_body() -> serde_json::Value {
    serde_json::json!({
        "inferenceConfig": {"maxTokens": 256},
        "messages": [{"content": [{"text": PROMPT}], "role": "user"}],
    })
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(bedrock_sim::testing::LocalSim::start(bedrock_sim::Config {
            record_limit: 0,
            ..Default::default()
        }))
        .unwrap();
    let url = format!("{}{PATH}", sim.url());

    let sdk = {
        let _guard = rt.enter();
        let conf = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials())
            .endpoint_url(sim.url())
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_bedrockruntime::Client::from_conf(conf)
    };
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(PROMPT.into()))
        .build()
        .unwrap();
    let inference = InferenceConfiguration::builder().max_tokens(256).build();

    let signed = {
        let _guard = rt.enter();
        SignedClient::new(
            Auth::SigV4(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials()),
            ),
            ClientSettings::new(Duration::from_secs(30)),
        )
        .unwrap()
    };
    let body = converse_body();

    let raw: Client<HttpConnector, Full<Bytes>> = {
        let _guard = rt.enter();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(http)
    };
    let raw_body = Bytes::from(serde_json::to_vec(&body).unwrap());
    let raw_uri: http::Uri = url.parse().unwrap();

    // Every way gets the same answer.
    let out = rt
        .block_on(
            sdk.converse()
                .model_id(MODEL)
                .messages(message.clone())
                .inference_config(inference.clone())
                .send(),
        )
        .unwrap();
    assert!(out.output().is_some());

    let mut group = c.benchmark_group("converse call");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("sdk", |b| {
        b.iter(|| {
            rt.block_on(
                sdk.converse()
                    .model_id(MODEL)
                    .messages(message.clone())
                    .inference_config(inference.clone())
                    .send(),
            )
            .unwrap()
        })
    });
    group.bench_function("signed", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
                let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
                let response = signed
                    .sign_and_send("bedrock", "us-east-1", Method::POST, &url, headers, bytes)
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
            })
        })
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut request = Request::new(Full::new(raw_body.clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = raw_uri.clone();
                let h = request.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer bench"));
                let response = raw.request(request).await.unwrap();
                assert!(response.status().is_success());
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
            })
        })
    });
    group.finish();
    drop(sim);
}

criterion_group!(benches, calls);
criterion_main!(benches);
