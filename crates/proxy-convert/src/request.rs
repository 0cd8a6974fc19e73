//! Anthropic request -> Converse request.

use std::collections::HashSet;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::operation::converse::ConverseInput;
use aws_sdk_bedrockruntime::operation::converse::builders::ConverseFluentBuilder;
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamInput;
use aws_sdk_bedrockruntime::operation::converse_stream::builders::ConverseStreamFluentBuilder;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    self as bedrock, AnyToolChoice, AutoToolChoice, CachePointBlock, CachePointType, CacheTtl,
    CitationsConfig, ConversationRole, DocumentFormat, ImageFormat, InferenceConfiguration,
    JsonSchemaDefinition, OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType,
    ReasoningContentBlock, ReasoningTextBlock, SearchResultBlock, SearchResultContentBlock,
    SpecificToolChoice, SystemContentBlock, ToolConfiguration, ToolInputSchema,
    ToolResultContentBlock, ToolResultStatus, ToolSpecification,
};
use base64::Engine;
use proxy_schema::{
    CacheControl, ContentBlock, DocumentBlock, DocumentContent, DocumentSource, ImageSource,
    MessagesRequest, Role, System, Thinking, ToolChoice, ToolResultContent,
};
use serde_json::{Map, Value, json};

use crate::ConvertError;
use crate::document::to_document;
use crate::family::{ModelFamily, bedrock_betas, has_beta};

/// What the conversion needs beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct ConverseOptions<'a> {
    /// The Bedrock model id (or profile id / ARN) the request goes to; decides the model family.
    pub bedrock_model_id: &'a str,
    /// The client's `anthropic-beta` header, if any.
    pub anthropic_beta: Option<&'a str>,
    /// Turn `cache_control` into cache points (where the model family supports them).
    pub prompt_caching: bool,
}

impl<'a> ConverseOptions<'a> {
    /// Options for `bedrock_model_id` with caching on and no betas.
    pub fn new(bedrock_model_id: &'a str) -> Self {
        ConverseOptions {
            bedrock_model_id,
            anthropic_beta: None,
            prompt_caching: true,
        }
    }
}

/// A Converse request: [`ConverseRequest::converse`] / [`ConverseRequest::converse_stream`] make the
/// SDK call of it, [`ConverseRequest::into_converse_input`] its SDK input.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseRequest {
    /// The conversation (alternating, starting with the user).
    pub messages: Vec<bedrock::Message>,
    /// The system prompt blocks.
    pub system: Vec<SystemContentBlock>,
    /// maxTokens, temperature, topP, stopSequences.
    pub inference_config: InferenceConfiguration,
    /// Tools, when offered or when the history has tool blocks.
    pub tool_config: Option<ToolConfiguration>,
    /// Model-specific fields (Claude: `top_k`, `thinking`, `anthropic_beta`, ...).
    pub additional_model_request_fields: Option<Value>,
    /// JSON pointers of extra response fields (`/stop_sequence` for Claude).
    pub additional_model_response_field_paths: Vec<String>,
    /// Structured output and effort.
    pub output_config: Option<OutputConfig>,
}

/// Sets every field of a [`ConverseRequest`] on any of the SDK's Converse builders (input builders
/// and fluent builders share the setter names).
macro_rules! with_request {
    ($builder:expr, $req:expr, $model_id:expr) => {{
        let req: ConverseRequest = $req;
        let paths = (!req.additional_model_response_field_paths.is_empty())
            .then_some(req.additional_model_response_field_paths);
        $builder
            .model_id($model_id)
            .set_messages(Some(req.messages))
            .set_system((!req.system.is_empty()).then_some(req.system))
            .inference_config(req.inference_config)
            .set_tool_config(req.tool_config)
            .set_additional_model_request_fields(
                req.additional_model_request_fields
                    .as_ref()
                    .map(to_document),
            )
            .set_additional_model_response_field_paths(paths)
            .set_output_config(req.output_config)
    }};
}

impl ConverseRequest {
    /// A Converse call to `model_id` on `client`, ready to `.send()` (nothing is sent before).
    pub fn converse(self, client: &Client, model_id: &str) -> ConverseFluentBuilder {
        with_request!(client.converse(), self, model_id)
    }

    /// A ConverseStream call to `model_id` on `client`, ready to `.send()`.
    pub fn converse_stream(self, client: &Client, model_id: &str) -> ConverseStreamFluentBuilder {
        with_request!(client.converse_stream(), self, model_id)
    }

