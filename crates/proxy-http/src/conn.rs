//! Connection-level defences (issue 12): what a connection may cost before it sent a request, and
//! what becomes of the refusals hyper makes on its own.
//!
//! - [`Tracked`] wraps each accepted socket: it notes when the first byte of a request head arrives
//!   while no request is in flight, and rewrites hyper's automatic refusals (431, 414, 400 for a
//!   head it cannot parse; written with an empty body) into the Anthropic error envelope.
//! - [`ConnState`] counts the requests in flight on a connection (a request is in flight from the
//!   moment hyper hands it over until its response body is dropped). [`ConnState::expired`] ends
//!   when the connection has been idle for `IDLE_TIMEOUT`, has been sending a request head for
//!   longer than `HEADER_READ_TIMEOUT`, or could not write a response for `IDLE_TIMEOUT` (the client
//!   stopped reading); the server loop then drops the connection.
//! - [`refuse`] answers a connection beyond `MAX_CONNECTIONS` with a 503 in the envelope.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What one connection is doing, shared by its socket wrapper, its requests and its watcher.
#[derive(Debug)]
pub(crate) struct ConnState {
    born: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `born` when the connection last became idle.
    idle_since: AtomicU64,
    /// 1 + milliseconds since `born` of the first byte read while idle (0: none yet).
    head_started: AtomicU64,
    /// 1 + milliseconds since `born` when a write last found the socket full (0: writes progress).
    write_blocked: AtomicU64,
    /// Per response body: 1 + milliseconds since `born` when it last gave hyper a frame that hyper
    /// has not come back for (0: it is waiting for its own source, or done). A body hyper does not
    /// come back to is one whose client does not read (HTTP/2: a closed flow-control window).
    bodies: std::sync::Mutex<Vec<Arc<AtomicU64>>>,
}

/// Why a connection was closed by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    HeaderRead,
    Idle,
    /// A response could not be written for `IDLE_TIMEOUT`: the client stopped reading.
    Write,
}

impl Expiry {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Expiry::HeaderRead => "header_read_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Write => "write_timeout",
        }
    }
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnState {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            bodies: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// A request was handed to the service: in flight until the guard is dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    pub(crate) fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started
                .store(self.now_ms() + 1, Ordering::Release);
        }
    }

    fn write_progress(&self, blocked: bool) {
        let was = self.write_blocked.load(Ordering::Acquire);
        if blocked && was == 0 {
            self.write_blocked
                .store(self.now_ms() + 1, Ordering::Release);
        } else if !blocked && was != 0 {
            // Writing again: whatever hyper had buffered counts as in flight until now.
            self.write_blocked.store(0, Ordering::Release);
            self.idle_since.fetch_max(self.now_ms(), Ordering::AcqRel);
        }
    }

    /// A slot for a response body's [`GuardedBody`] to say when it gave hyper a frame.
    fn body_slot(&self) -> Arc<AtomicU64> {
        let slot = Arc::new(AtomicU64::new(0));
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies.retain(|b| Arc::strong_count(b) > 1);
        bodies.push(slot.clone());
        slot
    }

    /// When the oldest frame still not followed by hyper's next poll was given (ms since `born`).
    fn oldest_unread_frame(&self) -> Option<u64> {
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies.retain(|b| Arc::strong_count(b) > 1);
        bodies
            .iter()
            .map(|b| b.load(Ordering::Acquire))
            .filter(|at| *at > 0)
            .min()
            .map(|at| at - 1)
    }

    /// Completes when the connection has sent part of a request head for longer than `header`, has
    /// had nothing in flight for longer than `idle`, or could not write for longer than `idle`
    /// (a client that stopped reading its response).
    ///
    /// Nothing wakes it: it sleeps until the earliest deadline the state allows and looks again
    /// (a request costs no wake-up of the watcher). Deadlines only move later while it sleeps,
    /// but two: a request head that starts while the connection is idle, and a request that
    /// starts while its head was being read (its response's writes then count). So an idle
    /// connection is looked at every `header`, which is when a head that started just after it
    /// was looked at can expire at the earliest, and one reading a head every half `idle`.
    pub(crate) async fn expired(&self, header: Duration, idle: Duration) -> Expiry {
        let (header_ms, idle_ms) = (
            (header.as_millis() as u64).max(1),
            (idle.as_millis() as u64).max(1),
        );
        loop {
            let now = self.now_ms();
            let blocked = self.write_blocked.load(Ordering::Acquire);
            // A write that does not move: the client stopped reading (whether the response body
            // is still being produced, or hyper holds the rest of it in its buffer).
            let wait_ms = if blocked > 0 {
                let deadline = blocked - 1 + idle_ms;
                if now >= deadline {
                    return Expiry::Write;
                }
                // Re-checked then: the write may have moved meanwhile.
                (deadline - now).max(10)
            } else if self.in_flight.load(Ordering::Acquire) > 0 {
                // Bodies are looked at every half `idle` (no wake-up per frame).
                match self.oldest_unread_frame() {
                    Some(at) if now >= at + idle_ms => return Expiry::Write,
                    Some(at) => (at + idle_ms - now).min(idle_ms / 2).max(10),
                    None => (idle_ms / 2).max(10),
                }
            } else {
                let started = self.head_started.load(Ordering::Acquire);
                if started > 0 {
                    let deadline = started - 1 + header_ms;
                    if now >= deadline {
                        return Expiry::HeaderRead;
                    }
                    // The head may become a request while this sleeps, and that request's
                    // response a write that does not move: looked at again within half `idle`.
                    (deadline - now).min(idle_ms / 2).max(1)
                } else {
                    let deadline = self.idle_since.load(Ordering::Acquire) + idle_ms;
                    if now >= deadline {
                        return Expiry::Idle;
                    }
                    (deadline - now).min(header_ms)
                }
            };
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }
}

