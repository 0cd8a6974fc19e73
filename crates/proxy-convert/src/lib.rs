//! `proxy-convert`: pure conversion between the Anthropic Messages API and AWS Bedrock, streaming
//! included, for any Rust service that wants to serve Anthropic clients from Bedrock.
//!
//! No I/O and no async code: plain functions and a state machine fed events. Requests come in as
//! [`proxy_schema::MessagesRequest`]; what goes to Bedrock is `aws-sdk-bedrockruntime`'s own input
//! types, so an embedding service hands the result straight to the SDK.
//!
//! Three routes, chosen per model by the caller:
//! 1. **Converse** (any Bedrock model): [`to_converse`] builds the request; [`from_converse`] turns
//!    the response into an Anthropic message; [`StreamConverter`] turns ConverseStream events into
//!    Anthropic SSE events. Without the SDK: [`converse_body`] writes the request's JSON as the SDK
//!    would ([`converse_body_bytes`] the same JSON as bytes, with less work), [`converse_output`] and [`converse_stream_event`] read the answer and each stream event
//!    into the SDK's types.
//! 2. **Native** (Claude through InvokeModel): [`to_native_body`] (and
//!    [`to_native_count_tokens_body`] for CountTokens) rewrites the typed request into Bedrock's
//!    Claude body, [`to_native_json`] the same body as bytes (written from the typed request without
//!    the `Value` tree where nothing has to move); [`restore_model`] and [`native_chunk`] hand
//!    responses and stream chunks back with the client's model name.
//! 3. **Messages** (Claude through Bedrock's Anthropic Messages API, `/anthropic/v1/messages` on
//!    bedrock-runtime and bedrock-mantle): [`to_messages_body`] passes the request through with the
//!    Bedrock model id and the betas for the `anthropic-beta` header; [`to_messages_json`] gives the
//!    same body as bytes, written from the typed request without the `Value` tree.
//!
//! [`message_events`] turns a finished message back into the stream that produces it (how a gateway
//! replays a cached response to a streaming client).
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_bedrockruntime::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let body = br#"{"model":"claude-sonnet-4-5","max_tokens":256,
//!                 "messages":[{"role":"user","content":"Hello"}]}"#;
//! let request = proxy_schema::parse_messages_request(body)?;
//! let bedrock_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
//! let output = proxy_convert::to_converse(&request, &proxy_convert::ConverseOptions::new(bedrock_id))?
//!     .converse(&client, bedrock_id)
//!     .send()
//!     .await?;
//! let message = proxy_convert::from_converse(&output, "msg_01", &request.model);
//! println!("{}", serde_json::to_string(&message)?);
//! # Ok(()) }
//! ```
//!
//! # Fields Converse has no slot for
//!
//! | Anthropic field | Claude | Nova | gpt-oss | others |
//! |---|---|---|---|---|
//! | `top_k` | `additionalModelRequestFields.top_k` | dropped | dropped | dropped |
//! | `thinking` (any type) | `additionalModelRequestFields.thinking`, as sent | `reasoningConfig.maxReasoningEffort` | `reasoning_effort` | dropped |
//! | `anthropic-beta` header | `anthropic_beta`, filtered per model | dropped | dropped | dropped |
//! | `context_management` | passed when its beta is kept | dropped | dropped | dropped |
//! | `output_config` | `outputConfig` (`effort`, `textFormat`) | same | same | same |
//! | `stop_sequences` match | `additionalModelResponseFieldPaths: ["/stop_sequence"]` | — | — | — |
//! | `tool_choice: none` | no tools offered (tools kept if the history has tool blocks) | same | same | same |
//! | `tool_choice: any/tool` | `toolChoice.any/tool` | same | auto | auto |
//! | `disable_parallel_tool_use`, `metadata`, `service_tier`, `container`, `mcp_servers`, `speed`, `inference_geo`, server tools | dropped | dropped | dropped | dropped |
//!
//! Dropped fields are logged at debug level. Thinking effort for Nova and gpt-oss: budget < 4096
//! `low`, < 16384 `medium`, else `high`; adaptive `medium`.
//!
//! # What Bedrock rejects never reaches it (native and Messages routes)
//!
//! Both Claude body builders take out what Bedrock refuses from Claude clients (Claude Code above
//! all) and report each removal as a [`Removal`] (this crate does not log or count them; the caller
//! does, by [`Removal::label`]):
//!
//! | label | what | detail |
//! |---|---|---|
//! | `beta` | a beta Bedrock does not accept for the model: not on the per-model allow list, or first-party only (`claude-code-*`, `oauth-*`, `prompt-caching-scope-*`, `files-api-*`, `mcp-client-*`, `code-execution-*`, `web-fetch-*`, `skills-*`, `advisor-tool-*`, `fallback-credit-*`), from the header or a body `anthropic_beta` | the beta |
//! | `eager_input_streaming` | `tools[].eager_input_streaming` | the tool's name |
//! | `cache_control_scope` | `cache_control.scope` wherever a `cache_control` sits (request, system, message blocks, tool results and their blocks, tools); the breakpoint itself stays | the field path |
//! | `metadata_user_id` | a `metadata.user_id` not made of `[A-Za-z0-9_-]` (Claude Code sends a JSON string), replaced by [`user_id_for_bedrock`]: the 64-hex SHA-256 of the original, stable per user | `metadata.user_id` |
//!
//! The native route also drops, as before and without reporting, what its body has no field for:
//! `model`, `stream`, unknown top-level fields, tool fields other than `type`, `name`,
//! `description`, `input_schema`, `cache_control`, `strict` (and `input_examples` with its beta),
//! server tools, `context_management` without its beta, and `metadata` other than `user_id`.
//!
//! Errors are only those Anthropic itself gives (more than 4 `cache_control` breakpoints), and the
//! sources Bedrock cannot take: images and documents by URL or file id (send them as base64).

mod converse_json;
mod converse_reply;
mod document;
mod errors;
mod family;
mod messages_api;
mod native;
mod replay;
mod request;
mod response;
mod rewrite;
mod stream;

pub use converse_json::{converse_body, converse_body_bytes};
pub use converse_reply::{converse_output, converse_stream_event};
pub use document::{to_document, to_json};
pub use errors::{converse_stream_error_type, error_type};
pub use family::{ModelFamily, bedrock_betas};
pub use messages_api::{MessagesBody, MessagesJson, to_messages_body, to_messages_json};
pub use native::{
    BEDROCK_ANTHROPIC_VERSION, NativeBody, NativeChunk, NativeJson, native_chunk, restore_model,
    to_native_body, to_native_count_tokens_body, to_native_json,
};
pub use replay::message_events;
pub use request::{ConverseOptions, ConverseRequest, to_converse};
pub use response::{content_block, from_converse, stop_reason, stop_sequence, usage};
pub use rewrite::{Removal, RemovalKind, user_id_for_bedrock};
pub use stream::StreamConverter;

/// A request that cannot be converted: the field path and why. A 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if path.is_empty() { message.clone() } else { format!("{path}: {message}") })]
pub struct ConvertError {
    /// Where, e.g. `messages.0.content.1.source.type`.
    pub path: String,
    /// What.
    pub message: String,
}

impl ConvertError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConvertError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The Claude Code requests in `tests/fixtures/claude-code` (path, request body), for the unit tests.
#[cfg(test)]
pub(crate) fn claude_code_fixtures() -> Vec<(std::path::PathBuf, serde_json::Value)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/claude-code");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let fixture: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            (path, fixture["body"].clone())
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(fixtures.len() >= 3, "fixtures read: {}", fixtures.len());
    fixtures
}
