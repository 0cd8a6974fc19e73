//! Request handling: the route table, request ids, the body limit, the error envelope and the
//! per-request metrics and log line. Endpoints live in their own modules (`messages`,
//! `count_tokens`, `models`); auth and limits in `auth` and `limits`; usage in `accounting`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use proxy_schema::{ApiVersion, ErrorResponse, ErrorType};
use serde_json::json;
use tracing::Instrument;

use crate::{ApiError, Gateway};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Made once: a header name given as text is parsed, and a custom one copied, on every insert.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// `prefix` and a unique id body of `len` base62 characters, in one allocation. The body's first
/// 8 characters are the time in milliseconds, so ids sort by time: the usage table's key is the
/// request id, and ids in time order are appended to its index instead of landing all over it
/// (each a page written to the WAL; measured at three page writes per request with random ids).
/// The rest are random.
pub(crate) fn unique_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // `std::process::id()` is a system call: asked once.
    static PID: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| std::process::id().into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut head = [b'0'; 8];
    let mut ms = now.as_millis() as u64;
    for c in head.iter_mut().rev() {
        *c = ALPHABET[(ms % 62) as usize];
        ms /= 62;
    }
    let mut x = (now.as_nanos() as u64) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ *PID << 32;
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(head.iter().take(len).map(|&c| c as char));
    id.extend((0..len.saturating_sub(head.len()) as u64).map(|i| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        ALPHABET[(x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i) % 62) as usize] as char
    }));
    id
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed_unsync(Full::new(body.into()))
}

/// A response of `body`, already JSON.
pub(crate) fn json_body_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    // Room for a typical message up front: serde_json's own start (128 bytes) grows three times.
    let mut buf = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut buf, body).is_err() {
        buf.clear();
    }
    json_body_response(status, Bytes::from(buf))
}

pub(crate) fn error_response(err: &ApiError, request_id: &str) -> Response<Body> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(
        status,
        &ErrorResponse::new(err.kind, err.message.clone(), Some(request_id.to_owned())),
    );
    let h = resp.headers_mut();
    if let Some(secs) = err.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    // Clients' retry policy follows the status; say so explicitly for the ones worth retrying.
    let retry = matches!(
        err.kind,
        ErrorType::RateLimitError
            | ErrorType::OverloadedError
            | ErrorType::ApiError
            | ErrorType::TimeoutError
    );
    h.insert(
        "x-should-retry",
        HeaderValue::from_static(if retry { "true" } else { "false" }),
    );
    insert_headers(h, err.headers.clone());
    resp
}

/// Adds computed headers, each replacing one of its name.
pub(crate) fn insert_headers(h: &mut HeaderMap, headers: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in headers {
        h.insert(name, value);
    }
}

pub(crate) fn api_version(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
    match headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
    {
        // Lenient: a client that sends no version gets 2023-06-01, the version most clients speak.
        None => Ok(ApiVersion::V2023_06_01),
        Some(v) => ApiVersion::parse(v).map_err(ApiError::from),
    }
}

async fn read_body(g: &Gateway, headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = g.settings.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorType::RequestTooLarge,
            format!("request body exceeds the {limit}-byte limit"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let within = g.settings.body_read_timeout;
    let collected = match tokio::time::timeout(within, Limited::new(body, limit).collect()).await {
        Ok(c) => c,
        Err(_) => {
            let mut e = ApiError::invalid(format!(
                "the request body was not received within {} s (BODY_READ_TIMEOUT)",
                within.as_secs_f64()
            ));
            e.status = Some(408);
            return Err(e);
        }
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::invalid(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// The route table: every endpoint the gateway serves, with the label its metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Root,
    Health,
    Ready,
    Metrics,
    Messages,
    CountTokens,
    Models,
    Model,
    /// No such route under `/v1/` (still authenticated first, as Anthropic does).
    UnknownApi,
    /// No such route.
    Unknown,
}

impl Endpoint {
    fn of(method: &Method, path: &str) -> Self {
        match (method, path) {
            (&Method::HEAD | &Method::GET, "/") => Endpoint::Root,
            (&Method::GET, "/health") => Endpoint::Health,
            (&Method::GET, "/ready") => Endpoint::Ready,
            (&Method::GET, "/metrics") => Endpoint::Metrics,
            (&Method::POST, "/v1/messages") => Endpoint::Messages,
            (&Method::POST, "/v1/messages/count_tokens") => Endpoint::CountTokens,
            (&Method::GET, "/v1/models") => Endpoint::Models,
            (&Method::GET, p) if p.starts_with("/v1/models/") => Endpoint::Model,
            (_, p) if p.starts_with("/v1/") => Endpoint::UnknownApi,
            _ => Endpoint::Unknown,
        }
    }

    /// The `route` label of the request metrics.
    fn label(self) -> &'static str {
        match self {
            Endpoint::Root => "/",
            Endpoint::Health => "/health",
            Endpoint::Ready => "/ready",
            Endpoint::Metrics => "/metrics",
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
            Endpoint::Models => "/v1/models",
            Endpoint::Model => "/v1/models/{id}",
            Endpoint::UnknownApi | Endpoint::Unknown => "other",
        }
    }
}

/// Entry point of every request.
pub(crate) async fn handle(g: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = unique_id("req_", 24);
    let endpoint = Endpoint::of(req.method(), req.uri().path());
    // The OpenTelemetry fields stay empty unless traces are exported (`telemetry`).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        key = tracing::field::Empty,
        model = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        gen_ai.operation.name = tracing::field::Empty,
        gen_ai.provider.name = tracing::field::Empty,
        gen_ai.system = tracing::field::Empty,
        gen_ai.request.model = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
        gen_ai.usage.cache_creation.input_tokens = tracing::field::Empty,
        gateway.outcome = tracing::field::Empty,
    );
    crate::telemetry::start_request(&span, req.method(), endpoint.label(), req.headers());
    let mut resp = route(&g, endpoint, req, &request_id, started)
        .instrument(span.clone())
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    crate::telemetry::status(&span, status);
    let label = endpoint.label();
    g.metrics
        .requests
        .with_label_values(&[label, resp.status().as_str()])
        .inc();
    // Streams log and time themselves when they end; this is the time to the response head.
    g.metrics
        .latency
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    // `/v1/messages` observes its overhead itself (less the waits for Bedrock); count_tokens waits
    // for Bedrock too and is not observed; every other route is the gateway's time alone.
    if !matches!(endpoint, Endpoint::Messages | Endpoint::CountTokens) {
        g.metrics
            .overhead
            .with_label_values(&[label, "false"])
            .observe(started.elapsed().as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = started.elapsed().as_millis() as u64,
            "response"
        )
    });
    resp
}

