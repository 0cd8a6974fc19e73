//! Who is calling: the key a request carries, checked against the master key (constant time) and
//! the key store (by hash).

use http::{HeaderMap, header};
use proxy_auth::constant_time_eq;
use proxy_schema::ErrorType;

use crate::{ApiError, Gateway, Principal};

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

/// The caller, and the key it presented (masked by the caller where it is shown: masking costs
/// more than a log line that is filtered out).
pub(crate) async fn authenticate<'h>(
    g: &Gateway,
    headers: &'h HeaderMap,
) -> Result<(Principal, Option<&'h str>), ApiError> {
    let key = presented_key(headers, &g.settings.api_key_header);
    if !g.settings.require_api_key {
        return Ok((Principal::Anonymous, key));
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
        return Ok((Principal::Master, Some(key)));
    }
    let invalid = || ApiError::new(ErrorType::AuthenticationError, "invalid x-api-key");
    let Some(store) = &g.store else {
        return Err(invalid());
    };
    // The store is searched by hash: a timing difference can only reveal hash prefixes.
    match g.key_cache.lookup(store, &proxy_auth::hash_key(key)).await {
        Ok(Some(k)) => Ok((Principal::Key(k), Some(key))),
        Ok(None) => Err(invalid()),
        Err(e) => {
            g.metrics
                .store_errors
                .with_label_values(&["key_lookup"])
                .inc();
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
