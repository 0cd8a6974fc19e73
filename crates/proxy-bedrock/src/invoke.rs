//! InvokeModel and InvokeModelWithResponseStream through the lean signed client, as the SDK sends
//! them (same paths, headers and signature) without its per-call orchestration.
//!
//! `POST /model/{modelId}/invoke` with `Content-Type` and `Accept: application/json` answers the
//! model's body; `POST /model/{modelId}/invoke-with-response-stream` (the accept header is
//! `X-Amzn-Bedrock-Accept` there) answers an event stream of `chunk` events whose payload is
//! `{"bytes":"<base64>"}`, one Anthropic stream event each for Claude. Errors are AWS errors
//! (`x-amzn-errortype`, a JSON `message`) before the stream, exception frames within it.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::Incoming;
use proxy_schema::ErrorType;

use crate::UpstreamError;
use crate::eventstream::{Frame, FrameDecoder};
use crate::messages::{Endpoint, MessagesClient, failure, poll_data, request_id, unexpected};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const BEDROCK_ACCEPT: HeaderName = HeaderName::from_static("x-amzn-bedrock-accept");

/// The model id as one path segment: every byte but the unreserved ones percent-encoded (`:` as
/// `%3A`, the `/` of an ARN as `%2F`), as the SDK encodes the `modelId` label.
pub(crate) fn model_path(model_id: &str, operation: &str) -> String {
    let mut path = String::with_capacity(model_id.len() + operation.len() + 16);
    path.push_str("/model/");
    for &b in model_id.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(b as char);
        } else {
            path.push('%');
            path.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            path.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
    path.push('/');
    path.push_str(operation);
    path
}

impl MessagesClient {
    /// InvokeModel: the model's answer body (for Claude, an Anthropic message), or the error.
    pub async fn invoke(&self, model_id: &str, body: Bytes) -> Result<Bytes, UpstreamError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, JSON);
        self.model_call(model_id, "invoke", "InvokeModel", headers, body)
            .await
    }

    /// InvokeModelWithResponseStream: resolves when Bedrock accepted the request (its errors come
    /// back here); the events (`chunk`s) then arrive on the stream.
    pub async fn invoke_stream(
        &self,
        model_id: &str,
        body: Bytes,
    ) -> Result<EventStream, UpstreamError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(BEDROCK_ACCEPT, JSON);
        self.model_stream(
            model_id,
            "invoke-with-response-stream",
            "InvokeModelWithResponseStream",
            headers,
            body,
        )
        .await
    }

    /// Converse with a JSON body ([`proxy_convert::converse_body`]): the answer's JSON body.
    pub async fn converse(&self, model_id: &str, body: Bytes) -> Result<Bytes, UpstreamError> {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(CONTENT_TYPE, JSON);
        self.model_call(model_id, "converse", "Converse", headers, body)
            .await
    }

    /// ConverseStream: as [`MessagesClient::invoke_stream`], with Converse's events.
    pub async fn converse_stream(
        &self,
        model_id: &str,
        body: Bytes,
    ) -> Result<EventStream, UpstreamError> {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(CONTENT_TYPE, JSON);
        self.model_stream(model_id, "converse-stream", "ConverseStream", headers, body)
            .await
    }

    /// `POST /model/{model_id}/{operation}` on runtime, read whole.
    async fn model_call(
        &self,
        model_id: &str,
        operation: &str,
        name: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Bytes, UpstreamError> {
        let path = model_path(model_id, operation);
        let response = self.post(Endpoint::Runtime, &path, headers, body).await?;
        let (parts, incoming) = response.into_parts();
        let bytes = self.read_body(incoming).await?;
        if let Some(err) = failure(parts.status, &parts.headers, &bytes, name) {
            tracing::debug!(status = %parts.status, kind = err.kind.as_str(), message = %err.message, "{name} error");
            return Err(err);
        }
        Ok(bytes)
    }

    /// `POST /model/{model_id}/{operation}` on runtime, answered with an event stream.
    async fn model_stream(
        &self,
        model_id: &str,
        operation: &str,
        name: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<EventStream, UpstreamError> {
        let path = model_path(model_id, operation);
        let response = self.post(Endpoint::Runtime, &path, headers, body).await?;
        let (parts, incoming) = response.into_parts();
        let request_id = request_id(&parts.headers);
        let is_event_stream = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .starts_with("application/vnd.amazon.eventstream")
            });
        if parts.status.is_success() && is_event_stream {
            return Ok(EventStream {
                body: incoming,
                decoder: FrameDecoder::new(),
                done: false,
                request_id,
            });
        }
        let bytes = self.read_body(incoming).await?;
        if let Some(err) = failure(parts.status, &parts.headers, &bytes, name) {
            return Err(err);
        }
        Err(unexpected(
            &format!("Bedrock answered {name} without an event stream"),
            &bytes,
            request_id,
        ))
    }
}

