//! Bedrock's Anthropic Messages API, which the AWS SDK has no operation for: `POST
//! /anthropic/v1/messages` on bedrock-runtime (inference-profile ids, SigV4 service `bedrock`) and
//! on bedrock-mantle (bare `anthropic.*` ids, SigV4 service `bedrock-mantle`), and Mantle's `POST
//! /anthropic/v1/messages/count_tokens`. Sent through the [`SignedClient`].
//!
//! The body goes as given (the caller has rewritten `model` and removed what Bedrock refuses). The
//! answer is a whole [`Message`] or a [`MessageStream`] of events decoded from the SSE body as it
//! arrives. Failures become [`UpstreamError`]s: Anthropic's error envelope keeps its error type,
//! AWS-style errors (`x-amzn-errortype`, `__type`) go through `proxy_convert::error_type`, anything
//! else is typed by its HTTP status.
//!
//! Not verified against Bedrock (coded defensively, and marked where it matters below):
//! - which `anthropic-version` each host wants (header or body, and which values): the client's
//!   header is passed through, `2023-06-01` when it sent none, and never put in the body;
//! - whether runtime streams plain SSE as Mantle does (we accept only `text/event-stream`);
//! - runtime answers an operation it does not serve (count_tokens among them) with HTTP 200 and a
//!   coral `UnknownOperationException` body: any such body, whatever the status, is an error;
//! - the shapes of throttling and overload answers (429/503/529), so the status decides when the
//!   body does not.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_types::SdkConfig;
use aws_types::service_config::ServiceConfigKey;
use bytes::Bytes;
use futures::Stream;
use http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use proxy_schema::{ErrorType, Message, StreamEvent};
use serde_json::Value;

use crate::UpstreamError;
use crate::retry::Retryable;
use crate::signed::{SendError, SignedClient};
use crate::sse::{SseDecoder, SseEvent};
use crate::upstream::ReplyEvent;

/// The `anthropic-version` sent when the client sent none. ⚠ Which values each host accepts is
/// not established; Bedrock's documentation shows this one for Mantle.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The largest response body read whole (a message, an error, a count). Bedrock's payload limit is
/// 20 MB; a larger answer is refused rather than buffered.
const BODY_LIMIT: usize = 32 << 20;

/// Which Bedrock host serves the Messages API for a model (`endpoint = "runtime" | "mantle"` in a
/// `[[models]]` entry; runtime is the only host of the other routes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// bedrock-runtime's `/anthropic` (inference-profile ids such as `us.anthropic.claude-opus-4-8`).
    #[default]
    Runtime,
    /// bedrock-mantle (bare ids such as `anthropic.claude-opus-4-8`).
    Mantle,
}

impl Endpoint {
    /// The SigV4 signing name: `bedrock` on runtime, `bedrock-mantle` on Mantle.
    pub fn signing_name(self) -> &'static str {
        match self {
            Endpoint::Runtime => "bedrock",
            Endpoint::Mantle => "bedrock-mantle",
        }
    }

    /// The service id by which the AWS configuration names the endpoint override:
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_BEDROCK_MANTLE` (and the `services`
    /// sections of the config file: `bedrock-runtime`, `bedrock-mantle`).
    fn service_id(self) -> &'static str {
        match self {
            Endpoint::Runtime => "Bedrock Runtime",
            Endpoint::Mantle => "Bedrock Mantle",
        }
    }
}

/// The base URLs of both hosts (scheme, host, optional port and path prefix; no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// bedrock-runtime, default `https://bedrock-runtime.{region}.amazonaws.com`.
    pub runtime: String,
    /// bedrock-mantle, default `https://bedrock-mantle.{region}.api.aws`.
    pub mantle: String,
}

impl Endpoints {
    /// Both hosts' public endpoints in `region`.
    pub fn for_region(region: &str) -> Endpoints {
        Endpoints::resolve(region, |_| None)
    }

