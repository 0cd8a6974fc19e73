//! Request handling: routing, auth, request ids, the endpoints, and responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ConverseTokensRequest, CountTokensInput, InvokeModelTokensRequest,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use proxy_bedrock::Api;
use proxy_convert::ConverseOptions;
use proxy_schema::{
    ApiVersion, CountTokensResponse, ErrorResponse, ErrorType, MessagesRequest, ModelInfo,
    ModelList,
};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::{ApiError, Gateway, Limit, Principal};
use proxy_auth::{constant_time_eq, mask};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique id body of `len` base62 characters.
pub(crate) fn unique_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut x = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (std::process::id() as u64) << 32;
    (0..len as u64)
        .map(|i| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ALPHABET[(x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i) % 62) as usize] as char
        })
        .collect()
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed_unsync(Full::new(body.into()))
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn error_response(err: &ApiError, request_id: &str) -> Response<Body> {
    let status =
        StatusCode::from_u16(err.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
    insert_headers(h, &err.headers);
    resp
}

/// Adds computed headers (values that are not valid header text are skipped).
fn insert_headers(h: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(*name, v);
        }
    }
}

/// The key a request carries (the configured header, or `Authorization: Bearer`).
fn presented_key<'a>(headers: &'a HeaderMap, header_name: &str) -> Option<&'a str> {
    headers
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

async fn authenticate(g: &Gateway, headers: &HeaderMap) -> Result<(Principal, String), ApiError> {
    let key = presented_key(headers, &g.settings.api_key_header);
    if !g.settings.require_api_key {
        return Ok((
            Principal::Anonymous,
            key.map(mask).unwrap_or_else(|| "-".into()),
        ));
    }
    let Some(key) = key else {
        return Err(ApiError::new(
            ErrorType::AuthenticationError,
            format!(
                "missing API key: send it in the `{}` header or as `Authorization: Bearer`",
                g.settings.api_key_header
            ),
        ));
    };
    if let Some(master) = &g.settings.master_api_key
        && constant_time_eq(master.as_bytes(), key.as_bytes())
    {
        return Ok((Principal::Master, mask(key)));
    }
    let invalid = || ApiError::new(ErrorType::AuthenticationError, "invalid x-api-key");
    let Some(store) = &g.store else {
        return Err(invalid());
    };
    // The store is searched by hash: a timing difference can only reveal hash prefixes.
    match g.key_cache.lookup(store, &proxy_auth::hash_key(key)).await {
        Ok(Some(k)) => Ok((Principal::Key(k), mask(key))),
        Ok(None) => Err(invalid()),
        Err(e) => {
            tracing::error!(error = %e, "key store unavailable");
            let mut err = ApiError::new(
                ErrorType::OverloadedError,
                "the key store is unavailable; retry shortly",
            );
            err.retry_after = Some(1);
            Err(err)
        }
    }
}

/// The request limit of a store key (its own, else the gateway's default), if any. Only called
/// with limits enforced.
fn limit_for(g: &Gateway, k: &proxy_store::ApiKey) -> Option<Limit> {
    match (
        k.limits.rate_limit_requests,
        k.limits.rate_limit_window_secs,
    ) {
        (Some(limit), window) => Some(Limit {
            limit,
            window: window
                .map(|w| std::time::Duration::from_secs(u64::from(w)))
                .or(g.settings.default_rate_limit.map(|l| l.window))
                .unwrap_or(std::time::Duration::from_secs(60)),
        }),
        (None, _) => g.settings.default_rate_limit,
    }
}

fn ratelimit_headers(d: &crate::keys::Decision) -> Vec<(&'static str, String)> {
    let reset = std::time::SystemTime::now() + d.reset;
    let reset_secs = reset
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs())
        .unwrap_or_default();
    vec![
        ("anthropic-ratelimit-requests-limit", d.limit.to_string()),
        (
            "anthropic-ratelimit-requests-remaining",
            d.remaining.to_string(),
        ),
        ("anthropic-ratelimit-requests-reset", rfc3339(reset_secs)),
    ]
}

