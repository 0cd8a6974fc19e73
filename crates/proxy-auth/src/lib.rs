//! `proxy-auth`: API key checks (hashed keys, constant-time comparison, hot-path caching) and rate
//! limiting (token buckets per key).
//!
//! Not yet filled: arrives with the keys and usage issue. It may depend on `proxy-store`.