    /// The endpoints as the AWS SDK would configure them: for each host its own variable
    /// (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_BEDROCK_MANTLE`), else the generic
    /// `AWS_ENDPOINT_URL`, else the config file's `services` section or `endpoint_url`, none of them
    /// when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is set; else the public endpoint in `region`.
    /// There is no SDK for Mantle: its override is named the way the SDK names every service's.
    pub fn from_sdk_config(config: &SdkConfig, region: &str) -> Endpoints {
        Endpoints::resolve(region, |endpoint| {
            let key = ServiceConfigKey::builder()
                .service_id(endpoint.service_id())
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?;
            config
                .service_config()
                .and_then(|c| c.load_config(key))
                .or_else(|| config.endpoint_url().map(str::to_owned))
        })
    }

    /// Defaults in `region`, overridden by what `configured` returns for an endpoint.
    fn resolve(region: &str, configured: impl Fn(Endpoint) -> Option<String>) -> Endpoints {
        let base = |endpoint: Endpoint, default: String| {
            configured(endpoint)
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .unwrap_or(default)
        };
        Endpoints {
            runtime: base(
                Endpoint::Runtime,
                format!("https://bedrock-runtime.{region}.amazonaws.com"),
            ),
            mantle: base(
                Endpoint::Mantle,
                format!("https://bedrock-mantle.{region}.api.aws"),
            ),
        }
    }

    /// The base URL of `endpoint`.
    pub fn base(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Runtime => &self.runtime,
            Endpoint::Mantle => &self.mantle,
        }
    }
}

/// [`MessagesReply`] with the message's body unparsed.
#[derive(Debug)]
pub(crate) enum RawReply {
    /// The body of a 2xx answer that is not an error.
    Json {
        body: Bytes,
        request_id: Option<String>,
    },
    Stream(MessageStream),
}

/// What `messages` returns: the whole message, or its stream.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per call, moved once; boxing would only add an allocation"
)]
pub enum MessagesReply {
    /// The answer to a request without `stream`.
    Message(Message),
    /// The answer to a streaming request.
    Stream(MessageStream),
}

/// The Messages API on both hosts.
#[derive(Debug, Clone)]
pub struct MessagesClient {
    signed: SignedClient,
    region: String,
    endpoints: Endpoints,
}

impl MessagesClient {
    /// A client sending through `signed`, signing for `region`, to `endpoints`.
    pub fn new(
        signed: SignedClient,
        region: impl Into<String>,
        endpoints: Endpoints,
    ) -> MessagesClient {
        MessagesClient {
            signed,
            region: region.into(),
            endpoints,
        }
    }

    /// Forgets the held credentials: the next call reads them again from the chain.
    pub fn invalidate_credentials(&self) {
        self.signed.invalidate_credentials();
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// `POST /anthropic/v1/messages` on `endpoint` with `body` (JSON, `model` already the Bedrock
    /// id). `anthropic_version` is the client's header (⚠ passed through; the default when `None`
    /// is [`DEFAULT_ANTHROPIC_VERSION`]); `betas` go as one `anthropic-beta` header. `stream` must
    /// match the body's `stream` field: it decides what is asked for (`accept`) and expected.
    /// Resolves when the response head arrives (within `BEDROCK_TIMEOUT`); an HTTP error, or a 200
    /// that is not a message, is an `Err`.
    pub async fn messages(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        anthropic_version: Option<&str>,
        betas: &[String],
        stream: bool,
    ) -> Result<MessagesReply, UpstreamError> {
        match self
            .messages_raw(endpoint, body, anthropic_version, betas, stream)
            .await?
        {
            RawReply::Stream(s) => Ok(MessagesReply::Stream(s)),
            RawReply::Json { body, request_id } => serde_json::from_slice::<Message>(&body)
                .map(MessagesReply::Message)
                .map_err(|e| not_a_message(&e, &body, request_id)),
        }
    }

    /// [`MessagesClient::messages`] with a message's body left unparsed.
    pub(crate) async fn messages_raw(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        anthropic_version: Option<&str>,
        betas: &[String],
        stream: bool,
    ) -> Result<RawReply, UpstreamError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let path = "/anthropic/v1/messages";
        let response = self
            .send(endpoint, path, body, anthropic_version, betas, accept)
            .await?;
        let (parts, incoming) = response.into_parts();
        let request_id = request_id(&parts.headers);
        let is_sse = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if stream && parts.status.is_success() && is_sse {
            return Ok(RawReply::Stream(MessageStream::new(incoming, request_id)));
        }
        let bytes = self.read_body(incoming).await?;
        if let Some(err) = failure(parts.status, &parts.headers, &bytes, path) {
            tracing::warn!(status = %parts.status, request_id, kind = err.kind.as_str(), message = %err.message, "Bedrock Messages API error");
            return Err(err);
        }
        if stream {
            return Err(unexpected(
                "Bedrock answered a streaming request without an event stream",
                &bytes,
                request_id,
            ));
        }
        Ok(RawReply::Json {
            body: bytes,
            request_id,
        })
    }

