//! Streams that end early, and the drain at SIGTERM (issue 12): what the client sees (an SSE
//! `error`), and what the store holds afterwards (a usage record with the tokens consumed, marked
//! estimated in the log), against the proxy-server binary and bedrock-sim.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{KEY, Proxy, sigterm, usage};

const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";
const CLAUDE: &str = "claude-sonnet-4-5-20250929";

fn sim() -> String {
    common::sim_with(bedrock_sim::Config::default())
}

fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("proxy-drain-{}-{n}-{name}", std::process::id()))
}

/// The gateway with its store at `store` and info logs in `log`.
fn proxy(sim_url: &str, store: &Path, log: &Path, env: &[(&str, &str)]) -> Proxy {
    let mut all = vec![
        ("STORE_PATH", store.to_str().unwrap()),
        ("LOG_LEVEL", "info"),
    ];
    all.extend_from_slice(env);
    common::start(sim_url, sim_url, Some(log), &all)
}

fn stream_request(addr: &str, model: &str, text: &str) -> TcpStream {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":4000,"stream":true,"messages":[{{"role":"user","content":"{text}"}}]}}"#
    );
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    s
}

/// Reads until `needle` has been seen `times` times, the stream ends, or `limit` passes.
fn read_until(s: &mut TcpStream, needle: &str, times: usize, limit: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).matches(needle).count() >= times {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Text relayed in `text_delta`s of an SSE transcript.
fn relayed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_client_that_leaves_a_stream_is_billed_for_what_it_consumed_marked_estimated() {
    let sim_url = sim();
    let (store, log) = (scratch("leave.db"), scratch("leave.log"));
    let mut p = proxy(&sim_url, &store, &log, &[]);
    let mut relayed = std::collections::HashMap::new();
    for model in [QWEN, CLAUDE] {
        let mut s = stream_request(&p.addr, model, "long [sim words=300 delay_ms=20]");
        // Every text delta read up to the 20th, then gone before message_delta.
        let seen = read_until(&mut s, "content_block_delta", 20, Duration::from_secs(20));
        assert!(!seen.contains("message_delta"), "{seen}");
        relayed.insert(model, relayed_text(&seen).len() as u64);
        drop(s);
    }
    // The records are settled as the bodies are dropped; SIGTERM flushes them.
    std::thread::sleep(Duration::from_millis(500));
    assert!(sigterm(&mut p).success());
    let rows = usage(&store);
    for model in [QWEN, CLAUDE] {
        let (requests, input, output) = rows[model];
        assert_eq!(requests, 1, "{model}: {rows:?}");
        // Converse reports no usage before the end: the request's estimate (~150 bytes / 4); the
        // native route: message_start's count (bedrock-sim: 16 here). Before: 0 and 17.
        assert!(input >= 10, "{model}: input {input} ({rows:?})");
        assert!(
            output >= relayed[model].div_ceil(4) && output >= 5,
            "{model}: output {output} for {} bytes relayed",
            relayed[model]
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let estimated = text
        .lines()
        .filter(|l| l.contains(" usage ") || l.contains("usage"))
        .filter(|l| l.contains("estimated=true") && l.contains("outcome=\"cancelled\""))
        .count();
    assert_eq!(estimated, 2, "{text}");
}

#[test]
fn streams_get_an_sse_error_when_bedrock_is_silent() {
    let sim_url = sim();
    let (store, log) = (scratch("silent.db"), scratch("silent.log"));
    let mut p = proxy(
        &sim_url,
        &store,
        &log,
        &[
            ("STREAM_FIRST_EVENT_TIMEOUT", "1"),
            ("STREAM_IDLE_TIMEOUT", "1"),
        ],
    );
    for model in [QWEN, CLAUDE] {
        // No first event for 4 s.
        let started = Instant::now();
        let mut s = stream_request(&p.addr, model, "late [sim ttfb_ms=4000]");
        let out = read_until(
            &mut s,
            "STREAM_FIRST_EVENT_TIMEOUT",
            1,
            Duration::from_secs(10),
        );
        assert!(
            out.contains("event: error") && out.contains("timeout_error"),
            "{model}: {out}"
        );
        assert!(out.contains("STREAM_FIRST_EVENT_TIMEOUT"), "{out}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{model}: {:?}",
            started.elapsed()
        );
        // A first event, then 3 s of silence between events.
        let mut s = stream_request(&p.addr, model, "stalls [sim words=5 delay_ms=3000]");
        let out = read_until(&mut s, "STREAM_IDLE_TIMEOUT", 1, Duration::from_secs(10));
        assert!(out.contains("event: message_start"), "{model}: {out}");
        assert!(
            out.contains("timeout_error") && out.contains("STREAM_IDLE_TIMEOUT"),
            "{model}: {out}"
        );
        assert!(!out.contains("message_stop"), "{out}");
    }
    assert!(sigterm(&mut p).success());
    // Each cut stream left a record; the stalled ones with what they consumed.
    let rows = usage(&store);
    for model in [QWEN, CLAUDE] {
        assert_eq!(rows[model].0, 2, "{model}: {rows:?}");
        assert!(rows[model].1 > 0, "{model}: {rows:?}");
    }
}

#[test]
fn sigterm_drains_ready_503_then_refuses_then_cuts_streams_and_keeps_their_usage() {
    let sim_url = sim();
    let (store, log) = (scratch("drain.db"), scratch("drain.log"));
    let mut p = proxy(
        &sim_url,
        &store,
        &log,
        &[("DRAIN_TIMEOUT", "3"), ("DRAIN_ACCEPT_GRACE", "1")],
    );
    // Ten streams of ~25 s each, all started.
    let mut streams: Vec<TcpStream> = (0..10)
        .map(|i| {
            let model = if i % 2 == 0 { QWEN } else { CLAUDE };
            stream_request(&p.addr, model, "long [sim words=500 delay_ms=50]")
        })
        .collect();
    for s in &mut streams {
        let out = read_until(s, "content_block_delta", 1, Duration::from_secs(10));
        assert!(out.contains("content_block_delta"), "{out}");
    }
    // And a plain request Bedrock answers only after 20 s.
    let plain = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":20,"messages":[{"role":"user","content":"slow [sim ttfb_ms=20000]"}]}"#;
    let mut slow = TcpStream::connect(&p.addr).unwrap();
    write!(slow, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{plain}", plain.len()).unwrap();
    // And a connection that has sent nothing yet.
    let mut silent = TcpStream::connect(&p.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    // /ready says 503 at once (a new connection, during the accept grace).
    std::thread::sleep(Duration::from_millis(200));
    let mut r = TcpStream::connect(&p.addr).expect("accepted during the grace");
    r.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("draining"), "{text}");
    // At the end of the grace the connection that sent nothing is closed (it does not wait for
    // the drain deadline), and new connections are refused.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    let at = signalled.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_millis(2500),
        "the silent connection closed after {at:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(&p.addr).is_err(),
        "still accepting after the grace"
    );
    // At the drain deadline every stream ends with an SSE error.
    for s in &mut streams {
        let out = read_until(s, "shutting down", 1, Duration::from_secs(10));
        assert!(
            out.contains("event: error") && out.contains("overloaded_error"),
            "{out}"
        );
        assert!(!out.contains("message_stop"), "{out}");
    }
    let at = signalled.elapsed();
    assert!(
        at >= Duration::from_millis(2800) && at < Duration::from_secs(6),
        "cut after {at:?}"
    );
    // The plain request gets a 503 in the envelope, not a closed connection.
    let out = read_until(&mut slow, "drain time", 1, Duration::from_secs(5));
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.contains("overloaded_error"), "{out}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // Every cut stream is in the store, with the tokens it consumed.
    let rows = usage(&store);
    for model in [QWEN, CLAUDE] {
        let (requests, input, output) = rows[model];
        // Claude: the five streams and the plain request (cut before Bedrock answered: no tokens).
        let want = if model == CLAUDE { 6 } else { 5 };
        assert_eq!(requests, want, "{model}: {rows:?}");
        assert!(input >= 5 * 10 && output >= 5 * 5, "{model}: {rows:?}");
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("record dropped"), "{log}");
}
