//! The one seam between the HTTP layer and Bedrock: the typed request and its route in, a message or a
//! stream of Anthropic events out, the same shape for every route (Converse, InvokeModel with the
//! native body, Bedrock's Anthropic Messages API).
//!
//! Adding a route is one more producer here: a function that turns [`Call`] into a [`Reply`]. The
//! HTTP layer relays the reply and accounts for it without knowing which route made it.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use proxy_convert::{ConverseOptions, Removal, StreamConverter};
use proxy_schema::{ErrorType, Message, MessagesRequest, StreamEvent};
use serde_json::Value;

use crate::messages::RawReply;
use crate::retry::{RetryEvent, Retryable};
use crate::routing::{Api, Endpoint, Route};
use crate::{Bedrock, UpstreamError};

/// One event of a streamed reply, as the client gets it.
#[derive(Debug, Clone)]
pub struct ReplyEvent {
    /// The event, typed, for accounting (usage, time to first token, the response cache); `None` for
    /// an event the schema does not model, which is relayed all the same.
    pub event: Option<StreamEvent>,
    /// The SSE `event:` name.
    pub name: Cow<'static, str>,
    /// The SSE data: Bedrock's own JSON where the route gives it (so fields this gateway does not
    /// model reach the client), else the typed event serialized.
    pub data: String,
}

impl ReplyEvent {
    /// An event this gateway produced (the Converse route).
    pub fn typed(event: StreamEvent) -> Self {
        let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
        ReplyEvent {
            name: Cow::Borrowed(event.name()),
            event: Some(event),
            data,
        }
    }

    /// An event Bedrock sent in Anthropic's JSON (native and Messages routes), relayed as sent.
    pub fn relayed(name: impl Into<Cow<'static, str>>, data: impl Into<String>) -> Self {
        let data = data.into();
        ReplyEvent {
            event: StreamEvent::from_json(data.as_bytes()).ok(),
            name: name.into(),
            data,
        }
    }

    /// One `chunk` of InvokeModelWithResponseStream (the JSON of one Anthropic event) as the event
    /// the client gets, with `model` (the client's name) in `message_start`: deltas relayed byte for
    /// byte, parsed once for accounting; Bedrock's invocation metrics removed. An error when the
    /// chunk is not an Anthropic event.
    pub fn from_native_chunk(
        bytes: &[u8],
        model: &str,
    ) -> Result<ReplyEvent, proxy_convert::ConvertError> {
        native_event(bytes.to_vec(), model)
    }

    /// Puts the client's model name into `message_start` (Bedrock answers with its own id).
    pub fn restore_model(&mut self, model: &str) {
        let Some(StreamEvent::MessageStart { message }) = &mut self.event else {
            return;
        };
        model.clone_into(&mut message.model);
        // Bedrock's bytes with only the name changed, where the name is found as the message's
        // `model`; else written again from the typed event (the message's unknown fields kept).
        // Never by reading the data into a tree: that cost more than the rest of the stream.
        #[derive(serde::Deserialize)]
        struct Start<'a> {
            #[serde(borrow)]
            message: Named<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            model: Cow<'a, str>,
        }
        let spliced = serde_json::from_str::<Start<'_>>(&self.data)
            .ok()
            .and_then(|start| replaced(self.data.as_bytes(), start.message.model, model))
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some(data) = spliced {
            self.data = data;
        } else if let Some(event) = &self.event
            && let Ok(data) = serde_json::to_string(event)
        {
            self.data = data;
        }
    }

    /// Whether the event carries content (the first one marks the time to first token).
    pub fn is_content(&self) -> bool {
        matches!(
            self.event,
            Some(StreamEvent::ContentBlockStart { .. } | StreamEvent::ContentBlockDelta { .. })
        )
    }

    /// The event as SSE text.
    pub fn to_sse(&self) -> Bytes {
        let mut out = String::with_capacity(self.sse_len());
        self.write_sse(&mut out);
        Bytes::from(out)
    }

    /// The event as SSE text, added to `out` (events that go out together share one buffer).
    pub fn write_sse(&self, out: &mut String) {
        out.reserve(self.sse_len());
        out.push_str("event: ");
        out.push_str(&self.name);
        out.push('\n');
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }

    /// About the length of the event's SSE text (exact when its data is one line).
    fn sse_len(&self) -> usize {
        self.name.len() + self.data.len() + 16
    }
}

