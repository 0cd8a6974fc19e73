//! OpenTelemetry traces of requests, with the GenAI semantic conventions: off unless the binary
//! turns them on ([`export_traces`], when `OTEL_EXPORTER_OTLP_ENDPOINT` is set), and then the request
//! span carries `gen_ai.*` and HTTP attributes, continues the client's W3C `traceparent`, and has a
//! child span for the Bedrock call. Never prompt text, never key material (the masked key only).
//!
//! Off, nothing here runs: every function returns at one relaxed atomic load, and the attribute
//! fields of the request span stay empty (so the log lines do not change either).

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ON: AtomicBool = AtomicBool::new(false);

/// The `gen_ai.provider.name` (and older `gen_ai.system`) of every span.
pub const PROVIDER: &str = "aws.bedrock";

/// Turns the request spans' OpenTelemetry attributes on. The binary calls it after installing a
/// tracing layer that exports spans (with the global W3C trace-context propagator set).
pub fn export_traces() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether spans are exported.
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

struct Headers<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A new request span: its name, kind and HTTP attributes, and the client's trace as its parent.
pub(crate) fn start_request(span: &Span, method: &http::Method, route: &str, headers: &HeaderMap) {
    if !on() || span.is_disabled() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let _ = span.set_parent(parent);
    span.record("otel.name", format!("{method} {route}"));
    span.record("otel.kind", "server");
    span.record("http.request.method", method.as_str());
    span.record("http.route", route);
}

/// The request is for the Messages API with this model.
pub(crate) fn chat(span: &Span, model: &str) {
    if !on() {
        return;
    }
    span.record("gen_ai.operation.name", "chat");
    span.record("gen_ai.provider.name", PROVIDER);
    span.record("gen_ai.system", PROVIDER);
    span.record("gen_ai.request.model", model);
}

/// The response head's status.
pub(crate) fn status(span: &Span, status: u16) {
    if !on() {
        return;
    }
    // As i64: tracing-opentelemetry exports unsigned fields as text.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// What the request used, when it is settled (streams: at their end).
pub(crate) fn usage(span: &Span, model: &str, usage: &proxy_schema::Usage, outcome: &str) {
    if !on() {
        return;
    }
    span.record("gen_ai.response.model", model);
    span.record("gen_ai.usage.input_tokens", int(usage.input_tokens));
    span.record("gen_ai.usage.output_tokens", int(usage.output_tokens));
    if let Some(n) = usage.cache_read_input_tokens {
        span.record("gen_ai.usage.cache_read.input_tokens", int(n));
    }
    if let Some(n) = usage.cache_creation_input_tokens {
        span.record("gen_ai.usage.cache_creation.input_tokens", int(n));
    }
    span.record("gateway.outcome", outcome);
}

/// A count as i64 (tracing-opentelemetry exports unsigned fields as text).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The child span of the call to Bedrock (a disabled span when traces are off).
pub(crate) fn bedrock_call(bedrock_model: &str, stream: bool) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(
        target: "gateway_otel",
        "bedrock",
        otel.name = format!("chat {bedrock_model}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = PROVIDER,
        gen_ai.system = PROVIDER,
        gen_ai.request.model = bedrock_model,
        gateway.stream = stream,
        aws.bedrock.operation = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// How the Bedrock call ended.
pub(crate) fn bedrock_done(span: &Span, operation: Option<&str>, error: Option<&str>) {
    if !on() {
        return;
    }
    if let Some(op) = operation {
        span.record("aws.bedrock.operation", op);
    }
    if let Some(e) = error {
        span.record("error.type", e);
        span.record("otel.status_code", "ERROR");
    }
}
