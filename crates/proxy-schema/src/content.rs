//! Content blocks of messages (requests and responses), their sources, citations and cache control.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Marks an inner field path inside a custom deserialisation error, so that [`crate::parse`] can join
/// it to the outer path (serde's own paths stop at values deserialised through a buffer).
pub(crate) const INNER_PATH: char = '\u{1}';

/// Deserialises a buffered value, keeping the path of an error inside it.
pub(crate) fn from_value_with_path<T: DeserializeOwned, E: serde::de::Error>(
    value: Value,
) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = crate::dotted(e.path());
        let inner = e.into_inner().to_string();
        if path.is_empty() {
            E::custom(inner)
        } else {
            E::custom(format!("{INNER_PATH}{path}{INNER_PATH}{inner}"))
        }
    })
}

/// Deserialises the fields of an internally tagged object (its `type` already read) with
/// [`from_value_with_path`], after removing `type` so that structs denying unknown fields accept it.
fn body_without_type<T: DeserializeOwned, E: serde::de::Error>(mut value: Value) -> Result<T, E> {
    if let Some(obj) = value.as_object_mut() {
        obj.shift_remove("type");
    }
    from_value_with_path(value)
}

/// Implements `Deserialize` for enums of the shape `Text(String) | Blocks(Vec<ContentBlock>)` through
/// [`string_or_seq`] (its precise error for anything else, element paths kept).
macro_rules! deserialize_string_or_blocks {
    ($($ty:ident),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(match $crate::content::string_or_seq(d)? {
                    $crate::content::StringOrSeq::String(s) => $ty::Text(s),
                    $crate::content::StringOrSeq::Seq(b) => $ty::Blocks(b),
                })
            }
        }
    )+};
}
pub(crate) use deserialize_string_or_blocks;

/// `cache_control` on a block, a tool or the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `ephemeral` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// `5m` or `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A text block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Citations (responses; in requests only on assistant turns, for 2026-10-21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<Value>>,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TextBlock {
    /// A plain text block.
    pub fn new(text: impl Into<String>) -> Self {
        TextBlock {
            text: text.into(),
            citations: None,
            cache_control: None,
            extra: Map::new(),
        }
    }
}

/// Image media types the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageMediaType {
    /// `image/jpeg`
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// `image/png`
    #[serde(rename = "image/png")]
    Png,
    /// `image/gif`
    #[serde(rename = "image/gif")]
    Gif,
    /// `image/webp`
    #[serde(rename = "image/webp")]
    Webp,
}

impl ImageMediaType {
    /// The short format name (`jpeg`, `png`, `gif`, `webp`), as Bedrock names it.
    pub fn format(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline base64 data.
    Base64 {
        /// The media type.
        media_type: ImageMediaType,
        /// Base64 data.
        data: String,
    },
    /// A URL the server fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A Files API id.
    File {
        /// The file id.
        file_id: String,
    },
}

impl<'de> Deserialize<'de> for ImageSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B64 {
            media_type: ImageMediaType,
            data: String,
        }
        #[derive(Deserialize)]
        struct Url {
            url: String,
        }
        #[derive(Deserialize)]
        struct File {
            file_id: String,
        }
        let value = Value::deserialize(d)?;
        let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("base64") => {
                let b: B64 = body_without_type(value)?;
                Ok(ImageSource::Base64 {
                    media_type: b.media_type,
                    data: b.data,
                })
            }
            Some("url") => Ok(ImageSource::Url {
                url: body_without_type::<Url, D::Error>(value)?.url,
            }),
            Some("file") => Ok(ImageSource::File {
                file_id: body_without_type::<File, D::Error>(value)?.file_id,
            }),
            Some(other) => Err(D::Error::custom(format!(
                "{INNER_PATH}type{INNER_PATH}unknown variant `{other}`, expected one of `base64`, `url`, `file`"
            ))),
            None => Err(D::Error::custom("missing field `type`")),
        }
    }
}

/// An image block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// The source.
    pub source: ImageSource,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Content of a `content` document source: a string or text/image blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DocumentContent {
    /// One string.
    Text(String),
    /// Blocks (text or image).
    Blocks(Vec<ContentBlock>),
}

deserialize_string_or_blocks!(DocumentContent);

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocumentSource {
    /// Inline base64 data (PDF).
    Base64 {
        /// `application/pdf`.
        media_type: String,
        /// Base64 data.
        data: String,
    },
    /// Plain text.
    Text {
        /// `text/plain`.
        media_type: String,
        /// The text.
        data: String,
    },
    /// Custom content.
    Content {
        /// The content.
        content: DocumentContent,
    },
    /// A URL the server fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A Files API id.
    File {
        /// The file id.
        file_id: String,
    },
}