/// The events of a streamed reply: `Ok` events, then the end, or one `Err` (Bedrock failed after
/// the stream started) and the end. Dropping it cancels the Bedrock call.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<ReplyEvent, UpstreamError>> + Send>>;

/// What Bedrock answered, in Anthropic's shape, with the client's model name.
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, moved once into the response; boxing would only add an allocation"
)]
pub enum Reply {
    /// A whole message (non-streaming requests on the Converse route).
    Message(Message),
    /// A whole message as Bedrock wrote it, with the client's model name put in (non-streaming
    /// requests on the native and Messages API routes, where Bedrock answers in Anthropic's shape).
    Json(JsonMessage),
    /// A stream of events (streaming requests).
    Stream(ReplyStream),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Message(m) => f.debug_tuple("Message").field(m).finish(),
            Reply::Json(m) => f.debug_tuple("Json").field(m).finish(),
            Reply::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// An Anthropic message relayed as JSON: Bedrock's bytes with only `model` changed, checked to be
/// a message and read for its usage, not parsed into a [`Message`] and written again (which cost
/// more than the rest of the reply's handling).
#[derive(Debug, Clone)]
pub struct JsonMessage {
    /// The message's JSON, as the client gets it.
    pub body: Bytes,
    /// Its usage.
    pub usage: proxy_schema::Usage,
}

impl JsonMessage {
    /// Bedrock's message `body` with `model` as its model name. An error when the body is not an
    /// Anthropic message (its `type`, `id`, `role`, `content`, `model` or `usage` missing or wrong).
    pub fn relayed(body: &[u8], model: &str) -> Result<JsonMessage, serde_json::Error> {
        use serde::de::{Error, IgnoredAny};
        #[derive(serde::Deserialize)]
        struct Peek<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow)]
            model: Cow<'a, str>,
            usage: proxy_schema::Usage,
            #[allow(dead_code, reason = "required, not read")]
            id: IgnoredAny,
            #[allow(dead_code, reason = "required, not read")]
            role: IgnoredAny,
            #[allow(dead_code, reason = "required, not read")]
            content: IgnoredAny,
        }
        let peek: Peek<'_> = serde_json::from_slice(body)?;
        if peek.kind != "message" {
            return Err(serde_json::Error::custom(format!(
                "`type` is `{}`, not `message`",
                peek.kind
            )));
        }
        let usage = peek.usage;
        let body = match replaced(body, peek.model, model) {
            Some(out) => out,
            None => {
                // An escaped model name (never seen from Bedrock): the message written again.
                let mut message: Message = serde_json::from_slice(body)?;
                model.clone_into(&mut message.model);
                serde_json::to_vec(&message)?
            }
        };
        Ok(JsonMessage {
            body: Bytes::from(body),
            usage,
        })
    }

    /// The message, parsed (for the response cache).
    pub fn message(&self) -> Result<Message, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// `json` with the string `found` replaced by `with` (as a JSON string's contents), where `found`
/// was borrowed from `json` by a parse: a borrowed string has no escapes, and stands in the bytes
/// where the parse found it. `None` for a string the parse had to unescape (owned).
fn replaced(json: &[u8], found: Cow<'_, str>, with: &str) -> Option<Vec<u8>> {
    let Cow::Borrowed(name) = found else {
        return None;
    };
    let at = (name.as_ptr() as usize)
        .checked_sub(json.as_ptr() as usize)
        .filter(|at| at + name.len() <= json.len())?;
    let quoted = serde_json::to_string(with).ok()?;
    let mut out = Vec::with_capacity(json.len() + quoted.len());
    out.extend_from_slice(&json[..at]);
    out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    out.extend_from_slice(&json[at + name.len()..]);
    Some(out)
}