/// RFC 3339 (UTC, seconds) of a Unix time.
fn rfc3339(unix: u64) -> String {
    let day = proxy_store::utc_day(unix as i64);
    let s = unix % 86_400;
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Checks what the caller may do with `model`, taking one request from its bucket.
async fn admit(
    g: &Gateway,
    principal: &Principal,
    model: &str,
    consume: bool,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let Principal::Key(k) = principal else {
        return Ok(Vec::new());
    };
    if let Some(allowed) = &k.allowed_models
        && !allowed.iter().any(|m| m == model)
    {
        return Err(ApiError::new(
            ErrorType::PermissionError,
            format!("this API key may not use model `{model}`"),
        ));
    }
    if !consume || !g.settings.rate_limit_enabled {
        return Ok(Vec::new());
    }
    if let Some(tpm) = k.limits.tokens_per_minute
        && let Some(wait) = tokens_wait(g, &k.key_id, tpm).await
    {
        let mut err = ApiError::new(
            ErrorType::RateLimitError,
            format!("token limit of {tpm} tokens per minute exceeded for this API key"),
        );
        err.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        err.headers = vec![
            ("anthropic-ratelimit-tokens-limit", tpm.to_string()),
            ("anthropic-ratelimit-tokens-remaining", "0".into()),
        ];
        return Err(err);
    }
    let Some(limit) = limit_for(g, k) else {
        return Ok(Vec::new());
    };
    let d = take_request(g, &k.key_id, limit).await;
    let headers = ratelimit_headers(&d);
    if d.allowed {
        return Ok(headers);
    }
    let mut err = ApiError::new(
        ErrorType::RateLimitError,
        format!(
            "rate limit of {} requests per {} s exceeded for this API key",
            limit.limit,
            limit.window.as_secs()
        ),
    );
    err.retry_after = Some(d.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    err.headers = headers;
    Err(err)
}

/// One request from the key's limit: the store's shared counter with DynamoDB (the local bucket
/// while the store cannot answer), else the local bucket.
async fn take_request(g: &Gateway, key_id: &str, limit: Limit) -> crate::keys::Decision {
    if let Some(store) = g.shared_limits() {
        match crate::keys::shared::take(store, key_id, limit).await {
            Ok(d) => return d,
            Err(e) => {
                g.metrics.limit_store_errors.inc();
                tracing::warn!(error = %e, "shared rate limit unavailable; this replica's own limit applies");
            }
        }
    }
    g.rate_limiter.take(key_id, limit)
}

/// How long a key must wait for its tokens-per-minute budget (shared with DynamoDB, like requests).
async fn tokens_wait(g: &Gateway, key_id: &str, tpm: u64) -> Option<std::time::Duration> {
    if let Some(store) = g.shared_limits() {
        match crate::keys::shared::tokens_wait(store, key_id, tpm).await {
            Ok(w) => return w,
            Err(e) => {
                g.metrics.limit_store_errors.inc();
                tracing::warn!(error = %e, "shared token limit unavailable; this replica's own limit applies");
            }
        }
    }
    g.token_budgets.wait(key_id, tpm)
}

/// A key with a monthly token budget may start requests while this month's tokens are below it.
async fn check_monthly_budget(g: &Gateway, principal: &Principal) -> Result<(), ApiError> {
    let Principal::Key(k) = principal else {
        return Ok(());
    };
    let Some(budget) = k
        .limits
        .monthly_token_budget
        .filter(|_| g.settings.rate_limit_enabled)
    else {
        return Ok(());
    };
    let used = g.monthly_tokens(&k.key_id).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read this month's usage");
        let mut err = ApiError::new(
            ErrorType::OverloadedError,
            "the usage store is unavailable; retry shortly",
        );
        err.retry_after = Some(1);
        err
    })?;
    if used < budget {
        return Ok(());
    }
    let mut err = ApiError::new(
        ErrorType::RateLimitError,
        format!(
            "monthly token budget of {budget} tokens exhausted for this API key ({used} used this month)"
        ),
    );
    // Until the first day of next month (UTC).
    let now = proxy_store::now();
    let mut next = now - now.rem_euclid(86_400) + 86_400;
    while !proxy_store::utc_day(next).ends_with("-01") {
        next += 86_400;
    }
    err.retry_after = Some((next - now).max(1) as u64);
    Err(err)
}

