//! Bedrock's Anthropic Messages API: `POST /anthropic/v1/messages` as bedrock-runtime and
//! bedrock-mantle serve it (the first-party body with `model`; the first-party Message JSON, or plain
//! SSE with `stream: true`), and Mantle's `POST /anthropic/v1/messages/count_tokens`.
//!
//! The reply comes from the same [`Plan`](crate::generate::Plan) as Converse and InvokeModel, so every
//! route answers a request alike, directives included. Errors use the Anthropic envelope
//! `{"type":"error","error":{"type":..,"message":..}}` with Anthropic's statuses.
//!
//! # Which host
//!
//! One emulator serves both hosts. A request is for bedrock-mantle when its path starts with
//! `/mantle` (give a Mantle client the base URL `http://HOST:PORT/mantle`, so it sends
//! `/mantle/anthropic/v1/messages`) or when its SigV4 credential scope names the service
//! `bedrock-mantle`; anything else is for bedrock-runtime. A Bearer or `x-api-key` request carries no
//! service name, so for it only the path prefix tells Mantle apart.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use crate::catalog::{Model, ResolveError};
use crate::directives::{Directives, ErrorKind, Fault};
use crate::faults::{Abort, ConnCtl, abort_connection};
use crate::generate::{Format, Plan, estimate_input_tokens};
use crate::server::{Body, ProgressGuard, Sim, full, headers_json, scripted, sigv4_service};
use crate::validate::{self, Dialect};

/// Which Bedrock host a Messages API request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `bedrock-runtime.{region}.amazonaws.com/anthropic`: inference-profile ids and ARNs.
    Runtime,
    /// `bedrock-mantle.{region}.api.aws/anthropic`: bare ids without version suffix.
    Mantle,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Runtime => "runtime",
            Endpoint::Mantle => "mantle",
        }
    }
}

/// A request path this module answers: anything under `/anthropic` or `/mantle`.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The path named the Mantle host (`/mantle/...`).
    mantle_path: bool,
    /// What follows `/anthropic/` (e.g. `v1/messages`); `None` for a path outside `/anthropic`.
    api: Option<String>,
}

impl Route {
    /// The route of `path`, if it is one of this module's.
    pub(crate) fn parse(path: &str) -> Option<Route> {
        let (mantle_path, rest) = match path.strip_prefix("/mantle") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => (true, rest),
            _ => (false, path),
        };
        let api = rest
            .strip_prefix("/anthropic")
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .map(|r| r.trim_start_matches('/').to_owned());
        if !mantle_path && api.is_none() {
            return None;
        }
        Some(Route { mantle_path, api })
    }
}

