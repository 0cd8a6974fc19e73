//! `proxy-convert`: pure conversion between the Anthropic Messages API and Bedrock (Converse and the
//! native InvokeModel body), streaming included.
//!
//! Not yet filled: the conversion arrives with its own issue. It will depend on `proxy-schema` and the
//! data types of `aws-sdk-bedrockruntime`, and never on I/O or async code, so other services can embed it.
