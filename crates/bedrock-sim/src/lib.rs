//! `bedrock-sim`: a local stand-in for AWS Bedrock Runtime (and the two control-plane listings the
//! gateway needs) that speaks the real AWS wire protocol, so that the official AWS SDKs cannot tell it
//! from the real service.
//!
//! It serves our tests, our benchmarks, the README demo, and anyone who wants to try an Anthropic
//! client against Bedrock without an AWS bill. It is not a model: every answer is deterministic and
//! scripted (see [Behaviour](#behaviour)).
//!
//! # Operations
//!
//! | Operation | Request |
//! |---|---|
//! | Converse | `POST /model/{modelId}/converse` |
//! | ConverseStream | `POST /model/{modelId}/converse-stream` (binary `application/vnd.amazon.eventstream`) |
//! | InvokeModel | `POST /model/{modelId}/invoke` (native Anthropic body, Claude ids only) |
//! | InvokeModelWithResponseStream | `POST /model/{modelId}/invoke-with-response-stream` (`chunk` events) |
//! | CountTokens | `POST /model/{modelId}/count-tokens` (`input.converse` or `input.invokeModel`) |
//! | ListFoundationModels | `GET /foundation-models` (`byProvider`, `byOutputModality`, `byInferenceType`) |
//! | GetFoundationModel | `GET /foundation-models/{modelId}` |
//! | ListInferenceProfiles | `GET /inference-profiles` (`maxResults`, `nextToken`, `type`) |
//! | GetInferenceProfile | `GET /inference-profiles/{profileId}` |
//! | Messages (runtime) | `POST /anthropic/v1/messages` (Anthropic body with `model`; plain SSE with `stream: true`) |
//! | Messages (Mantle) | `POST /mantle/anthropic/v1/messages` |
//! | count_tokens (Mantle) | `POST /mantle/anthropic/v1/messages/count_tokens` |
//!
//! `modelId` arrives percent-encoded (`%3A` for `:`, `%2F` inside ARNs) and may be a foundation-model
//! id, a cross-region inference profile id (`us.`, `eu.`, `apac.`, `jp.`, `global.`, ...) or an ARN of
//! either. As on Bedrock, Claude 4 models are served only through an inference profile (a bare id gets
//! the "on-demand throughput isn't supported" ValidationException), and CountTokens takes only a bare
//! foundation-model id. The newest Claude models (Opus 4.7, 4.8, 5, 5.5, Sonnet 5, Fable 5 and 5.1)
//! have ids without version suffix (`anthropic.claude-opus-4-8`), are listed with
//! `inferenceTypesSupported: ["INFERENCE_PROFILE"]` only, and take adaptive thinking only.
//!
//! # The Anthropic Messages API
//!
//! Bedrock also serves Claude through Anthropic's own API shape, on two hosts; one emulator serves
//! both (see the `messages` module for the details):
//!
//! - **bedrock-runtime** `/anthropic/v1/messages`: inference-profile ids and ARNs, as InvokeModel.
//!   Other `/anthropic` routes (its `count_tokens` included) answer HTTP 200 with a coral
//!   `UnknownOperationException` body, as field probes saw (unverified).
//! - **bedrock-mantle** `/mantle/anthropic/v1/messages` and `.../count_tokens` (the CountTokens
//!   estimate): bare ids only (`anthropic.claude-opus-4-8`, `anthropic.claude-haiku-4-5`); a profile
//!   id or ARN is a 404 `not_found_error` "The model '…' does not exist". A request signed with the
//!   SigV4 service `bedrock-mantle` is for Mantle on either path; a Bearer or `x-api-key` request is
//!   for Mantle only under `/mantle`, so a client's Mantle base URL is `http://HOST:PORT/mantle`.
//!
//! Auth is SigV4 (`bedrock` or `bedrock-mantle`), `Authorization: Bearer` or `x-api-key`; none, or a
//! Bearer/SigV4 header together with `x-api-key`, is a 401 `authentication_error`. Errors use
//! Anthropic's envelope and statuses (`error=throttling` is a 429 `rate_limit_error`, `unavailable`
//! a 529 `overloaded_error`; a `stream_error` is an SSE `error` event).
//!
//! Every request must carry SigV4 (`Authorization: AWS4-HMAC-SHA256 Credential=.../bedrock/aws4_request,
//! SignedHeaders=..., Signature=...` with `x-amz-date`) or a Bedrock API key (`Authorization: Bearer ...`);
//! otherwise it gets a 403 `MissingAuthenticationTokenException`. The signature itself is not
//! verified: the emulator knows no secret keys.
//!
//! # Validation
//!
//! Requests are checked against the Bedrock request shapes and rejected with a 400
//! `ValidationException` (message in the style of Bedrock's own) where Bedrock rejects them: unknown or
//! missing fields, wrong types, out-of-range values, unions with not exactly one member, blank text
//! blocks, `toolUse`/`toolResult` blocks without a `toolConfig`, a `cachePoint` inside a `toolResult`,
//! more than 4 cache points, tool results that answer no tool use of the previous turn, a conversation
//! that does not start with a user turn or does not alternate, and, for Claude, thinking blocks whose
//! signature was not issued by this emulator for exactly that text (so a proxy that edits or drops a
//! signature is caught). A native Claude body must have `anthropic_version`, must not carry `model` or
//! `stream`, top-level `cache_control` or unknown keys, and may only name known `anthropic_beta` flags.
//!
//! On InvokeModel bodies and on the Messages API, Bedrock's refusals of what only Anthropic's own API
//! takes: first-party-only betas (`claude-code-*`, `oauth-*`, `prompt-caching-scope-*`, `files-api-*`,
//! `mcp-client-*`, `code-execution-*`, `web-fetch-*`, `skills-*`, `advisor-tool-*`) get "Unexpected
//! value(s) … for the `anthropic-beta` header" (Bedrock's acceptance varies by endpoint and date; the
//! emulator takes the strict side), `tools[].eager_input_streaming` and `cache_control.scope` "Extra
//! inputs are not permitted", a `metadata.user_id` outside `[a-zA-Z0-9_-]` (Claude Code's JSON string)
//! "Request metadata contains a value that violates the regular expression", and `thinking.type:
//! "enabled"` on the adaptive-thinking models a 400.
//!
//! # Behaviour
//!
//! By default the reply is one text block, `Hello from bedrock-sim. You said: <the last user text>`,
//! with `end_turn`. Everything else is asked for with *directives*, `key` or `key=value` words (values
//! may be quoted with `'` or `"`), which come from four places, later ones overriding earlier ones:
//!
//! 1. `--defaults "words=200 delay_ms=5"`: for every request;
//! 2. the config file (`--config sim.toml`), per model: `[[rule]]` tables with `model` (an exact id or a
//!    prefix ending in `*`) and `directives`;
//! 3. the request header `x-bedrock-sim: tool thinking`;
//! 4. a marker `[sim tool thinking]` in any text of the last user message (the marker is removed from
//!    the echoed text). This is the one that reaches the emulator through a proxy.
//!
//! | directive | effect |
//! |---|---|
//! | `reply='text'` | reply with this text instead of the echo |
//! | `words=N` | reply with N deterministic words (the output length knob) |
//! | `tool` / `tool=NAME` | call the first offered tool (or NAME) with an input built from its schema |
//! | `tools=N` | N parallel tool calls, cycling over the offered tools |
//! | `input='{"k":1}'` | the input of the tool calls, instead of the built one |
//! | `thinking` | a reasoning block first (with a signature for Claude); a Claude request with `thinking: {type: enabled}` always gets one, as from Claude |
//! | `redacted` | a redacted reasoning block first |
//! | `stop=REASON` | the stop reason (`end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `guardrail_intervened`, `content_filtered`, `model_context_window_exceeded`, ...) |
//! | `cache_read=N`, `cache_write=N` | cache token usage (taken out of the uncached input count) |
//! | `error=KIND` | fail the call with an HTTP error, see below |
//! | `stream_error=KIND` `after=N` | streams only: an exception frame after N events (default 2) |
//! | `ttfb_ms=N` | wait N ms before the response (before the first event of a stream) |
//! | `delay_ms=N` | wait N ms between stream events |
//! | `reset` `after=N` | a TCP reset (`SO_LINGER` 0, then close) after N events (default 2); a non-streaming call is reset before its response |
//! | `truncate` `after=N` | half of event N's frame (of its SSE event on the Messages API), then the connection closes; a non-streaming call gets half its body |
//! | `bad_crc` `after=N` | event N's frame with a wrong message CRC; on the Messages API (SSE, no CRC) an event whose data is cut, so not JSON; streams only |
//! | `oversize` `after=N` | a prelude claiming a frame of 16 MiB + 1 byte, then nothing; on the Messages API a `data:` line of that length; streams only |
//! | `stall` `after=N` | no more bytes, the connection kept open; a non-streaming call is never answered |
//! | `fail_first=N` | the faults of the same directive text (`error=`, `stream_error=` and the five above) apply to its first N requests only, later ones are answered normally; keyed by the whole marker (or header, or rule), so add a nonce word such as `id=abc` to keep a test's count its own |
//! | `expired_key=AKID` | a request signed with access key id `AKID` (or with that bearer token) gets 403 `ExpiredTokenException` ("The security token included in the request is expired") |
//! | `id=...` | nothing: a nonce that makes a marker unique |
//!
//! A reply longer than `maxTokens` / `max_tokens` words is cut there with `max_tokens`; a reply that
//! contains one of the request's stop sequences is cut before it with `stop_sequence` (and Converse
//! returns the sequence in `additionalModelResponseFields.stop_sequence` when the request asked for the
//! path `/stop_sequence`). Input tokens are estimated as one per 4 bytes of the request's text and JSON
//! (the same figure CountTokens returns); output tokens are one per streamed piece.
//!
//! Error kinds (`error=` and `stream_error=`): `validation` (400 ValidationException), `access_denied`
//! (403), `not_found` (404 ResourceNotFoundException), `throttling` (429 ThrottlingException),
//! `quota` (400 ServiceQuotaExceededException), `not_ready` (429 ModelNotReadyException), `timeout`
//! (408 ModelTimeoutException), `model_error` (424 ModelErrorException), `internal` (500
//! InternalServerException), `unavailable` (503 ServiceUnavailableException), and for streams also
//! `model_stream_error` (modelStreamErrorException). Error responses carry `x-amzn-ErrorType`,
//! `x-amzn-RequestId` and a JSON `message`, as AWS sends them.
//!
//! # Control endpoints
//!
//! Outside the AWS paths, under `/_sim/`: `GET /_sim/requests` lists what the emulator received
//! (operation, decoded model id, headers, JSON body, status, and for streams `stream.events_sent` and
//! `stream.state`: `streaming`, `completed`, `failed` or `cancelled` when the client went away),
//! oldest first, bounded by `--record-limit`; `POST /_sim/reset` forgets them (and the `fail_first`
//! counts); `GET /_sim/health` answers 200. `GET /_sim/connections` answers `{"open": N, "busy": M}`:
//! the connections open now (the one asking included) and the requests being answered (a stream until
//! its body is dropped; control requests not counted), so a test can see a client release its upstream
//! connection. A fault's stream shows its name as `stream.state`.
//! Each entry names its `endpoint` (`runtime`, `mantle` or `control`). `POST /_sim/models` adds a model
//! to the catalog (a [`catalog::ModelSpec`] as JSON: `id`, `name`, `inference_types`, `geos`,
//! `mantle`, `adaptive_thinking`, ...), listed from the next ListFoundationModels /
//! ListInferenceProfiles on; `GET /_sim/models` lists the catalog. `/_sim/reset` does not remove added
//! models.
//!
//! Tests start the emulator in-process with [`testing::LocalSim`] (an ephemeral loopback port, stopped
//! on drop).
//!
//! # Throughput
//!
//! `cargo xtask bench` drives a release build with `wrk -t2 -c64` on loopback, wrk and the emulator
//! sharing a 2-core machine. Measured 2026-11-25: about 21,600 Converse requests/s (p99 7 ms), 12,400
//! whole ConverseStream responses/s and 16,500 InvokeModel requests/s; see `docs/BENCHMARKS.md`. That is
//! an order of magnitude above what a proxy in front of it serves on the same machine, so a proxy
//! benchmark against it measures the proxy.

#![doc(html_no_source)]

pub mod catalog;
pub mod directives;
pub mod eventstream;
mod faults;
mod generate;
mod messages;
mod server;
pub mod testing;
pub mod validate;

pub use server::{Config, ModelRule, Sim, run};