/// `citations: {enabled}` on documents and search results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitationsConfig {
    /// Whether citations are on.
    #[serde(default)]
    pub enabled: bool,
}

/// A document block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    /// The source.
    pub source: DocumentSource,
    /// Title (Bedrock needs a name: the converter derives it from this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Context for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Citations switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<CitationsConfig>,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A search result block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResultBlock {
    /// Where it came from.
    pub source: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub content: Vec<TextBlock>,
    /// Citations switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<CitationsConfig>,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlock {
    /// Tool use id (`toolu_...`).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Input object.
    pub input: Value,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The content of a tool result: a string or blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    /// One string.
    Text(String),
    /// Blocks (text, image, document, search_result, ...).
    Blocks(Vec<ContentBlock>),
}

deserialize_string_or_blocks!(ToolResultContent);

/// A tool result from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultBlock {
    /// The tool use it answers.
    pub tool_use_id: String,
    /// Result content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ToolResultContent>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Extended thinking, with the signature that must be echoed back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// The thinking text.
    pub thinking: String,
    /// Its signature.
    pub signature: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Thinking the safety systems redacted: opaque data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedThinkingBlock {
    /// Opaque data.
    pub data: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A content block. Known `type`s are typed; any other is kept whole in [`ContentBlock::Other`]
/// (server-tool results and blocks newer than this crate).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// `text`
    Text(TextBlock),
    /// `image`
    Image(ImageBlock),
    /// `document`
    Document(DocumentBlock),
    /// `search_result`
    SearchResult(SearchResultBlock),
    /// `tool_use`
    ToolUse(ToolUseBlock),
    /// `tool_result`
    ToolResult(ToolResultBlock),
    /// `thinking`
    Thinking(ThinkingBlock),
    /// `redacted_thinking`
    RedactedThinking(RedactedThinkingBlock),
    /// Any other block, e.g. `server_tool_use`, `web_search_tool_result`, `container_upload`.
    #[serde(untagged)]
    Other(Value),
}

/// The `type`s that [`ContentBlock`] types.
pub const KNOWN_BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if fast::on() {
            return crate::tagged::deserialize(d);
        }
        ContentBlock::from_value(Value::deserialize(d)?)
    }
}

/// The first pass of [`crate::parse`] over a request body: blocks read straight from the body by
/// [`crate::tagged`], without the `Value` each block is otherwise buffered into (for errors that
/// name the field inside the block, and to find `type` wherever it is). Only the fields before
/// `type` are buffered (Claude Code writes a tool result's `tool_use_id` first).
///
/// Any error fails the pass, and `parse` reads the body again the precise way, so a body is
/// accepted or refused, and with which message, exactly as without this path.
pub(crate) mod fast {
    use std::cell::Cell;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether blocks are read the fast way on this thread now.
    pub(crate) fn on() -> bool {
        ON.with(Cell::get)
    }

    /// Runs `f` with the fast path on (off again after, also if `f` panics).
    pub(crate) fn with<T>(f: impl FnOnce() -> T) -> T {
        struct Off;
        impl Drop for Off {
            fn drop(&mut self) {
                ON.with(|on| on.set(false));
            }
        }
        ON.with(|on| on.set(true));
        let _off = Off;
        f()
    }
}