    /// Mantle's `POST /anthropic/v1/messages/count_tokens` with `body` (a count_tokens request,
    /// `model` the Bedrock id); returns `input_tokens`. ⚠ Runtime has no such route: asked there,
    /// Bedrock answers `UnknownOperationException`, returned as an error.
    pub async fn count_tokens(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        anthropic_version: Option<&str>,
        betas: &[String],
    ) -> Result<u64, UpstreamError> {
        let path = "/anthropic/v1/messages/count_tokens";
        let response = self
            .send(
                endpoint,
                path,
                body,
                anthropic_version,
                betas,
                "application/json",
            )
            .await?;
        let (parts, incoming) = response.into_parts();
        let request_id = request_id(&parts.headers);
        let bytes = self.read_body(incoming).await?;
        if let Some(err) = failure(parts.status, &parts.headers, &bytes, path) {
            return Err(err);
        }
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
            .ok_or_else(|| unexpected("Bedrock's token count does not parse", &bytes, request_id))
    }

    async fn send(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Bytes,
        anthropic_version: Option<&str>,
        betas: &[String],
        accept: &'static str,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        let version = anthropic_version
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_ANTHROPIC_VERSION);
        headers.insert(
            "anthropic-version",
            HeaderValue::from_str(version).map_err(|_| {
                UpstreamError::new(
                    ErrorType::InvalidRequestError,
                    "anthropic-version: not a valid header value",
                )
            })?,
        );
        let betas: Vec<&str> = betas
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .collect();
        if !betas.is_empty() {
            headers.insert(
                "anthropic-beta",
                HeaderValue::from_str(&betas.join(",")).map_err(|_| {
                    UpstreamError::new(
                        ErrorType::InvalidRequestError,
                        "anthropic-beta: not a valid header value",
                    )
                })?,
            );
        }
        self.post(endpoint, path, headers, body).await
    }

    /// `POST` of `body` with `headers` to `path` (already percent-encoded) on `endpoint`, signed;
    /// resolves with the response head (within `BEDROCK_TIMEOUT`), whatever its status.
    pub(crate) async fn post(
        &self,
        endpoint: Endpoint,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let base = self.endpoints.base(endpoint);
        let mut url = String::with_capacity(base.len() + path.len());
        url.push_str(base);
        url.push_str(path);
        self.signed
            .sign_and_send(
                endpoint.signing_name(),
                &self.region,
                Method::POST,
                &url,
                headers,
                body,
            )
            .await
            .map_err(UpstreamError::from)
    }

    /// Reads a whole body, bounded in size and in time.
    pub(crate) async fn read_body(&self, body: Incoming) -> Result<Bytes, UpstreamError> {
        let limited = http_body_util::Limited::new(body, BODY_LIMIT);
        match tokio::time::timeout(self.signed.timeout(), limited.collect()).await {
            Err(_) => Err(UpstreamError::new(
                ErrorType::TimeoutError,
                "Bedrock did not finish its answer within BEDROCK_TIMEOUT",
            )),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading Bedrock's answer failed");
                Err(UpstreamError::new(
                    ErrorType::ApiError,
                    "Bedrock's answer could not be read whole",
                ))
            }
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

impl From<SendError> for UpstreamError {
    /// As the SDK's failures map: no answer in time is a timeout, an unreachable endpoint is
    /// overload (retryable), a request the gateway cannot build or sign is its own fault.
    fn from(e: SendError) -> Self {
        match e {
            SendError::Timeout(_) => {
                UpstreamError::new(ErrorType::TimeoutError, "Bedrock did not answer in time")
            }
            SendError::Transport(detail) => {
                tracing::warn!(error = %detail, "Bedrock unreachable");
                UpstreamError::new(
                    ErrorType::OverloadedError,
                    "Bedrock is unreachable from the gateway",
                )
                .retryable(Some(Retryable::Connection))
            }
            SendError::Credentials(detail) | SendError::InvalidRequest(detail) => {
                tracing::error!(error = %detail, "cannot build the Bedrock request (credentials or configuration)");
                UpstreamError::new(
                    ErrorType::ApiError,
                    "the gateway cannot call Bedrock (credentials or configuration)",
                )
            }
        }
    }
}

pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    ["request-id", "x-amzn-requestid"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An answer that is neither a result nor a recognisable error.
pub(crate) fn unexpected(what: &str, body: &[u8], request_id: Option<String>) -> UpstreamError {
    let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    tracing::warn!(request_id, body = %start, "{what}");
    UpstreamError::new(ErrorType::ApiError, what)
}

/// A 2xx answer of the Messages API that does not read as a message.
pub(crate) fn not_a_message(
    e: &serde_json::Error,
    body: &[u8],
    request_id: Option<String>,
) -> UpstreamError {
    tracing::warn!(error = %e, "Bedrock's message does not parse");
    unexpected("Bedrock's answer is not a message", body, request_id)
}

/// The Anthropic error type Anthropic gives an HTTP status.
fn status_kind(status: StatusCode) -> ErrorType {
    match status.as_u16() {
        400 | 422 => ErrorType::InvalidRequestError,
        401 => ErrorType::AuthenticationError,
        402 => ErrorType::BillingError,
        403 => ErrorType::PermissionError,
        404 => ErrorType::NotFoundError,
        413 => ErrorType::RequestTooLarge,
        429 => ErrorType::RateLimitError,
        503 | 529 => ErrorType::OverloadedError,
        504 => ErrorType::TimeoutError,
        _ => ErrorType::ApiError,
    }
}

/// The error an answer carries, if it is one: any non-2xx status; a 2xx with an AWS error type
/// (header or body) or Anthropic's error envelope.
pub(crate) fn failure(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Option<UpstreamError> {
    if status.is_success()
        && !headers.contains_key(AMZN_ERRORTYPE)
        && (holds_no_error_token(body) || plainly_a_message(body))
    {
        return None;
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let mut err = envelope_error(json.as_ref(), status)
        .or_else(|| aws_error(headers, json.as_ref(), status, path))
        .or_else(|| {
            (!status.is_success()).then(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
                let message = if text.trim().is_empty() {
                    format!("Bedrock answered HTTP {}", status.as_u16())
                } else {
                    text.trim().to_owned()
                };
                UpstreamError::new(status_kind(status), message)
            })
        })?;
    if let Some(secs) = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        err.retry_after = Some(secs);
    }
    // Whether the call may be tried again: by the AWS error code where there is one, else by the
    // error type and the status.
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let j = json.as_ref()?;
            ["__type", "code"]
                .iter()
                .find_map(|k| j.get(*k).and_then(Value::as_str).map(str::to_owned))
        });
    let code = code.as_deref().map(|c| {
        let c = c.rsplit('#').next().unwrap_or(c);
        c.split(':').next().unwrap_or(c)
    });
    err.retryable = code.and_then(Retryable::of_code).or(match err.kind {
        ErrorType::RateLimitError => Some(Retryable::Throttled),
        ErrorType::OverloadedError => Some(Retryable::Unavailable),
        ErrorType::ApiError if !status.is_success() => Retryable::of_status(status.as_u16()),
        _ => None,
    });
    Some(err)
}