    /// The SDK input of a Converse call to `model_id`.
    pub fn into_converse_input(self, model_id: &str) -> ConverseInput {
        with_request!(ConverseInput::builder(), self, model_id)
            .build()
            .expect("ConverseInput has no required builder fields")
    }

    /// The SDK input of a ConverseStream call to `model_id`.
    pub fn into_converse_stream_input(self, model_id: &str) -> ConverseStreamInput {
        with_request!(ConverseStreamInput::builder(), self, model_id)
            .build()
            .expect("ConverseStreamInput has no required builder fields")
    }
}

/// Anthropic allows at most 4 `cache_control` breakpoints per request and answers more with a 400;
/// Bedrock has the same limit for cache points.
const MAX_CACHE_POINTS: usize = 4;

struct Ctx {
    family: ModelFamily,
    caching: bool,
    cache_points: usize,
    document_names: HashSet<String>,
    documents: usize,
    has_tool_blocks: bool,
    tool_names_used: Vec<String>,
}

impl Ctx {
    fn cache_point(&mut self, cc: Option<&CacheControl>) -> Option<bedrock::ContentBlock> {
        self.cache_point_block(cc)
            .map(bedrock::ContentBlock::CachePoint)
    }

    fn cache_point_block(&mut self, cc: Option<&CacheControl>) -> Option<CachePointBlock> {
        let cc = cc?;
        if !self.caching {
            return None;
        }
        self.cache_points += 1;
        let ttl = match cc.ttl.as_deref() {
            Some("1h") => Some(CacheTtl::OneHour),
            Some("5m") => Some(CacheTtl::FiveMinutes),
            _ => None,
        };
        Some(
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .set_ttl(ttl)
                .build()
                .expect("type is set"),
        )
    }

    /// A unique Bedrock document name: allowed characters only (alphanumerics, single spaces, hyphens,
    /// parentheses, square brackets), at most 200 characters, never repeated within a request.
    fn document_name(&mut self, title: Option<&str>) -> String {
        self.documents += 1;
        let mut name = String::new();
        for c in title.unwrap_or_default().chars() {
            let c = if c.is_alphanumeric() || "-()[]".contains(c) {
                c
            } else {
                ' '
            };
            if c == ' ' && (name.is_empty() || name.ends_with(' ')) {
                continue;
            }
            name.push(c);
        }
        let mut name: String = name.trim_end().chars().take(180).collect();
        if name.trim().is_empty() {
            name = format!("document-{}", self.documents);
        }
        let base = name.clone();
        let mut n = 2;
        while !self.document_names.insert(name.clone()) {
            name = format!("{base} ({n})");
            n += 1;
        }
        name
    }
}

fn decode_b64(data: &str, path: &str) -> Result<Blob, ConvertError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map(Blob::new)
        .map_err(|e| ConvertError::new(path, format!("invalid base64 data: {e}")))
}

fn image_block(source: &ImageSource, path: &str) -> Result<bedrock::ImageBlock, ConvertError> {
    match source {
        ImageSource::Base64 { media_type, data } => Ok(bedrock::ImageBlock::builder()
            .format(ImageFormat::from(media_type.format()))
            .source(bedrock::ImageSource::Bytes(decode_b64(
                data,
                &format!("{path}.source.data"),
            )?))
            .build()
            .expect("format is set")),
        ImageSource::Url { .. } | ImageSource::File { .. } => Err(ConvertError::new(
            format!("{path}.source.type"),
            "Bedrock accepts images only as base64 data: send the image with a `base64` source",
        )),
    }
}