/// The events of a streaming operation, decoded as the body arrives (pulled: nothing is read ahead
/// of the consumer). Items: each event frame; one `Err` and then the end for an exception or error
/// frame (its type mapped as the SDK's is), a broken body or frame. Dropping the stream closes the
/// upstream call.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    decoder: FrameDecoder,
    done: bool,
    request_id: Option<String>,
}

impl EventStream {
    fn fail(&mut self, err: UpstreamError) -> Poll<Option<Result<Frame, UpstreamError>>> {
        self.done = true;
        tracing::warn!(request_id = self.request_id, kind = err.kind.as_str(), message = %err.message, "Bedrock event stream failed");
        Poll::Ready(Some(Err(err)))
    }
}

/// The error an exception or error frame carries; `None` for an event.
fn exception(frame: &Frame) -> Option<UpstreamError> {
    match frame.message_type.as_deref() {
        Some("event") | None => None,
        Some("exception") => {
            let code = frame.exception_type.clone().unwrap_or_default();
            let message = message_of(&frame.payload).unwrap_or_else(|| code.clone());
            Some(UpstreamError::new(
                proxy_convert::error_type(&code, &message),
                message,
            ))
        }
        Some(_) => {
            let code = frame.error_code.clone().unwrap_or_default();
            let message = frame
                .error_message
                .clone()
                .unwrap_or_else(|| format!("Bedrock's stream failed ({code})"));
            Some(UpstreamError::new(
                proxy_convert::error_type(&code, &message),
                message,
            ))
        }
    }
}

/// The decoded bytes of an InvokeModelWithResponseStream `chunk`; `None` for another event.
pub fn chunk_bytes(frame: &Frame) -> Result<Option<Vec<u8>>, UpstreamError> {
    if frame.event_type.as_deref() != Some("chunk") {
        tracing::debug!(event = ?frame.event_type, "unknown response stream event dropped");
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Part<'a> {
        #[serde(borrow)]
        bytes: Option<std::borrow::Cow<'a, str>>,
    }
    let parsed;
    let b64: &[u8] = match plain_bytes_field(&frame.payload) {
        Some(b64) => b64,
        None => {
            let part: Part<'_> = serde_json::from_slice(&frame.payload).map_err(|e| {
                UpstreamError::new(
                    ErrorType::ApiError,
                    format!("Bedrock sent a chunk that is not JSON: {e}"),
                )
            })?;
            let Some(b64) = part.bytes else {
                return Ok(None);
            };
            parsed = b64;
            parsed.as_bytes()
        }
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map(Some)
        .map_err(|e| {
            UpstreamError::new(
                ErrorType::ApiError,
                format!("Bedrock sent a chunk that is not base64: {e}"),
            )
        })
}

