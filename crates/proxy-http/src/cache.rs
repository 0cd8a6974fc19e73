//! The response cache (`CACHE_ENABLED`, `CACHE_TTL`): an identical deterministic request from the
//! same key is answered from the store for `CACHE_TTL` seconds, a streaming one replayed as SSE.
//!
//! Deterministic means `temperature: 0` or `top_k: 1` (API version 2023-06-01), or a request that
//! opts in with the header `x-proxy-cache: on` (the only way on 2026-10-21, which has no sampling
//! parameters); `x-proxy-cache: off` opts out. Identical means the same key, API version,
//! `anthropic-beta` header and body, with the body normalised: object keys sorted, and `stream`
//! and `metadata` left out (a streamed and a non-streamed request share one entry). Responses are
//! marked `x-proxy-cache: hit` or `miss`. Only complete responses are stored (a stop reason, no
//! error), and only those under the store's value limit.

use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The response header that says whether a cacheable request was served from the cache.
pub(crate) const HEADER: http::HeaderName = http::HeaderName::from_static("x-proxy-cache");

/// The cache key of a request, or `None` when it is not cacheable.
pub(crate) fn key(scope: &str, version: &str, headers: &HeaderMap, body: &Value) -> Option<String> {
    let asked = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let deterministic = match asked.as_deref() {
        Some("off") => return None,
        Some("on") => true,
        _ => {
            body.get("temperature").and_then(Value::as_f64) == Some(0.0)
                || body.get("top_k").and_then(Value::as_u64) == Some(1)
        }
    };
    if !deterministic {
        return None;
    }
    let beta = headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut text = format!("{scope}\n{version}\n{beta}\n");
    canonical(body, true, &mut text);
    Some(
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// JSON with object keys sorted (at the top level without `stream` and `metadata`).
fn canonical(v: &Value, top: bool, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o
                .keys()
                .filter(|k| !top || (k.as_str() != "stream" && k.as_str() != "metadata"))
                .collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&o[k], false, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, false, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Where a cacheable response goes once it is complete.
pub(crate) struct CacheFill {
    pub store: proxy_store::Store,
    pub key: String,
    /// How long the entry is served, from when it is stored.
    pub ttl: std::time::Duration,
}

impl CacheFill {
    /// Stores a complete message (one with a stop reason) in the background.
    pub fn put(self, g: &crate::Gateway, message: &proxy_schema::Message) {
        if message.stop_reason.is_none() {
            return;
        }
        let Ok(text) = serde_json::to_string(message) else {
            return;
        };
        let failed = g.metrics.store_errors.with_label_values(&["cache_write"]);
        g.spawn_background(async move {
            let expires_at = proxy_store::now() + self.ttl.as_secs() as i64;
            if let Err(e) = self.store.cache_put(&self.key, &text, expires_at).await {
                failed.inc();
                tracing::debug!(error = %e, "response not cached");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k(scope: &str, headers: &HeaderMap, body: Value) -> Option<String> {
        key(scope, "2023-06-01", headers, &body)
    }

    #[test]
    fn only_deterministic_requests_are_cacheable() {
        let h = HeaderMap::new();
        let msgs = json!([{"role": "user", "content": "hi"}]);
        assert!(k("s", &h, json!({"model": "m", "messages": msgs})).is_none());
        assert!(
            k(
                "s",
                &h,
                json!({"model": "m", "messages": msgs, "temperature": 0.5})
            )
            .is_none()
        );
        assert!(
            k(
                "s",
                &h,
                json!({"model": "m", "messages": msgs, "temperature": 0})
            )
            .is_some()
        );
        assert!(
            k(
                "s",
                &h,
                json!({"model": "m", "messages": msgs, "temperature": 0.0})
            )
            .is_some()
        );
        assert!(k("s", &h, json!({"model": "m", "messages": msgs, "top_k": 1})).is_some());
        let mut on = HeaderMap::new();
        on.insert(HEADER, "on".parse().unwrap());
        assert!(k("s", &on, json!({"model": "m", "messages": msgs})).is_some());
        let mut off = HeaderMap::new();
        off.insert(HEADER, "off".parse().unwrap());
        assert!(
            k(
                "s",
                &off,
                json!({"model": "m", "messages": msgs, "temperature": 0})
            )
            .is_none()
        );
    }

    #[test]
    fn keys_ignore_order_stream_and_metadata_but_not_content_scope_or_beta() {
        let h = HeaderMap::new();
        let a = k(
            "s",
            &h,
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}),
        );
        let b = k(
            "s",
            &h,
            json!({"messages": [{"content": "hi", "role": "user"}], "stream": true,
                   "metadata": {"user_id": "u"}, "temperature": 0, "model": "m"}),
        );
        assert_eq!(a, b);
        let other_text = k(
            "s",
            &h,
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi!"}]}),
        );
        assert_ne!(a, other_text);
        let other_scope = k(
            "t",
            &h,
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_ne!(a, other_scope);
        let mut beta = HeaderMap::new();
        beta.insert("anthropic-beta", "x-2025".parse().unwrap());
        let with_beta = k(
            "s",
            &beta,
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_ne!(a, with_beta);
        // Nested metadata-like keys are content, not ignored.
        let nested = k(
            "s",
            &h,
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "hi", "metadata": 1}]}),
        );
        assert_ne!(a, nested);
    }
}