fn document_block(
    doc: &DocumentBlock,
    path: &str,
    ctx: &mut Ctx,
) -> Result<bedrock::DocumentBlock, ConvertError> {
    let (format, source) = match &doc.source {
        DocumentSource::Base64 { media_type, data } => {
            let format = match media_type.as_str() {
                "text/csv" => DocumentFormat::Csv,
                "text/html" => DocumentFormat::Html,
                "text/markdown" => DocumentFormat::Md,
                "text/plain" => DocumentFormat::Txt,
                "application/msword" => DocumentFormat::Doc,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                    DocumentFormat::Docx
                }
                "application/vnd.ms-excel" => DocumentFormat::Xls,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
                    DocumentFormat::Xlsx
                }
                _ => DocumentFormat::Pdf,
            };
            (
                format,
                bedrock::DocumentSource::Bytes(decode_b64(data, &format!("{path}.source.data"))?),
            )
        }
        DocumentSource::Text { data, .. } => (
            DocumentFormat::Txt,
            bedrock::DocumentSource::Text(data.clone()),
        ),
        DocumentSource::Content { content } => {
            let texts: Vec<bedrock::DocumentContentBlock> = match content {
                DocumentContent::Text(s) => vec![bedrock::DocumentContentBlock::Text(s.clone())],
                DocumentContent::Blocks(blocks) => blocks
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text(t) => {
                            Some(bedrock::DocumentContentBlock::Text(t.text.clone()))
                        }
                        other => {
                            tracing::debug!(
                                kind = other.kind(),
                                "dropping a non-text block of a content document"
                            );
                            None
                        }
                    })
                    .collect(),
            };
            (DocumentFormat::Txt, bedrock::DocumentSource::Content(texts))
        }
        DocumentSource::Url { .. } | DocumentSource::File { .. } => {
            return Err(ConvertError::new(
                format!("{path}.source.type"),
                "Bedrock accepts documents only as base64, text or content sources",
            ));
        }
    };
    Ok(bedrock::DocumentBlock::builder()
        .format(format)
        .name(ctx.document_name(doc.title.as_deref()))
        .source(source)
        .set_context(doc.context.clone())
        .set_citations(doc.citations.as_ref().map(|c| {
            CitationsConfig::builder()
                .enabled(c.enabled)
                .build()
                .expect("enabled is set")
        }))
        .build()
        .expect("name and format are set"))
}

fn search_result(sr: &proxy_schema::SearchResultBlock) -> SearchResultBlock {
    SearchResultBlock::builder()
        .source(sr.source.clone())
        .title(sr.title.clone())
        .set_content(Some(
            sr.content
                .iter()
                .map(|t| {
                    SearchResultContentBlock::builder()
                        .text(t.text.clone())
                        .build()
                        .expect("text is set")
                })
                .collect(),
        ))
        .set_citations(sr.citations.as_ref().map(|c| {
            CitationsConfig::builder()
                .enabled(c.enabled)
                .build()
                .expect("enabled is set")
        }))
        .build()
        .expect("source, title and content are set")
}