/// One request for Bedrock.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The client's request, parsed and validated once (its `model` is the client's name, which the
    /// reply carries).
    pub request: &'a MessagesRequest,
    /// Where it goes.
    pub route: &'a Route,
    /// The client's `anthropic-beta` header.
    pub anthropic_beta: Option<&'a str>,
    /// The client's `anthropic-version`.
    pub anthropic_version: &'a str,
    /// Whether `cache_control` becomes Bedrock cache points on Converse.
    pub prompt_caching: bool,
    /// The message id the Converse route gives its reply (the other routes keep Bedrock's).
    pub message_id: &'a str,
    /// Where to go when `route` stays throttled or unavailable, in order (the model's `fallbacks`).
    pub fallbacks: &'a [Target],
}

/// A model name and its route: a fallback of a model's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name as configured (a client name, or a Bedrock id), resolved like a requested name.
    pub name: String,
    /// Its route.
    pub route: Route,
}

/// A reply and what it took.
#[derive(Debug)]
pub struct Sent {
    /// The answer.
    pub reply: Reply,
    /// What was removed from the request because Bedrock rejects it.
    pub removals: Vec<Removal>,
    /// The Bedrock operation called, for metrics (`Converse`, `InvokeModelWithResponseStream`, ...).
    pub operation: &'static str,
    /// Time spent waiting for Bedrock's answer (its head, for streams): the network calls alone
    /// (every attempt, and the waits between them), without the conversions before and after them.
    pub waited: Duration,
    /// The model name the reply carries: the client's, unless a fallback of another model served it
    /// (then that fallback's name).
    pub model: String,
    /// The Bedrock id that served it.
    pub bedrock_id: String,
}

/// One `chunk` of InvokeModelWithResponseStream as the event the client gets. Most chunks (the
/// deltas) are relayed byte for byte, parsed once for accounting; `message_start` gets the client's
/// model name, and Bedrock's `amazon-bedrock-invocationMetrics` (on the last chunk) is removed
/// (through a tree: one chunk per stream).
fn native_event(bytes: Vec<u8>, model: &str) -> Result<ReplyEvent, proxy_convert::ConvertError> {
    static METRICS: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"amazon-bedrock-invocationMetrics"));
    let typed = StreamEvent::from_json(&bytes).ok();
    let plain = matches!(
        typed,
        Some(
            StreamEvent::MessageStart { .. }
                | StreamEvent::ContentBlockStart { .. }
                | StreamEvent::ContentBlockDelta { .. }
                | StreamEvent::ContentBlockStop { .. }
                | StreamEvent::MessageDelta { .. }
                | StreamEvent::Ping
        )
    ) && METRICS.find(&bytes).is_none()
        // A raw CR (JSON whitespace) would end an SSE line: such a chunk is written again.
        && memchr::memchr(b'\r', &bytes).is_none();
    if plain && let Some(event) = typed {
        match String::from_utf8(bytes) {
            Ok(data) => {
                let mut event = ReplyEvent {
                    name: Cow::Borrowed(event.name()),
                    event: Some(event),
                    data,
                };
                // `message_start` gets the client's model name (`restore_model`: put into
                // Bedrock's bytes); the other events are relayed byte for byte.
                event.restore_model(model);
                return Ok(event);
            }
            Err(e) => return native_chunk_event(e.as_bytes(), model),
        }
    }
    native_chunk_event(&bytes, model)
}

/// A chunk written again by `proxy_convert::native_chunk` (the model put in, the metrics removed).
fn native_chunk_event(
    bytes: &[u8],
    model: &str,
) -> Result<ReplyEvent, proxy_convert::ConvertError> {
    let chunk = proxy_convert::native_chunk(bytes, model)?;
    Ok(ReplyEvent::relayed(
        chunk.name().to_owned(),
        chunk.event.to_string(),
    ))
}

