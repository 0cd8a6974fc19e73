//! Directives: the words that script what the emulator answers (see the crate docs for the table).

use std::time::Duration;

/// An error kind that `error=` or `stream_error=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 ValidationException.
    Validation,
    /// 403 AccessDeniedException.
    AccessDenied,
    /// 404 ResourceNotFoundException.
    NotFound,
    /// 429 ThrottlingException.
    Throttling,
    /// 400 ServiceQuotaExceededException.
    Quota,
    /// 429 ModelNotReadyException.
    NotReady,
    /// 408 ModelTimeoutException.
    Timeout,
    /// 424 ModelErrorException.
    ModelError,
    /// 500 InternalServerException.
    Internal,
    /// 503 ServiceUnavailableException.
    Unavailable,
    /// modelStreamErrorException (in a stream; 424 as an HTTP error).
    ModelStreamError,
}

impl ErrorKind {
    /// Parses `throttling`, `ThrottlingException`, `throttlingException`, ...
    pub fn parse(s: &str) -> Option<Self> {
        let k = s
            .trim_end_matches("Exception")
            .to_ascii_lowercase()
            .replace('_', "");
        Some(match k.as_str() {
            "validation" => Self::Validation,
            "accessdenied" => Self::AccessDenied,
            "notfound" | "resourcenotfound" => Self::NotFound,
            "throttling" => Self::Throttling,
            "quota" | "servicequotaexceeded" => Self::Quota,
            "notready" | "modelnotready" => Self::NotReady,
            "timeout" | "modeltimeout" => Self::Timeout,
            "modelerror" => Self::ModelError,
            "internal" | "internalserver" => Self::Internal,
            "unavailable" | "serviceunavailable" => Self::Unavailable,
            "modelstreamerror" => Self::ModelStreamError,
            _ => return None,
        })
    }

    /// The AWS error code (the shape name), e.g. `ThrottlingException`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Validation => "ValidationException",
            Self::AccessDenied => "AccessDeniedException",
            Self::NotFound => "ResourceNotFoundException",
            Self::Throttling => "ThrottlingException",
            Self::Quota => "ServiceQuotaExceededException",
            Self::NotReady => "ModelNotReadyException",
            Self::Timeout => "ModelTimeoutException",
            Self::ModelError => "ModelErrorException",
            Self::Internal => "InternalServerException",
            Self::Unavailable => "ServiceUnavailableException",
            Self::ModelStreamError => "ModelStreamErrorException",
        }
    }

    /// The HTTP status Bedrock uses for it.
    pub fn status(self) -> u16 {
        match self {
            Self::Validation | Self::Quota => 400,
            Self::AccessDenied => 403,
            Self::NotFound => 404,
            Self::Timeout => 408,
            Self::ModelError | Self::ModelStreamError => 424,
            Self::Throttling | Self::NotReady => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// The HTTP status and Anthropic error type the Messages API answers with (`rate_limit_error`,
    /// `overloaded_error`, ...). How Bedrock's `/anthropic` routes report throttling and overload is
    /// not observed: this is Anthropic's own mapping.
    pub fn anthropic(self) -> (u16, &'static str) {
        match self {
            Self::Validation => (400, "invalid_request_error"),
            Self::AccessDenied => (403, "permission_error"),
            Self::NotFound => (404, "not_found_error"),
            Self::Throttling | Self::Quota => (429, "rate_limit_error"),
            Self::Timeout => (504, "timeout_error"),
            Self::ModelError | Self::ModelStreamError | Self::Internal => (500, "api_error"),
            Self::NotReady | Self::Unavailable => (529, "overloaded_error"),
        }
    }

    /// The event-stream exception member name (lower camel case), e.g. `throttlingException`.
    pub fn stream_member(self) -> String {
        let code = self.code();
        let mut s = code[..1].to_ascii_lowercase();
        s.push_str(&code[1..]);
        s
    }

    /// A message in the style of Bedrock's.
    pub fn message(self) -> &'static str {
        match self {
            Self::Validation => "bedrock-sim: validation error requested by directive",
            Self::AccessDenied => "You don't have access to the model with the specified model ID.",
            Self::NotFound => {
                "Could not resolve the foundation model from the provided model identifier."
            }
            Self::Throttling => "Too many requests, please wait before trying again.",
            Self::Quota => "Your request exceeded the service quota for this model.",
            Self::NotReady => "Model is not ready to serve inference requests.",
            Self::Timeout => "Model has timed out in processing the request.",
            Self::ModelError => "The model returned an error.",
            Self::Internal => {
                "The server encountered an internal error while processing the request."
            }
            Self::Unavailable => "The service is temporarily unavailable.",
            Self::ModelStreamError => "The model stream encountered an error.",
        }
    }
}

