//! `proxy-schema`: the wire types of both APIs the gateway speaks, the Anthropic Messages API
//! (versions 2023-06-01 and 2026-10-21) and the Bedrock Runtime JSON shapes.
//!
//! Not yet filled: the typed models arrive with the conversion issue. This crate has no I/O and no
//! async code, and depends on nothing of this workspace.
