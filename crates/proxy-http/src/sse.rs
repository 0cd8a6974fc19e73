//! SSE response bodies: one relay for the events of every route, `ping` after upstream silence, an
//! SSE `error` event for a failure after the stream started. The body is pulled by hyper as the
//! client reads; when the client goes away hyper drops it, which drops the upstream stream and so
//! cancels the Bedrock call at once. The request's [`Account`] travels with the body and settles when
//! it ends, however it ends.

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use proxy_bedrock::ReplyStream;
use proxy_schema::{ErrorBody, StreamEvent};

use crate::accounting::Account;
use crate::service::Body;

const PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

fn sse_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies in front (nginx) must not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A cached message replayed as the stream that would have produced it.
pub(crate) fn replay(message: &proxy_schema::Message) -> Response<Body> {
    let text: String = proxy_convert::message_events(message)
        .iter()
        .map(StreamEvent::to_sse)
        .collect();
    sse_response(crate::service::full(text))
}

/// The SSE body of a streamed reply, from any route.
pub(crate) fn relay(
    ping: std::time::Duration,
    mut events: ReplyStream,
    mut account: Account,
) -> Response<Body> {
    account.relaying();
    let frames = async_stream::stream! {
        loop {
            // The wait for Bedrock's next event is not the gateway's overhead.
            let asked = std::time::Instant::now();
            let item = tokio::time::timeout(ping, events.next()).await;
            account.waited(asked.elapsed());
            let item = match item {
                Err(_) => {
                    yield Ok(Frame::data(Bytes::from_static(PING.as_bytes())));
                    continue;
                }
                Ok(item) => item,
            };
            match item {
                None => {
                    account.end("completed");
                    break;
                }
                Some(Ok(event)) => {
                    match &event.event {
                        Some(StreamEvent::Error { error }) => {
                            account.end("upstream_error");
                            account.bedrock_error(error.kind);
                        }
                        Some(StreamEvent::MessageStop) => account.end("completed"),
                        _ => {}
                    }
                    match &event.event {
                        Some(e) => account.event(e),
                        None => account.unmodelled_event(),
                    }
                    yield Ok::<_, std::convert::Infallible>(Frame::data(event.to_sse()));
                }
                Some(Err(e)) => {
                    account.end("upstream_error");
                    account.bedrock_error(e.kind);
                    let event = StreamEvent::Error { error: ErrorBody { kind: e.kind, message: e.message } };
                    yield Ok(Frame::data(Bytes::from(event.to_sse())));
                    break;
                }
            }
        }
        drop(account);
    };
    sse_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
