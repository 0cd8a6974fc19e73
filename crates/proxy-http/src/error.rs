//! The one place errors become the Anthropic envelope.

use proxy_schema::ErrorType;

/// An error a client gets: type (decides the status), message, and retry hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ApiError {
    /// The Anthropic error type.
    pub kind: ErrorType,
    /// A message for people.
    pub message: String,
    /// `retry-after` seconds.
    pub retry_after: Option<u64>,
    /// Further response headers (e.g. `anthropic-ratelimit-*`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A status other than the type's own (408 for a body that did not arrive in time).
    pub status: Option<u16>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            retry_after: None,
            headers: Vec::new(),
            status: None,
        }
    }

    /// The HTTP status: the type's own unless overridden.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.kind.status())
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequestError, message)
    }
}

impl From<proxy_schema::SchemaError> for ApiError {
    fn from(e: proxy_schema::SchemaError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<proxy_convert::ConvertError> for ApiError {
    fn from(e: proxy_convert::ConvertError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<proxy_bedrock::RouteError> for ApiError {
    /// A name no Bedrock id can have (outside Bedrock's `modelId` pattern, or over 2048
    /// characters) is refused before any Bedrock call, as Anthropic refuses a malformed field.
    fn from(e: proxy_bedrock::RouteError) -> Self {
        let message = match &e {
            proxy_bedrock::RouteError::Unknown(name) if name.len() > 200 => format!(
                "model: `{}...` ({} bytes) is not a valid model name: at most 2048 characters of A-Z a-z 0-9 - . _ : /",
                name.chars().take(40).collect::<String>(),
                name.len()
            ),
            _ => format!("model: {e}: at most 2048 characters of A-Z a-z 0-9 - . _ : /"),
        };
        ApiError::invalid(message)
    }
}

impl From<proxy_bedrock::UpstreamError> for ApiError {
    fn from(e: proxy_bedrock::UpstreamError) -> Self {
        ApiError {
            kind: e.kind,
            message: e.message,
            retry_after: e.retry_after,
            headers: Vec::new(),
            status: None,
        }
    }
}
