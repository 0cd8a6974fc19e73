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
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            retry_after: None,
            headers: Vec::new(),
        }
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
    fn from(e: proxy_bedrock::RouteError) -> Self {
        ApiError::new(ErrorType::NotFoundError, e.to_string())
    }
}

impl From<proxy_bedrock::UpstreamError> for ApiError {
    fn from(e: proxy_bedrock::UpstreamError) -> Self {
        ApiError {
            kind: e.kind,
            message: e.message,
            retry_after: e.retry_after,
            headers: Vec::new(),
        }
    }
}
