//! An incremental decoder of `text/event-stream` bodies (the WHATWG "event stream interpretation"),
//! sans I/O: feed it body chunks as they arrive, take the complete events out.
//!
//! Lines end in `\r\n`, `\n` or `\r` (a `\r` at the end of one chunk and a `\n` at the start of the
//! next are one line end). Comments (`:` lines) and the `id` and `retry` fields are ignored; several
//! `data:` lines join with `\n`. An event is dispatched by an empty line; one left unfinished when the
//! body ends is discarded, as the standard says. Bytes that are not UTF-8 are replaced (U+FFFD), never
//! refused. What the decoder holds is bounded: a line, or an event's data, longer than the limit is an
//! error, so a body that never ends a line cannot grow memory without bound.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why a stream cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or an event's data grew past the decoder's limit.
    #[error("an SSE line or event is longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// The incremental decoder. See the module documentation.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes received; those before `start` are consumed (dropped at the next push, so a chunk
    /// holding many events is shifted once, not once per line).
    buf: Vec<u8>,
    start: usize,
    /// Where the scan for a line end resumes in `buf` (nothing from `start` to it is a line end).
    scanned: usize,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to that line end.
    skip_lf: bool,
    pending: Pending,
    limit: usize,
}

/// The event being read.
#[derive(Debug, Default)]
struct Pending {
    event: String,
    data: String,
    /// At least one `data` field was seen in the current event.
    has_data: bool,
}

/// The default bound on one line or one event's data: 16 MiB. Claude's events are a few KB at most;
/// the bound only stops a broken or hostile upstream.
pub const DEFAULT_LIMIT: usize = 16 << 20;

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new(DEFAULT_LIMIT)
    }
}

impl SseDecoder {
    /// A decoder refusing lines and events' data longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            pending: Pending::default(),
            limit,
        }
    }

    /// Appends a chunk of the body. Take the events it completed with [`SseDecoder::next_event`].
    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            chunk.strip_prefix(b"\n").unwrap_or(chunk)
        } else {
            chunk
        };
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, `Ok(None)` when more bytes are needed. After an error the decoder
    /// should be dropped: the stream is not decodable.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            let from = self.scanned.max(self.start);
            let Some(line_end) = memchr::memchr2(b'\n', b'\r', &self.buf[from..]).map(|p| p + from)
            else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.limit {
                    return Err(SseError::TooLong { limit: self.limit });
                }
                return Ok(None);
            };
            if line_end - self.start > self.limit {
                return Err(SseError::TooLong { limit: self.limit });
            }
            // The line end: `\r\n` is one, `\r` at the end of the buffer may be the first half of one.
            let mut end = line_end + 1;
            if self.buf[line_end] == b'\r' {
                match self.buf.get(end) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let start = std::mem::replace(&mut self.start, end);
            self.scanned = end;
            // Borrowed from the buffer unless it needs replacements: no copy per line. Validated
            // first by `from_utf8`, which skims ASCII a word at a time (`from_utf8_lossy` goes
            // byte by byte).
            let bytes = &self.buf[start..line_end];
            let line = match std::str::from_utf8(bytes) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(bytes),
            };
            if let Some(event) = self.pending.line(&line, self.limit)? {
                return Ok(Some(event));
            }
        }
    }
}