fn api_version(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
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
    match Limited::new(body, limit).collect().await {
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

/// Entry point of every request.
pub(crate) async fn handle(g: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = format!("req_{}", unique_id(24));
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path, key = tracing::field::Empty, model = tracing::field::Empty);
    let mut resp = route(&g, req, &request_id, started)
        .instrument(span.clone())
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("request-id", v);
    }
    let status = resp.status().as_u16();
    let label = match path.as_str() {
        "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/models"
        | "/health"
        | "/ready"
        | "/metrics"
        | "/" => path.as_str(),
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "other",
    };
    g.metrics
        .requests
        .with_label_values(&[label, &status.to_string()])
        .inc();
    // Streams log and time themselves when they end; this is the time to the response head.
    g.metrics
        .latency
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
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
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let result = match (&parts.method, path) {
        (&Method::HEAD, "/") | (&Method::GET, "/") => {
            Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
        }
        (&Method::GET, "/health") => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, "/ready") => Ok(if g.is_ready().await {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "reason": "Bedrock credentials do not resolve"}),
            )
        }),
        (&Method::GET, "/metrics") => {
            let mut resp = Response::new(full(g.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        (_, p) if p.starts_with("/v1/") => match authenticate(g, &parts.headers).await {
            Err(e) => Err(e),
            Ok((principal, key)) => {
                tracing::Span::current().record("key", key.as_str());
                api(
                    g,
                    &principal,
                    &parts.method,
                    p,
                    &parts.headers,
                    parts.uri.query(),
                    body,
                    request_id,
                    started,
                )
                .await
            }
        },
        _ => Err(ApiError::new(
            ErrorType::NotFoundError,
            format!("no route for {} {path}", parts.method),
        )),
    };
    result.unwrap_or_else(|e| {
        g.metrics.errors.with_label_values(&[e.kind.as_str()]).inc();
        if e.kind.status() >= 500 {
            tracing::warn!(error_type = e.kind.as_str(), message = %e.message, "request failed");
        } else {
            tracing::debug!(error_type = e.kind.as_str(), message = %e.message, "request rejected");
        }
        error_response(&e, request_id)
    })
}

#[allow(clippy::too_many_arguments)]
async fn api(
    g: &Arc<Gateway>,
    principal: &Principal,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Incoming,
    request_id: &str,
    started: Instant,
) -> Result<Response<Body>, ApiError> {
    match (method, path) {
        (&Method::POST, "/v1/messages") => {
            let raw = read_body(g, headers, body).await?;
            messages(g, principal, headers, raw, started, request_id).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            let raw = read_body(g, headers, body).await?;
            count_tokens(g, principal, headers, raw).await
        }
        (&Method::GET, "/v1/models") => list_models(g, query),
        (&Method::GET, p) if p.starts_with("/v1/models/") => {
            get_model(g, &percent_decode(&p["/v1/models/".len()..], false))
        }
        _ => Err(ApiError::new(
            ErrorType::NotFoundError,
            format!("no route for {method} {path}"),
        )),
    }
}

/// Applies the gateway's feature switches to a parsed request (and its raw JSON, for the native route).
fn apply_switches(g: &Gateway, req: &mut MessagesRequest, raw: &mut Value) -> Result<(), ApiError> {
    let s = &g.settings;
    if !s.enable_tool_use && req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::invalid(
            "tools: tool use is disabled on this gateway (ENABLE_TOOL_USE=false)",
        ));
    }
    if !s.enable_document_support
        && req.messages.iter().any(|m| {
            m.content
                .blocks()
                .iter()
                .any(|b| matches!(b, proxy_schema::ContentBlock::Document(_)))
        })
    {
        return Err(ApiError::invalid(
            "document blocks are disabled on this gateway (ENABLE_DOCUMENT_SUPPORT=false)",
        ));
    }
    if !s.enable_extended_thinking && req.thinking.is_some() {
        req.thinking = None;
        if let Some(o) = raw.as_object_mut() {
            o.remove("thinking");
        }
    }
    if !s.prompt_caching {
        strip_cache_control(raw);
    }
    Ok(())
}

fn strip_cache_control(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("cache_control");
            o.iter_mut()
                .filter(|(k, _)| k.as_str() != "input_schema")
                .for_each(|(_, v)| strip_cache_control(v));
        }
        Value::Array(a) => a.iter_mut().for_each(strip_cache_control),
        _ => {}
    }
}

async fn messages(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
    started: Instant,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let (mut resp, headers_out) =
        messages_inner(g, principal, headers, raw, started, request_id).await?;
    insert_headers(resp.headers_mut(), &headers_out);
    Ok(resp)
}

