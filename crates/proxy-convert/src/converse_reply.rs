//! Converse replies as they arrive on the wire (restJson1), read into the SDK's types that
//! [`from_converse`](crate::from_converse) and [`StreamConverter`](crate::StreamConverter) take:
//! the JSON body of a Converse answer, and the JSON payload of each ConverseStream event (named by
//! its `:event-type`). The member names are the SDK's deserializers'; members the gateway does not
//! read (trace, performance and service tier) are skipped, as are content blocks and deltas it has
//! no form for (`from_converse` and the stream converter drop those too).

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types as bedrock;
use aws_smithy_types::{Blob, base64};
use serde_json::Value;

use crate::{ConvertError, to_document};

type Result<T> = std::result::Result<T, ConvertError>;

fn bad(what: impl std::fmt::Display) -> ConvertError {
    ConvertError::new(
        "",
        format!("Bedrock's Converse answer does not read: {what}"),
    )
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int_at(v: &Value, key: &str) -> Option<i32> {
    v.get(key).and_then(Value::as_i64).map(clamped)
}

/// An integer of Bedrock's JSON as the SDK's `i32`, clamped.
fn clamped(n: i64) -> i32 {
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn blob_at(v: &Value, key: &str) -> Result<Option<Blob>> {
    str_at(v, key)
        .map(|s| base64::decode(s).map(Blob::new).map_err(bad))
        .transpose()
}

/// A Converse answer's JSON body.
pub fn converse_output(body: &[u8]) -> Result<ConverseOutput> {
    match text_output(body) {
        Some(out) => Ok(out),
        None => output_from_tree(body),
    }
}

/// A member of a reply read without a tree: absent, or present as a `T` (a JSON `null` is not a
/// `T`, so the whole typed reading fails and the tree reads the reply).
#[derive(Default)]
enum Member<T> {
    #[default]
    Absent,
    Present(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Member<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        T::deserialize(d).map(Member::Present)
    }
}

impl<T> Member<T> {
    fn get(self) -> Option<T> {
        match self {
            Member::Absent => None,
            Member::Present(t) => Some(t),
        }
    }
}

/// A Converse answer of text blocks (most answers) read without a tree: `Some` only where the body
/// parses as this shape, and then the output equals the tree's reading (`output_from_tree`). Any
/// other body (another kind of block, `cacheDetails`, `additionalModelResponseFields`, a `null`
/// member, duplicate keys, a differently typed member) is left to the tree.
fn text_output(body: &[u8]) -> Option<ConverseOutput> {
    use serde::Deserialize;
    use serde::de::IgnoredAny;
    use serde_json::Number;
    use std::borrow::Cow;
    #[derive(Deserialize)]
    struct Reply<'a> {
        #[serde(default, borrow)]
        output: Member<Output<'a>>,
        #[serde(default, borrow, rename = "stopReason")]
        stop_reason: Member<Cow<'a, str>>,
        #[serde(default)]
        usage: Member<Tokens>,
        #[serde(default)]
        metrics: Member<Metrics>,
        #[serde(default, rename = "additionalModelResponseFields")]
        additional: Member<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Output<'a> {
        #[serde(borrow)]
        message: Message<'a>,
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(default, borrow)]
        role: Member<Cow<'a, str>>,
        #[serde(borrow)]
        content: Vec<Block<'a>>,
    }
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(default, borrow)]
        text: Member<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Tokens {
        #[serde(default, rename = "inputTokens")]
        input: Member<Number>,
        #[serde(default, rename = "outputTokens")]
        output: Member<Number>,
        #[serde(default, rename = "totalTokens")]
        total: Member<Number>,
        #[serde(default, rename = "cacheReadInputTokens")]
        cache_read: Member<Number>,
        #[serde(default, rename = "cacheWriteInputTokens")]
        cache_write: Member<Number>,
        #[serde(default, rename = "cacheDetails")]
        details: Member<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Metrics {
        #[serde(default, rename = "latencyMs")]
        latency_ms: Member<Number>,
    }
    let int = |n: Member<Number>| n.get().and_then(|n| n.as_i64()).map(clamped);
    let reply: Reply<'_> = serde_json::from_slice(body).ok()?;
    if matches!(reply.additional, Member::Present(_)) {
        return None;
    }
    let mut out = ConverseOutput::builder();
    if let Some(Output { message }) = reply.output.get() {
        let content = message
            .content
            .into_iter()
            .map(|b| {
                b.text
                    .get()
                    .map(|t| bedrock::ContentBlock::Text(t.into_owned()))
            })
            .collect::<Option<Vec<_>>>()?;
        let message = bedrock::Message::builder()
            .role(bedrock::ConversationRole::from(
                message.role.get().as_deref().unwrap_or("assistant"),
            ))
            .set_content(Some(content))
            .build()
            .ok()?;
        out = out.output(bedrock::ConverseOutput::Message(message));
    }
    if let Some(s) = reply.stop_reason.get() {
        out = out.stop_reason(bedrock::StopReason::from(s.as_ref()));
    }
    if let Some(u) = reply.usage.get() {
        if matches!(u.details, Member::Present(_)) {
            return None;
        }
        out = out.usage(
            bedrock::TokenUsage::builder()
                .input_tokens(int(u.input).unwrap_or(0))
                .output_tokens(int(u.output).unwrap_or(0))
                .total_tokens(int(u.total).unwrap_or(0))
                .set_cache_read_input_tokens(int(u.cache_read))
                .set_cache_write_input_tokens(int(u.cache_write))
                .build()
                .ok()?,
        );
    }
    if let Some(m) = reply.metrics.get() {
        out = out.metrics(
            bedrock::ConverseMetrics::builder()
                .latency_ms(m.latency_ms.get().and_then(|n| n.as_i64()).unwrap_or(0))
                .build()
                .ok()?,
        );
    }
    out.build().ok()
}

