//! SSE response bodies: one relay for the events of every route, `ping` after upstream silence, an
//! SSE `error` event for a failure after the stream started. Events that are ready together go out
//! in one frame, so one write (the first content delta ends its frame); none waits for another. The body is pulled by hyper as the
//! client reads; when the client goes away hyper drops it, which drops the upstream stream and so
//! cancels the Bedrock call at once. The request's [`Account`] travels with the body and settles when
//! it ends, however it ends.

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderName, HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use proxy_bedrock::{ReplyEvent, ReplyStream, UpstreamError};
use proxy_schema::{ErrorBody, ErrorType, StreamEvent};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::accounting::Account;
use crate::service::Body;

const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

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
    h.insert(ACCEL_BUFFERING, HeaderValue::from_static("no"));
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
fn error_event(kind: ErrorType, message: String) -> String {
    StreamEvent::Error {
        error: ErrorBody { kind, message },
    }
    .to_sse()
}

/// At most about this many bytes of ready events go out in one frame.
const BATCH: usize = 32 * 1024;

/// How many times in a row a body steps aside for its upstream's next event before it writes what
/// it has. Measured (hyper 1.12, tokio 1.54, every route): when Bedrock's bytes were all read, the
/// next event was ready after the second.
const STEPS: u32 = 3;

/// What an item of the upstream stream was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// The stream ends with it.
    End,
    /// A content delta.
    Delta,
    /// Any other event.
    Other,
}

/// Accounts for one item of the upstream stream and adds its SSE text to `out`.
fn settle(
    account: &mut Account,
    item: Option<Result<ReplyEvent, UpstreamError>>,
    out: &mut String,
) -> Settled {
    match item {
        None => {
            account.end("completed");
            Settled::End
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
            event.write_sse(out);
            if matches!(event.event, Some(StreamEvent::ContentBlockDelta { .. })) {
                Settled::Delta
            } else {
                Settled::Other
            }
        }
        Some(Err(e)) => {
            account.end("upstream_error");
            account.bedrock_error(e.kind);
            out.push_str(&error_event(e.kind, e.message));
            Settled::End
        }
    }
}

/// The upstream's next item, if it is ready now or after the body stepped aside (let the tasks
/// already woken run) up to `STEPS` times: the upstream connection's task, woken when the last
/// event was taken, may hold the next one in its buffer already. `None` when Bedrock has to be
/// waited for.
async fn ready_soon(events: &mut ReplyStream) -> Option<Option<Result<ReplyEvent, UpstreamError>>> {
    for _ in 0..STEPS {
        if let Poll::Ready(item) = futures::poll!(events.next()) {
            return Some(item);
        }
        StepAside(false).await;
    }
    match futures::poll!(events.next()) {
        Poll::Ready(item) => Some(item),
        Poll::Pending => None,
    }
}

/// The SSE text of `item` and of the events ready right after it, for one frame (so one write:
/// hyper writes its buffer each time the body has nothing more, and a write per event, a system
/// call and a wake-up of the client, cost more than the rest of relaying it), and whether the
/// stream ends with them. The stream's first content delta ends its frame at once: the time to the
/// first token is what a client feels. Bedrock is never waited for here (`ready_soon`).
async fn gather(
    item: Option<Result<ReplyEvent, UpstreamError>>,
    events: &mut ReplyStream,
    account: &mut Account,
    delta_out: &mut bool,
) -> (String, bool) {
    let mut out = String::new();
    let mut settled = settle(account, item, &mut out);
    while settled == Settled::Other || (settled == Settled::Delta && *delta_out) {
        if out.len() >= BATCH {
            break;
        }
        let Some(item) = ready_soon(events).await else {
            break;
        };
        settled = settle(account, item, &mut out);
    }
    *delta_out |= settled == Settled::Delta;
    (out, settled == Settled::End)
}

/// Pending once, with its task woken at once: the tasks woken before it run first.
struct StepAside(bool);

impl Future for StepAside {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The SSE body of a streamed reply, from any route.
pub(crate) async fn relay(
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
    // The first events, when the upstream's buffer holds them already, go out with the response
    // head, in one write: hyper writes the head as soon as the body has nothing to give it.
    let mut delta_out = false;
    let mut early = match ready_soon(&mut events).await {
        Some(item) => Some(gather(item, &mut events, &mut account, &mut delta_out).await),
        None => None,
    };
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
            let (out, ended) = if let Some(batch) = early.take() {
                batch
            } else {
                let next_ping = last_frame + ping;
                // Moved earlier only when the limit shrank (a shorter limit between events than
                // for the first one); later deadlines wait until the timer fires.
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
                        yield Ok(Frame::data(Bytes::from(error_event(
                            ErrorType::OverloadedError,
                            "the gateway is shutting down; the stream was cut at the end of its drain time".into(),
                        ))));
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
                        yield Ok(Frame::data(Bytes::from(error_event(ErrorType::TimeoutError, text))));
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
                gather(item, &mut events, &mut account, &mut delta_out).await
            };
            last_event = Instant::now();
            last_frame = last_event;
            got_event = true;
            if !out.is_empty() {
                yield Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(out)));
            }
            if ended {
                break;
            }
        }
        drop(events);
        drop(account);
    };
    sse_response(BodyExt::boxed_unsync(StreamBody::new(frames)))
}
