//! Bedrock errors -> Anthropic error types (the mapping in docs/WIRE-NOTES.md).

use proxy_schema::ErrorType;

/// The Anthropic error type for a Bedrock error code (`ThrottlingException`, or the lower-camel
/// member name of an event-stream exception such as `throttlingException`) and its message.
pub fn error_type(code: &str, message: &str) -> ErrorType {
    let code = code.split([':', '#']).next().unwrap_or(code);
    let mut normalized = code.to_owned();
    if let Some(first) = normalized.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    match normalized.as_str() {
        "ValidationException" if message.contains("model identifier is invalid") => {
            ErrorType::NotFoundError
        }
        "ValidationException" | "SerializationException" => ErrorType::InvalidRequestError,
        "AccessDeniedException" => ErrorType::PermissionError,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignatureException" => ErrorType::AuthenticationError,
        "ResourceNotFoundException" => ErrorType::NotFoundError,
        "ThrottlingException" | "ServiceQuotaExceededException" => ErrorType::RateLimitError,
        "ModelNotReadyException" | "ServiceUnavailableException" => ErrorType::OverloadedError,
        "ModelTimeoutException" => ErrorType::TimeoutError,
        _ => ErrorType::ApiError,
    }
}

/// The Anthropic error type of an exception inside a ConverseStream.
pub fn converse_stream_error_type(
    e: &aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError,
) -> ErrorType {
    use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
    use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError as E;
    match e {
        E::ThrottlingException(_) => ErrorType::RateLimitError,
        E::ServiceUnavailableException(_) => ErrorType::OverloadedError,
        E::ValidationException(_) => ErrorType::InvalidRequestError,
        E::ModelStreamErrorException(_) | E::InternalServerException(_) => ErrorType::ApiError,
        other => error_type(
            other.code().unwrap_or_default(),
            other.message().unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_bedrock_exception() {
        let table = [
            ("ValidationException", ErrorType::InvalidRequestError),
            ("AccessDeniedException", ErrorType::PermissionError),
            (
                "UnrecognizedClientException",
                ErrorType::AuthenticationError,
            ),
            ("ResourceNotFoundException", ErrorType::NotFoundError),
            ("ThrottlingException", ErrorType::RateLimitError),
            ("throttlingException", ErrorType::RateLimitError),
            ("ServiceQuotaExceededException", ErrorType::RateLimitError),
            ("ModelNotReadyException", ErrorType::OverloadedError),
            ("ServiceUnavailableException", ErrorType::OverloadedError),
            ("serviceUnavailableException", ErrorType::OverloadedError),
            ("ModelTimeoutException", ErrorType::TimeoutError),
            ("ModelErrorException", ErrorType::ApiError),
            ("modelStreamErrorException", ErrorType::ApiError),
            ("InternalServerException", ErrorType::ApiError),
            (
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                ErrorType::RateLimitError,
            ),
        ];
        for (code, expected) in table {
            assert_eq!(error_type(code, "x"), expected, "{code}");
        }
        assert_eq!(
            error_type(
                "ValidationException",
                "The provided model identifier is invalid."
            ),
            ErrorType::NotFoundError
        );
    }
}