/// The usage record of a served request.
pub(crate) fn usage_record(
    ctx: &crate::sse::UsageContext,
    usage: &proxy_schema::Usage,
    started: Instant,
    ttft_ms: Option<u64>,
    stream: bool,
) -> proxy_store::UsageRecord {
    proxy_store::UsageRecord {
        request_id: ctx.request_id.clone(),
        key_id: ctx.key_id.clone(),
        user_id: ctx.user_id.clone(),
        model: ctx.model.clone(),
        bedrock_model: ctx.bedrock_model.clone(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        cache_creation_input_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
        latency_ms: started.elapsed().as_millis() as u64,
        ttft_ms,
        status: 200,
        stream,
        timestamp: proxy_store::now(),
    }
}

/// A cacheable request's answer from the response cache, if it holds one. A hit counts as a request
/// with no tokens (Bedrock did no work); an unreadable or unreachable cache is a miss.
async fn cached_response(
    g: &Gateway,
    fill: &crate::cache::CacheFill,
    ctx: &crate::sse::UsageContext,
    started: Instant,
    stream: bool,
) -> Option<Response<Body>> {
    let text = match crate::keys::within(fill.store.cache_get(&fill.key)).await {
        Ok(Some(text)) => text,
        Ok(None) => {
            g.metrics.cache.with_label_values(&["miss"]).inc();
            return None;
        }
        Err(e) => {
            g.metrics.cache.with_label_values(&["error"]).inc();
            tracing::warn!(error = %e, "response cache unavailable");
            return None;
        }
    };
    let message = match serde_json::from_str::<proxy_schema::Message>(&text) {
        Ok(m) => m,
        Err(e) => {
            g.metrics.cache.with_label_values(&["error"]).inc();
            tracing::warn!(error = %e, "unreadable cache entry ignored");
            return None;
        }
    };
    g.metrics.cache.with_label_values(&["hit"]).inc();
    g.record_usage(
        usage_record(ctx, &proxy_schema::Usage::default(), started, None, stream),
        None,
    );
    Some(if stream {
        crate::sse::replay(&message)
    } else {
        json_response(StatusCode::OK, &message)
    })
}

async fn messages_inner(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
    started: Instant,
    request_id: &str,
) -> Result<(Response<Body>, Vec<(&'static str, String)>), ApiError> {
    let version = api_version(headers)?;
    let mut req = proxy_schema::parse_messages_request(&raw)?;
    version.check(&req)?;
    let mut raw_json: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::invalid(e.to_string()))?;
    apply_switches(g, &mut req, &mut raw_json)?;
    if !g.settings.prompt_caching {
        // Re-read the request without its cache_control markers.
        req = proxy_schema::parse_messages_request(
            &serde_json::to_vec(&raw_json).unwrap_or_default(),
        )?;
    }
    tracing::Span::current().record("model", req.model.as_str());
    let route = g.router.resolve(&req.model)?;
    let mut limit_headers = admit(g, principal, &req.model, true).await?;
    check_monthly_budget(g, principal).await?;
    let (key_id, user_id) = principal.ids();
    let ctx = crate::sse::UsageContext {
        request_id: request_id.to_owned(),
        tokens_per_minute: match principal {
            Principal::Key(k) if g.settings.rate_limit_enabled => k.limits.tokens_per_minute,
            _ => None,
        },
        key_id,
        user_id,
        model: req.model.clone(),
        bedrock_model: route.bedrock_id.clone(),
    };
    let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
    let stream = req.is_stream();
    let cache = match (g.settings.cache_ttl, &g.store) {
        (Some(ttl), Some(store)) => {
            crate::cache::key(&ctx.key_id, version.as_str(), headers, &raw_json).map(|key| {
                crate::cache::CacheFill {
                    store: store.clone(),
                    key,
                    ttl,
                }
            })
        }
        _ => None,
    };
    if let Some(fill) = &cache {
        let hit = cached_response(g, fill, &ctx, started, stream).await;
        let result = if hit.is_some() { "hit" } else { "miss" };
        limit_headers.push((crate::cache::HEADER, result.into()));
        if let Some(resp) = hit {
            return Ok((resp, limit_headers));
        }
    }
    let message_id = format!("msg_bdrk_{}", unique_id(24));
    match route.api {
        Api::Invoke => {
            let native = proxy_convert::to_native_body(&req, &route.bedrock_id, beta)?;
            g.metrics.add_rewrites(&native.removals);
            let bytes = serde_json::to_vec(&native.body).unwrap_or_default();
            let t = Instant::now();
            if stream {
                let receiver = g.bedrock.invoke_stream(&route.bedrock_id, bytes).await?;
                g.metrics
                    .bedrock_latency
                    .with_label_values(&["InvokeModelWithResponseStream"])
                    .observe(t.elapsed().as_secs_f64());
                return Ok((
                    crate::sse::native(g.clone(), receiver, ctx, started, cache),
                    limit_headers,
                ));
            }
            let out = g.bedrock.invoke(&route.bedrock_id, bytes).await?;
            g.metrics
                .bedrock_latency
                .with_label_values(&["InvokeModel"])
                .observe(t.elapsed().as_secs_f64());
            let mut message: Value = serde_json::from_slice(&out).map_err(|e| {
                ApiError::new(
                    ErrorType::ApiError,
                    format!("Bedrock sent a body that is not JSON: {e}"),
                )
            })?;
            proxy_convert::restore_model(&mut message, &req.model);
            if let Ok(usage) =
                serde_json::from_value::<proxy_schema::Usage>(message["usage"].clone())
            {
                g.metrics.add_usage(&req.model, &usage);
                g.record_usage(
                    usage_record(&ctx, &usage, started, None, false),
                    ctx.tokens_per_minute,
                );
                tracing::info!(
                    input_tokens = usage.input_tokens,
                    output_tokens = usage.output_tokens,
                    "usage"
                );
            }
            if let Some(fill) = cache
                && let Ok(m) = serde_json::from_value::<proxy_schema::Message>(message.clone())
            {
                fill.put(g, &m);
            }
            Ok((json_response(StatusCode::OK, &message), limit_headers))
        }
        Api::Converse => {
            let opts = ConverseOptions {
                bedrock_model_id: &route.bedrock_id,
                anthropic_beta: beta,
                prompt_caching: g.settings.prompt_caching,
            };
            let converse = proxy_convert::to_converse(&req, &opts)?;
            let t = Instant::now();
            if stream {
                let receiver = g
                    .bedrock
                    .converse_stream(converse, &route.bedrock_id)
                    .await?;
                g.metrics
                    .bedrock_latency
                    .with_label_values(&["ConverseStream"])
                    .observe(t.elapsed().as_secs_f64());
                return Ok((
                    crate::sse::converse(g.clone(), receiver, message_id, ctx, started, cache),
                    limit_headers,
                ));
            }
            let out = g.bedrock.converse(converse, &route.bedrock_id).await?;
            g.metrics
                .bedrock_latency
                .with_label_values(&["Converse"])
                .observe(t.elapsed().as_secs_f64());
            let message = proxy_convert::from_converse(&out, &message_id, &req.model);
            g.metrics.add_usage(&req.model, &message.usage);
            g.record_usage(
                usage_record(&ctx, &message.usage, started, None, false),
                ctx.tokens_per_minute,
            );
            tracing::info!(
                input_tokens = message.usage.input_tokens,
                output_tokens = message.usage.output_tokens,
                "usage"
            );
            if let Some(fill) = cache {
                fill.put(g, &message);
            }
            Ok((json_response(StatusCode::OK, &message), limit_headers))
        }
        // proxy-server refuses such a config at start until this route is served.
        Api::Messages => Err(ApiError::new(
            ErrorType::ApiError,
            "this gateway does not serve api = \"messages\" routes",
        )),
    }
}

/// The documented estimate when Bedrock cannot count: one token per 4 bytes of the request's
/// messages, system prompt and tools as JSON (the same rule bedrock-sim uses).
fn estimate_tokens(raw: &Value) -> u64 {
    let bytes: usize = ["messages", "system", "tools"]
        .iter()
        .filter_map(|k| raw.get(*k))
        .map(|v| {
            serde_json::to_string(v)
                .map(|s| s.len())
                .unwrap_or_default()
        })
        .sum();
    (bytes as u64).div_ceil(4).max(1)
}

async fn count_tokens(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
) -> Result<Response<Body>, ApiError> {
    let version = api_version(headers)?;
    let req = proxy_schema::parse_count_tokens_request(&raw)?;
    version.check(&req)?;
    let raw_json: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::invalid(e.to_string()))?;
    tracing::Span::current().record("model", req.model.as_str());
    let route = g.router.resolve(&req.model)?;
    // Counting is free: it checks the model is allowed but takes nothing from the request limit.
    admit(g, principal, &req.model, false).await?;
    let claude =
        proxy_convert::ModelFamily::of(&route.bedrock_id) == proxy_convert::ModelFamily::Claude;
    let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
    let counted = if !claude {
        None
    } else {
        let input = match route.api {
            Api::Invoke | Api::Messages => {
                let native =
                    proxy_convert::to_native_count_tokens_body(&req, &route.bedrock_id, beta)?;
                g.metrics.add_rewrites(&native.removals);
                CountTokensInput::InvokeModel(
                    InvokeModelTokensRequest::builder()
                        .body(Blob::new(
                            serde_json::to_vec(&native.body).unwrap_or_default(),
                        ))
                        .build()
                        .map_err(|e| ApiError::new(ErrorType::ApiError, e.to_string()))?,
                )
            }
            Api::Converse => {
                let conv =
                    proxy_convert::to_converse(&req, &ConverseOptions::new(&route.bedrock_id))?;
                CountTokensInput::Converse(
                    ConverseTokensRequest::builder()
                        .set_messages(Some(conv.messages))
                        .set_system((!conv.system.is_empty()).then_some(conv.system))
                        .set_tool_config(conv.tool_config)
                        .build(),
                )
            }
        };
        match g
            .bedrock
            .count_tokens(route.foundation_model_id(), input)
            .await
        {
            Ok(n) => Some(n),
            // A request Bedrock finds invalid is invalid for counting too, unless the complaint is
            // that the model cannot count.
            Err(e)
                if e.kind == ErrorType::InvalidRequestError
                    && !e.message.contains("counting tokens") =>
            {
                return Err(e.into());
            }
            Err(e) => {
                tracing::debug!(error = %e, "CountTokens unavailable; estimating");
                None
            }
        }
    };
    let (tokens, source) = match counted {
        Some(n) => (n, "bedrock"),
        None => (estimate_tokens(&raw_json), "estimate"),
    };
    let mut resp = json_response(
        StatusCode::OK,
        &CountTokensResponse {
            input_tokens: tokens,
        },
    );
    resp.headers_mut()
        .insert("x-gateway-token-count", HeaderValue::from_static(source));
    Ok(resp)
}