/// Converts the blocks of message `message`, appending cache points after blocks that carry
/// `cache_control`.
fn convert_blocks(
    blocks: &[ContentBlock],
    message: usize,
    ctx: &mut Ctx,
) -> Result<Vec<bedrock::ContentBlock>, ConvertError> {
    let claude = ctx.family == ModelFamily::Claude;
    let mut out = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        // Written out only for a block that can fail (most are text).
        let bpath = || format!("messages.{message}.content.{j}");
        let converted =
            match block {
                // Bedrock rejects blank text blocks; Anthropic ignores them in practice (peers fail
                // here).
                ContentBlock::Text(t) if t.text.trim().is_empty() => None,
                ContentBlock::Text(t) => Some(bedrock::ContentBlock::Text(t.text.clone())),
                ContentBlock::Image(img) => Some(bedrock::ContentBlock::Image(image_block(
                    &img.source,
                    &bpath(),
                )?)),
                ContentBlock::Document(doc) => Some(bedrock::ContentBlock::Document(
                    document_block(doc, &bpath(), ctx)?,
                )),
                ContentBlock::SearchResult(sr) => {
                    Some(bedrock::ContentBlock::SearchResult(search_result(sr)))
                }
                ContentBlock::ToolUse(tu) => {
                    ctx.has_tool_blocks = true;
                    ctx.tool_names_used.push(tu.name.clone());
                    Some(bedrock::ContentBlock::ToolUse(
                        bedrock::ToolUseBlock::builder()
                            .tool_use_id(tu.id.clone())
                            .name(tu.name.clone())
                            .input(to_document(&tu.input))
                            .build()
                            .expect("id, name and input are set"),
                    ))
                }
                ContentBlock::ToolResult(tr) => {
                    ctx.has_tool_blocks = true;
                    let mut content = Vec::new();
                    let mut inner_cache = None;
                    match &tr.content {
                        None => {}
                        Some(ToolResultContent::Text(s)) if s.trim().is_empty() => {}
                        Some(ToolResultContent::Text(s)) => {
                            content.push(ToolResultContentBlock::Text(s.clone()))
                        }
                        Some(ToolResultContent::Blocks(items)) => {
                            for (k, item) in items.iter().enumerate() {
                                let ipath =
                                    || format!("messages.{message}.content.{j}.content.{k}");
                                // Bedrock forbids cache points inside a toolResult: the breakpoint
                                // moves right after the toolResult, which caches the same prefix.
                                if item.cache_control().is_some() {
                                    inner_cache = item.cache_control().cloned();
                                }
                                match item {
                                    ContentBlock::Text(t) if t.text.trim().is_empty() => {}
                                    ContentBlock::Text(t) => {
                                        content.push(ToolResultContentBlock::Text(t.text.clone()))
                                    }
                                    ContentBlock::Image(img) => {
                                        content.push(ToolResultContentBlock::Image(image_block(
                                            &img.source,
                                            &ipath(),
                                        )?))
                                    }
                                    ContentBlock::Document(doc) => {
                                        content.push(ToolResultContentBlock::Document(
                                            document_block(doc, &ipath(), ctx)?,
                                        ))
                                    }
                                    ContentBlock::SearchResult(sr) => content.push(
                                        ToolResultContentBlock::SearchResult(search_result(sr)),
                                    ),
                                    other => tracing::debug!(
                                        kind = other.kind(),
                                        "dropping a block Bedrock tool results cannot hold"
                                    ),
                                }
                            }
                        }
                    }
                    // ⚠ Unverified (docs/WIRE-NOTES.md, item 5): how Bedrock takes an empty
                    // toolResult content; an empty list is what the request shape allows.
                    let status = tr.is_error.map(|e| {
                        if e {
                            ToolResultStatus::Error
                        } else {
                            ToolResultStatus::Success
                        }
                    });
                    out.push(bedrock::ContentBlock::ToolResult(
                        bedrock::ToolResultBlock::builder()
                            .tool_use_id(tr.tool_use_id.clone())
                            .set_content(Some(content))
                            .set_status(status)
                            .build()
                            .expect("id and content are set"),
                    ));
                    let cc = tr.cache_control.as_ref().or(inner_cache.as_ref());
                    out.extend(ctx.cache_point(cc));
                    continue;
                }
                // Signed thinking must go back unchanged, or Bedrock rejects the next tool turn;
                // other families neither sign nor take reasoning back.
                ContentBlock::Thinking(t) if claude => Some(
                    bedrock::ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(
                        ReasoningTextBlock::builder()
                            .text(t.thinking.clone())
                            .set_signature((!t.signature.is_empty()).then(|| t.signature.clone()))
                            .build()
                            .expect("text is set"),
                    )),
                ),
                // ⚠ Unverified (docs/WIRE-NOTES.md, item 4): redactedContent carries the bytes of
                // the opaque `data`.
                ContentBlock::RedactedThinking(r) if claude => {
                    Some(bedrock::ContentBlock::ReasoningContent(
                        ReasoningContentBlock::RedactedContent(Blob::new(r.data.as_bytes())),
                    ))
                }
                other => {
                    tracing::debug!(
                        kind = other.kind(),
                        "dropping a block Converse has no slot for"
                    );
                    None
                }
            };
        if let Some(c) = converted {
            out.push(c);
            out.extend(ctx.cache_point(block.cache_control()));
        }
    }
    Ok(out)
}

fn system_text(
    ctx: &mut Ctx,
    system: &mut Vec<SystemContentBlock>,
    text: &str,
    cc: Option<&CacheControl>,
) {
    if !text.trim().is_empty() {
        system.push(SystemContentBlock::Text(text.to_owned()));
        if let Some(point) = ctx.cache_point_block(cc) {
            system.push(SystemContentBlock::CachePoint(point));
        }
    }
}

fn count_cache_controls(req: &MessagesRequest) -> usize {
    let in_blocks = |blocks: &[ContentBlock]| -> usize {
        blocks
            .iter()
            .map(|b| {
                usize::from(b.cache_control().is_some())
                    + match b {
                        ContentBlock::ToolResult(tr) => match &tr.content {
                            Some(ToolResultContent::Blocks(items)) => {
                                items.iter().filter(|i| i.cache_control().is_some()).count()
                            }
                            _ => 0,
                        },
                        _ => 0,
                    }
            })
            .sum()
    };
    let system = match &req.system {
        Some(System::Blocks(b)) => b.iter().filter(|t| t.cache_control.is_some()).count(),
        _ => 0,
    };
    let tools = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.cache_control.is_some())
        .count();
    let messages: usize = req
        .messages
        .iter()
        .map(|m| in_blocks(&m.content.blocks()))
        .sum();
    system + tools + messages + usize::from(req.cache_control.is_some())
}