/// A Converse answer's JSON body, read through a tree: every shape the gateway has a form for.
fn output_from_tree(body: &[u8]) -> Result<ConverseOutput> {
    let v: Value = serde_json::from_slice(body).map_err(bad)?;
    let mut out = ConverseOutput::builder();
    if let Some(m) = v.get("output").and_then(|o| o.get("message")) {
        let content = m
            .get("content")
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .map(content_block)
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let message = bedrock::Message::builder()
            .role(bedrock::ConversationRole::from(
                str_at(m, "role").unwrap_or("assistant"),
            ))
            .set_content(content)
            .build()
            .map_err(bad)?;
        out = out.output(bedrock::ConverseOutput::Message(message));
    }
    if let Some(s) = str_at(&v, "stopReason") {
        out = out.stop_reason(bedrock::StopReason::from(s));
    }
    if let Some(u) = v.get("usage") {
        out = out.usage(usage(u)?);
    }
    if let Some(m) = v.get("metrics") {
        out = out.metrics(
            bedrock::ConverseMetrics::builder()
                .latency_ms(m.get("latencyMs").and_then(Value::as_i64).unwrap_or(0))
                .build()
                .map_err(bad)?,
        );
    }
    if let Some(f) = v.get("additionalModelResponseFields") {
        out = out.additional_model_response_fields(to_document(f));
    }
    out.build().map_err(bad)
}

fn usage(u: &Value) -> Result<bedrock::TokenUsage> {
    let details = u
        .get("cacheDetails")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    bedrock::CacheDetail::builder()
                        .ttl(bedrock::CacheTtl::from(str_at(d, "ttl").unwrap_or("5m")))
                        .input_tokens(int_at(d, "inputTokens").unwrap_or(0))
                        .build()
                        .map_err(bad)
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    bedrock::TokenUsage::builder()
        .input_tokens(int_at(u, "inputTokens").unwrap_or(0))
        .output_tokens(int_at(u, "outputTokens").unwrap_or(0))
        .total_tokens(int_at(u, "totalTokens").unwrap_or(0))
        .set_cache_read_input_tokens(int_at(u, "cacheReadInputTokens"))
        .set_cache_write_input_tokens(int_at(u, "cacheWriteInputTokens"))
        .set_cache_details(details)
        .build()
        .map_err(bad)
}