/// The base64 of a chunk's payload as Bedrock writes it, `{"bytes":"..."}` (maybe with more fields
/// after it, such as `"p"`), found without a JSON parse: base64 has neither quotes nor backslashes,
/// so the value ends at the next quote. `None` for any other shape (an escape, whitespace, another
/// key first, a payload that is not that JSON object), which the caller parses as JSON.
fn plain_bytes_field(payload: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = br#"{"bytes":""#;
    let rest = payload.strip_prefix(HEAD)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    // The object ends there, or after Bedrock's padding (`"p"`: letters and digits).
    let tail = &rest[end + 1..];
    let closed = tail == b"}"
        || tail
            .strip_prefix(br#","p":""#)
            .and_then(|pad| pad.strip_suffix(br#""}"#))
            .is_some_and(|pad| pad.iter().all(u8::is_ascii_alphanumeric));
    closed.then_some(&rest[..end])
}

fn message_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Exception {
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    serde_json::from_slice::<Exception>(payload)
        .ok()
        .and_then(|e| e.message)
}

impl Stream for EventStream {
    type Item = Result<Frame, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.decoder.next_frame() {
                Err(e) => {
                    return this.fail(UpstreamError::new(
                        ErrorType::ApiError,
                        format!("Bedrock's event stream cannot be decoded: {e}"),
                    ));
                }
                Ok(Some(frame)) => match exception(&frame) {
                    None => return Poll::Ready(Some(Ok(frame))),
                    Some(e) => return this.fail(e),
                },
                Ok(None) => {}
            }
            match poll_data(&mut this.body, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => this.decoder.push(&data),
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => {
                    if this.decoder.buffered() > 0 {
                        return this.fail(UpstreamError::new(
                            ErrorType::ApiError,
                            "Bedrock's stream ended inside a frame",
                        ));
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_one_encoded_segment() {
        assert_eq!(
            model_path("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "invoke"),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
        assert_eq!(
            model_path(
                "arn:aws:bedrock:us-east-1:1:inference-profile/x",
                "invoke-with-response-stream"
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/invoke-with-response-stream"
        );
    }

    #[test]
    fn exceptions_map_as_the_sdk_maps_them() {
        let frame = |kind: &str, payload: &'static [u8]| Frame {
            message_type: Some("exception".into()),
            exception_type: Some(kind.into()),
            payload: Bytes::from_static(payload),
            ..Frame::default()
        };
        let e = exception(&frame("throttlingException", br#"{"message":"slow down"}"#)).unwrap();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorType::RateLimitError, "slow down")
        );
        let e = exception(&frame("modelStreamErrorException", b"{}")).unwrap();
        assert_eq!(e.kind, ErrorType::ApiError);
        let e = exception(&frame("serviceUnavailableException", b"{}")).unwrap();
        assert_eq!(e.kind, ErrorType::OverloadedError);
        let chunk = Frame {
            message_type: Some("event".into()),
            event_type: Some("chunk".into()),
            payload: Bytes::from_static(br#"{"bytes":"eyJ0eXBlIjoicGluZyJ9"}"#),
            ..Frame::default()
        };
        assert!(exception(&chunk).is_none());
        assert_eq!(chunk_bytes(&chunk).unwrap().unwrap(), br#"{"type":"ping"}"#);
    }

    #[test]
    fn a_chunk_reads_the_same_with_or_without_the_fast_path() {
        let chunk = |payload: &str| Frame {
            message_type: Some("event".into()),
            event_type: Some("chunk".into()),
            payload: Bytes::from(payload.to_owned()),
            ..Frame::default()
        };
        let ping = Some(br#"{"type":"ping"}"#.to_vec());
        // Taken by the fast path: Bedrock's own shapes.
        for payload in [
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9"}"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"abcXYZ019"}"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":""}"#,
        ] {
            assert!(plain_bytes_field(payload.as_bytes()).is_some(), "{payload}");
            assert_eq!(chunk_bytes(&chunk(payload)).unwrap(), ping, "{payload}");
        }
        // Left to the JSON parse, which reads them the same or rejects them.
        for payload in [
            r#"{"p":"abc","bytes":"eyJ0eXBlIjoicGluZyJ9"}"#,
            r#"{ "bytes":"eyJ0eXBlIjoicGluZyJ9"}"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9" }"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"a b"}"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","q":1}"#,
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9\u0000"}"#,
        ] {
            assert!(plain_bytes_field(payload.as_bytes()).is_none(), "{payload}");
        }
        assert_eq!(
            chunk_bytes(&chunk(r#"{"p":"abc","bytes":"eyJ0eXBlIjoicGluZyJ9"}"#)).unwrap(),
            ping
        );
        assert_eq!(chunk_bytes(&chunk(r#"{"p":"abc"}"#)).unwrap(), None);
        // Not JSON, or not base64: an error either way.
        for payload in [
            r#"{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"a"}x"#,
            r#"{"bytes":"not base64!"}"#,
            r#"{"bytes":"#,
        ] {
            assert!(chunk_bytes(&chunk(payload)).is_err(), "{payload}");
        }
    }
}