/// A transport fault `reset`, `truncate`, `bad_crc`, `oversize` or `stall` asks for (see the crate
/// docs for what each does on each route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A TCP reset (`SO_LINGER` 0, then close): mid-stream, or before a non-streaming response.
    Reset,
    /// Half a frame (half an SSE event, half a JSON body), then the connection closes.
    Truncate,
    /// A frame whose message CRC is wrong (an SSE event whose data is not JSON on the Messages API).
    BadCrc,
    /// A prelude claiming a frame over 16 MiB (an SSE line over 16 MiB on the Messages API).
    Oversize,
    /// No more bytes, the connection kept open (a non-streaming call is never answered).
    Stall,
}

impl Fault {
    /// The directive word, also the stream state `/_sim/requests` shows.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::Truncate => "truncate",
            Fault::BadCrc => "bad_crc",
            Fault::Oversize => "oversize",
            Fault::Stall => "stall",
        }
    }
}

/// The scripted behaviour of one request, merged from all directive sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// Reply with this text.
    pub reply: Option<String>,
    /// Reply with this many generated words.
    pub words: Option<usize>,
    /// Call a tool: `Some(None)` the first offered, `Some(Some(name))` that one.
    pub tool: Option<Option<String>>,
    /// Number of parallel tool calls.
    pub tools: Option<usize>,
    /// Tool input JSON to use.
    pub input: Option<String>,
    /// A reasoning block first.
    pub thinking: bool,
    /// A redacted reasoning block first.
    pub redacted: bool,
    /// Forced stop reason.
    pub stop: Option<String>,
    /// Cache read tokens.
    pub cache_read: Option<u64>,
    /// Cache write tokens.
    pub cache_write: Option<u64>,
    /// Fail with this HTTP error.
    pub error: Option<ErrorKind>,
    /// Fail a stream with this exception...
    pub stream_error: Option<ErrorKind>,
    /// ...after this many events.
    pub after: Option<usize>,
    /// Delay before the response / first event.
    pub ttfb: Option<Duration>,
    /// Delay between stream events.
    pub delay: Option<Duration>,
    /// A transport fault, after `after` events (default 2) on a stream.
    pub fault: Option<Fault>,
    /// `fail_first=N`: the faults above apply to the first N requests carrying the same directive
    /// text (the key, the whole marker or header), later ones are answered normally.
    pub fail_first: Option<(u64, String)>,
    /// `expired_key=AKID`: a request signed with this access key id (or carrying this bearer token)
    /// gets 403 `ExpiredTokenException`.
    pub expired_key: Option<String>,
}

/// A directive that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bedrock-sim: bad directive `{0}`")]
pub struct BadDirective(pub String);

impl Directives {
    /// Parses directive words (`tool thinking words=20 reply='a b'`) on top of `self`.
    pub fn apply(&mut self, text: &str) -> Result<(), BadDirective> {
        for word in split_words(text) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (word.as_str(), None),
            };
            let bad = || BadDirective(word.clone());
            let num = |v: &Option<String>| -> Result<u64, BadDirective> {
                v.as_deref().and_then(|v| v.parse().ok()).ok_or_else(bad)
            };
            match key {
                "reply" => self.reply = Some(value.ok_or_else(bad)?),
                "words" => self.words = Some(num(&value)? as usize),
                "tool" => self.tool = Some(value),
                "tools" => {
                    self.tools = Some(num(&value)? as usize);
                    self.tool.get_or_insert(None);
                }
                "input" => self.input = Some(value.ok_or_else(bad)?),
                "thinking" | "reasoning" => self.thinking = true,
                "redacted" => self.redacted = true,
                "stop" => self.stop = Some(value.ok_or_else(bad)?),
                "cache_read" => self.cache_read = Some(num(&value)?),
                "cache_write" => self.cache_write = Some(num(&value)?),
                "error" => {
                    self.error = Some(
                        value
                            .as_deref()
                            .and_then(ErrorKind::parse)
                            .ok_or_else(bad)?,
                    )
                }
                "stream_error" => {
                    self.stream_error = Some(
                        value
                            .as_deref()
                            .and_then(ErrorKind::parse)
                            .ok_or_else(bad)?,
                    )
                }
                "after" => self.after = Some(num(&value)? as usize),
                "reset" | "truncate" | "bad_crc" | "oversize" | "stall" if value.is_none() => {
                    self.fault = Some(match key {
                        "reset" => Fault::Reset,
                        "truncate" => Fault::Truncate,
                        "bad_crc" => Fault::BadCrc,
                        "oversize" => Fault::Oversize,
                        _ => Fault::Stall,
                    })
                }
                "fail_first" => self.fail_first = Some((num(&value)?, text.trim().to_owned())),
                "expired_key" => self.expired_key = Some(value.ok_or_else(bad)?),
                // A nonce that makes a marker (a `fail_first` key) unique to one test.
                "id" => {}
                "ttfb_ms" => self.ttfb = Some(Duration::from_millis(num(&value)?)),
                "delay_ms" => self.delay = Some(Duration::from_millis(num(&value)?)),
                _ => return Err(bad()),
            }
        }
        Ok(())
    }
}

