//! Transport faults (`reset`, `truncate`, `bad_crc`, `oversize`, `stall`) and the connection
//! bookkeeping behind `GET /_sim/connections`.
//!
//! Every accepted socket is wrapped in a [`FaultIo`] and gets a [`ConnCtl`], which a request on it
//! can use to end the connection from inside a response: [`Abort::Reset`] sets `SO_LINGER` to 0
//! before the socket is closed, so the peer gets a TCP reset instead of a FIN.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How a connection is ended from inside a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// `SO_LINGER` 0, then close: the peer sees a reset.
    Reset,
    /// A plain close (FIN) in the middle of a response.
    Close,
}

/// One connection's control: a response asks for its end here.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    abort: Mutex<Option<Abort>>,
    notify: Notify,
}

impl ConnCtl {
    /// Ends the connection (the task serving it drops it at once).
    pub(crate) fn kill(&self, how: Abort) {
        *self.abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        self.notify.notify_one();
    }

    /// Resolves when a response asked for the connection's end.
    pub(crate) async fn killed(&self) {
        self.notify.notified().await;
    }

    fn abort(&self) -> Option<Abort> {
        *self.abort.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Lets what was already written reach the socket, ends the connection `how`, and never returns
/// (the response is dropped with its connection).
pub(crate) async fn abort_connection(conn: &ConnCtl, how: Abort) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.kill(how);
    std::future::pending::<()>().await;
}

/// A served socket: reads and writes go to the stream; on drop, a reset asked for sets
/// `SO_LINGER` 0 first.
pub(crate) struct FaultIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl FaultIo {
    pub(crate) fn new(inner: TcpStream, ctl: Arc<ConnCtl>) -> Self {
        FaultIo { inner, ctl }
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctl.abort() == Some(Abort::Reset) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts of connections: open ones, and requests being answered (a stream until its body is
/// dropped), the control endpoints not counted.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) open: AtomicUsize,
    pub(crate) busy: AtomicUsize,
}

/// Holds one count up while it lives.
pub(crate) struct Held(Arc<Counts>, fn(&Counts) -> &AtomicUsize);

impl Held {
    pub(crate) fn open(counts: &Arc<Counts>) -> Held {
        counts.open.fetch_add(1, Ordering::SeqCst);
        Held(counts.clone(), |c| &c.open)
    }

    pub(crate) fn busy(counts: &Arc<Counts>) -> Held {
        counts.busy.fetch_add(1, Ordering::SeqCst);
        Held(counts.clone(), |c| &c.busy)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

/// An event-stream frame with its message CRC (the last 4 bytes) made wrong.
pub(crate) fn bad_crc(frame: &Bytes) -> Bytes {
    let mut v = frame.to_vec();
    if let Some(last) = v.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(v)
}

/// The first half of `bytes`.
pub(crate) fn half(bytes: &Bytes) -> Bytes {
    bytes.slice(..bytes.len() / 2)
}

/// The size an oversize fault claims: 16 MiB and one byte over.
pub(crate) const OVERSIZE: usize = (16 << 20) + 1;

/// An event-stream prelude (with a valid prelude CRC) claiming a frame of [`OVERSIZE`] bytes.
pub(crate) fn oversize_prelude() -> Bytes {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&(OVERSIZE as u32).to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(p)
}

/// An SSE `data:` line of [`OVERSIZE`] bytes without its line end.
pub(crate) fn oversize_sse_line() -> Bytes {
    let mut line = Vec::with_capacity(OVERSIZE + 6);
    line.extend_from_slice(b"data: ");
    line.resize(OVERSIZE + 6, b'x');
    Bytes::from(line)
}

/// An SSE event named `name` whose data is the first half of `data` (not JSON).
pub(crate) fn malformed_sse(name: &str, data: &str) -> Bytes {
    let cut = data
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= data.len() / 2)
        .last()
        .unwrap_or(0);
    Bytes::from(format!("event: {name}\ndata: {}\n\n", &data[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_prelude_has_a_valid_crc_and_claims_over_16_mib() {
        let p = oversize_prelude();
        assert_eq!(p.len(), 12);
        let total = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        assert!(total > 16 << 20);
        assert_eq!(
            crc32fast::hash(&p[..8]).to_be_bytes(),
            [p[8], p[9], p[10], p[11]]
        );
    }

    #[test]
    fn malformed_sse_is_not_json() {
        let e = malformed_sse("content_block_delta", r#"{"type":"content_block_delta"}"#);
        let text = std::str::from_utf8(&e).unwrap();
        let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(data).is_err());
        assert!(text.ends_with("\n\n"));
    }
}
