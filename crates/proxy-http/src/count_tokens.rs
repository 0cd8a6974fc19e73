//! `POST /v1/messages/count_tokens`: Bedrock counts where it can (one call into `proxy-bedrock`, any
//! route); elsewhere the documented estimate. The `x-gateway-token-count` header says which.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use proxy_bedrock::Call;
use proxy_schema::{CountTokensResponse, MessagesRequest};

use crate::limits::admit;
use crate::service::{Body, api_version, json_response};
use crate::{ApiError, Gateway, Principal};

/// The documented estimate when Bedrock cannot count: one token per 4 bytes of the request's
/// messages, system prompt and tools as JSON (the same rule bedrock-sim uses).
fn estimate_tokens(req: &MessagesRequest) -> u64 {
    let len = |v: Result<String, serde_json::Error>| v.map(|s| s.len()).unwrap_or_default();
    let bytes = len(serde_json::to_string(&req.messages))
        + req
            .system
            .as_ref()
            .map_or(0, |s| len(serde_json::to_string(s)))
        + req
            .tools
            .as_ref()
            .map_or(0, |t| len(serde_json::to_string(t)));
    (bytes as u64).div_ceil(4).max(1)
}

pub(crate) async fn count_tokens(
    g: &Arc<Gateway>,
    principal: &Principal,
    headers: &HeaderMap,
    raw: Bytes,
) -> Result<Response<Body>, ApiError> {
    let version = api_version(headers)?;
    let req = proxy_schema::parse_count_tokens_request(&raw)?;
    drop(raw);
    version.check(&req)?;
    tracing::Span::current().record("model", req.model.as_str());
    let route = g.router.resolve(&req.model)?;
    // Counting is free: it checks the model is allowed but takes nothing from the request limit.
    admit(g, principal, &req.model, false).await?;
    let call = Call {
        request: &req,
        route: &route,
        anthropic_beta: headers.get("anthropic-beta").and_then(|v| v.to_str().ok()),
        anthropic_version: version.as_str(),
        prompt_caching: g.settings.prompt_caching,
        message_id: "",
        fallbacks: &[],
    };
    let (tokens, source) = match g.bedrock.count(call).await? {
        Some(n) => (n, "bedrock"),
        None => (estimate_tokens(&req), "estimate"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_messages_system_and_tools() {
        let parse = |s: &str| proxy_schema::parse_count_tokens_request(s.as_bytes()).unwrap();
        let a = estimate_tokens(&parse(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ));
        let b = estimate_tokens(&parse(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"system":"a long system prompt here"}"#,
        ));
        assert!(b > a && a > 0);
    }
}