/// AWS's error code header (made once, not parsed from text for every reply).
const AMZN_ERRORTYPE: http::HeaderName = http::HeaderName::from_static("x-amzn-errortype");

/// Whether a 2xx body cannot be one of the errors [`failure`] finds: it has none of the tokens
/// those are made of, `"error"` (Anthropic's envelope), `"code"` or `"__type"` (AWS, also under
/// `Output`), as a JSON key or string. Inside a JSON string a quote is escaped, so text that
/// mentions them does not match; a real match (a tool input with a `code` key) only sends the body
/// to the slower checks. Three SIMD searches, no parse: every successful answer comes here.
fn holds_no_error_token(body: &[u8]) -> bool {
    use memchr::memmem::Finder;
    // Built once: a searcher's setup costs more than a search of a reply.
    static TOKENS: std::sync::LazyLock<[Finder<'static>; 3]> = std::sync::LazyLock::new(|| {
        [
            Finder::new(b"\"error\""),
            Finder::new(b"\"code\""),
            Finder::new(b"\"__type\""),
        ]
    });
    TOKENS.iter().all(|t| t.find(body).is_none())
}

/// Whether a 2xx body is a message and nothing an error check needs to look at: its top-level
/// `type` is `"message"` and it has none of the fields an AWS error carries. Skims the body
/// without building a tree (every successful answer passes here).
fn plainly_a_message(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        code: Option<serde::de::IgnoredAny>,
        #[serde(rename = "__type")]
        aws_type: Option<serde::de::IgnoredAny>,
        #[serde(rename = "Output")]
        output: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe<'_>>(body).is_ok_and(|p| {
        p.kind.as_deref() == Some("message")
            && p.code.is_none()
            && p.aws_type.is_none()
            && p.output.is_none()
    })
}

