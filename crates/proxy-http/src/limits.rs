//! What a caller may do: allowed models, request limits (local or shared through the store),
//! tokens per minute and monthly token budgets, with Anthropic's rate-limit headers.

use http::{HeaderName, HeaderValue};
use proxy_schema::ErrorType;

use crate::{ApiError, Gateway, Limit, Principal};

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

// Header names made once, not parsed from text for every response.
const REQUESTS_LIMIT: HeaderName = HeaderName::from_static("anthropic-ratelimit-requests-limit");
const REQUESTS_REMAINING: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-requests-remaining");
const REQUESTS_RESET: HeaderName = HeaderName::from_static("anthropic-ratelimit-requests-reset");
const TOKENS_LIMIT: HeaderName = HeaderName::from_static("anthropic-ratelimit-tokens-limit");
const TOKENS_REMAINING: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining");

fn ratelimit_headers(d: &crate::keys::Decision) -> Vec<(HeaderName, HeaderValue)> {
    let reset = std::time::SystemTime::now() + d.reset;
    let reset_secs = reset
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs())
        .unwrap_or_default();
    let mut headers = Vec::with_capacity(3);
    headers.push((REQUESTS_LIMIT, HeaderValue::from(d.limit)));
    headers.push((REQUESTS_REMAINING, HeaderValue::from(d.remaining)));
    // From the String itself: `from_str` would copy it.
    if let Ok(reset) = HeaderValue::try_from(proxy_store::utc_time(reset_secs as i64)) {
        headers.push((REQUESTS_RESET, reset));
    }
    headers
}

/// Checks what the caller may do with `model`, taking one request from its bucket.
pub(crate) async fn admit(
    g: &Gateway,
    principal: &Principal,
    model: &str,
    consume: bool,
) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    let Principal::Key(k) = principal else {
        return Ok(Vec::new());
    };
    if let Some(allowed) = &k.allowed_models
        && !allowed.iter().any(|m| m == model)
    {
        g.metrics
            .limit_refusals
            .with_label_values(&["model_not_allowed"])
            .inc();
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
        g.metrics
            .limit_refusals
            .with_label_values(&["tokens_per_minute"])
            .inc();
        let mut err = ApiError::new(
            ErrorType::RateLimitError,
            format!("token limit of {tpm} tokens per minute exceeded for this API key"),
        );
        err.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        err.headers = vec![
            (TOKENS_LIMIT, HeaderValue::from(tpm)),
            (TOKENS_REMAINING, HeaderValue::from_static("0")),
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
    g.metrics
        .limit_refusals
        .with_label_values(&["requests"])
        .inc();
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
        // Boxed, as the other store calls that only some settings make (the monthly budget, the
        // response cache): a store call's future is large, and held inline it would be in every
        // request's future, which is moved whole (copied) each time the futures around it move.
        match Box::pin(crate::keys::shared::take(store, key_id, limit)).await {
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
        match Box::pin(crate::keys::shared::tokens_wait(store, key_id, tpm)).await {
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
pub(crate) async fn check_monthly_budget(
    g: &Gateway,
    principal: &Principal,
) -> Result<(), ApiError> {
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
        g.metrics
            .store_errors
            .with_label_values(&["monthly_usage"])
            .inc();
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
    g.metrics
        .limit_refusals
        .with_label_values(&["monthly_budget"])
        .inc();
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