/// One content block of an answer; `None` for a kind the gateway has no form for.
fn content_block(b: &Value) -> Result<Option<bedrock::ContentBlock>> {
    if let Some(t) = str_at(b, "text") {
        return Ok(Some(bedrock::ContentBlock::Text(t.to_owned())));
    }
    if let Some(t) = b.get("toolUse") {
        return Ok(Some(bedrock::ContentBlock::ToolUse(
            bedrock::ToolUseBlock::builder()
                .tool_use_id(str_at(t, "toolUseId").unwrap_or_default())
                .name(str_at(t, "name").unwrap_or_default())
                .input(to_document(t.get("input").unwrap_or(&Value::Null)))
                .build()
                .map_err(bad)?,
        )));
    }
    if let Some(r) = b.get("reasoningContent") {
        if let Some(t) = r.get("reasoningText") {
            return Ok(Some(bedrock::ContentBlock::ReasoningContent(
                bedrock::ReasoningContentBlock::ReasoningText(
                    bedrock::ReasoningTextBlock::builder()
                        .text(str_at(t, "text").unwrap_or_default())
                        .set_signature(str_at(t, "signature").map(str::to_owned))
                        .build()
                        .map_err(bad)?,
                ),
            )));
        }
        if let Some(blob) = blob_at(r, "redactedContent")? {
            return Ok(Some(bedrock::ContentBlock::ReasoningContent(
                bedrock::ReasoningContentBlock::RedactedContent(blob),
            )));
        }
        return Ok(None);
    }
    if let Some(c) = b.get("citationsContent") {
        let content = c.get("content").and_then(Value::as_array).map(|gs| {
            gs.iter()
                .filter_map(|g| str_at(g, "text"))
                .map(|t| bedrock::CitationGeneratedContent::Text(t.to_owned()))
                .collect::<Vec<_>>()
        });
        let citations = c
            .get("citations")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(citation).collect::<Vec<_>>());
        return Ok(Some(bedrock::ContentBlock::CitationsContent(
            bedrock::CitationsContentBlock::builder()
                .set_content(content)
                .set_citations(citations)
                .build(),
        )));
    }
    Ok(None)
}

fn source_content(c: &Value) -> Option<Vec<bedrock::CitationSourceContent>> {
    c.get("sourceContent").and_then(Value::as_array).map(|ss| {
        ss.iter()
            .filter_map(|s| str_at(s, "text"))
            .map(|t| bedrock::CitationSourceContent::Text(t.to_owned()))
            .collect()
    })
}

fn location(l: &Value) -> Option<bedrock::CitationLocation> {
    use bedrock::CitationLocation as L;
    let range = |v: &Value, index: &str| (int_at(v, index), int_at(v, "start"), int_at(v, "end"));
    if let Some(v) = l.get("documentChar") {
        let (i, s, e) = range(v, "documentIndex");
        return Some(L::DocumentChar(
            bedrock::DocumentCharLocation::builder()
                .set_document_index(i)
                .set_start(s)
                .set_end(e)
                .build(),
        ));
    }
    if let Some(v) = l.get("documentPage") {
        let (i, s, e) = range(v, "documentIndex");
        return Some(L::DocumentPage(
            bedrock::DocumentPageLocation::builder()
                .set_document_index(i)
                .set_start(s)
                .set_end(e)
                .build(),
        ));
    }
    if let Some(v) = l.get("documentChunk") {
        let (i, s, e) = range(v, "documentIndex");
        return Some(L::DocumentChunk(
            bedrock::DocumentChunkLocation::builder()
                .set_document_index(i)
                .set_start(s)
                .set_end(e)
                .build(),
        ));
    }
    if let Some(v) = l.get("searchResultLocation") {
        let (i, s, e) = range(v, "searchResultIndex");
        return Some(L::SearchResultLocation(
            bedrock::SearchResultLocation::builder()
                .set_search_result_index(i)
                .set_start(s)
                .set_end(e)
                .build(),
        ));
    }
    if let Some(v) = l.get("web") {
        return Some(L::Web(
            bedrock::WebLocation::builder()
                .set_url(str_at(v, "url").map(str::to_owned))
                .set_domain(str_at(v, "domain").map(str::to_owned))
                .build(),
        ));
    }
    None
}