/// `{"type":"error","error":{"type":…,"message":…}}`: the error type as given (by the status when
/// it is one this gateway does not know).
fn envelope_error(json: Option<&Value>, status: StatusCode) -> Option<UpstreamError> {
    let json = json?;
    if json.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let error = json.get("error")?;
    let kind = error
        .get("type")
        .and_then(|t| serde_json::from_value::<ErrorType>(t.clone()).ok())
        .unwrap_or_else(|| status_kind(status));
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Bedrock returned an error")
        .to_owned();
    Some(UpstreamError::new(kind, message))
}

/// An AWS-style error: the code from `x-amzn-errortype`, else the body's `code` or `__type` (also
/// under coral's `Output`); the message from `message`, `Message` or `errorMessage`.
fn aws_error(
    headers: &HeaderMap,
    json: Option<&Value>,
    status: StatusCode,
    path: &str,
) -> Option<UpstreamError> {
    let str_at = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let objects: Vec<&Value> = json
        .into_iter()
        .flat_map(|j| [Some(j), j.get("Output")])
        .flatten()
        .collect();
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| objects.iter().find_map(|o| str_at(o, &["code", "__type"])))?;
    let short = code
        .rsplit('#')
        .next()
        .unwrap_or(&code)
        .split(':')
        .next()
        .unwrap_or(&code)
        .to_owned();
    let message = objects
        .iter()
        .find_map(|o| str_at(o, &["message", "Message", "errorMessage"]))
        .filter(|m| !m.trim().is_empty());
    if short == "UnknownOperationException" {
        // ⚠ runtime's answer (HTTP 200) to an operation it does not serve.
        return Some(UpstreamError::new(
            ErrorType::ApiError,
            format!("Bedrock does not serve {path} on this endpoint (UnknownOperationException)"),
        ));
    }
    let message = message.unwrap_or_else(|| short.clone());
    let mut kind = proxy_convert::error_type(&short, &message);
    if kind == ErrorType::ApiError && !status.is_success() {
        kind = status_kind(status);
    }
    Some(UpstreamError::new(kind, message))
}

