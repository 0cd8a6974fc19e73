//! `proxy-store`: persistent state of the gateway (API keys, usage records, limits, response cache)
//! behind one set of traits, with an embedded backend and a DynamoDB backend.
//!
//! Not yet filled: arrives with the keys and usage issue. It depends on nothing of this workspace.