fn citation(c: &Value) -> bedrock::Citation {
    bedrock::Citation::builder()
        .set_title(str_at(c, "title").map(str::to_owned))
        .set_source(str_at(c, "source").map(str::to_owned))
        .set_source_content(source_content(c))
        .set_location(c.get("location").and_then(location))
        .build()
}

/// A `contentBlockDelta` with text (most of a stream's events) read without a tree: `Some` only
/// where the payload parses as this shape, and then the event equals the tree's reading (an
/// integer index as `int_at` takes it, the text whatever else `delta` holds); any other payload,
/// duplicate keys or a differently typed field included, is left to the tree.
fn text_delta(payload: &[u8]) -> Option<bedrock::ConverseStreamOutput> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "contentBlockIndex")]
        index: Option<serde_json::Number>,
        #[serde(borrow)]
        delta: Delta<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Delta<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
    }
    let event: Event<'_> = serde_json::from_slice(payload).ok()?;
    let text = event.delta.text?.into_owned();
    let index = event.index.and_then(|n| n.as_i64()).map_or(0, clamped);
    bedrock::ContentBlockDeltaEvent::builder()
        .delta(bedrock::ContentBlockDelta::Text(text))
        .content_block_index(index)
        .build()
        .ok()
        .map(bedrock::ConverseStreamOutput::ContentBlockDelta)
}

/// One ConverseStream event from its `:event-type` and JSON payload; `None` for an event or a
/// delta the gateway has no form for.
pub fn converse_stream_event(
    event_type: &str,
    payload: &[u8],
) -> Result<Option<bedrock::ConverseStreamOutput>> {
    if event_type == "contentBlockDelta"
        && let Some(event) = text_delta(payload)
    {
        return Ok(Some(event));
    }
    stream_event_from_tree(event_type, payload)
}

