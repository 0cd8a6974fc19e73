//! `POST /v1/messages`: parse once into the typed request, apply the gateway's switches, route,
//! admit, answer from the response cache or make one call into `proxy-bedrock`, and render what it
//! returns (a message or a stream of events, the same for every route). The request's [`Account`]
//! settles usage whichever way it ends.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use proxy_bedrock::{Call, Reply};
use proxy_schema::{ContentBlock, MessagesRequest};
use serde_json::Value;
use tracing::Instrument;

use crate::accounting::{Account, UsageContext};
use crate::limits::{admit, check_monthly_budget};
use crate::service::{Body, api_version, insert_headers, json_response, unique_id};
use crate::{ApiError, Gateway, Principal};

/// Applies the gateway's feature switches to the parsed request.
fn apply_switches(g: &Gateway, req: &mut MessagesRequest) -> Result<(), ApiError> {
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
                .any(|b| matches!(b, ContentBlock::Document(_)))
        })
    {
        return Err(ApiError::invalid(
            "document blocks are disabled on this gateway (ENABLE_DOCUMENT_SUPPORT=false)",
        ));
    }
    if !s.enable_extended_thinking {
        req.thinking = None;
    }
    if !s.prompt_caching {
        // Rare (an operator switch): the request without any cache_control marker, read again.
        let mut v = serde_json::to_value(&*req).map_err(|e| ApiError::invalid(e.to_string()))?;
        strip_cache_control(&mut v);
        *req = serde_json::from_value(v).map_err(|e| ApiError::invalid(e.to_string()))?;
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

/// Names the Bedrock target (model id, profile id or ARN) that served the request.
pub(crate) const TARGET_HEADER: HeaderName = HeaderName::from_static("x-gateway-bedrock-target");

pub(crate) async fn messages(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
    started: Instant,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let mut headers_out = Vec::new();
    let mut accounted = false;
    // Boxed: the call's state is large (about 3.5 KB), and a future held inline is copied whole
    // each time a future holding it is made or moved (once per request in the profile, a tenth of
    // its instructions). Boxed here rather than around this function: it is copied once.
    let served = Box::pin(serve(
        g,
        principal,
        headers,
        raw,
        started,
        request_id,
        &mut headers_out,
        &mut accounted,
    ))
    .await;
    if !accounted {
        // Refused before any upstream call or cache lookup: all of its time is the gateway's.
        g.metrics
            .overhead
            .with_label_values(&["/v1/messages", "false"])
            .observe(started.elapsed().as_secs_f64());
    }
    let mut resp = served?;
    insert_headers(resp.headers_mut(), headers_out);
    Ok(resp)
}

/// A cacheable request's answer from the response cache, if it holds one. A hit counts as a request
/// with no tokens (Bedrock did no work); an unreadable or unreachable cache is a miss.
async fn cached_response(
    g: &Gateway,
    fill: &crate::cache::CacheFill,
    account: &mut Account,
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
    account.cache_hit();
    Some(if stream {
        crate::sse::replay(&message)
    } else {
        json_response(StatusCode::OK, &message)
    })
}

#[allow(
    clippy::too_many_arguments,
    reason = "the request's parts and its two out-parameters"
)]
async fn serve(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
    started: Instant,
    request_id: &str,
    headers_out: &mut Vec<(HeaderName, HeaderValue)>,
    accounted: &mut bool,
) -> Result<Response<Body>, ApiError> {
    let version = api_version(headers)?;
    let mut req = proxy_schema::parse_messages_request(&raw)?;
    // The input estimate of a stream that ends before Bedrock's final usage: one token per 4
    // bytes of the request (the rule count_tokens' estimate and bedrock-sim use).
    let input_estimate = (raw.len() as u64).div_ceil(4);
    drop(raw);
    version.check(&req)?;
    apply_switches(g, &mut req)?;
    let span = tracing::Span::current();
    span.record("model", req.model.as_str());
    crate::telemetry::chat(&span, &req.model);
    let route = g.router.resolve(&req.model)?;
    headers_out.extend(admit(g, principal, &req.model, true).await?);
    check_monthly_budget(g, principal).await?;
    let (key_id, user_id) = principal.ids();
    let ctx = UsageContext {
        request_id: request_id.to_owned(),
        tokens_per_minute: match principal {
            Principal::Key(k) if g.settings.rate_limit_enabled => k.limits.tokens_per_minute,
            _ => None,
        },
        key_id,
        user_id,
        model: req.model.clone(),
        bedrock_model: route.bedrock_id.clone(),
        input_estimate,
    };
    let stream = req.is_stream();
    let cache = match (g.settings.cache_ttl, &g.store) {
        (Some(ttl), Some(store)) => serde_json::to_value(&req)
            .ok()
            .and_then(|body| crate::cache::key(&ctx.key_id, version.as_str(), headers, &body))
            .map(|key| crate::cache::CacheFill {
                store: store.clone(),
                key,
                ttl,
            }),
        _ => None,
    };
    let mut account = Account::open(g.clone(), ctx, started, stream, None);
    // The account observes the overhead from here on.
    *accounted = true;
    if let Some(fill) = cache.as_ref() {
        // Boxed: see `limits::take_request`.
        let hit = Box::pin(cached_response(g, fill, &mut account, stream)).await;
        headers_out.push((
            crate::cache::HEADER,
            HeaderValue::from_static(if hit.is_some() { "hit" } else { "miss" }),
        ));
        if let Some(resp) = hit {
            return Ok(resp);
        }
    }
    let mut account = account.with_cache(cache);
    let message_id = unique_id("msg_bdrk_", 24);
    let fallbacks = g.router.fallbacks(&req.model);
    let call = Call {
        request: &req,
        route: &route,
        anthropic_beta: headers.get("anthropic-beta").and_then(|v| v.to_str().ok()),
        anthropic_version: version.as_str(),
        prompt_caching: g.settings.prompt_caching,
        message_id: &message_id,
        fallbacks: &fallbacks,
    };
    let asked = Instant::now();
    let bedrock_span = crate::telemetry::bedrock_call(&route.bedrock_id, stream);
    let sent = g.bedrock.send(call).instrument(bedrock_span.clone()).await;
    crate::telemetry::bedrock_done(
        &bedrock_span,
        sent.as_ref().ok().map(|s| s.operation),
        sent.as_ref().err().map(|e| e.kind.as_str()),
    );
    drop(bedrock_span);
    let sent = match sent {
        Ok(sent) => sent,
        Err(e) => {
            // Nothing was served: no usage record. The whole call counts as Bedrock's time.
            account.waited(asked.elapsed());
            account.refused();
            g.metrics
                .bedrock_errors
                .with_label_values(&[e.kind.as_str()])
                .inc();
            return Err(e.into());
        }
    };
    account.waited(sent.waited);
    // The target that served: a fallback's usage is its own model's.
    if let Ok(target) = HeaderValue::from_str(&sent.bedrock_id) {
        headers_out.push((TARGET_HEADER, target));
    }
    account.served_by(&sent.model, &sent.bedrock_id);
    g.metrics.add_rewrites(&sent.removals);
    g.metrics
        .bedrock_latency
        .with_label_values(&[sent.operation])
        .observe(sent.waited.as_secs_f64());
    match sent.reply {
        Reply::Message(message) => {
            account.message(&message);
            Ok(json_response(StatusCode::OK, &message))
        }
        Reply::Json(message) => {
            account.json_message(&message);
            Ok(crate::service::json_body_response(
                StatusCode::OK,
                message.body,
            ))
        }
        Reply::Stream(events) => {
            let s = &g.settings;
            let limits = crate::sse::RelayLimits {
                ping: s.ping_interval,
                first_event: s.stream_first_event_timeout,
                between_events: s.stream_idle_timeout,
                cut: g.cut_signal(),
                cut_metric: g.metrics.defences.streams_cut.clone(),
            };
            // Boxed: the relay's state (about 2 KB) would otherwise be in the future of every
            // request, streamed or not.
            Ok(Box::pin(crate::sse::relay(limits, events, account)).await)
        }
    }
}