/// The events of a streamed answer, decoded as the body arrives (pulled: nothing is read ahead of
/// the consumer). Items:
/// - `Ok(Event)` for every event of the Messages stream, `ping` included;
/// - `Ok(Unknown)` for events the schema does not model (never fatal);
/// - one `Err` and then the end, for an SSE `error` event (its error type kept), a broken or
///   undecodable body, or a body that ends before `message_stop`.
///
/// Dropping the stream drops the response body, which closes the upstream stream (on HTTP/1.1 the
/// connection) and so cancels the call.
#[derive(Debug)]
pub struct MessageStream {
    body: Incoming,
    decoder: SseDecoder,
    /// No more items (an error was given, or the body ended).
    done: bool,
    saw_stop: bool,
    request_id: Option<String>,
}

impl MessageStream {
    fn new(body: Incoming, request_id: Option<String>) -> Self {
        MessageStream {
            body,
            decoder: SseDecoder::default(),
            done: false,
            saw_stop: false,
            request_id,
        }
    }

    /// Bedrock's request id (`request-id` or `x-amzn-requestid`), for logs and support cases.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn fail(&mut self, err: UpstreamError) -> Poll<Option<Result<ReplyEvent, UpstreamError>>> {
        self.done = true;
        tracing::warn!(request_id = self.request_id, kind = err.kind.as_str(), message = %err.message, "Bedrock Messages stream failed");
        Poll::Ready(Some(Err(err)))
    }
}

/// The item an SSE event becomes.
pub fn stream_item(ev: SseEvent) -> Result<ReplyEvent, UpstreamError> {
    // Relayed as Bedrock sent it (fields this gateway does not model reach the client); typed where
    // the schema models it. An event it does not model is passed on, never fatal.
    let item = ReplyEvent::relayed(ev.event, ev.data);
    // An event typed as anything but `error` has another `type`: only the rest are read again, as
    // JSON, to tell an error (so the common event is parsed once).
    let maybe_error =
        item.name == "error" || matches!(item.event, None | Some(StreamEvent::Error { .. }));
    if maybe_error {
        let json: Option<Value> = serde_json::from_str(&item.data).ok();
        let is_error = item.name == "error"
            || json
                .as_ref()
                .and_then(|j| j.get("type"))
                .and_then(Value::as_str)
                == Some("error");
        if is_error {
            return Err(
                envelope_error(json.as_ref(), StatusCode::INTERNAL_SERVER_ERROR).unwrap_or_else(
                    || {
                        UpstreamError::new(
                            ErrorType::ApiError,
                            "Bedrock's stream reported an error",
                        )
                    },
                ),
            );
        }
        // An event the schema does not model is passed on, but only as JSON: data that is not
        // JSON (a corrupt event) would break the client's parser, so the stream ends here instead.
        if json.is_none() {
            return Err(UpstreamError::new(
                ErrorType::ApiError,
                format!(
                    "Bedrock sent an SSE `{}` event whose data is not JSON",
                    item.name
                ),
            ));
        }
    }
    if item.event.is_none() {
        tracing::debug!(event = %item.name, "passing an SSE event the schema does not model");
    }
    Ok(item)
}

/// The next data of a streamed answer: `None` at its end (trailers carry no events, and are
/// skipped), an error when the connection broke.
pub(crate) fn poll_data(
    body: &mut Incoming,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, UpstreamError>>> {
    loop {
        return match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(data))),
                Err(_) => continue,
            },
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "Bedrock's stream broke");
                Poll::Ready(Some(Err(UpstreamError::new(
                    ErrorType::ApiError,
                    "the connection to Bedrock broke during the stream",
                ))))
            }
            Poll::Ready(None) => Poll::Ready(None),
        };
    }
}