/// Percent-decodes a query value or path segment (`%3A` -> `:`; `+` is a space in query values).
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes.len() >= i + 3 => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn model_info(m: &proxy_bedrock::ListedModel) -> ModelInfo {
    ModelInfo {
        kind: "model".into(),
        id: m.id.clone(),
        display_name: m.display_name.clone(),
        created_at: m.created_at.clone(),
    }
}

fn list_models(g: &Gateway, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let params: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = match get("limit") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "limit: must be an integer between 1 and 1000, got `{v}`"
                )));
            }
        },
    };
    let all: Vec<ModelInfo> = g.listed_models().iter().map(model_info).collect();
    let position = |id: &str| {
        all.iter()
            .position(|m| m.id == id)
            .ok_or_else(|| ApiError::invalid(format!("no model with id `{id}` to page from")))
    };
    let (start, end) = match (get("after_id"), get("before_id")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "after_id and before_id cannot both be set",
            ));
        }
        (Some(after), None) => {
            let s = position(after)? + 1;
            (s, (s + limit).min(all.len()))
        }
        (None, Some(before)) => {
            let e = position(before)?;
            (e.saturating_sub(limit), e)
        }
        (None, None) => (0, limit.min(all.len())),
    };
    let page = all[start..end].to_vec();
    let has_more = if get("before_id").is_some() {
        start > 0
    } else {
        end < all.len()
    };
    Ok(json_response(
        StatusCode::OK,
        &ModelList {
            first_id: page.first().map(|m| m.id.clone()),
            last_id: page.last().map(|m| m.id.clone()),
            has_more,
            data: page,
        },
    ))
}

fn get_model(g: &Gateway, id: &str) -> Result<Response<Body>, ApiError> {
    // Only what the list shows: a name that would merely be passed on to Bedrock is not a model
    // the gateway knows.
    match g.listed_models().iter().find(|m| m.id == id) {
        Some(m) => Ok(json_response(StatusCode::OK, &model_info(m))),
        None => Err(ApiError::new(
            ErrorType::NotFoundError,
            format!("model: {id}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("us.anthropic.x-v1%3A0", true),
            "us.anthropic.x-v1:0"
        );
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz%", false), "%zz%");
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| unique_id(24)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn estimate_counts_messages_system_and_tools() {
        let a = estimate_tokens(&json!({"messages": [{"role": "user", "content": "hi"}]}));
        let b = estimate_tokens(
            &json!({"messages": [{"role": "user", "content": "hi"}], "system": "a long system prompt here"}),
        );
        assert!(b > a && a > 0);
    }
}