/// A request in flight on its connection (see [`ConnState::start_request`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.now_ms(), Ordering::Release);
        s.head_started.store(0, Ordering::Release);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is dropped, and turns a panic while
/// producing it into an aborted response (counted) instead of a lost task.
pub(crate) struct GuardedBody {
    inner: crate::service::Body,
    guard: Option<InFlight>,
    panics: prometheus::IntCounter,
    /// See [`ConnState::bodies`].
    slot: Arc<AtomicU64>,
    state: Arc<ConnState>,
}

impl GuardedBody {
    pub(crate) fn new(
        inner: crate::service::Body,
        guard: InFlight,
        panics: prometheus::IntCounter,
    ) -> Self {
        let state = guard.0.clone();
        GuardedBody {
            inner,
            guard: Some(guard),
            panics,
            slot: state.body_slot(),
            state,
        }
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut *inner).poll_frame(cx)
        })) {
            Ok(Poll::Ready(Some(Ok(frame)))) => {
                this.slot.store(this.state.now_ms() + 1, Ordering::Release);
                Poll::Ready(Some(Ok(frame)))
            }
            Ok(Poll::Ready(Some(Err(never)))) => match never {},
            Ok(Poll::Ready(None)) => {
                this.slot.store(0, Ordering::Release);
                this.guard.take();
                Poll::Ready(None)
            }
            Ok(Poll::Pending) => {
                this.slot.store(0, Ordering::Release);
                Poll::Pending
            }
            Err(panic) => {
                this.panics.inc();
                tracing::error!(
                    panic = panic_message(&*panic),
                    "a response body panicked; the response is aborted"
                );
                this.inner = crate::service::full(Bytes::new());
                this.slot.store(0, Ordering::Release);
                this.guard.take();
                Poll::Ready(Some(Err(io::Error::other("the response body panicked"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// The Anthropic error envelope as a whole HTTP/1.1 response that closes the connection.
pub(crate) fn envelope_response(status_line: &str, kind: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    })
    .to_string();
    format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-should-retry: {}\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        if kind == "overloaded_error" { "true" } else { "false" },
    )
    .into_bytes()
}

/// hyper's own refusals (a head it cannot parse) are written with an empty body and no
/// `request-id` (every response of the service has one): that is how they are told apart.
fn automatic_refusal(buf: &[u8]) -> Option<Vec<u8>> {
    let head = buf.get(..buf.len().min(1024))?;
    if !head.starts_with(b"HTTP/1.1 4") && !head.starts_with(b"HTTP/1.0 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let lower = text.to_ascii_lowercase();
    if lower.contains("\r\nrequest-id:") || !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let status_line = text.split("\r\n").next()?;
    let message = match status_line.get(9..12)? {
        "431" => "request headers are too large".to_owned(),
        "414" => "the request URI is too long".to_owned(),
        "400" => "malformed HTTP request".to_owned(),
        other => format!("HTTP request refused ({other})"),
    };
    Some(envelope_response(
        status_line,
        "invalid_request_error",
        &message,
    ))
}

/// A socket that reports reads to its [`ConnState`] and rewrites hyper's automatic refusals.
pub(crate) struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
    /// A rewritten refusal being written: (bytes, written so far, length hyper asked to write).
    rewrite: Option<(Vec<u8>, usize, usize)>,
    rewrote: bool,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> Self {
        Tracked {
            inner,
            state,
            rewrite: None,
            rewrote: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> Tracked<T> {
    /// Writes the pending rewritten refusal; `Ready(Ok(n))` reports hyper's `n` bytes as written.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, report)) = &mut self.rewrite else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = *report;
        self.rewrite = None;
        Poll::Ready(Ok(n))
    }

    fn start_rewrite(&mut self, buf: &[u8]) -> bool {
        if self.rewrote || self.state.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        match automatic_refusal(buf) {
            Some(bytes) => {
                self.rewrote = true;
                self.rewrite = Some((bytes, 0, buf.len()));
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_some() || self.start_rewrite(buf) {
            return self.poll_rewrite(cx);
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.state.write_progress(r.is_pending());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_some() {
            return self.poll_rewrite(cx);
        }
        // hyper's refusals are one head without a body: all of it in the first slice.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && bufs.iter().filter(|b| !b.is_empty()).count() == 1
            && self.start_rewrite(first)
        {
            return self.poll_rewrite(cx);
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.state.write_progress(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers a connection beyond `MAX_CONNECTIONS`: a 503 `overloaded_error` in the envelope, the
/// write side closed, and what the client sent read and discarded until it is quiet for 100 ms (so
/// that closing does not reset the connection before the client read the answer; at most 1 s). At most `refusing` such
/// answers are in progress; beyond that the connection is closed at once.
pub(crate) fn refuse(
    mut stream: tokio::net::TcpStream,
    refusing: &Arc<tokio::sync::Semaphore>,
    max_connections: usize,
) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let bytes = envelope_response(
            "HTTP/1.1 503 Service Unavailable",
            "overloaded_error",
            &format!("the gateway is serving its limit of {max_connections} connections; retry"),
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            // Closing with unread bytes would reset the connection: read what was sent until the
            // client is quiet for 100 ms.
            let mut sink = [0u8; 4096];
            let mut total = 0;
            loop {
                let read = tokio::io::AsyncReadExt::read(&mut stream, &mut sink);
                match tokio::time::timeout(Duration::from_millis(100), read).await {
                    Ok(Ok(n)) if n > 0 && total < 64 * 1024 => total += n,
                    _ => return Ok::<_, io::Error>(()),
                }
            }
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn hypers_refusals_become_the_envelope_and_service_responses_do_not() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 18:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(automatic_refusal(hyper_431).unwrap()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        let body: serde_json::Value =
            serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nrequest-id: req_1\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_refusal(ours).is_none());
        assert!(automatic_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    #[tokio::test]
    async fn a_panicking_body_aborts_its_response_and_is_counted() {
        use http_body_util::BodyExt;
        let frames = futures::stream::iter([0, 1]).map(|n| {
            assert!(n == 0, "a body that panics on its second frame");
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"x")))
        });
        let body = BodyExt::boxed_unsync(http_body_util::StreamBody::new(frames));
        let state = ConnState::new();
        let panics = prometheus::IntCounter::new("p", "p").unwrap();
        let mut guarded = GuardedBody::new(body, state.start_request(), panics.clone());
        assert!(guarded.frame().await.unwrap().is_ok());
        assert_eq!(state.in_flight.load(Ordering::Acquire), 1);
        assert!(guarded.frame().await.unwrap().is_err());
        assert_eq!(panics.get(), 1);
        assert_eq!(
            state.in_flight.load(Ordering::Acquire),
            0,
            "no longer in flight"
        );
    }

    #[tokio::test]
    async fn a_connection_expires_idle_or_slow_but_not_while_serving() {
        let s = ConnState::new();
        let t = Instant::now();
        assert_eq!(
            s.expired(Duration::from_secs(9), Duration::from_millis(100))
                .await,
            Expiry::Idle
        );
        assert!(t.elapsed() >= Duration::from_millis(100));
        let s = ConnState::new();
        s.bytes_read();
        assert_eq!(
            s.expired(Duration::from_millis(100), Duration::from_secs(9))
                .await,
            Expiry::HeaderRead
        );
        let s = ConnState::new();
        let guard = s.start_request();
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            s.expired(Duration::from_millis(50), Duration::from_millis(50)),
        )
        .await;
        assert!(r.is_err(), "a request in flight keeps the connection");
        drop(guard);
        let t = Instant::now();
        assert_eq!(
            s.expired(Duration::from_secs(9), Duration::from_millis(100))
                .await,
            Expiry::Idle
        );
        assert!(t.elapsed() >= Duration::from_millis(80));
    }
}