impl Pending {
    /// Processes one line; returns the event an empty line dispatches.
    fn line(&mut self, line: &str, limit: usize) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return Ok(None);
            }
            return Ok(Some(SseEvent {
                event: if event.is_empty() {
                    "message".to_owned()
                } else {
                    event
                },
                data,
            }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(value);
                if self.data.len() > limit {
                    return Err(SseError::TooLong { limit });
                }
            }
            // `id`, `retry` and unknown fields do not concern a relay of Anthropic events.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(e) = d.next_event()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_with_names_and_data() {
        let got = decode_all(&[
            b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {}\n\n",
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![ev("ping", "{\"type\":\"ping\"}"), ev("message_stop", "{}")]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let got = decode_all(&[b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r"]).unwrap();
        assert_eq!(got, vec![ev("a", "1"), ev("b", "2")]);
    }

    #[test]
    fn cr_and_lf_split_across_chunks_are_one_line_end() {
        // Were the `\n` a second line end, it would dispatch an empty event early: `data: 1` would
        // be followed by a blank line and the `event: x` would land in a separate event.
        let got = decode_all(&[b"data: 1\r", b"\nevent: x\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(got, vec![ev("x", "1")]);
    }

    #[test]
    fn comments_ignored_multi_line_data_joined() {
        let got =
            decode_all(&[b": keep-alive\n\ndata: first\ndata:second\ndata\nid: 7\nretry: 10\n\n"])
                .unwrap();
        assert_eq!(got, vec![ev("message", "first\nsecond\n")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_name_resets() {
        let got = decode_all(&[b"event: lonely\n\ndata: x\n\n"]).unwrap();
        assert_eq!(got, vec![ev("message", "x")]);
    }

    #[test]
    fn unfinished_event_at_the_end_is_held() {
        let mut d = SseDecoder::default();
        d.push(b"event: a\ndata: 1\n");
        assert_eq!(d.next_event().unwrap(), None);
        d.push(b"\n");
        assert_eq!(d.next_event().unwrap(), Some(ev("a", "1")));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let got = decode_all(&[b"data: \xff\xfe ok\n\n"]).unwrap();
        assert_eq!(got, vec![ev("message", "\u{fffd}\u{fffd} ok")]);
    }

    #[test]
    fn multibyte_character_split_across_chunks_survives() {
        let text = "data: é€\n\n".as_bytes();
        let got = decode_all(&[&text[..7], &text[7..9], &text[9..]]).unwrap();
        assert_eq!(got, vec![ev("message", "é€")]);
    }

    #[test]
    fn unbounded_line_is_refused() {
        let mut d = SseDecoder::new(32);
        d.push(&[b'a'; 20]);
        assert_eq!(d.next_event(), Ok(None));
        d.push(&[b'a'; 20]);
        assert_eq!(d.next_event(), Err(SseError::TooLong { limit: 32 }));
    }

    #[test]
    fn complete_line_over_the_limit_is_refused() {
        let mut d = SseDecoder::new(8);
        d.push(b"data: 0123456789\n\n");
        assert_eq!(d.next_event(), Err(SseError::TooLong { limit: 8 }));
    }

    #[test]
    fn unbounded_data_across_many_lines_is_refused() {
        let mut d = SseDecoder::new(16);
        d.push(b"data: 0123456\ndata: 0123456\ndata: 0123456\n");
        assert_eq!(d.next_event(), Err(SseError::TooLong { limit: 16 }));
    }

    #[test]
    fn long_lines_under_the_limit_pass() {
        let mut d = SseDecoder::new(1000);
        let mut body = b"data: ".to_vec();
        body.extend_from_slice(&[b'x'; 900]);
        body.extend_from_slice(b"\n\n");
        for c in body.chunks(7) {
            d.push(c);
        }
        let e = d.next_event().unwrap().unwrap();
        assert_eq!(e.data.len(), 900);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A valid event: a name (or none), data lines, an optional comment, in any line-end style.
    fn event() -> impl Strategy<Value = (Option<String>, Vec<String>, bool, &'static str)> {
        (
            proptest::option::of("[a-z_]{1,12}"),
            proptest::collection::vec("[ -~é€✓]{0,30}", 1..4),
            any::<bool>(),
            prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        )
    }

    fn render(
        events: &[(Option<String>, Vec<String>, bool, &'static str)],
    ) -> (Vec<u8>, Vec<SseEvent>) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (name, data, comment, eol) in events {
            if *comment {
                text.push_str(&format!(": comment{eol}"));
            }
            if let Some(n) = name {
                text.push_str(&format!("event: {n}{eol}"));
            }
            for d in data {
                text.push_str(&format!("data: {d}{eol}"));
            }
            text.push_str(eol);
            expected.push(SseEvent {
                event: name.clone().unwrap_or_else(|| "message".into()),
                data: data.join("\n"),
            });
        }
        (text.into_bytes(), expected)
    }

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new(1 << 16);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(e) = d.next_event().unwrap() {
                out.push(e);
            }
        }
        out
    }

    proptest! {
        /// Any split of a valid stream into chunks decodes to the same events as the whole.
        #[test]
        fn any_split_decodes_the_same(
            events in proptest::collection::vec(event(), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let (bytes, expected) = render(&events);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            at.dedup();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for a in at {
                chunks.push(&bytes[prev..a]);
                prev = a;
            }
            chunks.push(&bytes[prev..]);
            prop_assert_eq!(decode(&[&bytes]), expected.clone());
            prop_assert_eq!(decode(&chunks), expected);
        }

        /// No bytes make the decoder panic, and what it holds stays bounded.
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = SseDecoder::new(100);
            for c in &chunks {
                d.push(c);
                loop {
                    match d.next_event() {
                        Ok(Some(e)) => prop_assert!(e.data.len() <= 100),
                        Ok(None) => break,
                        Err(SseError::TooLong { .. }) => return Ok(()),
                    }
                }
                prop_assert!(d.buf.len() - d.start <= 100 + 64);
            }
        }
    }
}