/// [`converse_stream_event`] through a `serde_json::Value`: every event type and shape.
fn stream_event_from_tree(
    event_type: &str,
    payload: &[u8],
) -> Result<Option<bedrock::ConverseStreamOutput>> {
    use bedrock::ConverseStreamOutput as E;
    let v: Value = serde_json::from_slice(payload).map_err(bad)?;
    let index = || int_at(&v, "contentBlockIndex").unwrap_or(0);
    Ok(Some(match event_type {
        "messageStart" => E::MessageStart(
            bedrock::MessageStartEvent::builder()
                .role(bedrock::ConversationRole::from(
                    str_at(&v, "role").unwrap_or("assistant"),
                ))
                .build()
                .map_err(bad)?,
        ),
        "contentBlockStart" => {
            let Some(t) = v.get("start").and_then(|s| s.get("toolUse")) else {
                return Ok(None);
            };
            E::ContentBlockStart(
                bedrock::ContentBlockStartEvent::builder()
                    .start(bedrock::ContentBlockStart::ToolUse(
                        bedrock::ToolUseBlockStart::builder()
                            .tool_use_id(str_at(t, "toolUseId").unwrap_or_default())
                            .name(str_at(t, "name").unwrap_or_default())
                            .build()
                            .map_err(bad)?,
                    ))
                    .content_block_index(index())
                    .build()
                    .map_err(bad)?,
            )
        }
        "contentBlockDelta" => {
            let Some(d) = v.get("delta") else {
                return Ok(None);
            };
            let delta = if let Some(t) = str_at(d, "text") {
                bedrock::ContentBlockDelta::Text(t.to_owned())
            } else if let Some(t) = d.get("toolUse") {
                bedrock::ContentBlockDelta::ToolUse(
                    bedrock::ToolUseBlockDelta::builder()
                        .input(str_at(t, "input").unwrap_or_default())
                        .build()
                        .map_err(bad)?,
                )
            } else if let Some(r) = d.get("reasoningContent") {
                let r = if let Some(t) = str_at(r, "text") {
                    bedrock::ReasoningContentBlockDelta::Text(t.to_owned())
                } else if let Some(s) = str_at(r, "signature") {
                    bedrock::ReasoningContentBlockDelta::Signature(s.to_owned())
                } else if let Some(b) = blob_at(r, "redactedContent")? {
                    bedrock::ReasoningContentBlockDelta::RedactedContent(b)
                } else {
                    return Ok(None);
                };
                bedrock::ContentBlockDelta::ReasoningContent(r)
            } else if let Some(c) = d.get("citation") {
                bedrock::ContentBlockDelta::Citation(
                    bedrock::CitationsDelta::builder()
                        .set_title(str_at(c, "title").map(str::to_owned))
                        .set_source(str_at(c, "source").map(str::to_owned))
                        .set_source_content(c.get("sourceContent").and_then(Value::as_array).map(
                            |ss| {
                                ss.iter()
                                    .filter_map(|s| str_at(s, "text"))
                                    .map(|t| {
                                        bedrock::CitationSourceContentDelta::builder()
                                            .text(t)
                                            .build()
                                    })
                                    .collect()
                            },
                        ))
                        .set_location(c.get("location").and_then(location))
                        .build(),
                )
            } else {
                return Ok(None);
            };
            E::ContentBlockDelta(
                bedrock::ContentBlockDeltaEvent::builder()
                    .delta(delta)
                    .content_block_index(index())
                    .build()
                    .map_err(bad)?,
            )
        }
        "contentBlockStop" => E::ContentBlockStop(
            bedrock::ContentBlockStopEvent::builder()
                .content_block_index(index())
                .build()
                .map_err(bad)?,
        ),
        "messageStop" => E::MessageStop(
            bedrock::MessageStopEvent::builder()
                .stop_reason(bedrock::StopReason::from(
                    str_at(&v, "stopReason").unwrap_or("end_turn"),
                ))
                .set_additional_model_response_fields(
                    v.get("additionalModelResponseFields").map(to_document),
                )
                .build()
                .map_err(bad)?,
        ),
        "metadata" => {
            let mut m = bedrock::ConverseStreamMetadataEvent::builder();
            if let Some(u) = v.get("usage") {
                m = m.usage(usage(u)?);
            }
            if let Some(x) = v.get("metrics") {
                m = m.metrics(
                    bedrock::ConverseStreamMetrics::builder()
                        .latency_ms(x.get("latencyMs").and_then(Value::as_i64).unwrap_or(0))
                        .build()
                        .map_err(bad)?,
                );
            }
            E::Metadata(m.build())
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast path answers only where it reads the payload as the tree does.
    fn same_as_tree(payload: &[u8]) {
        let tree = stream_event_from_tree("contentBlockDelta", payload);
        if let Some(fast) = text_delta(payload) {
            assert_eq!(
                tree.as_ref().ok().and_then(Option::as_ref),
                Some(&fast),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        assert_eq!(
            converse_stream_event("contentBlockDelta", payload).ok(),
            tree.ok()
        );
    }

    #[test]
    fn a_text_delta_reads_as_the_tree_reads_it() {
        let plain = br#"{"contentBlockIndex":2,"delta":{"text":"Hi \"there\""},"p":"abcd"}"#;
        assert!(text_delta(plain).is_some());
        same_as_tree(plain);
        for payload in [
            r#"{"delta":{"text":"no index"}}"#,
            r#"{"contentBlockIndex":null,"delta":{"text":"null index"}}"#,
            r#"{"contentBlockIndex":1.0,"delta":{"text":"float index"}}"#,
            r#"{"contentBlockIndex":"1","delta":{"text":"string index"}}"#,
            r#"{"contentBlockIndex":99999999999,"delta":{"text":"clamped"}}"#,
            r#"{"contentBlockIndex":-99999999999,"delta":{"text":"clamped"}}"#,
            r#"{"contentBlockIndex":18446744073709551615,"delta":{"text":"u64"}}"#,
            r#"{"contentBlockIndex":0,"delta":{"text":null,"toolUse":{"input":"{}"}}}"#,
            r#"{"contentBlockIndex":0,"delta":{"text":1}}"#,
            r#"{"contentBlockIndex":0,"delta":{"text":"a","text":"b"}}"#,
            r#"{"contentBlockIndex":0,"contentBlockIndex":1,"delta":{"text":"a"}}"#,
            r#"{"contentBlockIndex":0,"delta":{"text":"a","toolUse":{"input":"{}"}}}"#,
            r#"{"contentBlockIndex":0,"delta":"text"}"#,
            r#"{"contentBlockIndex":0}"#,
            r#"[1,2]"#,
            r#"{"contentBlockIndex":0,"delta":{"text":"a"}"#,
        ] {
            same_as_tree(payload.as_bytes());
        }
    }

    proptest! {
        #[test]
        fn any_text_delta_reads_as_the_tree_reads_it(
            index in prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                Just("null".to_owned()),
                Just("1.5".to_owned()),
            ],
            text in "\\PC{0,30}",
            extra in prop_oneof![Just(""), Just(r#","p":"abc""#), Just(r#","delta":{"text":"again"}"#)],
        ) {
            let text = serde_json::to_string(&text).unwrap();
            let payload = format!(r#"{{"contentBlockIndex":{index},"delta":{{"text":{text}}}{extra}}}"#);
            same_as_tree(payload.as_bytes());
        }

        #[test]
        fn any_text_answer_reads_as_the_tree_reads_it(
            role in prop_oneof![Just(r#""role":"assistant","#), Just(""), Just(r#""role":null,"#), Just(r#""role":"user","#)],
            texts in proptest::collection::vec("\\PC{0,20}", 0..3),
            other_block in prop_oneof![Just(""), Just(r#",{"toolUse":{"toolUseId":"t","name":"n","input":{}}}"#), Just(r#",{"text":7}"#)],
            tokens in prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                Just("null".to_owned()),
                Just("2.5".to_owned()),
                Just("18446744073709551615".to_owned()),
            ],
            extra in prop_oneof![
                Just(""),
                Just(r#","trace":{"x":1}"#),
                Just(r#","metrics":{"latencyMs":12}"#),
                Just(r#","metrics":null"#),
                Just(r#","additionalModelResponseFields":{"a":1}"#),
                Just(r#","stopReason":"max_tokens""#),
            ],
        ) {
            let blocks: Vec<String> = texts
                .iter()
                .map(|t| format!(r#"{{"text":{}}}"#, serde_json::to_string(t).unwrap()))
                .collect();
            let body = format!(
                r#"{{"output":{{"message":{{{role}"content":[{}{other_block}]}}}},"stopReason":"end_turn","usage":{{"inputTokens":{tokens},"outputTokens":3,"totalTokens":{tokens}}}{extra}}}"#,
                blocks.join(",")
            );
            same_output_as_tree(body.as_bytes());
        }
    }

    /// The typed reading answers only where it reads the body as the tree does.
    fn same_output_as_tree(body: &[u8]) {
        let tree = output_from_tree(body);
        if let Some(fast) = text_output(body) {
            assert_eq!(
                tree.as_ref().ok(),
                Some(&fast),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            format!("{:?}", converse_output(body)),
            format!("{tree:?}"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn a_text_answer_reads_as_the_tree_reads_it() {
        let plain = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi \"there\""},{"text":"two"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":3,"totalTokens":15,"cacheReadInputTokens":4},"metrics":{"latencyMs":40},"trace":{"a":1}}"#;
        assert!(text_output(plain).is_some());
        same_output_as_tree(plain);
        for body in [
            r#"{}"#,
            r#"{"output":null}"#,
            r#"{"output":{}}"#,
            r#"{"output":{"message":null}}"#,
            r#"{"output":{"message":{"content":[]}}}"#,
            r#"{"output":{"message":{"role":"assistant"}}}"#,
            r#"{"output":{"message":{"role":"assistant","content":null}}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":null}]}}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a","toolUse":{}}]}}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"t"}}}]}}}"#,
            r#"{"output":{"message":{"role":"assistant","role":"user","content":[{"text":"a"}]}}}"#,
            r#"{"output":{"message":{"role":1,"content":[{"text":"a"}]}}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"usage":null}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"usage":7}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"usage":{"inputTokens":"1"}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"usage":{"inputTokens":1,"cacheDetails":[{"ttl":"1h","inputTokens":2}]}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"usage":{"inputTokens":99999999999}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"metrics":{"latencyMs":1.5}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"metrics":{}}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":null}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"tool_use","stopReason":"end_turn"}"#,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"additionalModelResponseFields":null}"#,
            r#"[1,2]"#,
            r#"{"output":"#,
        ] {
            same_output_as_tree(body.as_bytes());
        }
    }
}