/// How [`fast`] reads a block: its type's fields straight from the rest of the object. Any error
/// (a repeated `type` too: the precise pass takes the last one, as a buffered object keeps it)
/// sends the body to the precise pass.
impl crate::tagged::TypeFirst for ContentBlock {
    const NAME: &'static str = "ContentBlock";
    const VARIANTS: &'static [&'static str] = KNOWN_BLOCK_TYPES;
    const OTHER: Option<fn(Map<String, Value>) -> Self> =
        Some(|object| ContentBlock::Other(Value::Object(object)));

    fn variant<'de, D: Deserializer<'de>>(kind: &str, rest: D) -> Option<Result<Self, D::Error>> {
        Some(match kind {
            "text" => TextBlock::deserialize(rest).map(ContentBlock::Text),
            "image" => ImageBlock::deserialize(rest).map(ContentBlock::Image),
            "document" => DocumentBlock::deserialize(rest).map(ContentBlock::Document),
            "search_result" => SearchResultBlock::deserialize(rest).map(ContentBlock::SearchResult),
            "tool_use" => ToolUseBlock::deserialize(rest).map(ContentBlock::ToolUse),
            "tool_result" => ToolResultBlock::deserialize(rest).map(ContentBlock::ToolResult),
            "thinking" => ThinkingBlock::deserialize(rest).map(ContentBlock::Thinking),
            "redacted_thinking" => {
                RedactedThinkingBlock::deserialize(rest).map(ContentBlock::RedactedThinking)
            }
            _ => return None,
        })
    }

    fn repeats_type(&self) -> bool {
        let extra = match self {
            ContentBlock::Text(b) => &b.extra,
            ContentBlock::Image(b) => &b.extra,
            ContentBlock::Document(b) => &b.extra,
            ContentBlock::SearchResult(b) => &b.extra,
            ContentBlock::ToolUse(b) => &b.extra,
            ContentBlock::ToolResult(b) => &b.extra,
            ContentBlock::Thinking(b) => &b.extra,
            ContentBlock::RedactedThinking(b) => &b.extra,
            ContentBlock::Other(_) => return false,
        };
        extra.contains_key("type")
    }
}

impl ContentBlock {
    /// Known types field by field (so an error names the field inside the block); others raw.
    fn from_value<E: serde::de::Error>(value: Value) -> Result<Self, E> {
        let kind = match value.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                return Err(E::custom(format!(
                    "{INNER_PATH}type{INNER_PATH}Input should be a valid string"
                )));
            }
            None if value.is_object() => return Err(E::custom("missing field `type`")),
            None => {
                return Err(E::custom(format!(
                    "Input should be a valid dictionary, found {value}"
                )));
            }
        };
        Ok(match kind.as_str() {
            "text" => ContentBlock::Text(body_without_type(value)?),
            "image" => ContentBlock::Image(body_without_type(value)?),
            "document" => ContentBlock::Document(body_without_type(value)?),
            "search_result" => ContentBlock::SearchResult(body_without_type(value)?),
            "tool_use" => ContentBlock::ToolUse(body_without_type(value)?),
            "tool_result" => ContentBlock::ToolResult(body_without_type(value)?),
            "thinking" => ContentBlock::Thinking(body_without_type(value)?),
            "redacted_thinking" => ContentBlock::RedactedThinking(body_without_type(value)?),
            _ => ContentBlock::Other(value),
        })
    }

    /// The block's `type` name.
    pub fn kind(&self) -> &str {
        match self {
            ContentBlock::Text(_) => "text",
            ContentBlock::Image(_) => "image",
            ContentBlock::Document(_) => "document",
            ContentBlock::SearchResult(_) => "search_result",
            ContentBlock::ToolUse(_) => "tool_use",
            ContentBlock::ToolResult(_) => "tool_result",
            ContentBlock::Thinking(_) => "thinking",
            ContentBlock::RedactedThinking(_) => "redacted_thinking",
            ContentBlock::Other(v) => v["type"].as_str().unwrap_or("unknown"),
        }
    }

    /// The block's cache breakpoint, if it has one.
    pub fn cache_control(&self) -> Option<&CacheControl> {
        match self {
            ContentBlock::Text(b) => b.cache_control.as_ref(),
            ContentBlock::Image(b) => b.cache_control.as_ref(),
            ContentBlock::Document(b) => b.cache_control.as_ref(),
            ContentBlock::SearchResult(b) => b.cache_control.as_ref(),
            ContentBlock::ToolUse(b) => b.cache_control.as_ref(),
            ContentBlock::ToolResult(b) => b.cache_control.as_ref(),
            _ => None,
        }
    }
}

/// A string or a list of content blocks (message content, system, tool results, documents).
pub(crate) enum StringOrSeq {
    String(String),
    Seq(Vec<ContentBlock>),
}

/// Deserialises a string or a sequence of blocks with a precise error for anything else, and with
/// element paths kept (`content.3.source...`).
pub(crate) fn string_or_seq<'de, D: Deserializer<'de>>(d: D) -> Result<StringOrSeq, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = StringOrSeq;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or a list of content blocks")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StringOrSeq, E> {
            Ok(StringOrSeq::String(s.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, s: String) -> Result<StringOrSeq, E> {
            Ok(StringOrSeq::String(s))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<StringOrSeq, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(block) = seq.next_element::<ContentBlock>()? {
                out.push(block);
            }
            Ok(StringOrSeq::Seq(out))
        }
    }
    d.deserialize_any(V)
}
