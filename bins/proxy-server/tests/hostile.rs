//! Hostile HTTP clients against the proxy-server binary (issue 12): slow or idle connections, floods,
//! broken framing and bodies built to hurt a parser. Each test names the outcome it expects; every
//! refusal a client can read is the Anthropic error envelope, and the server keeps serving.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{KEY, Proxy};

fn sim() -> String {
    common::sim_with(bedrock_sim::Config::default())
}

fn proxy(sim_url: &str, env: &[(&str, &str)]) -> Proxy {
    common::start(sim_url, sim_url, None, env)
}

/// Reads whatever arrives until the peer closes, `limit` passes, or `stop` says enough was seen.
/// Returns the bytes and whether the peer closed (EOF or reset).
fn read_for(s: &mut TcpStream, limit: Duration, stop: impl Fn(&str) -> bool) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 16384];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if stop(&String::from_utf8_lossy(&seen)) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

/// A whole HTTP/1.1 response read from `s` (the server closes or `Content-Length` is met):
/// (status, headers as text, body).
fn response(s: &mut TcpStream, limit: Duration) -> (u16, String, String) {
    let complete = |t: &str| {
        let Some((head, body)) = t.split_once("\r\n\r\n") else {
            return false;
        };
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .is_some_and(|n| body.len() >= n)
    };
    let (text, _) = read_for(s, limit, complete);
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Sends `bytes` on a new connection and reads the response.
fn exchange(addr: &str, bytes: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    response(&mut s, Duration::from_secs(20))
}

/// `POST /v1/messages` with `body` as it is (any bytes), with the master key.
fn post_raw(addr: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(addr, &req)
}

/// Asserts the Anthropic error envelope with `status` and `kind`; returns the message.
fn assert_envelope(
    what: &str,
    (status, head, body): &(u16, String, String),
    want: u16,
    kind: &str,
) -> String {
    assert_eq!(*status, want, "{what}: {head}\n{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| {
        panic!("{what}: the body is not the JSON envelope ({e}): {head}\n{body:?}")
    });
    assert_eq!(v["type"], "error", "{what}: {v}");
    assert_eq!(v["error"]["type"], kind, "{what}: {v}");
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn health_ok(addr: &str) {
    let started = Instant::now();
    let (status, _, body) = exchange(
        addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/health took {:?}",
        started.elapsed()
    );
}

#[test]
fn slowloris_headers_are_cut_at_header_read_timeout() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("HEADER_READ_TIMEOUT", "2")]);
    let mut s = TcpStream::connect(&p.addr).unwrap();
    let started = Instant::now();
    let head = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-slow: ";
    let mut closed_after = None;
    // One byte every 300 ms, forever: the server must close before 4 s.
    for (i, b) in head.iter().chain(std::iter::repeat(&b'a')).enumerate() {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let (_, closed) = read_for(&mut s, Duration::from_millis(300), |_| false);
        if closed {
            closed_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(8) {
            panic!("still open after {i} bytes and {:?}", started.elapsed());
        }
    }
    let after = closed_after.unwrap();
    assert!(
        after >= Duration::from_millis(1800) && after < Duration::from_secs(4),
        "closed after {after:?}"
    );
    health_ok(&p.addr);
}

#[test]
fn slow_bodies_get_408_at_body_read_timeout() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("BODY_READ_TIMEOUT", "2")]);
    let mut s = TcpStream::connect(&p.addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n").unwrap();
    let started = Instant::now();
    // Ten bytes a second, as in the issue.
    let mut got = None;
    while started.elapsed() < Duration::from_secs(8) {
        let _ = s.write_all(b"          ");
        let (text, closed) = read_for(&mut s, Duration::from_secs(1), |t| t.contains("\r\n\r\n{"));
        if !text.is_empty() || closed {
            got = Some(text);
            break;
        }
    }
    let text = got.expect("no answer to a slow body within 8 s");
    let at = started.elapsed();
    assert!(at < Duration::from_secs(4), "answered after {at:?}");
    let mut rest = s;
    let (_, more) = {
        let (t, c) = read_for(&mut rest, Duration::from_secs(2), |_| false);
        (c, t)
    };
    let full = format!("{text}{more}");
    let (head, body) = full.split_once("\r\n\r\n").unwrap();
    assert_envelope(
        "slow body",
        &(
            full[9..12].parse().unwrap(),
            head.to_owned(),
            body.to_owned(),
        ),
        408,
        "invalid_request_error",
    );
}

#[test]
fn a_content_length_longer_than_the_body_gets_408() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("BODY_READ_TIMEOUT", "1")]);
    let body = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = TcpStream::connect(&p.addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: {}\r\n\r\n{body}", body.len() + 50).unwrap();
    let r = response(&mut s, Duration::from_secs(5));
    assert_envelope("content-length too long", &r, 408, "invalid_request_error");
}

