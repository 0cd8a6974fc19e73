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
use proxy_schema::{ErrorBody, ErrorType, StreamEvent};
use std::time::{Duration, Instant};

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

/// How long a stream may wait, and what ends it early.
pub(crate) struct RelayLimits {
    /// SSE `ping` after this much silence.
    pub ping: Duration,
    /// Bedrock's first event must come within this time.
    pub first_event: Duration,
    /// After the first, no gap between Bedrock's events may be longer.
    pub between_events: Duration,
    /// Becomes true when the drain time is over: the stream ends with an SSE `error`.
    pub cut: tokio::sync::watch::Receiver<bool>,
    /// Counts streams the gateway ended, by reason.
    pub cut_metric: prometheus::IntCounterVec,
}

/// What woke the relay.
enum Step<T> {
    Cut,
    NoCut,
    Item(Option<T>),
    Tick,
}

/// An SSE `error` event the gateway itself ends a stream with.
fn error_event(kind: ErrorType, message: String) -> Bytes {
    Bytes::from(
        StreamEvent::Error {
            error: ErrorBody { kind, message },
        }
        .to_sse(),
    )
}

/// The SSE body of a streamed reply, from any route.
pub(crate) fn relay(
    limits: RelayLimits,
    mut events: ReplyStream,
    mut account: Account,
) -> Response<Body> {
    let RelayLimits {
        ping,
        first_event,
        between_events,
        mut cut,
        cut_metric,
    } = limits;
    account.relaying();
    let frames = async_stream::stream! {
        let mut last_event = Instant::now();
        let mut last_frame = last_event;
        let mut got_event = false;
        let mut cut_open = true;
        // Made once and kept across events: a timer entry or a watch registration made and
        // dropped for every event cost more than relaying it. The timer is only moved when it
        // fires early (events came since it was set) or is due for a ping.
        let cut_changed = cut.wait_for(|cut| *cut);
        tokio::pin!(cut_changed);
        let timer = tokio::time::sleep_until((last_event + first_event.min(ping)).into());
        tokio::pin!(timer);
        loop {
            let limit = if got_event { between_events } else { first_event };
            let deadline = last_event + limit;
            let next_ping = last_frame + ping;
            // Moved earlier only when the limit shrank (a shorter limit between events than for
            // the first one); later deadlines wait until the timer fires.
            let wake = deadline.min(next_ping);
            if wake < timer.deadline().into_std() {
                timer.as_mut().reset(wake.into());
            }
            // The wait for Bedrock's next event is not the gateway's overhead.
            let asked = Instant::now();
            let step = tokio::select! {
                biased;
                changed = &mut cut_changed, if cut_open => match changed {
                    Ok(_) => Step::Cut,
                    // The gateway is gone: nothing will cut this stream any more.
                    Err(_) => Step::NoCut,
                },
                item = events.next() => Step::Item(item),
                () = &mut timer => Step::Tick,
            };
            account.waited(asked.elapsed());
            let item = match step {
                Step::NoCut => {
                    cut_open = false;
                    continue;
                }
                Step::Cut => {
                    account.end("shutdown");
                    cut_metric.with_label_values(&["shutdown"]).inc();
                    yield Ok(Frame::data(error_event(
                        ErrorType::OverloadedError,
                        "the gateway is shutting down; the stream was cut at the end of its drain time".into(),
                    )));
                    break;
                }
                Step::Tick if Instant::now() >= deadline => {
                    let (reason, text) = if got_event {
                        ("idle_timeout", format!("Bedrock sent no event for {} s (STREAM_IDLE_TIMEOUT)", limit.as_secs_f64()))
                    } else {
                        ("first_event_timeout", format!("Bedrock sent no event within {} s (STREAM_FIRST_EVENT_TIMEOUT)", limit.as_secs_f64()))
                    };
                    account.end(reason);
                    cut_metric.with_label_values(&[reason]).inc();
                    yield Ok(Frame::data(error_event(ErrorType::TimeoutError, text)));
                    break;
                }
                Step::Tick => {
                    // Fired for a ping, or for a deadline that events have since moved.
                    let ping_due = Instant::now() >= next_ping;
                    if ping_due {
                        last_frame = Instant::now();
                    }
                    timer.as_mut().reset(deadline.min(last_frame + ping).into());
                    if ping_due {
                        yield Ok(Frame::data(Bytes::from_static(PING.as_bytes())));
                    }
                    continue;
                }
                Step::Item(item) => item,
            };
            last_event = Instant::now();
            last_frame = last_event;
            got_event = true;
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
                    yield Ok(Frame::data(error_event(e.kind, e.message)));
                    break;
                }
            }
        }
        drop(events);
        drop(account);
    };
    sse_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
