//! `proxy-bedrock`: the gateway's Bedrock client, one shared `aws-sdk-bedrockruntime` client with
//! connection reuse, model routing and the error mapping of Bedrock exceptions.
//!
//! Not yet filled: arrives with the end-to-end server issue. It may depend on `proxy-convert` and
//! `proxy-schema`.