/// An error in the Anthropic envelope.
#[derive(Debug)]
struct ApiError {
    status: u16,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "authentication_error", message)
    }

    fn from_kind(kind: ErrorKind) -> Self {
        let (status, t) = kind.anthropic();
        Self::new(status, t, kind.message())
    }

    fn body(&self) -> Value {
        json!({ "type": "error", "error": { "type": self.kind, "message": self.message } })
    }

    fn into_response(self, rid: &str, endpoint: Endpoint) -> Response<Body> {
        let mut resp = json(self.status, &self.body(), rid, endpoint);
        if self.status == 401 {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON response with the request id headers: `request-id` (what Anthropic's clients and AWS
/// Support ask for) on both hosts, and `x-amzn-requestid` on runtime only (not observed on Mantle).
fn json(status: u16, body: &Value, rid: &str, endpoint: Endpoint) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    id_headers(resp.headers_mut(), rid, endpoint);
    resp
}

fn id_headers(h: &mut http::HeaderMap, rid: &str, endpoint: Endpoint) {
    if let Ok(v) = HeaderValue::from_str(rid) {
        if endpoint == Endpoint::Runtime {
            h.insert("x-amzn-requestid", v.clone());
        }
        h.insert("request-id", v);
    }
}

/// How a request authenticated.
enum Auth {
    /// SigV4, with the service of its credential scope.
    SigV4(String),
    /// A Bedrock API key, as `Authorization: Bearer` or `x-api-key`.
    Key,
}

fn authenticate(headers: &http::HeaderMap, mantle_path: bool) -> Result<Auth, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION);
    let api_key = headers.get("x-api-key");
    let text = |v: &HeaderValue| v.to_str().map(str::trim).unwrap_or_default().to_owned();
    match (authorization, api_key) {
        // ⚠ Seen refused on runtime `/anthropic` by one field report; the status is not recorded.
        (Some(_), Some(_)) => Err(ApiError::unauthenticated(
            "Send either an Authorization header or an x-api-key header, not both: the two authentication schemes cannot be combined on one request.",
        )),
        (None, None) => Err(ApiError::unauthenticated(
            "Missing authentication: sign the request with SigV4, or send a Bedrock API key as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        )),
        (None, Some(key)) => {
            if text(key).is_empty() {
                return Err(ApiError::unauthenticated("invalid x-api-key"));
            }
            Ok(Auth::Key)
        }
        (Some(auth), None) => {
            let auth = text(auth);
            if let Some(token) = auth.strip_prefix("Bearer ") {
                if token.trim().is_empty() {
                    return Err(ApiError::unauthenticated("invalid bearer token"));
                }
                return Ok(Auth::Key);
            }
            let service =
                sigv4_service(&auth, headers).map_err(|e| ApiError::unauthenticated(e.message))?;
            // ⚠ Mantle was seen accepting a `bedrock` scope as well (the signing host decides);
            // any other service is refused on both hosts.
            if service != "bedrock" && service != "bedrock-mantle" {
                let expected = if mantle_path {
                    "bedrock-mantle"
                } else {
                    "bedrock"
                };
                return Err(ApiError::unauthenticated(format!(
                    "Credential should be scoped to correct service: '{expected}'."
                )));
            }
            Ok(Auth::SigV4(service))
        }
    }
}

/// The flags of the `anthropic-beta` header(s), comma-separated.
fn header_betas(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the recording says about a request.
struct Seen {
    endpoint: Endpoint,
    operation: &'static str,
    model_id: Option<String>,
}

/// Answers a request under `/anthropic` or `/mantle`, and records it.
pub(crate) async fn serve(
    sim: &Sim,
    route: Route,
    parts: &http::request::Parts,
    raw: Option<Bytes>,
    rid: &str,
    conn: &Arc<ConnCtl>,
) -> Response<Body> {
    let mut seen = Seen {
        endpoint: if route.mantle_path {
            Endpoint::Mantle
        } else {
            Endpoint::Runtime
        },
        operation: "Unknown",
        model_id: None,
    };
    let answered = answer(sim, &route, parts, raw.as_ref(), rid, &mut seen, conn).await;
    let (response, error) = match answered {
        Ok((resp, error)) => (resp, error.map(str::to_owned)),
        Err(e) => {
            let kind = e.kind.to_owned();
            (e.into_response(rid, seen.endpoint), Some(kind))
        }
    };
    let body = match &raw {
        Some(raw) if raw.is_empty() => Value::Null,
        Some(raw) => serde_json::from_slice(raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned())),
        None => Value::String("(body too large)".into()),
    };
    sim.record(json!({
        "request_id": rid,
        "endpoint": seen.endpoint.name(),
        "operation": seen.operation,
        "model_id": seen.model_id,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or_default(),
        "headers": headers_json(&parts.headers),
        "body": body,
        "status": response.status().as_u16(),
        "error": error,
    }));
    response
}

/// The answer, and the error name to record for a non-error status (runtime's unknown routes).
type Answer = (Response<Body>, Option<&'static str>);

async fn answer(
    sim: &Sim,
    route: &Route,
    parts: &http::request::Parts,
    raw: Option<&Bytes>,
    rid: &str,
    seen: &mut Seen,
    conn: &Arc<ConnCtl>,
) -> Result<Answer, ApiError> {
    let auth = authenticate(&parts.headers, route.mantle_path)?;
    if matches!(&auth, Auth::SigV4(service) if service == "bedrock-mantle") {
        seen.endpoint = Endpoint::Mantle;
    }
    let endpoint = seen.endpoint;
    let count_tokens = match (&parts.method, route.api.as_deref()) {
        (&Method::POST, Some("v1/messages")) => false,
        (&Method::POST, Some("v1/messages/count_tokens")) if endpoint == Endpoint::Mantle => true,
        _ if endpoint == Endpoint::Runtime => {
            // ⚠ Runtime answers routes it does not know under /anthropic (count_tokens, models,
            // files) with HTTP 200 and a coral UnknownOperationException body, as field probes saw.
            let body = json!({
                "Output": { "__type": "com.amazon.coral.service#UnknownOperationException" },
                "Version": "1.0"
            });
            return Ok((
                json(200, &body, rid, endpoint),
                Some("UnknownOperationException"),
            ));
        }
        _ => return Err(ApiError::new(404, "not_found_error", "Not Found")),
    };
    seen.operation = if count_tokens {
        "MessagesCountTokens"
    } else {
        "Messages"
    };
    let raw = raw.ok_or_else(|| {
        ApiError::new(
            413,
            "request_too_large",
            format!(
                "Request exceeds the maximum allowed number of bytes ({}).",
                crate::server::MAX_BODY
            ),
        )
    })?;
    let body: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: {e}"
        ))
    })?;
    let model_id = match body.get("model") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(ApiError::invalid("model: Input should be a valid string")),
        None => return Err(ApiError::invalid("model: Field required")),
    };
    seen.model_id = Some(model_id.clone());
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if stream {
        seen.operation = "MessagesStream";
    }
    let catalog = sim.catalog();
    let model: &Model = match endpoint {
        Endpoint::Runtime => match catalog.resolve(&model_id) {
            Ok(r) => r.model,
            Err(ResolveError::Invalid) => {
                return Err(ApiError::invalid(
                    "The provided model identifier is invalid.",
                ));
            }
            Err(ResolveError::OnDemandNotSupported(id)) => {
                return Err(ApiError::invalid(crate::server::on_demand_message(&id)));
            }
        },
        // Mantle takes bare ids only: a profile id or an ARN is a model that "does not exist".
        Endpoint::Mantle => catalog.resolve_mantle(&model_id).ok_or_else(|| {
            ApiError::new(
                404,
                "not_found_error",
                format!("The model '{model_id}' does not exist"),
            )
        })?,
    };
    if !model.is_claude() {
        return Err(ApiError::invalid(format!(
            "The Anthropic Messages API serves Anthropic models only; {model_id} is not one. Use Converse."
        )));
    }
    let dialect = if count_tokens {
        Dialect::CountTokens
    } else {
        Dialect::Messages
    };
    validate::messages(&body, model, dialect, &header_betas(&parts.headers))
        .map_err(|e| ApiError::invalid(e.0))?;
    if count_tokens {
        let tokens = estimate_input_tokens(&body, Format::Native);
        return Ok((
            json(200, &json!({ "input_tokens": tokens }), rid, endpoint),
            None,
        ));
    }
    let (mut directives, plan) =
        scripted(sim, &model_id, &parts.headers, &body, Format::Native, model)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Some(key) = &directives.expired_key
        && crate::server::access_key(&parts.headers).as_deref() == Some(key.as_str())
    {
        // ⚠ As AWS's authentication layer answers the other operations; not observed here.
        return Ok((
            crate::server::AwsError::expired().into_response(rid),
            Some("ExpiredTokenException"),
        ));
    }
    sim.gate(&mut directives);
    if let Some(wait) = directives.ttfb
        && (directives.error.is_some() || !stream)
    {
        tokio::time::sleep(wait).await;
    }
    if let Some(kind) = directives.error {
        return Err(ApiError::from_kind(kind));
    }
    if stream {
        return Ok((
            sse_response(
                &plan,
                &directives,
                rid,
                endpoint,
                sim.track_stream(rid),
                conn.clone(),
            ),
            None,
        ));
    }
    crate::server::plain_fault(directives.fault, conn).await;
    let resp = json(200, &plan.native_response(), rid, endpoint);
    if directives.fault == Some(Fault::Truncate) {
        return Ok((crate::server::truncated(resp, conn.clone()), None));
    }
    Ok((resp, None))
}

