//! The Converse wire format (restJson1) of the requests [`to_converse`](crate::to_converse) builds,
//! for callers that send them without the SDK: the body of `POST /model/{id}/converse` and
//! `/converse-stream` (the model id is in the path, not the body).
//!
//! The member names and encodings are the SDK's serializers' (its `protocol_serde` module, which it
//! does not export): camelCase keys, a union as an object with one key, blobs in base64, documents
//! as JSON, floats widened from `f32` as the SDK widens them. Members the request cannot hold are an
//! error, not silently dropped. Tests send the same requests through the SDK and compare the bodies.

use aws_sdk_bedrockruntime::types as bedrock;
use aws_smithy_types::Blob;
use aws_smithy_types::base64;
use serde_json::{Map, Value, json};

use crate::request::ConverseRequest;
use crate::{ConvertError, to_json};

type Result<T> = std::result::Result<T, ConvertError>;

/// The JSON body of a Converse or ConverseStream call (the two take the same members here). To send
/// it, [`converse_body_bytes`] writes the same JSON with less work.
pub fn converse_body(req: &ConverseRequest) -> Result<Value> {
    let mut body = Map::new();
    body.insert(
        "messages".into(),
        Value::Array(
            req.messages
                .iter()
                .enumerate()
                .map(|(i, m)| message(m, i))
                .collect::<Result<_>>()?,
        ),
    );
    if !req.system.is_empty() {
        body.insert(
            "system".into(),
            Value::Array(
                req.system
                    .iter()
                    .enumerate()
                    .map(|(i, b)| system_block(b, &format!("system.{i}")))
                    .collect::<Result<_>>()?,
            ),
        );
    }
    body.insert(
        "inferenceConfig".into(),
        inference_config(&req.inference_config),
    );
    if let Some(tc) = &req.tool_config {
        body.insert("toolConfig".into(), tool_config(tc)?);
    }
    if let Some(fields) = &req.additional_model_request_fields {
        body.insert("additionalModelRequestFields".into(), fields.clone());
    }
    if !req.additional_model_response_field_paths.is_empty() {
        body.insert(
            "additionalModelResponseFieldPaths".into(),
            json!(req.additional_model_response_field_paths),
        );
    }
    if let Some(oc) = &req.output_config {
        body.insert("outputConfig".into(), output_config(oc)?);
    }
    Ok(Value::Object(body))
}

/// The JSON body of a Converse or ConverseStream call, as bytes: the bytes of
/// [`converse_body`]'s value serialized, written without building the tree for the parts every
/// request has (its messages' and system prompt's text blocks, `inferenceConfig`). The other parts
/// go through the tree as in [`converse_body`].
pub fn converse_body_bytes(req: &ConverseRequest) -> Result<Vec<u8>> {
    let text: usize = req
        .messages
        .iter()
        .flat_map(|m| m.content())
        .map(|b| b.as_text().map_or(64, String::len))
        .sum();
    let mut out = Vec::with_capacity(128 + text + text / 8);
    out.extend_from_slice(b"{\"messages\":[");
    for (i, m) in req.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":");
        put(&mut out, m.role().as_str())?;
        out.extend_from_slice(b",\"content\":[");
        for (j, b) in m.content().iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            match b {
                bedrock::ContentBlock::Text(t) => put_text(&mut out, t)?,
                b => put(
                    &mut out,
                    &content_block(b, || format!("messages.{i}.content.{j}"))?,
                )?,
            }
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    if !req.system.is_empty() {
        out.extend_from_slice(b",\"system\":[");
        for (i, b) in req.system.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match b {
                bedrock::SystemContentBlock::Text(t) => put_text(&mut out, t)?,
                b => put(&mut out, &system_block(b, &format!("system.{i}"))?)?,
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"inferenceConfig\":");
    put_inference_config(&mut out, &req.inference_config)?;
    if let Some(tc) = &req.tool_config {
        out.extend_from_slice(b",\"toolConfig\":");
        put(&mut out, &tool_config(tc)?)?;
    }
    if let Some(fields) = &req.additional_model_request_fields {
        out.extend_from_slice(b",\"additionalModelRequestFields\":");
        put(&mut out, fields)?;
    }
    if !req.additional_model_response_field_paths.is_empty() {
        out.extend_from_slice(b",\"additionalModelResponseFieldPaths\":");
        put(&mut out, &req.additional_model_response_field_paths)?;
    }
    if let Some(oc) = &req.output_config {
        out.extend_from_slice(b",\"outputConfig\":");
        put(&mut out, &output_config(oc)?)?;
    }
    out.push(b'}');
    Ok(out)
}

