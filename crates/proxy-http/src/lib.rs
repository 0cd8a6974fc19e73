//! `proxy-http`: the raw `hyper` 1 server of the gateway: routing, middleware (auth, request ids,
//! limits), the Anthropic error envelope and SSE streaming.
//!
//! Not yet filled: arrives with the end-to-end server issue. It composes `proxy-bedrock`,
//! `proxy-convert`, `proxy-schema`, `proxy-auth` and `proxy-store`.