impl Stream for MessageStream {
    type Item = Result<ReplyEvent, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.decoder.next_event() {
                Err(e) => {
                    return this.fail(UpstreamError::new(
                        ErrorType::ApiError,
                        format!("Bedrock's event stream cannot be decoded: {e}"),
                    ));
                }
                Ok(Some(ev)) => match stream_item(ev) {
                    Ok(item) => {
                        if matches!(
                            item,
                            ReplyEvent {
                                event: Some(StreamEvent::MessageStop),
                                ..
                            }
                        ) {
                            this.saw_stop = true;
                        }
                        return Poll::Ready(Some(Ok(item)));
                    }
                    Err(e) => return this.fail(e),
                },
                Ok(None) => {}
            }
            match poll_data(&mut this.body, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => this.decoder.push(&data),
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => {
                    if this.saw_stop {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    return this.fail(UpstreamError::new(
                        ErrorType::ApiError,
                        "Bedrock's stream ended before message_stop",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_skips_the_error_parse_and_an_error_never_does() {
        let ok = br#"{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"{\"type\":\"error\"}"}]}"#;
        assert!(plainly_a_message(ok));
        assert!(
            holds_no_error_token(ok),
            "quoted inside text does not count"
        );
        assert!(failure(StatusCode::OK, &HeaderMap::new(), ok, "/p").is_none());
        // A real key of that name only costs the full check, which still finds a message.
        let tool = br#"{"id":"m","type":"message","role":"assistant","content":[{"type":"tool_use","id":"t","name":"run","input":{"code":"x","status":"error"}}]}"#;
        assert!(!holds_no_error_token(tool));
        assert!(failure(StatusCode::OK, &HeaderMap::new(), tool, "/p").is_none());
        for body in [
            &br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#[..],
            br#"{"type":"message","__type":"ThrottlingException","message":"slow"}"#,
            br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"}}"#,
            br#"not json"#,
        ] {
            assert!(
                !plainly_a_message(body),
                "{}",
                String::from_utf8_lossy(body)
            );
            if body.starts_with(b"{") {
                assert!(
                    !holds_no_error_token(body),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        let mut aws = HeaderMap::new();
        aws.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ThrottlingException"),
        );
        assert!(failure(StatusCode::OK, &aws, ok, "/p").is_some());
        let throttled = br#"{"type":"message","__type":"ThrottlingException","message":"slow"}"#;
        assert!(failure(StatusCode::OK, &HeaderMap::new(), throttled, "/p").is_some());
    }

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn endpoints_default_per_region_and_follow_overrides() {
        let e = Endpoints::for_region("eu-west-1");
        assert_eq!(e.runtime, "https://bedrock-runtime.eu-west-1.amazonaws.com");
        assert_eq!(e.mantle, "https://bedrock-mantle.eu-west-1.api.aws");
        let e = Endpoints::resolve("us-east-1", |ep| match ep {
            Endpoint::Mantle => Some("http://127.0.0.1:9/mantle/ ".into()),
            Endpoint::Runtime => Some("  ".into()),
        });
        assert_eq!(e.mantle, "http://127.0.0.1:9/mantle");
        assert_eq!(e.runtime, "https://bedrock-runtime.us-east-1.amazonaws.com");
        assert_eq!(e.base(Endpoint::Mantle), "http://127.0.0.1:9/mantle");
    }

    #[test]
    fn signing_names() {
        assert_eq!(Endpoint::Runtime.signing_name(), "bedrock");
        assert_eq!(Endpoint::Mantle.signing_name(), "bedrock-mantle");
    }

    #[test]
    fn envelope_errors_keep_their_type() {
        let body = br#"{"type":"error","error":{"type":"not_found_error","message":"The model 'x' does not exist"}}"#;
        let e = failure(StatusCode::BAD_REQUEST, &HeaderMap::new(), body, "/p").unwrap();
        assert_eq!(e.kind, ErrorType::NotFoundError);
        assert_eq!(e.message, "The model 'x' does not exist");
        // An error type this gateway does not know: the status decides.
        let body = br#"{"type":"error","error":{"type":"brand_new_error","message":"m"}}"#;
        let e = failure(StatusCode::FORBIDDEN, &HeaderMap::new(), body, "/p").unwrap();
        assert_eq!(e.kind, ErrorType::PermissionError);
    }

    #[test]
    fn aws_errors_map_through_the_shared_table() {
        let e = failure(
            StatusCode::TOO_MANY_REQUESTS,
            &h(&[
                (
                    "x-amzn-errortype",
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                ),
                ("retry-after", "7"),
            ]),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            "/p",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorType::RateLimitError);
        assert_eq!(
            e.message,
            "Too many requests, please wait before trying again."
        );
        assert_eq!(e.retry_after, Some(7));

        let e = failure(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"__type":"com.amazon.bedrock#ValidationException","Message":"on-demand throughput isn't supported"}"#,
            "/p",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorType::InvalidRequestError);
        assert_eq!(e.message, "on-demand throughput isn't supported");

        // An unknown code takes the status's type.
        let e = failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &h(&[("x-amzn-errortype", "SomethingNewException")]),
            b"",
            "/p",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorType::OverloadedError);
        assert_eq!(e.retry_after, Some(1));

        // A blank message: the code says what happened.
        let e = failure(
            StatusCode::TOO_MANY_REQUESTS,
            &h(&[("x-amzn-errortype", "ThrottlingException")]),
            br#"{"message":""}"#,
            "/p",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorType::RateLimitError);
        assert_eq!(e.message, "ThrottlingException");
    }

    #[test]
    fn unknown_operation_in_a_200_is_an_error() {
        let body = br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#;
        let e = failure(
            StatusCode::OK,
            &HeaderMap::new(),
            body,
            "/anthropic/v1/messages/count_tokens",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorType::ApiError);
        assert!(
            e.message.contains("UnknownOperationException"),
            "{}",
            e.message
        );
        assert!(e.message.contains("count_tokens"), "{}", e.message);
        let e = failure(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"__type":"UnknownOperationException"}"#,
            "/p",
        );
        assert!(e.is_some());
    }

    #[test]
    fn a_message_is_not_a_failure() {
        let body = br#"{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
        assert!(failure(StatusCode::OK, &HeaderMap::new(), body, "/p").is_none());
    }

    #[test]
    fn statuses_without_a_readable_body() {
        for (status, kind) in [
            (400, ErrorType::InvalidRequestError),
            (401, ErrorType::AuthenticationError),
            (403, ErrorType::PermissionError),
            (404, ErrorType::NotFoundError),
            (413, ErrorType::RequestTooLarge),
            (429, ErrorType::RateLimitError),
            (500, ErrorType::ApiError),
            (502, ErrorType::ApiError),
            (503, ErrorType::OverloadedError),
            (504, ErrorType::TimeoutError),
            (529, ErrorType::OverloadedError),
        ] {
            let e = failure(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                b"<html>oops</html>",
                "/p",
            )
            .unwrap();
            assert_eq!(e.kind, kind, "{status}");
        }
    }

    #[test]
    fn stream_items() {
        let item = |event: &str, data: &str| {
            stream_item(SseEvent {
                event: event.into(),
                data: data.into(),
            })
        };
        assert_eq!(
            item("ping", r#"{"type":"ping"}"#).unwrap().event,
            Some(StreamEvent::Ping)
        );
        let e = item(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorType::OverloadedError);
        assert_eq!(e.message, "Overloaded");
        // A blank message (found by the messages_sse fuzz target): the error still says something.
        let e = item(
            "",
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": " "}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorType::OverloadedError);
        assert_eq!(e.message, "Bedrock returned an error (overloaded_error)");
        assert_eq!(
            item("error", "garbage").unwrap_err().kind,
            ErrorType::ApiError
        );
        // A corrupt event (data cut in half): an error, never relayed.
        let e = item(
            "content_block_delta",
            r#"{"type":"content_block_delta","ind"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorType::ApiError);
        assert!(e.message.contains("not JSON"), "{}", e.message);
        // A new event type, and a known one with a delta the schema lacks: passed, not fatal.
        for (event, data) in [
            ("brand_new", r#"{"type":"brand_new","x":1}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"compaction_delta","c":"x"}}"#,
            ),
        ] {
            let got = item(event, data).unwrap();
            assert!(got.event.is_none());
            assert_eq!((got.name.as_ref(), got.data.as_str()), (event, data));
            assert_eq!(got.to_sse(), format!("event: {event}\ndata: {data}\n\n"));
        }
    }
}
