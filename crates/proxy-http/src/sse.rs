//! SSE response bodies: events are written as Bedrock sends them, `ping` after upstream silence, an
//! SSE `error` event for a failure after the stream started. The body is pulled by hyper as the
//! client reads; when the client goes away hyper drops it, which drops the Bedrock receiver and so
//! cancels the call at once.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::{ConverseStreamOutputError, ResponseStreamError};
use aws_sdk_bedrockruntime::types::{ConverseStreamOutput, ResponseStream};
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use proxy_convert::StreamConverter;
use proxy_schema::{ErrorType, StreamEvent, Usage};
use serde_json::json;

use crate::Gateway;
use crate::service::Body;

const PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

fn sse_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies in front (nginx) must not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Who and what a stream's usage record is about.
#[derive(Debug, Clone)]
pub(crate) struct UsageContext {
    pub request_id: String,
    /// The key's tokens-per-minute budget, charged when the request ends.
    pub tokens_per_minute: Option<u64>,
    pub key_id: String,
    pub user_id: String,
    pub model: String,
    pub bedrock_model: String,
}

/// A cached message replayed as the stream that would have produced it.
pub(crate) fn replay(message: &proxy_schema::Message) -> Response<Body> {
    let text: String = proxy_convert::message_events(message)
        .iter()
        .map(StreamEvent::to_sse)
        .collect();
    sse_response(crate::service::full(text))
}

/// Accounts a stream when it ends, completed, failed or cut by the client: usage into the metrics
/// and the log, time to first token, total latency.
struct Account {
    gateway: Arc<Gateway>,
    ctx: UsageContext,
    model: String,
    started: Instant,
    first_token: Option<Instant>,
    usage: Usage,
    outcome: &'static str,
    span: tracing::Span,
    /// With a cacheable request: the message rebuilt from the events, stored if it completes.
    cache: Option<(crate::cache::CacheFill, proxy_schema::Accumulator)>,
}

impl Account {
    /// How the stream ended (read when the account is dropped).
    fn end(&mut self, outcome: &'static str) {
        if self.outcome == "cancelled" {
            self.outcome = outcome;
        }
    }

    /// Feeds an event to the cache's accumulator, if the response is cacheable.
    fn observe(&mut self, event: &StreamEvent) {
        if let Some((_, acc)) = &mut self.cache
            && acc.push(event).is_err()
        {
            self.cache = None;
        }
    }

    fn first_token(&mut self) {
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            self.gateway
                .metrics
                .ttft
                .with_label_values(&[&self.model])
                .observe((now - self.started).as_secs_f64());
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let m = &self.gateway.metrics;
        m.add_usage(&self.model, &self.usage);
        // Served is served: a stream the client cut short, or that failed upstream, is recorded
        // with the usage known at that point.
        let ttft = self
            .first_token
            .map(|t| (t - self.started).as_millis() as u64);
        self.gateway.record_usage(
            crate::service::usage_record(&self.ctx, &self.usage, self.started, ttft, true),
            self.ctx.tokens_per_minute,
        );
        if self.outcome == "completed"
            && let Some((fill, acc)) = self.cache.take()
            && acc.error().is_none()
            && let Some(message) = acc.into_message()
        {
            fill.put(&self.gateway, &message);
        }
        m.latency
            .with_label_values(&["/v1/messages (stream end)"])
            .observe(self.started.elapsed().as_secs_f64());
        self.span.in_scope(|| {
            tracing::info!(
                outcome = self.outcome,
                input_tokens = self.usage.input_tokens,
                output_tokens = self.usage.output_tokens,
                cache_read_input_tokens = self.usage.cache_read_input_tokens.unwrap_or(0),
                cache_creation_input_tokens = self.usage.cache_creation_input_tokens.unwrap_or(0),
                ttft_ms = self
                    .first_token
                    .map(|t| (t - self.started).as_millis() as u64),
                latency_ms = self.started.elapsed().as_millis() as u64,
                "stream ended"
            )
        });
    }
}

fn is_content(e: &StreamEvent) -> bool {
    matches!(
        e,
        StreamEvent::ContentBlockStart { .. } | StreamEvent::ContentBlockDelta { .. }
    )
}