/// Awaits `call` (a call to Bedrock), setting `waited` to how long it took.
///
/// A map over the call, not an `async fn`: that would hold `call` twice (as its argument and as
/// what it awaits), and the call's future is most of a request's state.
fn clocked<'a, T>(
    waited: &'a mut Duration,
    call: impl std::future::Future<Output = T> + 'a,
) -> impl std::future::Future<Output = T> + 'a {
    let asked = Instant::now();
    call.map(move |out| {
        *waited = asked.elapsed();
        out
    })
}

/// A request body as bytes.
fn json_bytes(body: &Value) -> Result<Vec<u8>, UpstreamError> {
    serde_json::to_vec(body)
        .map_err(|e| UpstreamError::new(ErrorType::InvalidRequestError, e.to_string()))
}

fn invalid(e: proxy_convert::ConvertError) -> UpstreamError {
    UpstreamError::new(ErrorType::InvalidRequestError, e.to_string())
}

fn broken_body(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::new(
        ErrorType::ApiError,
        format!("Bedrock sent a body that is not an Anthropic message: {e}"),
    )
}

impl Bedrock {
    fn heard(&self, event: RetryEvent<'_>) {
        if let Some(hook) = &self.hook {
            (hook.0)(event);
        }
    }

    /// Sends `call` to Bedrock on its route and returns the answer in Anthropic's shape. Before the
    /// answer starts (a stream's head: no event has reached the client), a throttled or unavailable
    /// call, or one whose connection failed, is tried again after a full-jitter backoff, within the
    /// [`RetryPolicy`](crate::RetryPolicy)'s retries and budget; then on each of `call.fallbacks` in
    /// turn. Expired credentials are read again from the chain and the call retried once at once.
    /// Any other error is answered at once.
    pub async fn send(&self, call: Call<'_>) -> Result<Sent, UpstreamError> {
        let policy = self.retry;
        let started = Instant::now();
        let asked_model = call.route.foundation_model_id();
        let mut previous: Option<&str> = None;
        let mut last = None;
        // The requested name and route first (borrowed: no copy per request), then the fallbacks.
        let targets = std::iter::once((call.request.model.as_str(), call.route))
            .chain(call.fallbacks.iter().map(|t| (t.name.as_str(), &t.route)));
        for (name, route) in targets {
            if let Some(from) = previous {
                if started.elapsed() >= policy.budget {
                    break;
                }
                self.heard(RetryEvent::Fallback { from, to: name });
                tracing::warn!(from, to = name, bedrock_id = %route.bedrock_id, "Bedrock failed; trying the next target of the model's fallbacks");
            }
            // Another geography's profile of the same model answers as the model asked for; another
            // model answers as itself.
            let model = if route.foundation_model_id() == asked_model {
                call.request.model.as_str()
            } else {
                name
            };
            let mut retries = 0;
            let mut refreshed = false;
            loop {
                let attempt = Instant::now();
                // Boxed: held inline, the attempt (its conversions and the HTTP call, ~7 KB) would
                // be in every future around it twice over (an awaited future is laid out beside
                // the state that borrows it), and each of them copied whole as they move.
                let e = match Box::pin(self.send_once(call, route, model)).await {
                    Ok(mut sent) => {
                        sent.waited += attempt - started;
                        sent.model = model.to_owned();
                        sent.bedrock_id = route.bedrock_id.clone();
                        return Ok(sent);
                    }
                    Err(e) => e,
                };
                let Some(why) = e.retryable else {
                    return Err(e);
                };
                if why == Retryable::ExpiredCredentials {
                    if refreshed {
                        return Err(e);
                    }
                    refreshed = true;
                    if let Some(api) = &self.messages {
                        api.invalidate_credentials();
                    }
                    tracing::warn!("Bedrock says the credentials expired; reading them again");
                    self.heard(RetryEvent::Retry(why));
                    continue;
                }
                let wait = policy.backoff(retries);
                if retries < policy.max_retries && started.elapsed() + wait < policy.budget {
                    retries += 1;
                    self.heard(RetryEvent::Retry(why));
                    tracing::debug!(
                        reason = why.as_str(),
                        retry = retries,
                        wait_ms = wait.as_millis() as u64,
                        "retrying the Bedrock call"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                last = Some(e);
                break;
            }
            previous = Some(name);
        }
        Err(last.unwrap_or_else(|| {
            UpstreamError::new(ErrorType::ApiError, "no Bedrock target to call")
        }))
    }

    /// One attempt of `call` on `route`, the reply carrying `model`.
    async fn send_once(
        &self,
        call: Call<'_>,
        route: &Route,
        model: &str,
    ) -> Result<Sent, UpstreamError> {
        let req = call.request;
        let stream = req.is_stream();
        let id = route.bedrock_id.as_str();
        let model = model.to_owned();
        let mut waited = Duration::ZERO;
        let (reply, removals, operation) = match route.api {
            Api::Converse => {
                let opts = ConverseOptions {
                    bedrock_model_id: id,
                    anthropic_beta: call.anthropic_beta,
                    prompt_caching: call.prompt_caching,
                };
                let converse = proxy_convert::to_converse(req, &opts).map_err(invalid)?;
                // The lean signed client, not the SDK (docs/ARCHITECTURE.md, "Bedrock calls"): the
                // SDK's Converse types are built as before, serialized as the SDK would.
                let api = self.messages_api()?;
                let body =
                    Bytes::from(proxy_convert::converse_body_bytes(&converse).map_err(invalid)?);
                // Not held while Bedrock answers: neither in memory nor in this future's state.
                drop(converse);
                if stream {
                    let mut frames =
                        clocked(&mut waited, self.timed(api.converse_stream(id, body))).await?;
                    let message_id = call.message_id.to_owned();
                    let events = async_stream::stream! {
                        let mut conv = StreamConverter::new(message_id, model);
                        loop {
                            let events = match frames.next().await {
                                Some(Ok(frame)) => {
                                    let event = frame.event_type.as_deref().map(|t| {
                                        proxy_convert::converse_stream_event(t, &frame.payload)
                                    });
                                    match event {
                                        Some(Ok(Some(ev))) => conv.on_event(&ev),
                                        Some(Ok(None)) | None => continue,
                                        Some(Err(e)) => {
                                            yield Err(UpstreamError::new(ErrorType::ApiError, e.to_string()));
                                            break;
                                        }
                                    }
                                }
                                None => conv.finish(),
                                Some(Err(failure)) => {
                                    // The client still gets `message_start` before the error, as
                                    // from Anthropic.
                                    for event in conv.on_error(failure.kind, failure.message.clone()) {
                                        if matches!(event, StreamEvent::Error { .. }) {
                                            yield Err(failure.clone());
                                        } else {
                                            yield Ok(ReplyEvent::typed(event));
                                        }
                                    }
                                    break;
                                }
                            };
                            for event in events {
                                yield Ok(ReplyEvent::typed(event));
                            }
                            if conv.is_finished() {
                                break;
                            }
                        }
                    };
                    (
                        Reply::Stream(Box::pin(events)),
                        Vec::new(),
                        "ConverseStream",
                    )
                } else {
                    let out = clocked(&mut waited, self.timed(api.converse(id, body))).await?;
                    let out = proxy_convert::converse_output(&out)
                        .map_err(|e| UpstreamError::new(ErrorType::ApiError, e.to_string()))?;
                    let message = proxy_convert::from_converse(&out, call.message_id, &model);
                    (Reply::Message(message), Vec::new(), "Converse")
                }
            }
            Api::Invoke => {
                let native =
                    proxy_convert::to_native_json(req, id, call.anthropic_beta).map_err(invalid)?;
                let body = Bytes::from(native.body);
                // The lean signed client, not the SDK: the same request on the wire without the
                // orchestrator's per-call work (docs/ARCHITECTURE.md, "Bedrock calls").
                let api = self.messages_api()?;
                if stream {
                    let frames =
                        clocked(&mut waited, self.timed(api.invoke_stream(id, body))).await?;
                    let events = frames.filter_map(move |frame| {
                        let event =
                            frame
                                .and_then(|f| crate::invoke::chunk_bytes(&f))
                                .and_then(|bytes| {
                                    bytes
                                        .map(|b| {
                                            native_event(b, &model).map_err(|e| {
                                                UpstreamError::new(
                                                    ErrorType::ApiError,
                                                    e.to_string(),
                                                )
                                            })
                                        })
                                        .transpose()
                                });
                        futures::future::ready(event.transpose())
                    });
                    // A chunk that does not convert ends the stream after its error.
                    let events = events.scan(false, |failed, item| {
                        if *failed {
                            return futures::future::ready(None);
                        }
                        *failed = item.is_err();
                        futures::future::ready(Some(item))
                    });
                    (
                        Reply::Stream(Box::pin(events)),
                        native.removals,
                        "InvokeModelWithResponseStream",
                    )
                } else {
                    let out = clocked(&mut waited, self.timed(api.invoke(id, body))).await?;
                    let message = JsonMessage::relayed(&out, &model).map_err(broken_body)?;
                    (Reply::Json(message), native.removals, "InvokeModel")
                }
            }
            Api::Messages => {
                let api = self.messages_api()?;
                let built = proxy_convert::to_messages_json(req, id, call.anthropic_beta)
                    .map_err(invalid)?;
                let body = built.body;
                let endpoint = route.endpoint;
                let reply = clocked(
                    &mut waited,
                    self.timed(api.messages_raw(
                        endpoint,
                        Bytes::from(body),
                        Some(call.anthropic_version),
                        &built.betas,
                        stream,
                    )),
                )
                .await?;
                let operation = match endpoint {
                    Endpoint::Runtime => "MessagesRuntime",
                    Endpoint::Mantle => "MessagesMantle",
                };
                let reply = match reply {
                    RawReply::Json { body, request_id } => Reply::Json(
                        JsonMessage::relayed(&body, &model)
                            .map_err(|e| crate::messages::not_a_message(&e, &body, request_id))?,
                    ),
                    RawReply::Stream(s) => Reply::Stream(Box::pin(s.map(move |item| {
                        item.map(|mut e| {
                            e.restore_model(&model);
                            e
                        })
                    }))),
                };
                (reply, built.removals, operation)
            }
        };
        Ok(Sent {
            reply,
            removals,
            operation,
            waited,
            model: String::new(),
            bedrock_id: String::new(),
        })
    }

    /// Counts the input tokens of `call` where Bedrock can: CountTokens for Claude on InvokeModel and
    /// Converse, Mantle's count_tokens on the Messages route there. `Ok(None)` where Bedrock cannot
    /// count (a model without CountTokens, the runtime Messages endpoint); an error where Bedrock
    /// finds the request invalid.
    pub async fn count(&self, call: Call<'_>) -> Result<Option<u64>, UpstreamError> {
        use aws_sdk_bedrockruntime::primitives::Blob;
        use aws_sdk_bedrockruntime::types::{
            ConverseTokensRequest, CountTokensInput, InvokeModelTokensRequest,
        };
        let route = call.route;
        let id = route.bedrock_id.as_str();
        if proxy_convert::ModelFamily::of(id) != proxy_convert::ModelFamily::Claude {
            return Ok(None);
        }
        let counted = match route.api {
            Api::Messages => {
                if route.endpoint != Endpoint::Mantle {
                    // The runtime endpoint has no count_tokens route.
                    return Ok(None);
                }
                let api = self.messages_api()?;
                let built = proxy_convert::to_messages_json(call.request, id, call.anthropic_beta)
                    .map_err(invalid)?;
                let body = built.body;
                self.timed(api.count_tokens(
                    Endpoint::Mantle,
                    Bytes::from(body),
                    Some(call.anthropic_version),
                    &built.betas,
                ))
                .await
            }
            Api::Invoke => {
                let native = proxy_convert::to_native_count_tokens_body(
                    call.request,
                    id,
                    call.anthropic_beta,
                )
                .map_err(invalid)?;
                let body = json_bytes(&native.body)?;
                let input = CountTokensInput::InvokeModel(
                    InvokeModelTokensRequest::builder()
                        .body(Blob::new(body))
                        .build()
                        .map_err(|e| UpstreamError::new(ErrorType::ApiError, e.to_string()))?,
                );
                self.count_tokens(route.foundation_model_id(), input).await
            }
            Api::Converse => {
                let conv = proxy_convert::to_converse(call.request, &ConverseOptions::new(id))
                    .map_err(invalid)?;
                let input = CountTokensInput::Converse(
                    ConverseTokensRequest::builder()
                        .set_messages(Some(conv.messages))
                        .set_system((!conv.system.is_empty()).then_some(conv.system))
                        .set_tool_config(conv.tool_config)
                        .build(),
                );
                self.count_tokens(route.foundation_model_id(), input).await
            }
        };
        match counted {
            Ok(n) => Ok(Some(n)),
            // A request Bedrock finds invalid is invalid for counting too, unless the complaint is
            // that the model cannot count: it does not support it, or (⚠ seen by third parties)
            // CountTokens refuses the bare id of a model served only through inference profiles.
            Err(e)
                if e.kind == ErrorType::InvalidRequestError
                    && !e.message.contains("counting tokens")
                    && !e.message.contains("on-demand throughput") =>
            {
                Err(e)
            }
            Err(e) => {
                tracing::debug!(error = %e, "Bedrock cannot count here; estimating");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's future holds the call's once: an `async fn` wrapper would hold it twice (its
    /// argument and what it awaits), and every request would copy and carry the second.
    #[tokio::test]
    async fn clocking_a_call_does_not_hold_its_future_twice() {
        let big = [7u8; 4096];
        let call = async move { big[4095] };
        let call_size = std::mem::size_of_val(&call);
        let mut waited = Duration::ZERO;
        let clocked_call = clocked(&mut waited, call);
        assert!(
            std::mem::size_of_val(&clocked_call) < call_size + 64,
            "{} bytes for a {call_size}-byte call",
            std::mem::size_of_val(&clocked_call)
        );
        assert_eq!(clocked_call.await, 7);
    }

    #[test]
    fn a_relayed_message_is_bedrocks_bytes_with_the_client_model() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"us.anthropic.claude-opus-4-8","content":[{"type":"text","text":"the \"model\": x"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5,"cache_read_input_tokens":2,"service_tier":"standard"},"container":null}"#;
        let m = JsonMessage::relayed(body, "claude-opus-4-8").unwrap();
        let expected = String::from_utf8_lossy(body).replace(
            r#""model":"us.anthropic.claude-opus-4-8""#,
            r#""model":"claude-opus-4-8""#,
        );
        assert_eq!(String::from_utf8_lossy(&m.body), expected);
        assert_eq!(
            (
                m.usage.input_tokens,
                m.usage.output_tokens,
                m.usage.cache_read_input_tokens
            ),
            (3, 5, Some(2))
        );
        assert_eq!(m.message().unwrap().model, "claude-opus-4-8");

        // A name that needs escaping is escaped; an escaped name in the body is replaced too.
        let m = JsonMessage::relayed(body, r#"my "model""#).unwrap();
        assert_eq!(m.message().unwrap().model, r#"my "model""#);
        let escaped = String::from_utf8_lossy(body).replace("us.anthropic", r"us\u002eanthropic");
        let m = JsonMessage::relayed(escaped.as_bytes(), "claude-opus-4-8").unwrap();
        let v: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(v["model"], "claude-opus-4-8");
        assert_eq!(v["usage"]["service_tier"], "standard");

        // Not a message: refused.
        for bad in [
            &br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#[..],
            br#"{"id":"m","type":"message","role":"assistant","model":"x","usage":{"input_tokens":1,"output_tokens":1}}"#,
            br#"{"id":"m","type":"note","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":1}}"#,
            br#"{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{}}"#,
            b"not json",
        ] {
            assert!(
                JsonMessage::relayed(bad, "m").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn relayed_events_keep_unknown_fields_and_get_the_client_model() {
        let data = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"us.anthropic.claude-opus-4-8","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1,"service_tier":"standard"},"container":{"id":"c1"}}}"#;
        let mut e = ReplyEvent::relayed("message_start", data);
        e.restore_model("claude-opus-4-8");
        let Some(StreamEvent::MessageStart { message }) = &e.event else {
            panic!("typed: {e:?}")
        };
        assert_eq!(message.model, "claude-opus-4-8");
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["message"]["model"], "claude-opus-4-8");
        assert_eq!(v["message"]["usage"]["service_tier"], "standard");
        assert_eq!(v["message"]["container"]["id"], "c1");

        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5},"context_management":{"applied_edits":[]}}"#;
        let e = ReplyEvent::relayed("message_delta", delta);
        assert!(matches!(e.event, Some(StreamEvent::MessageDelta { .. })));
        assert_eq!(e.data, delta, "relayed as Bedrock sent it");
        assert_eq!(
            e.to_sse(),
            Bytes::from(format!("event: message_delta\ndata: {delta}\n\n"))
        );

        let chunk = br#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"us.anthropic.claude-opus-4-8","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#;
        let e = native_event(chunk.to_vec(), "claude-opus-4-8").unwrap();
        assert!(
            e.data.contains(r#""model":"claude-opus-4-8""#),
            "{}",
            e.data
        );
        // Only the model changed in Bedrock's bytes: what the tree's rewrite says, the unknown
        // fields (of the message and of the event) and the nulls kept.
        let chunk = br#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"us.anthropic.claude-opus-4-8","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"},"container":null},"extra":{"a":[1]}}"#;
        let e = native_event(chunk.to_vec(), "claude-opus-4-8").unwrap();
        assert!(matches!(e.event, Some(StreamEvent::MessageStart { .. })));
        assert_eq!(
            e.data,
            std::str::from_utf8(chunk)
                .unwrap()
                .replace("us.anthropic.claude-opus-4-8", "claude-opus-4-8"),
            "Bedrock's bytes, only the model changed"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&e.data).unwrap(),
            proxy_convert::native_chunk(chunk, "claude-opus-4-8")
                .unwrap()
                .event
        );
        // A model name with an escape in it is not where a borrowed name would be: the event is
        // written again from its typed form.
        let escaped = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"us.anthropic\u002eclaude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#;
        let mut e = ReplyEvent::relayed("message_start", escaped);
        e.restore_model("claude-\"quoted\"");
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["message"]["model"], "claude-\"quoted\"");
        assert_eq!(v["message"]["usage"]["input_tokens"], 3);
        let chunk = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"},"new_field":1}"#;
        let e = native_event(chunk.to_vec(), "claude-opus-4-8").unwrap();
        assert_eq!(e.data.as_bytes(), chunk, "deltas are relayed byte for byte");
        assert!(e.is_content());
        let chunk =
            br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#;
        let e = native_event(chunk.to_vec(), "claude-opus-4-8").unwrap();
        assert_eq!(e.data, r#"{"type":"message_stop"}"#);
        assert!(native_event(b"not json".to_vec(), "m").is_err());

        let e = ReplyEvent::relayed("future_event", r#"{"type":"future_event"}"#);
        assert!(e.event.is_none() && !e.is_content());
    }
}