/// The JSON of the `thinking` setting, for Claude's `additionalModelRequestFields`.
fn thinking_json(t: &Thinking) -> Value {
    match t {
        Thinking::Enabled {
            budget_tokens,
            extra,
        } => {
            let mut v = json!({"type": "enabled", "budget_tokens": budget_tokens});
            v.as_object_mut().expect("object").extend(extra.clone());
            v
        }
        Thinking::Disabled { extra } => {
            let mut v = json!({"type": "disabled"});
            v.as_object_mut().expect("object").extend(extra.clone());
            v
        }
        Thinking::Adaptive { extra } => {
            let mut v = json!({"type": "adaptive"});
            v.as_object_mut().expect("object").extend(extra.clone());
            v
        }
        Thinking::Other(v) => v.clone(),
    }
}

/// A reasoning effort for families that take one instead of a token budget.
fn effort_for(t: &Thinking) -> Option<&'static str> {
    match t {
        Thinking::Enabled { budget_tokens, .. } if *budget_tokens < 4096 => Some("low"),
        Thinking::Enabled { budget_tokens, .. } if *budget_tokens < 16384 => Some("medium"),
        Thinking::Enabled { .. } => Some("high"),
        Thinking::Adaptive { .. } => Some("medium"),
        _ => None,
    }
}