/// The SSE body of a ConverseStream.
pub(crate) fn converse(
    g: Arc<Gateway>,
    mut receiver: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>,
    message_id: String,
    ctx: UsageContext,
    started: Instant,
    cache: Option<crate::cache::CacheFill>,
) -> Response<Body> {
    let ping = g.settings.ping_interval;
    let model = ctx.model.clone();
    let mut account = Account {
        gateway: g,
        ctx,
        model: model.clone(),
        started,
        first_token: None,
        usage: Usage::default(),
        outcome: "cancelled",
        span: tracing::Span::current(),
        cache: cache.map(|c| (c, proxy_schema::Accumulator::new())),
    };
    let frames = async_stream::stream! {
        let mut conv = StreamConverter::new(message_id, model);
        loop {
            let events = match tokio::time::timeout(ping, receiver.recv()).await {
                Err(_) => {
                    yield Ok(Frame::data(Bytes::from_static(PING.as_bytes())));
                    continue;
                }
                Ok(Ok(Some(ev))) => conv.on_event(&ev),
                Ok(Ok(None)) => conv.finish(),
                Ok(Err(e)) => {
                    let kind = e.as_service_error().map(proxy_convert::converse_stream_error_type).unwrap_or(ErrorType::ApiError);
                    let message = e.as_service_error().and_then(|s| aws_sdk_bedrockruntime::error::ProvideErrorMetadata::message(s)).map(str::to_owned).unwrap_or_else(|| e.to_string());
                    account.end("upstream_error");
                    conv.on_error(kind, message)
                }
            };
            let mut out = String::new();
            for e in &events {
                if is_content(e) {
                    account.first_token();
                }
                account.observe(e);
                out.push_str(&e.to_sse());
            }
            account.usage = conv.usage().clone();
            if !out.is_empty() {
                yield Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(out)));
            }
            if conv.is_finished() {
                account.end("completed");
                break;
            }
        }
    };
    sse_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}

/// The SSE body of an InvokeModelWithResponseStream: each chunk is one Anthropic event already.
pub(crate) fn native(
    g: Arc<Gateway>,
    mut receiver: EventReceiver<ResponseStream, ResponseStreamError>,
    ctx: UsageContext,
    started: Instant,
    cache: Option<crate::cache::CacheFill>,
) -> Response<Body> {
    let ping = g.settings.ping_interval;
    let model = ctx.model.clone();
    let mut account = Account {
        gateway: g,
        ctx,
        model: model.clone(),
        started,
        first_token: None,
        usage: Usage::default(),
        outcome: "cancelled",
        span: tracing::Span::current(),
        cache: cache.map(|c| (c, proxy_schema::Accumulator::new())),
    };
    let frames = async_stream::stream! {
        loop {
            let chunk = match tokio::time::timeout(ping, receiver.recv()).await {
                Err(_) => {
                    yield Ok(Frame::data(Bytes::from_static(PING.as_bytes())));
                    continue;
                }
                Ok(Ok(Some(ResponseStream::Chunk(part)))) => part,
                Ok(Ok(Some(other))) => {
                    tracing::debug!(?other, "unknown response stream event dropped");
                    continue;
                }
                Ok(Ok(None)) => {
                    account.end("completed");
                    break;
                }
                Ok(Err(e)) => {
                    let kind = e.as_service_error().map(proxy_bedrock::response_stream_error_type).unwrap_or(ErrorType::ApiError);
                    let message = e.as_service_error().and_then(|s| aws_sdk_bedrockruntime::error::ProvideErrorMetadata::message(s)).map(str::to_owned).unwrap_or_else(|| e.to_string());
                    account.end("upstream_error");
                    let event = json!({"type": "error", "error": {"type": kind.as_str(), "message": message}});
                    yield Ok(Frame::data(Bytes::from(format!("event: error\ndata: {event}\n\n"))));
                    break;
                }
            };
            let Some(bytes) = chunk.bytes() else { continue };
            let chunk = match proxy_convert::native_chunk(bytes.as_ref(), &model) {
                Ok(c) => c,
                Err(e) => {
                    account.end("upstream_error");
                    let event = json!({"type": "error", "error": {"type": "api_error", "message": e.to_string()}});
                    yield Ok(Frame::data(Bytes::from(format!("event: error\ndata: {event}\n\n"))));
                    break;
                }
            };
            let ev = &chunk.event;
            if account.cache.is_some() {
                match serde_json::from_value::<StreamEvent>(ev.clone()) {
                    Ok(e) => account.observe(&e),
                    Err(_) => account.cache = None,
                }
            }
            match ev["type"].as_str() {
                Some("message_start") => {
                    if let Ok(u) = serde_json::from_value::<Usage>(ev["message"]["usage"].clone()) {
                        account.usage = u;
                    }
                }
                Some("content_block_start") | Some("content_block_delta") => account.first_token(),
                Some("message_delta") => {
                    let u = &ev["usage"];
                    if let Some(n) = u["output_tokens"].as_u64() { account.usage.output_tokens = n; }
                    if let Some(n) = u["input_tokens"].as_u64() { account.usage.input_tokens = n; }
                    if let Some(n) = u["cache_read_input_tokens"].as_u64() { account.usage.cache_read_input_tokens = Some(n); }
                    if let Some(n) = u["cache_creation_input_tokens"].as_u64() { account.usage.cache_creation_input_tokens = Some(n); }
                }
                _ => {}
            }
            yield Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(chunk.to_sse())));
        }
    };
    sse_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