async fn route(
    g: &Arc<Gateway>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let result = match endpoint {
        Endpoint::Root | Endpoint::Health => {
            Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
        }
        Endpoint::Ready if g.is_draining() => Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "draining", "reason": "the gateway is shutting down"}),
        )),
        // Boxed: the credential chain's future is large, and held inline it would be in every
        // request's future.
        Endpoint::Ready => Ok(if Box::pin(g.is_ready()).await {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "reason": "Bedrock credentials do not resolve"}),
            )
        }),
        Endpoint::Metrics => {
            let mut resp = Response::new(full(g.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        Endpoint::Unknown => Err(no_route(&parts.method, parts.uri.path())),
        api => match crate::auth::authenticate(g, &parts.headers).await {
            Err(e) => Err(e),
            Ok((principal, key)) => {
                let span = tracing::Span::current();
                if !span.is_disabled() {
                    let key = key.map_or_else(|| "-".to_owned(), proxy_auth::mask);
                    span.record("key", key.as_str());
                }
                let headers = &parts.headers;
                match api {
                    Endpoint::Messages => match read_body(g, headers, body).await {
                        Ok(raw) => {
                            crate::messages::messages(
                                g, &principal, headers, raw, started, request_id,
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    },
                    Endpoint::CountTokens => match read_body(g, headers, body).await {
                        Ok(raw) => {
                            Box::pin(crate::count_tokens::count_tokens(
                                g, &principal, headers, raw,
                            ))
                            .await
                        }
                        Err(e) => Err(e),
                    },
                    Endpoint::Models => crate::models::list_models(g, parts.uri.query()),
                    Endpoint::Model => {
                        let id = &parts.uri.path()["/v1/models/".len()..];
                        crate::models::get_model(g, &crate::models::percent_decode(id, false))
                    }
                    _ => Err(no_route(&parts.method, parts.uri.path())),
                }
            }
        },
    };
    result.unwrap_or_else(|e| {
        g.metrics.errors.with_label_values(&[e.kind.as_str()]).inc();
        if e.status() >= 500 {
            tracing::warn!(error_type = e.kind.as_str(), message = %e.message, "request failed");
        } else {
            tracing::debug!(error_type = e.kind.as_str(), message = %e.message, "request rejected");
        }
        error_response(&e, request_id)
    })
}

/// The answer to a request whose handling panicked (the panic is counted and logged by the caller).
pub(crate) fn panic_response() -> Response<Body> {
    let request_id = unique_id("req_", 24);
    let mut resp = error_response(
        &ApiError::new(
            ErrorType::ApiError,
            "internal error while serving the request",
        ),
        &request_id,
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The answer to a request cut at the end of the drain before it had a response.
pub(crate) fn shutdown_response() -> Response<Body> {
    let request_id = unique_id("req_", 24);
    let mut resp = error_response(
        &ApiError::new(
            ErrorType::OverloadedError,
            "the gateway is shutting down; the request was cut at the end of its drain time",
        ),
        &request_id,
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp
}

fn no_route(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        ErrorType::NotFoundError,
        format!("no route for {method} {path}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| unique_id("", 24)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn ids_sort_by_time_and_are_base62() {
        let a = unique_id("", 24);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = unique_id("", 24);
        assert!(a < b, "{a} then {b}");
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_eq!(unique_id("", 4).len(), 4);
        let id = unique_id("req_", 24);
        assert!(id.starts_with("req_") && id.len() == 28, "{id}");
    }

    #[test]
    fn one_table_routes_and_labels() {
        let cases = [
            (Method::POST, "/v1/messages", "/v1/messages"),
            (
                Method::POST,
                "/v1/messages/count_tokens",
                "/v1/messages/count_tokens",
            ),
            (Method::GET, "/v1/models/claude-opus-4-8", "/v1/models/{id}"),
            (Method::HEAD, "/", "/"),
            (Method::GET, "/v1/messages", "other"),
            (Method::GET, "/nope", "other"),
        ];
        for (method, path, label) in cases {
            assert_eq!(
                Endpoint::of(&method, path).label(),
                label,
                "{method} {path}"
            );
        }
        assert_eq!(
            Endpoint::of(&Method::GET, "/v1/messages"),
            Endpoint::UnknownApi
        );
    }
}