/// Converts an Anthropic request into a Converse request for `opts.bedrock_model_id`.
///
/// Fields Converse has no slot for go through `additionalModelRequestFields` where the model family
/// accepts them, and are otherwise dropped with a debug log (see the crate docs' table); the only
/// errors are those Anthropic itself would give, and sources Bedrock cannot take (URLs, file ids).
pub fn to_converse(
    req: &MessagesRequest,
    opts: &ConverseOptions<'_>,
) -> Result<ConverseRequest, ConvertError> {
    let family = ModelFamily::of(opts.bedrock_model_id);
    let found = count_cache_controls(req);
    if found > MAX_CACHE_POINTS {
        return Err(ConvertError::new(
            "",
            format!("A maximum of 4 blocks with cache_control may be provided. Found {found}."),
        ));
    }
    let mut ctx = Ctx {
        family,
        caching: opts.prompt_caching && family.supports_cache_points(),
        cache_points: 0,
        document_names: HashSet::new(),
        documents: 0,
        has_tool_blocks: false,
        tool_names_used: Vec::new(),
    };

    let mut system = Vec::new();
    match &req.system {
        Some(System::Text(s)) => system_text(&mut ctx, &mut system, s, None),
        Some(System::Blocks(blocks)) => {
            for b in blocks {
                system_text(&mut ctx, &mut system, &b.text, b.cache_control.as_ref());
            }
        }
        None => {}
    }

    let mut turns: Vec<(ConversationRole, Vec<bedrock::ContentBlock>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let blocks = msg.content.blocks();
        if msg.role == Role::System {
            // ⚠ Where a mid-conversation system message sits is lost: Converse gets it in `system`.
            for b in blocks.iter() {
                if let ContentBlock::Text(t) = b {
                    system_text(&mut ctx, &mut system, &t.text, t.cache_control.as_ref());
                }
            }
            continue;
        }
        let converted = convert_blocks(&blocks, i, &mut ctx)?;
        if converted
            .iter()
            .all(|b| matches!(b, bedrock::ContentBlock::CachePoint(_)))
        {
            continue;
        }
        let role = if msg.role == Role::User {
            ConversationRole::User
        } else {
            ConversationRole::Assistant
        };
        // Anthropic merges consecutive turns of one role; Converse requires them to alternate.
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(converted),
            _ => turns.push((role, converted)),
        }
    }
    if let Some(cc) = &req.cache_control
        && let Some((_, content)) = turns.last_mut()
        && !matches!(content.last(), Some(bedrock::ContentBlock::CachePoint(_)))
        && let Some(point) = ctx.cache_point(Some(cc))
    {
        // Top-level cache_control marks the last cacheable block.
        content.push(point);
    }
    let messages: Vec<bedrock::Message> = turns
        .into_iter()
        .map(|(role, content)| {
            bedrock::Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .expect("role and content are set")
        })
        .collect();

    // Tools.
    let mut tools: Vec<bedrock::Tool> = Vec::new();
    for tool in req.tools.iter().flatten() {
        if !tool.is_custom() {
            tracing::debug!(kind = tool.kind.as_deref().unwrap_or(""), name = %tool.name, "dropping a server tool Converse cannot run");
            continue;
        }
        let schema = tool
            .input_schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        tools.push(bedrock::Tool::ToolSpec(
            ToolSpecification::builder()
                .name(tool.name.clone())
                .set_description(tool.description.clone().filter(|d| !d.trim().is_empty()))
                .input_schema(ToolInputSchema::Json(to_document(&schema)))
                .set_strict(tool.strict)
                .build()
                .expect("name is set"),
        ));
        if let Some(point) = ctx.cache_point_block(tool.cache_control.as_ref()) {
            tools.push(bedrock::Tool::CachePoint(point));
        }
    }
    let mut tool_choice = match &req.tool_choice {
        Some(ToolChoice::Any { .. }) => {
            Some(bedrock::ToolChoice::Any(AnyToolChoice::builder().build()))
        }
        Some(ToolChoice::Tool { name, .. }) => Some(bedrock::ToolChoice::Tool(
            SpecificToolChoice::builder()
                .name(name.clone())
                .build()
                .expect("name is set"),
        )),
        Some(ToolChoice::Auto { .. }) => {
            Some(bedrock::ToolChoice::Auto(AutoToolChoice::builder().build()))
        }
        Some(ToolChoice::None) | None => None,
    };
    if matches!(req.tool_choice, Some(ToolChoice::None)) && !ctx.has_tool_blocks {
        // `none` has no Converse value: offering no tools is the same.
        tools.clear();
    }
    if req
        .tool_choice
        .as_ref()
        .is_some_and(ToolChoice::disables_parallel)
    {
        tracing::debug!("disable_parallel_tool_use has no Converse field; dropped");
    }
    if !matches!(family, ModelFamily::Claude | ModelFamily::Nova)
        && matches!(
            tool_choice,
            Some(bedrock::ToolChoice::Any(_)) | Some(bedrock::ToolChoice::Tool(_))
        )
    {
        tracing::debug!("this model family takes only auto tool choice; dropped");
        tool_choice = None;
    }
    if ctx.has_tool_blocks
        && !tools
            .iter()
            .any(|t| matches!(t, bedrock::Tool::ToolSpec(_)))
    {
        // Converse needs a toolConfig whenever the history holds tool blocks: declare the tools the
        // history used, with an open schema.
        let mut seen = HashSet::new();
        for name in ctx
            .tool_names_used
            .iter()
            .filter(|n| seen.insert(n.as_str()))
        {
            tools.push(bedrock::Tool::ToolSpec(
                ToolSpecification::builder()
                    .name(name.clone())
                    .input_schema(ToolInputSchema::Json(to_document(
                        &json!({"type": "object"}),
                    )))
                    .build()
                    .expect("name is set"),
            ));
        }
        if tools.is_empty() {
            tools.push(bedrock::Tool::ToolSpec(
                ToolSpecification::builder()
                    .name("unused_tool")
                    .description("Declared so that tool results in the history are accepted.")
                    .input_schema(ToolInputSchema::Json(to_document(
                        &json!({"type": "object"}),
                    )))
                    .build()
                    .expect("name is set"),
            ));
        }
        tool_choice = None;
    }
    let tool_config = tools
        .iter()
        .any(|t| matches!(t, bedrock::Tool::ToolSpec(_)))
        .then(|| {
            ToolConfiguration::builder()
                .set_tools(Some(tools))
                .set_tool_choice(tool_choice)
                .build()
                .expect("tools are set")
        });

    // Inference settings.
    let stop_sequences: Vec<String> = req
        .stop_sequences
        .iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    let inference_config = InferenceConfiguration::builder()
        // Converse needs maxTokens >= 1; Anthropic's 0 (cache warm-up) has no equivalent.
        .max_tokens(req.max_tokens.unwrap_or(4096).clamp(1, i32::MAX as u32) as i32)
        .set_temperature(req.temperature.map(|t| t as f32))
        .set_top_p(req.top_p.map(|t| t as f32))
        .set_stop_sequences((!stop_sequences.is_empty()).then(|| stop_sequences.clone()))
        .build();

    // Model-specific fields.
    let mut extra = Map::new();
    let betas = bedrock_betas(opts.anthropic_beta, opts.bedrock_model_id);
    match family {
        ModelFamily::Claude => {
            if let Some(k) = req.top_k {
                extra.insert("top_k".into(), json!(k));
            }
            if let Some(t) = &req.thinking {
                extra.insert("thinking".into(), thinking_json(t));
            }
            if !betas.is_empty() {
                extra.insert("anthropic_beta".into(), json!(betas));
            }
            if let Some(cm) = req.extra.get("context_management") {
                if has_beta(&betas, "context-management-") {
                    extra.insert("context_management".into(), cm.clone());
                } else {
                    tracing::debug!("context_management without its beta; dropped");
                }
            }
        }
        ModelFamily::GptOss => {
            if let Some(effort) = req.thinking.as_ref().and_then(effort_for) {
                extra.insert("reasoning_effort".into(), json!(effort));
            }
        }
        ModelFamily::Nova => {
            if let Some(effort) = req.thinking.as_ref().and_then(effort_for) {
                extra.insert(
                    "reasoningConfig".into(),
                    json!({"type": "enabled", "maxReasoningEffort": effort}),
                );
            }
        }
        ModelFamily::DeepSeek | ModelFamily::Qwen | ModelFamily::Other => {
            if req.thinking.is_some() || req.top_k.is_some() {
                tracing::debug!(
                    ?family,
                    "thinking/top_k have no known field for this family; dropped"
                );
            }
        }
    }
    for key in req
        .extra
        .keys()
        .filter(|k| *k != "context_management" || family != ModelFamily::Claude)
    {
        tracing::debug!(field = %key, "no Converse slot for this field; dropped");
    }
    let additional_model_response_field_paths =
        if family == ModelFamily::Claude && !stop_sequences.is_empty() {
            vec!["/stop_sequence".to_owned()]
        } else {
            Vec::new()
        };

    let output_config = req.output_config.as_ref().and_then(|oc| {
        let text_format = oc.format.as_ref().and_then(|f| {
            let schema = f.get("schema")?;
            Some(
                OutputFormat::builder()
                    .r#type(OutputFormatType::JsonSchema)
                    .structure(OutputFormatStructure::JsonSchema(
                        JsonSchemaDefinition::builder()
                            .schema(schema.to_string())
                            .set_name(f.get("name").and_then(Value::as_str).map(str::to_owned))
                            .build()
                            .expect("schema is set"),
                    ))
                    .build()
                    .expect("type is set"),
            )
        });
        (text_format.is_some() || oc.effort.is_some()).then(|| {
            OutputConfig::builder()
                .set_text_format(text_format)
                .set_effort(oc.effort.clone())
                .build()
        })
    });

    Ok(ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
        additional_model_request_fields: (!extra.is_empty()).then_some(Value::Object(extra)),
        additional_model_response_field_paths,
        output_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::to_json;

    fn convert(body: Value, model: &str) -> ConverseRequest {
        let req =
            proxy_schema::parse_messages_request(&serde_json::to_vec(&body).unwrap()).unwrap();
        to_converse(&req, &ConverseOptions::new(model)).unwrap()
    }

    fn base() -> Value {
        json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    }

    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    #[test]
    fn thinking_goes_where_each_family_takes_it() {
        let mut body = base();
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 8000});
        let extra = |body: &Value, model: &str| {
            convert(body.clone(), model).additional_model_request_fields
        };
        assert_eq!(
            extra(&body, CLAUDE).unwrap()["thinking"],
            json!({"type": "enabled", "budget_tokens": 8000})
        );
        assert_eq!(
            extra(&body, "us.amazon.nova-pro-v1:0").unwrap()["reasoningConfig"],
            json!({"type": "enabled", "maxReasoningEffort": "medium"})
        );
        assert_eq!(
            extra(&body, "openai.gpt-oss-120b-1:0").unwrap()["reasoning_effort"],
            "medium"
        );
        assert_eq!(extra(&body, "qwen.qwen3-32b-v1:0"), None);
        assert_eq!(extra(&body, "deepseek.r1-v1:0"), None);
        body["thinking"] = json!({"type": "adaptive"});
        assert_eq!(
            extra(&body, CLAUDE).unwrap()["thinking"],
            json!({"type": "adaptive"})
        );
        body["thinking"] = json!({"type": "between_tools", "x": 1});
        assert_eq!(
            extra(&body, CLAUDE).unwrap()["thinking"],
            json!({"type": "between_tools", "x": 1})
        );
    }

    #[test]
    fn output_config_maps_to_converse_output_config() {
        let mut body = base();
        body["output_config"] = json!({"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}});
        let oc = convert(body, CLAUDE).output_config.unwrap();
        assert_eq!(oc.effort(), Some("high"));
        let tf = oc.text_format().unwrap();
        assert_eq!(tf.r#type(), &OutputFormatType::JsonSchema);
        let OutputFormatStructure::JsonSchema(schema) = tf.structure().unwrap() else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<Value>(schema.schema()).unwrap(),
            json!({"type": "object"})
        );
    }

    #[test]
    fn tools_keep_cache_points_and_drop_server_tools() {
        let mut body = base();
        body["tools"] = json!([
            {"name": "a", "description": "", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}, "defer_loading": true},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "custom", "name": "b", "input_schema": {"type": "object"}, "strict": true}
        ]);
        let tc = convert(body, CLAUDE).tool_config.unwrap();
        let tools = tc.tools();
        assert_eq!(tools.len(), 3);
        let bedrock::Tool::ToolSpec(a) = &tools[0] else {
            panic!()
        };
        assert_eq!(a.name(), "a");
        assert_eq!(
            a.description(),
            None,
            "an empty description is omitted (Converse needs non-empty)"
        );
        assert!(matches!(tools[1], bedrock::Tool::CachePoint(_)));
        let bedrock::Tool::ToolSpec(b) = &tools[2] else {
            panic!()
        };
        assert_eq!((b.name(), b.strict()), ("b", Some(true)));
        assert!(tc.tool_choice().is_none());
    }

    #[test]
    fn search_results_and_unslotted_fields() {
        let mut body = base();
        body["metadata"] = json!({"user_id": "u"});
        body["service_tier"] = json!("auto");
        body["container"] = json!("c1");
        body["messages"] = json!([{"role": "user", "content": [
            {"type": "search_result", "source": "https://s", "title": "T", "content": [{"type": "text", "text": "r"}], "citations": {"enabled": true}},
            {"type": "text", "text": "q"}]}]);
        let conv = convert(body, CLAUDE);
        let bedrock::ContentBlock::SearchResult(sr) = &conv.messages[0].content()[0] else {
            panic!()
        };
        assert_eq!(
            (sr.source(), sr.title(), sr.content()[0].text()),
            ("https://s", "T", "r")
        );
        assert_eq!(sr.citations().map(|c| c.enabled()), Some(true));
        assert!(
            conv.additional_model_request_fields.is_none(),
            "metadata, service_tier, container have no slot"
        );
    }

    #[test]
    fn tool_inputs_and_schemas_survive_as_documents() {
        let mut body = base();
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": -5}, "f": {"type": "number"}}});
        body["tools"] = json!([{"name": "t", "input_schema": schema}]);
        body["messages"] = json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"n": -3, "f": 2.5, "s": "x", "l": [1, null]}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}]);
        let conv = convert(body, "qwen.qwen3-32b-v1:0");
        let bedrock::Tool::ToolSpec(spec) = &conv.tool_config.as_ref().unwrap().tools()[0] else {
            panic!()
        };
        let ToolInputSchema::Json(doc) = spec.input_schema().unwrap() else {
            panic!()
        };
        assert_eq!(to_json(doc), schema);
        let bedrock::ContentBlock::ToolUse(tu) = &conv.messages[1].content()[0] else {
            panic!()
        };
        assert_eq!(
            to_json(tu.input()),
            json!({"n": -3, "f": 2.5, "s": "x", "l": [1, null]})
        );
        let bedrock::ContentBlock::ToolResult(tr) = &conv.messages[2].content()[0] else {
            panic!()
        };
        assert!(tr.content().is_empty() && tr.status().is_none());
    }

    #[test]
    fn max_tokens_zero_becomes_one() {
        // parse_messages_request refuses 0 (a 400 on every route); a request built otherwise still
        // never gives Bedrock a 0.
        let mut req =
            proxy_schema::parse_messages_request(&serde_json::to_vec(&base()).unwrap()).unwrap();
        req.max_tokens = Some(0);
        let converse = to_converse(&req, &ConverseOptions::new(CLAUDE)).unwrap();
        assert_eq!(converse.inference_config.max_tokens(), Some(1));
    }
}