/// Splits on whitespace, keeping `'...'` and `"..."` quoted runs together (quotes removed).
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Finds `[sim ...]` markers in a text: returns the directive texts and the text with markers removed.
pub fn extract_markers(text: &str) -> (Vec<String>, String) {
    let mut found = Vec::new();
    let mut rest = String::with_capacity(text.len());
    let mut s = text;
    while let Some(start) = s.find("[sim") {
        let after = &s[start + 4..];
        // `[sim]` or `[sim ...]`, not `[simple`.
        if !(after.starts_with(']') || after.starts_with(char::is_whitespace)) {
            rest.push_str(&s[..start + 4]);
            s = after;
            continue;
        }
        let Some(end) = after.find(']') else { break };
        rest.push_str(&s[..start]);
        found.push(after[..end].trim().to_owned());
        s = &after[end + 1..];
    }
    rest.push_str(s);
    let cleaned = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    (found, cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_values_and_quotes() {
        let mut d = Directives::default();
        d.apply(r#"tool=get_weather thinking words=12 reply='hello there' input='{"a": 1}'"#)
            .unwrap();
        assert_eq!(d.tool, Some(Some("get_weather".into())));
        assert!(d.thinking);
        assert_eq!(d.words, Some(12));
        assert_eq!(d.reply.as_deref(), Some("hello there"));
        assert_eq!(d.input.as_deref(), Some(r#"{"a": 1}"#));
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let mut d = Directives::default();
        d.apply("words=5 delay_ms=3").unwrap();
        d.apply("words=7 error=ThrottlingException").unwrap();
        assert_eq!(d.words, Some(7));
        assert_eq!(d.delay, Some(Duration::from_millis(3)));
        assert_eq!(d.error, Some(ErrorKind::Throttling));
    }

    #[test]
    fn faults_and_fail_first_are_keyed_by_their_text() {
        let mut d = Directives::default();
        d.apply("reset after=3").unwrap();
        assert_eq!((d.fault, d.after), (Some(Fault::Reset), Some(3)));
        let mut d = Directives::default();
        d.apply(" error=throttling fail_first=2 stall id=t1 ")
            .unwrap();
        assert_eq!(
            d.fail_first,
            Some((2, "error=throttling fail_first=2 stall id=t1".to_owned()))
        );
        assert_eq!(d.fault, Some(Fault::Stall));
        assert!(d.apply("reset=1").is_err());
        d.apply("expired_key=AKIDOLD").unwrap();
        assert_eq!(d.expired_key.as_deref(), Some("AKIDOLD"));
    }

    #[test]
    fn rejects_unknown_words() {
        let mut d = Directives::default();
        assert_eq!(d.apply("tool bogus"), Err(BadDirective("bogus".into())));
        assert!(d.apply("error=nope").is_err());
        assert!(d.apply("words=x").is_err());
    }

    #[test]
    fn extracts_markers_and_cleans_text() {
        let (found, text) = extract_markers("What is [sim tool  thinking] the weather? [sim]");
        assert_eq!(found, vec!["tool  thinking".to_owned(), String::new()]);
        assert_eq!(text, "What is the weather?");
        let (found, text) = extract_markers("a [simple] thing");
        assert!(found.is_empty());
        assert_eq!(text, "a [simple] thing");
    }

    #[test]
    fn error_kinds_have_aws_names() {
        for k in [
            "validation",
            "throttling",
            "model_stream_error",
            "access_denied",
        ] {
            let kind = ErrorKind::parse(k).unwrap();
            assert_eq!(ErrorKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(ErrorKind::Throttling.stream_member(), "throttlingException");
        assert_eq!(ErrorKind::Timeout.status(), 408);
        assert_eq!(
            ErrorKind::Unavailable.anthropic(),
            (529, "overloaded_error")
        );
        assert_eq!(ErrorKind::Throttling.anthropic(), (429, "rate_limit_error"));
    }
}