#[test]
fn idle_keep_alive_connections_are_closed_at_idle_timeout() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("IDLE_TIMEOUT", "2")]);
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(&p.addr).unwrap();
    // A kept-alive connection after one request.
    let mut kept = TcpStream::connect(&p.addr).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, _) = response(&mut kept, Duration::from_secs(5));
    assert_eq!(status, 200);
    let started = Instant::now();
    let (_, closed) = read_for(&mut kept, Duration::from_secs(6), |_| false);
    assert!(closed, "the idle kept-alive connection is still open");
    let at = started.elapsed();
    assert!(
        at >= Duration::from_millis(1500) && at < Duration::from_secs(4),
        "closed after {at:?}"
    );
    let (_, closed) = read_for(&mut silent, Duration::from_secs(2), |_| false);
    assert!(closed, "the silent connection is still open");
}

#[test]
fn a_request_in_flight_is_not_idle() {
    let sim_url = sim();
    let p = proxy(
        &sim_url,
        &[("IDLE_TIMEOUT", "1"), ("HEADER_READ_TIMEOUT", "1")],
    );
    // A non-streaming answer that takes 3 s: longer than both timeouts, and answered.
    let body = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":20,"messages":[{"role":"user","content":"slow [sim ttfb_ms=3000]"}]}"#;
    let r = post_raw(&p.addr, "/v1/messages", body.as_bytes());
    assert_eq!(r.0, 200, "{}", r.2);
}

#[test]
fn a_flood_beyond_max_connections_is_refused_and_open_streams_go_on() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("MAX_CONNECTIONS", "20")]);
    // A stream in flight before the flood.
    let body = r#"{"model":"qwen.qwen3-coder-480b-a35b-v1:0","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"x [sim words=40 delay_ms=50]"}]}"#;
    let mut stream = TcpStream::connect(&p.addr).unwrap();
    write!(stream, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let (first, _) = read_for(&mut stream, Duration::from_secs(10), |t| {
        t.contains("message_start")
    });
    assert!(first.contains("message_start"), "{first}");
    // 300 connections that each send one byte and hold.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        match TcpStream::connect(&p.addr) {
            Ok(mut c) => {
                let _ = c.write_all(b"G");
                held.push(c);
            }
            Err(_) => refused += 1,
        }
    }
    // Beyond the limit: a 503 in the envelope, then the connection closes.
    let mut answered_503 = 0;
    for c in held.iter_mut().skip(25) {
        let (text, closed) = read_for(c, Duration::from_millis(500), |t| t.contains("}}"));
        if text.starts_with("HTTP/1.1 503") {
            let body = text.split_once("\r\n\r\n").unwrap().1;
            let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
            answered_503 += 1;
        } else {
            assert!(closed || text.is_empty(), "{text}");
        }
    }
    assert!(
        answered_503 + refused >= 250,
        "{answered_503} connections were refused with 503 (and {refused} at connect)"
    );
    // The stream that was open goes on to the end.
    let (rest, _) = read_for(&mut stream, Duration::from_secs(20), |t| {
        t.contains("message_stop")
    });
    assert!(rest.contains("event: message_stop"), "{rest}");
    drop(held);
    // Once the flood is gone, the gateway serves again.
    std::thread::sleep(Duration::from_millis(300));
    health_ok(&p.addr);
}

#[test]
fn oversized_headers_get_431_in_the_envelope() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    let big = "a".repeat(200 * 1024);
    let r = exchange(
        &p.addr,
        format!("GET /health HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    );
    assert_envelope("200 KB header", &r, 431, "invalid_request_error");
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "u".repeat(200 * 1024)
    );
    let r = exchange(&p.addr, long_uri.as_bytes());
    assert!(matches!(r.0, 414 | 431), "{r:?}");
    assert_envelope("200 KB URI", &r, r.0, "invalid_request_error");
    let r = exchange(
        &p.addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
    );
    assert_envelope(
        "a header line without a colon",
        &r,
        400,
        "invalid_request_error",
    );
    health_ok(&p.addr);
}

#[test]
fn malformed_chunked_bodies_get_400_in_the_envelope() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for (what, body) in [
        ("a chunk size that is not hex", "zz\r\n{}\r\n0\r\n\r\n"),
        (
            "a chunk longer than its size",
            "2\r\n{\"model\":1}\r\n0\r\n\r\n",
        ),
        (
            "a chunk size beyond u64",
            "fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
        ),
    ] {
        let r = exchange(&p.addr, format!("{head}{body}").as_bytes());
        assert_envelope(what, &r, 400, "invalid_request_error");
    }
    // Both framings at once (request smuggling): refused.
    let r = exchange(&p.addr, format!("POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").as_bytes());
    assert_eq!(r.0, 400, "{r:?}");
    health_ok(&p.addr);
}

#[test]
fn a_content_length_shorter_than_the_body_gets_400_in_the_envelope() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    let body = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = exchange(&p.addr, format!("POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: 20\r\nConnection: close\r\n\r\n{body}").as_bytes());
    assert_envelope("content-length too short", &r, 400, "invalid_request_error");
}