/// `v` as JSON at the end of `out` (writing to a `Vec` fails only for a value JSON cannot hold,
/// which these are not: a map's keys are strings).
fn put(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) -> Result<()> {
    serde_json::to_writer(out, v)
        .map_err(|e| ConvertError::new("", format!("cannot write the Converse body: {e}")))
}

/// `{"text":t}`.
fn put_text(out: &mut Vec<u8>, t: &str) -> Result<()> {
    out.extend_from_slice(b"{\"text\":");
    put(out, t)?;
    out.push(b'}');
    Ok(())
}

/// [`inference_config`]'s value, written.
fn put_inference_config(out: &mut Vec<u8>, c: &bedrock::InferenceConfiguration) -> Result<()> {
    let mut sep = b'{';
    let mut key = |out: &mut Vec<u8>, k: &str| {
        out.push(sep);
        sep = b',';
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    if let Some(m) = c.max_tokens() {
        key(out, "maxTokens");
        put(out, &m)?;
    }
    if let Some(t) = c.temperature() {
        key(out, "temperature");
        put(out, &float(t))?;
    }
    if let Some(p) = c.top_p() {
        key(out, "topP");
        put(out, &float(p))?;
    }
    if let Some(s) = &c.stop_sequences {
        key(out, "stopSequences");
        put(out, s)?;
    }
    if sep == b'{' {
        out.push(b'{');
    }
    out.push(b'}');
    Ok(())
}

fn unsupported(path: &str, what: &str) -> ConvertError {
    ConvertError::new(
        path,
        format!("{what} cannot be sent to Converse by this gateway"),
    )
}

fn blob(b: &Blob) -> Value {
    Value::String(base64::encode(b.as_ref()))
}

/// An `f32` as the SDK writes it: widened to `f64`.
fn float(f: f32) -> Value {
    serde_json::Number::from_f64(f64::from(f))
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Message `index` of the request.
fn message(m: &bedrock::Message, index: usize) -> Result<Value> {
    Ok(json!({
        "role": m.role().as_str(),
        "content": m
            .content()
            .iter()
            .enumerate()
            .map(|(i, b)| content_block(b, || format!("messages.{index}.content.{i}")))
            .collect::<Result<Vec<_>>>()?,
    }))
}

/// A content block; `path` names it in an error (written out only for the kinds that can fail).
fn content_block(b: &bedrock::ContentBlock, path: impl FnOnce() -> String) -> Result<Value> {
    use bedrock::ContentBlock as B;
    Ok(match b {
        B::Text(t) => json!({ "text": t }),
        B::Image(i) => json!({ "image": image(i, &path())? }),
        B::Document(d) => json!({ "document": document(d, &path())? }),
        B::ToolUse(t) => {
            let mut o = Map::new();
            o.insert("toolUseId".into(), json!(t.tool_use_id()));
            o.insert("name".into(), json!(t.name()));
            o.insert("input".into(), to_json(t.input()));
            if let Some(kind) = t.r#type() {
                o.insert("type".into(), json!(kind.as_str()));
            }
            json!({ "toolUse": o })
        }
        B::ToolResult(r) => json!({ "toolResult": tool_result(r, &path())? }),
        B::CachePoint(c) => json!({ "cachePoint": cache_point(c) }),
        B::ReasoningContent(r) => json!({ "reasoningContent": reasoning(r, &path())? }),
        B::CitationsContent(c) => json!({ "citationsContent": citations_content(c, &path())? }),
        B::SearchResult(s) => json!({ "searchResult": search_result(s) }),
        _ => return Err(unsupported(&path(), "this content block")),
    })
}

fn image(i: &bedrock::ImageBlock, path: &str) -> Result<Value> {
    let mut o = Map::new();
    o.insert("format".into(), json!(i.format().as_str()));
    match i.source() {
        Some(bedrock::ImageSource::Bytes(b)) => {
            o.insert("source".into(), json!({ "bytes": blob(b) }));
        }
        Some(_) => return Err(unsupported(path, "this image source")),
        None => {}
    }
    if i.error().is_some() {
        return Err(unsupported(path, "an image error block"));
    }
    Ok(Value::Object(o))
}

fn document(d: &bedrock::DocumentBlock, path: &str) -> Result<Value> {
    let mut o = Map::new();
    o.insert("format".into(), json!(d.format().as_str()));
    o.insert("name".into(), json!(d.name()));
    if let Some(source) = d.source() {
        let s = match source {
            bedrock::DocumentSource::Bytes(b) => json!({ "bytes": blob(b) }),
            bedrock::DocumentSource::Text(t) => json!({ "text": t }),
            bedrock::DocumentSource::Content(blocks) => json!({
                "content": blocks
                    .iter()
                    .map(|c| match c {
                        bedrock::DocumentContentBlock::Text(t) => Ok(json!({ "text": t })),
                        _ => Err(unsupported(path, "this document content block")),
                    })
                    .collect::<Result<Vec<_>>>()?,
            }),
            _ => return Err(unsupported(path, "this document source")),
        };
        o.insert("source".into(), s);
    }
    if let Some(c) = d.context() {
        o.insert("context".into(), json!(c));
    }
    if let Some(c) = d.citations() {
        o.insert("citations".into(), json!({ "enabled": c.enabled() }));
    }
    Ok(Value::Object(o))
}

fn tool_result(r: &bedrock::ToolResultBlock, path: &str) -> Result<Value> {
    use bedrock::ToolResultContentBlock as C;
    let content = r
        .content()
        .iter()
        .map(|c| {
            Ok(match c {
                C::Text(t) => json!({ "text": t }),
                C::Json(d) => json!({ "json": to_json(d) }),
                C::Image(i) => json!({ "image": image(i, path)? }),
                C::Document(d) => json!({ "document": document(d, path)? }),
                C::SearchResult(s) => json!({ "searchResult": search_result(s) }),
                _ => return Err(unsupported(path, "this tool result content")),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut o = Map::new();
    o.insert("toolUseId".into(), json!(r.tool_use_id()));
    o.insert("content".into(), Value::Array(content));
    if let Some(s) = r.status() {
        o.insert("status".into(), json!(s.as_str()));
    }
    if let Some(kind) = r.r#type() {
        o.insert("type".into(), json!(kind));
    }
    Ok(Value::Object(o))
}

fn cache_point(c: &bedrock::CachePointBlock) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(c.r#type().as_str()));
    if let Some(ttl) = c.ttl() {
        o.insert("ttl".into(), json!(ttl.as_str()));
    }
    Value::Object(o)
}

fn reasoning(r: &bedrock::ReasoningContentBlock, path: &str) -> Result<Value> {
    Ok(match r {
        bedrock::ReasoningContentBlock::ReasoningText(t) => {
            let mut o = Map::new();
            o.insert("text".into(), json!(t.text()));
            if let Some(s) = t.signature() {
                o.insert("signature".into(), json!(s));
            }
            json!({ "reasoningText": o })
        }
        bedrock::ReasoningContentBlock::RedactedContent(b) => json!({ "redactedContent": blob(b) }),
        _ => return Err(unsupported(path, "this reasoning block")),
    })
}

fn citations_content(c: &bedrock::CitationsContentBlock, path: &str) -> Result<Value> {
    let mut o = Map::new();
    if let Some(content) = &c.content {
        o.insert(
            "content".into(),
            Value::Array(
                content
                    .iter()
                    .map(|g| match g {
                        bedrock::CitationGeneratedContent::Text(t) => Ok(json!({ "text": t })),
                        _ => Err(unsupported(path, "this cited content")),
                    })
                    .collect::<Result<_>>()?,
            ),
        );
    }
    if let Some(citations) = &c.citations {
        o.insert(
            "citations".into(),
            Value::Array(
                citations
                    .iter()
                    .map(|ci| citation(ci, path))
                    .collect::<Result<_>>()?,
            ),
        );
    }
    Ok(Value::Object(o))
}

fn citation(c: &bedrock::Citation, path: &str) -> Result<Value> {
    use bedrock::CitationLocation as L;
    let mut o = Map::new();
    if let Some(t) = c.title() {
        o.insert("title".into(), json!(t));
    }
    if let Some(s) = c.source() {
        o.insert("source".into(), json!(s));
    }
    if let Some(source_content) = &c.source_content {
        o.insert(
            "sourceContent".into(),
            Value::Array(
                source_content
                    .iter()
                    .map(|s| match s {
                        bedrock::CitationSourceContent::Text(t) => Ok(json!({ "text": t })),
                        _ => Err(unsupported(path, "this citation source")),
                    })
                    .collect::<Result<_>>()?,
            ),
        );
    }
    let range = |index_key: &str, index: Option<i32>, start: Option<i32>, end: Option<i32>| {
        let mut r = Map::new();
        if let Some(i) = index {
            r.insert(index_key.into(), json!(i));
        }
        if let Some(s) = start {
            r.insert("start".into(), json!(s));
        }
        if let Some(e) = end {
            r.insert("end".into(), json!(e));
        }
        Value::Object(r)
    };
    if let Some(location) = c.location() {
        let l = match location {
            L::DocumentChar(l) => {
                json!({ "documentChar": range("documentIndex", l.document_index(), l.start(), l.end()) })
            }
            L::DocumentPage(l) => {
                json!({ "documentPage": range("documentIndex", l.document_index(), l.start(), l.end()) })
            }
            L::DocumentChunk(l) => {
                json!({ "documentChunk": range("documentIndex", l.document_index(), l.start(), l.end()) })
            }
            L::SearchResultLocation(l) => {
                json!({ "searchResultLocation": range("searchResultIndex", l.search_result_index(), l.start(), l.end()) })
            }
            L::Web(w) => {
                let mut r = Map::new();
                if let Some(u) = w.url() {
                    r.insert("url".into(), json!(u));
                }
                if let Some(d) = w.domain() {
                    r.insert("domain".into(), json!(d));
                }
                json!({ "web": r })
            }
            _ => return Err(unsupported(path, "this citation location")),
        };
        o.insert("location".into(), l);
    }
    Ok(Value::Object(o))
}

fn search_result(s: &bedrock::SearchResultBlock) -> Value {
    let mut o = Map::new();
    o.insert("source".into(), json!(s.source()));
    o.insert("title".into(), json!(s.title()));
    o.insert(
        "content".into(),
        Value::Array(
            s.content()
                .iter()
                .map(|c| json!({ "text": c.text() }))
                .collect(),
        ),
    );
    if let Some(c) = s.citations() {
        o.insert("citations".into(), json!({ "enabled": c.enabled() }));
    }
    Value::Object(o)
}

fn system_block(b: &bedrock::SystemContentBlock, path: &str) -> Result<Value> {
    Ok(match b {
        bedrock::SystemContentBlock::Text(t) => json!({ "text": t }),
        bedrock::SystemContentBlock::CachePoint(c) => json!({ "cachePoint": cache_point(c) }),
        _ => return Err(unsupported(path, "this system block")),
    })
}

fn inference_config(c: &bedrock::InferenceConfiguration) -> Value {
    let mut o = Map::new();
    if let Some(m) = c.max_tokens() {
        o.insert("maxTokens".into(), json!(m));
    }
    if let Some(t) = c.temperature() {
        o.insert("temperature".into(), float(t));
    }
    if let Some(p) = c.top_p() {
        o.insert("topP".into(), float(p));
    }
    if let Some(s) = &c.stop_sequences {
        o.insert("stopSequences".into(), json!(s));
    }
    Value::Object(o)
}

fn tool_config(c: &bedrock::ToolConfiguration) -> Result<Value> {
    let tools = c
        .tools()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(match t {
                bedrock::Tool::ToolSpec(s) => {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(s.name()));
                    if let Some(d) = s.description() {
                        o.insert("description".into(), json!(d));
                    }
                    match s.input_schema() {
                        Some(bedrock::ToolInputSchema::Json(d)) => {
                            o.insert("inputSchema".into(), json!({ "json": to_json(d) }));
                        }
                        Some(_) => {
                            return Err(unsupported(&format!("tools.{i}"), "this input schema"));
                        }
                        None => {}
                    }
                    if let Some(strict) = s.strict() {
                        o.insert("strict".into(), json!(strict));
                    }
                    json!({ "toolSpec": o })
                }
                bedrock::Tool::CachePoint(c) => json!({ "cachePoint": cache_point(c) }),
                _ => return Err(unsupported(&format!("tools.{i}"), "this tool")),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut o = Map::new();
    o.insert("tools".into(), Value::Array(tools));
    if let Some(choice) = c.tool_choice() {
        let v = match choice {
            bedrock::ToolChoice::Auto(_) => json!({ "auto": {} }),
            bedrock::ToolChoice::Any(_) => json!({ "any": {} }),
            bedrock::ToolChoice::Tool(t) => json!({ "tool": { "name": t.name() } }),
            _ => return Err(unsupported("tool_choice", "this tool choice")),
        };
        o.insert("toolChoice".into(), v);
    }
    Ok(Value::Object(o))
}

fn output_config(c: &bedrock::OutputConfig) -> Result<Value> {
    let mut o = Map::new();
    if let Some(f) = c.text_format() {
        let mut format = Map::new();
        format.insert("type".into(), json!(f.r#type().as_str()));
        match f.structure() {
            Some(bedrock::OutputFormatStructure::JsonSchema(s)) => {
                let mut schema = Map::new();
                schema.insert("schema".into(), json!(s.schema()));
                if let Some(n) = s.name() {
                    schema.insert("name".into(), json!(n));
                }
                if let Some(d) = s.description() {
                    schema.insert("description".into(), json!(d));
                }
                format.insert("structure".into(), json!({ "jsonSchema": schema }));
            }
            Some(_) => return Err(unsupported("output_config", "this output structure")),
            None => {}
        }
        o.insert("textFormat".into(), Value::Object(format));
    }
    if let Some(e) = c.effort() {
        o.insert("effort".into(), json!(e));
    }
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> bedrock::ContentBlock {
        bedrock::ContentBlock::Text(t.into())
    }

    fn request(
        content: Vec<bedrock::ContentBlock>,
        config: bedrock::InferenceConfiguration,
    ) -> ConverseRequest {
        ConverseRequest {
            messages: vec![
                bedrock::Message::builder()
                    .role(bedrock::ConversationRole::User)
                    .set_content(Some(content))
                    .build()
                    .unwrap(),
            ],
            system: vec![
                bedrock::SystemContentBlock::Text("be \"brief\"\n".into()),
                bedrock::SystemContentBlock::CachePoint(
                    bedrock::CachePointBlock::builder()
                        .r#type(bedrock::CachePointType::Default)
                        .build()
                        .unwrap(),
                ),
            ],
            inference_config: config,
            tool_config: None,
            additional_model_request_fields: Some(serde_json::json!({"top_k": 5})),
            additional_model_response_field_paths: vec!["/stop_sequence".into()],
            output_config: None,
        }
    }

    #[test]
    fn the_written_body_is_the_trees_bytes() {
        let configs = [
            bedrock::InferenceConfiguration::builder().build(),
            bedrock::InferenceConfiguration::builder()
                .max_tokens(256)
                .temperature(0.7)
                .top_p(0.9)
                .stop_sequences("\n\nHuman:")
                .build(),
            bedrock::InferenceConfiguration::builder()
                .temperature(f32::NAN)
                .build(),
        ];
        for config in configs {
            let req = request(
                vec![
                    text("héllo \u{1}\t\"quoted\" \\ </script>"),
                    bedrock::ContentBlock::CachePoint(
                        bedrock::CachePointBlock::builder()
                            .r#type(bedrock::CachePointType::Default)
                            .build()
                            .unwrap(),
                    ),
                    text(""),
                ],
                config,
            );
            let tree = serde_json::to_string(&converse_body(&req).unwrap()).unwrap();
            let written = String::from_utf8(converse_body_bytes(&req).unwrap()).unwrap();
            assert_eq!(written, tree);
        }
    }

    #[test]
    fn a_block_that_cannot_be_sent_is_the_same_error() {
        let video = bedrock::ContentBlock::Video(
            bedrock::VideoBlock::builder()
                .format(bedrock::VideoFormat::Mp4)
                .source(bedrock::VideoSource::Bytes(Blob::new(vec![0u8; 4])))
                .build()
                .unwrap(),
        );
        let req = request(
            vec![text("a"), video],
            bedrock::InferenceConfiguration::builder().build(),
        );
        let tree = converse_body(&req).unwrap_err();
        let written = converse_body_bytes(&req).unwrap_err();
        assert_eq!(written, tree);
        assert_eq!(written.path, "messages.0.content.1");
    }
}