fn sse_frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The plan's Anthropic stream events as plain SSE: `message_start`, `content_block_*`,
/// `message_delta`, `message_stop`. No `ping` (not observed on Bedrock), and no
/// `amazon-bedrock-invocationMetrics` (an InvokeModel stream's field).
fn sse_response(
    plan: &Plan,
    d: &Directives,
    rid: &str,
    endpoint: Endpoint,
    progress: ProgressGuard,
    conn: Arc<ConnCtl>,
) -> Response<Body> {
    let events: Vec<Value> = plan
        .native_events()
        .into_iter()
        .map(|mut e| {
            if let Some(o) = e.as_object_mut() {
                o.remove("amazon-bedrock-invocationMetrics");
            }
            e
        })
        .collect();
    let ttfb = d.ttfb;
    let delay = d.delay;
    let failure = d.stream_error.map(|k| (k, d.after.unwrap_or(2)));
    let fault = d.fault.map(|f| (f, d.after.unwrap_or(2)));
    let frames = async_stream::stream! {
        if let Some(wait) = ttfb {
            tokio::time::sleep(wait).await;
        }
        for (n, event) in events.into_iter().enumerate() {
            if let Some((fault, after)) = fault && n == after {
                progress.update(|p| p.state = fault.name());
                let name = event["type"].as_str().unwrap_or("message").to_owned();
                match fault {
                    Fault::Stall => {}
                    Fault::Reset => abort_connection(&conn, Abort::Reset).await,
                    Fault::Truncate => {
                        yield Ok(Frame::data(crate::faults::half(&sse_frame(&name, &event))));
                        abort_connection(&conn, Abort::Close).await;
                    }
                    // SSE has no CRC: an event whose data is not JSON stands for a corrupt frame.
                    Fault::BadCrc => {
                        yield Ok(Frame::data(crate::faults::malformed_sse(&name, &event.to_string())));
                        return;
                    }
                    // An SSE line longer than any client buffers (16 MiB and a byte).
                    Fault::Oversize => yield Ok(Frame::data(crate::faults::oversize_sse_line())),
                }
                std::future::pending::<()>().await;
                return;
            }
            if let Some((kind, after)) = failure && n == after {
                let error = ApiError::from_kind(kind);
                progress.update(|p| p.state = "failed");
                yield Ok::<_, Infallible>(Frame::data(sse_frame("error", &error.body())));
                return;
            }
            if n > 0 && let Some(wait) = delay {
                tokio::time::sleep(wait).await;
            }
            let name = event["type"].as_str().unwrap_or("message").to_owned();
            yield Ok(Frame::data(sse_frame(&name, &event)));
            progress.update(|p| p.events_sent += 1);
        }
        progress.update(|p| p.state = "completed");
    };
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    id_headers(h, rid, endpoint);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path() {
        let r = Route::parse("/anthropic/v1/messages").unwrap();
        assert!(!r.mantle_path);
        assert_eq!(r.api.as_deref(), Some("v1/messages"));
        let r = Route::parse("/mantle/anthropic/v1/messages/count_tokens").unwrap();
        assert!(r.mantle_path);
        assert_eq!(r.api.as_deref(), Some("v1/messages/count_tokens"));
        let r = Route::parse("/mantle/v1/models").unwrap();
        assert!(r.mantle_path && r.api.is_none());
        assert!(Route::parse("/model/x/converse").is_none());
        assert!(Route::parse("/anthropicx/v1/messages").is_none());
        assert!(Route::parse("/mantles/anthropic/v1/messages").is_none());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn auth_schemes() {
        let sigv4 = |service: &'static str| {
            let auth: &'static str = Box::leak(format!("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc").into_boxed_str());
            headers(&[("authorization", auth), ("x-amz-date", "20260101T000000Z")])
        };
        assert!(
            matches!(authenticate(&sigv4("bedrock"), false), Ok(Auth::SigV4(s)) if s == "bedrock")
        );
        assert!(
            matches!(authenticate(&sigv4("bedrock-mantle"), false), Ok(Auth::SigV4(s)) if s == "bedrock-mantle")
        );
        let e = authenticate(&sigv4("s3"), true).err().unwrap();
        assert_eq!((e.status, e.kind), (401, "authentication_error"));
        assert!(e.message.contains("'bedrock-mantle'"));
        assert!(matches!(
            authenticate(&headers(&[("authorization", "Bearer k")]), false),
            Ok(Auth::Key)
        ));
        assert!(matches!(
            authenticate(&headers(&[("x-api-key", "k")]), true),
            Ok(Auth::Key)
        ));
        let none = authenticate(&headers(&[]), false).err().unwrap();
        assert_eq!((none.status, none.kind), (401, "authentication_error"));
        let both = authenticate(
            &headers(&[("authorization", "Bearer k"), ("x-api-key", "k")]),
            false,
        )
        .err()
        .unwrap();
        assert!(both.message.contains("not both"));
    }

    #[test]
    fn beta_header_values_are_split() {
        let h = headers(&[("anthropic-beta", "a-1, b-2"), ("anthropic-beta", "c-3")]);
        assert_eq!(header_betas(&h), vec!["a-1", "b-2", "c-3"]);
    }
}