#[test]
fn hostile_json_gets_400_in_the_envelope_without_a_crash() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    let valid = |content: &str| {
        format!(
            r#"{{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[{{"role":"user","content":{content}}}]}}"#
        )
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    let mut invalid_utf8 = valid(r#""caf#""#).into_bytes();
    let at = invalid_utf8.iter().position(|b| *b == b'#').unwrap();
    invalid_utf8[at] = 0xff;
    let mut nul = valid(r#""a#b""#).into_bytes();
    let at = nul.iter().position(|b| *b == b'#').unwrap();
    nul[at] = 0;
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("arrays nested 100,000 deep", deep.clone().into_bytes()),
        ("a message content nested 100,000 deep", valid(&deep).into_bytes()),
        ("objects nested 100,000 deep in tool input", format!(r#"{{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"n","input":{deep_objects}}}]}}]}}"#).into_bytes()),
        ("invalid UTF-8", invalid_utf8),
        ("a raw NUL byte in a string", nul),
        ("a 10 MB model name", format!(r#"{{"model":"{ten_mb}","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}]}}"#).into_bytes()),
        ("a 10 MB unterminated string", format!(r#"{{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[{{"role":"user","content":"{ten_mb}"#).into_bytes()),
        ("a duplicate key", br#"{"model":"claude-sonnet-4-5-20250929","model":"x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#.to_vec()),
        ("a huge integer", br#"{"model":"claude-sonnet-4-5-20250929","max_tokens":99999999999999999999999999,"messages":[{"role":"user","content":"hi"}]}"#.to_vec()),
        ("a float beyond f64", br#"{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"temperature":1e999,"messages":[{"role":"user","content":"hi"}]}"#.to_vec()),
        ("a negative max_tokens", br#"{"model":"claude-sonnet-4-5-20250929","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}"#.to_vec()),
    ];
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        for (what, body) in &cases {
            let r = post_raw(&p.addr, path, body);
            assert_envelope(&format!("{path}: {what}"), &r, 400, "invalid_request_error");
        }
    }
    health_ok(&p.addr);
}

#[test]
fn long_and_empty_model_names_get_400_not_a_panic() {
    let sim_url = sim();
    let log = std::env::temp_dir().join(format!("proxy-hostile-models-{}.log", std::process::id()));
    let p = common::start(&sim_url, &sim_url, Some(&log), &[("RUST_BACKTRACE", "1")]);
    let names = [
        "a".repeat(65_500),
        ":".repeat(21_900),
        format!("claude-{}", "x".repeat(65_500)),
        format!("us.anthropic.{}", "y".repeat(3000)),
        "qwen.qwen3 coder".to_owned(),
        "model/../../etc".to_owned() + &"%".repeat(3),
        String::new(),
    ];
    for name in &names {
        for stream in [false, true] {
            for path in ["/v1/messages", "/v1/messages/count_tokens"] {
                let body = serde_json::json!({"model": name, "max_tokens": 5, "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]});
                let r = post_raw(&p.addr, path, body.to_string().as_bytes());
                let short: String = name.chars().take(20).collect();
                assert_envelope(
                    &format!(
                        "{path} stream={stream} model {short}... ({} bytes)",
                        name.len()
                    ),
                    &r,
                    400,
                    "invalid_request_error",
                );
            }
        }
    }
    health_ok(&p.addr);
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    // No panic (the panic hook would log one line saying `panic`), and no backtrace.
    assert!(!text.contains("panic"), "{text}");
}

#[test]
fn zero_max_tokens_and_empty_content_get_400_on_every_route() {
    let sim_url = sim();
    let dir = std::env::temp_dir().join(format!("proxy-hostile-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("routes.toml");
    std::fs::write(
        &config,
        "[[models]]\nname = \"via-messages\"\nbedrock_id = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"\napi = \"messages\"\n",
    )
    .unwrap();
    let p = proxy(&sim_url, &[("PROXY_CONFIG", config.to_str().unwrap())]);
    for model in [
        "claude-sonnet-4-5-20250929",
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "via-messages",
    ] {
        for stream in [false, true] {
            let zero = serde_json::json!({"model": model, "max_tokens": 0, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]});
            let r = post_raw(&p.addr, "/v1/messages", zero.to_string().as_bytes());
            let m = assert_envelope(
                &format!("{model}: max_tokens 0"),
                &r,
                400,
                "invalid_request_error",
            );
            assert!(m.contains("max_tokens"), "{m}");
            let empty = serde_json::json!({"model": model, "max_tokens": 5, "stream": stream,
                "messages": [{"role": "user", "content": []}]});
            let r = post_raw(&p.addr, "/v1/messages", empty.to_string().as_bytes());
            let m = assert_envelope(
                &format!("{model}: empty content"),
                &r,
                400,
                "invalid_request_error",
            );
            assert!(m.contains("messages.0.content"), "{m}");
        }
    }
}

#[test]
fn a_complete_request_then_half_close_gets_its_response() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    let body = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = TcpStream::connect(&p.addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (status, _, body) = response(&mut s, Duration::from_secs(10));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "message");
}
