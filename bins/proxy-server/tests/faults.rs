//! Upstream faults, retries and failover (issue 12), against the proxy-server binary and
//! bedrock-sim's scripted faults: each fault ends as the client expects (an SSE `error` after the
//! stream started, the right status in the envelope before it), the upstream connection is released,
//! nothing is left running, and usage is recorded for what was served. Retries happen before the
//! answer starts, never after; a model's `fallbacks` serve when its own target keeps failing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{KEY, Proxy, sigterm, usage};

/// One model per route: Converse, InvokeModel, the Messages API on runtime and on Mantle.
const QWEN: &str = "qwen.qwen3-coder-480b-a35b-v1:0";
const CLAUDE: &str = "claude-sonnet-4-5-20250929";
const RUNTIME: &str = "msg-runtime";
const MANTLE: &str = "msg-mantle";
const ROUTES: [&str; 4] = [QWEN, CLAUDE, RUNTIME, MANTLE];

fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("proxy-faults-{}-{n}-{name}", std::process::id()))
}

const MESSAGES_ROUTES: &str = "\
[[models]]
name = \"msg-runtime\"
bedrock_id = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"
api = \"messages\"

[[models]]
name = \"msg-mantle\"
bedrock_id = \"anthropic.claude-haiku-4-5\"
api = \"messages\"
endpoint = \"mantle\"
";

/// The gateway on `sim_url` with the Messages routes of [`MESSAGES_ROUTES`] (plus `extra_config`),
/// its store at `store`, and `env` on top.
fn proxy(sim_url: &str, store: &Path, extra_config: &str, env: &[(&str, &str)]) -> Proxy {
    let config = scratch("config.toml");
    std::fs::write(&config, format!("{MESSAGES_ROUTES}\n{extra_config}")).unwrap();
    let mantle = format!("{sim_url}/mantle");
    let mut all = vec![
        ("PROXY_CONFIG", config.to_str().unwrap().to_owned()),
        ("AWS_ENDPOINT_URL_BEDROCK_MANTLE", mantle),
        ("STORE_PATH", store.to_str().unwrap().to_owned()),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::start(sim_url, sim_url, None, &all)
}

fn body(model: &str, text: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": 4000,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
    .to_string()
}

/// Reads everything until the peer closes (or `limit`).
fn read_all(s: &mut TcpStream, limit: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
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

/// Undoes chunked transfer coding (enough for these tests: sizes in hex, then the data).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            out.push_str(&after[..n.min(after.len())]);
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// An HTTP/1.1 exchange on a new connection, read to its close: (status, head, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let text = read_all(&mut s, Duration::from_secs(30));
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn messages(addr: &str, model: &str, text: &str, stream: bool) -> (u16, String, String) {
    http(
        addr,
        "POST",
        "/v1/messages",
        Some(&body(model, text, stream)),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A series of the gateway's `/metrics` (`name{labels}` as exported), 0 when absent.
fn metric(addr: &str, series: &str) -> f64 {
    let (_, _, text) = http(addr, "GET", "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn sim_json(sim_url: &str, path: &str) -> Value {
    let (status, _, body) = http(sim_url.trim_start_matches("http://"), "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Requests bedrock-sim received whose body contains `nonce`.
fn received(sim_url: &str, nonce: &str) -> Vec<Value> {
    sim_json(sim_url, "/_sim/requests")
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["body"].to_string().contains(nonce))
        .cloned()
        .collect()
}

/// Waits until `cond` holds, for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bedrock-sim holds no request open (every upstream call released), and the gateway relays no
/// stream.
fn nothing_left_running(sim_url: &str, addr: &str) {
    wait_for(
        "bedrock-sim answering no request",
        Duration::from_secs(10),
        || sim_json(sim_url, "/_sim/connections")["busy"] == 0,
    );
    wait_for("gateway_open_streams 0", Duration::from_secs(10), || {
        metric(addr, "gateway_open_streams") == 0.0
    });
}

/// The `error` event's data of an SSE transcript.
fn sse_error(sse: &str) -> Option<Value> {
    let at = sse.find("event: error\n")?;
    let data = sse[at..].lines().nth(1)?.strip_prefix("data: ")?;
    serde_json::from_str(data).ok()
}

#[test]
fn stream_faults_end_in_an_sse_error_release_the_upstream_and_leave_nothing_running() {
    let sim_url = common::sim_with(bedrock_sim::Config::default());
    let store = scratch("stream-faults.db");
    // Timeouts well above what a fault takes to surface: a hang would show as a slow test.
    let mut p = proxy(
        &sim_url,
        &store,
        "",
        &[
            ("STREAM_IDLE_TIMEOUT", "20"),
            ("STREAM_FIRST_EVENT_TIMEOUT", "20"),
        ],
    );
    let faults = ["reset", "truncate", "bad_crc", "oversize"];
    for route in ROUTES {
        for fault in faults {
            let started = Instant::now();
            let text = format!("hello [sim words=40 {fault} after=3]");
            let (status, _, sse) = messages(&p.addr, route, &text, true);
            let what = format!("{route} {fault}: {sse}");
            assert_eq!(status, 200, "{what}");
            assert!(sse.contains("event: message_start"), "{what}");
            assert!(!sse.contains("event: message_stop"), "{what}");
            let error = sse_error(&sse).unwrap_or_else(|| panic!("no SSE error: {what}"));
            assert_eq!(error["type"], "error", "{what}");
            assert_eq!(error["error"]["type"], "api_error", "{what}");
            // Nothing corrupt reaches the client: every event it got is JSON.
            for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
                assert!(
                    serde_json::from_str::<Value>(data).is_ok(),
                    "{route} {fault}: relayed {data:?}"
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{route} {fault} took {:?}",
                started.elapsed()
            );
        }
    }
    nothing_left_running(&sim_url, &p.addr);
    // The next request works on every route.
    for route in ROUTES {
        let (status, _, body) = messages(&p.addr, route, "again", true);
        assert_eq!(status, 200, "{route}: {body}");
        assert!(body.contains("event: message_stop"), "{route}: {body}");
    }
    assert!(sigterm(&mut p).success());
    // Every cut stream left a record with what it consumed (estimated), besides the complete one.
    let rows = usage(&store);
    for route in ROUTES {
        let (requests, input, output) = rows[route];
        assert_eq!(requests, faults.len() as u64 + 1, "{route}: {rows:?}");
        assert!(input > 0 && output > 0, "{route}: {rows:?}");
    }
}

#[test]
fn stalls_end_at_the_stream_timeouts_and_at_bedrock_timeout() {
    let sim_url = common::sim_with(bedrock_sim::Config::default());
    let store = scratch("stalls.db");
    let p = proxy(
        &sim_url,
        &store,
        "",
        &[
            ("STREAM_IDLE_TIMEOUT", "1"),
            ("STREAM_FIRST_EVENT_TIMEOUT", "1"),
            ("BEDROCK_TIMEOUT", "2"),
        ],
    );
    // While a call stalls, bedrock-sim counts it busy (so the count's return to 0 below means
    // something).
    let addr = p.addr.clone();
    let stalled = std::thread::spawn(move || messages(&addr, CLAUDE, "[sim stall]", false));
    wait_for("a busy upstream call", Duration::from_secs(5), || {
        sim_json(&sim_url, "/_sim/connections")["busy"] == 1
    });
    assert_eq!(stalled.join().unwrap().0, 504);
    // The routes in parallel: each waits out its timeouts.
    let runs: Vec<_> = ROUTES
        .into_iter()
        .map(|route| {
            let addr = p.addr.clone();
            std::thread::spawn(move || {
                // A stream that stops after its third event, its connection kept open.
                let started = Instant::now();
                let (status, _, sse) = messages(&addr, route, "[sim words=40 stall after=3]", true);
                assert_eq!(status, 200, "{route}: {sse}");
                assert!(sse.contains("event: message_start"), "{route}: {sse}");
                let error = sse_error(&sse).unwrap_or_else(|| panic!("{route}: {sse}"));
                assert_eq!(error["error"]["type"], "timeout_error", "{route}: {sse}");
                assert!(sse.contains("STREAM_IDLE_TIMEOUT"), "{route}: {sse}");
                assert!(started.elapsed() < Duration::from_secs(5), "{route}");
                // A stream whose first event never comes.
                let (_, _, sse) = messages(&addr, route, "[sim stall after=0]", true);
                assert!(sse.contains("STREAM_FIRST_EVENT_TIMEOUT"), "{route}: {sse}");
                assert!(!sse.contains("event: message_start"), "{route}: {sse}");
                // A plain call never answered: BEDROCK_TIMEOUT, before anything was sent.
                let started = Instant::now();
                let (status, _, body) = messages(&addr, route, "[sim stall]", false);
                assert_eq!(status, 504, "{route}: {body}");
                assert!(body.contains("timeout_error"), "{route}: {body}");
                let took = started.elapsed();
                assert!(
                    took >= Duration::from_secs(2) && took < Duration::from_secs(6),
                    "{route}: {took:?}"
                );
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
    nothing_left_running(&sim_url, &p.addr);
    let (status, _, _) = messages(&p.addr, CLAUDE, "after the stalls", false);
    assert_eq!(status, 200);
}

#[test]
fn plain_call_faults_are_retried_before_the_answer_and_answered_in_the_envelope() {
    let sim_url = common::sim_with(bedrock_sim::Config::default());
    let store = scratch("plain.db");
    let p = proxy(&sim_url, &store, "", &[]);
    let retries = |reason: &str| {
        metric(
            &p.addr,
            &format!("gateway_upstream_retries_total{{reason=\"{reason}\"}}"),
        )
    };
    for route in ROUTES {
        // A reset before the response, once: retried, served.
        let before = retries("connection");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim reset fail_first=1 id=once-{route}]"),
            false,
        );
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(retries("connection") - before, 1.0, "{route}");
        // Reset every time: the retries (2 by default) run out, then 529 overloaded_error.
        let before = retries("connection");
        let (status, _, body) = messages(&p.addr, route, "[sim reset]", false);
        assert_eq!(status, 529, "{route}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error", "{route}: {body}");
        assert_eq!(retries("connection") - before, 2.0, "{route}");
        // Half a body, then the close: the answer had started, so no retry; a 500.
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim truncate id=cut-{route}]"),
            false,
        );
        assert_eq!(status, 500, "{route}: {body}");
        assert!(body.contains("api_error"), "{route}: {body}");
        assert_eq!(received(&sim_url, &format!("id=cut-{route}")).len(), 1);
    }
    nothing_left_running(&sim_url, &p.addr);
}

#[test]
fn throttling_and_unavailability_are_retried_within_the_budget_and_never_after_the_stream_started()
{
    let sim_url = common::sim_with(bedrock_sim::Config::default());
    let store = scratch("retries.db");
    let mut p = proxy(&sim_url, &store, "", &[("BEDROCK_MAX_RETRIES", "2")]);
    let retries = |reason: &str| {
        metric(
            &p.addr,
            &format!("gateway_upstream_retries_total{{reason=\"{reason}\"}}"),
        )
    };
    for route in ROUTES {
        // Throttled twice, then served: three calls, one answer.
        let nonce = format!("id=t-{route}");
        let before = retries("throttled");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=throttling fail_first=2 {nonce}]"),
            false,
        );
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(received(&sim_url, &nonce).len(), 3, "{route}");
        assert_eq!(retries("throttled") - before, 2.0, "{route}");
        // Over the service quota (a 400 on Bedrock's own routes, but throttling): retried.
        let nonce = format!("id=q-{route}");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=quota fail_first=1 {nonce}]"),
            false,
        );
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(received(&sim_url, &nonce).len(), 2, "{route}");
        // A 500 once, then served.
        let nonce = format!("id=i-{route}");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=internal fail_first=1 {nonce}]"),
            false,
        );
        assert_eq!(status, 200, "{route}: {body}");
        assert_eq!(received(&sim_url, &nonce).len(), 2, "{route}");
        // Unavailable every time: 1 + 2 calls, then the client gets 529 overloaded_error.
        let nonce = format!("id=u-{route}");
        let (status, head, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=unavailable {nonce}]"),
            false,
        );
        assert_eq!(status, 529, "{route}: {body}");
        assert!(body.contains("overloaded_error"), "{route}: {body}");
        assert!(header(&head, "retry-after").is_some(), "{route}: {head}");
        assert_eq!(received(&sim_url, &nonce).len(), 3, "{route}");
        // A validation error is never retried.
        let nonce = format!("id=v-{route}");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=validation {nonce}]"),
            false,
        );
        assert_eq!(status, 400, "{route}: {body}");
        assert_eq!(received(&sim_url, &nonce).len(), 1, "{route}");
        // A stream throttled at its head: retried, then streamed whole.
        let nonce = format!("id=s-{route}");
        let (status, _, sse) = messages(
            &p.addr,
            route,
            &format!("[sim error=throttling fail_first=1 {nonce}]"),
            true,
        );
        assert_eq!(status, 200, "{route}: {sse}");
        assert!(sse.contains("event: message_stop"), "{route}: {sse}");
        assert_eq!(received(&sim_url, &nonce).len(), 2, "{route}");
        // Throttled inside the stream, after events were relayed: the client's error, no retry.
        let nonce = format!("id=n-{route}");
        let (_, _, sse) = messages(
            &p.addr,
            route,
            &format!("[sim words=20 stream_error=throttling after=3 {nonce}]"),
            true,
        );
        assert!(sse.contains("event: message_start"), "{route}: {sse}");
        let error = sse_error(&sse).unwrap_or_else(|| panic!("{route}: {sse}"));
        assert_eq!(error["error"]["type"], "rate_limit_error", "{route}: {sse}");
        assert_eq!(received(&sim_url, &nonce).len(), 1, "{route}");
    }
    nothing_left_running(&sim_url, &p.addr);
    assert!(sigterm(&mut p).success());
    // Usage: the served requests only (4 of the 7 plain and streamed ones), and the cut stream.
    let rows = usage(&store);
    for route in ROUTES {
        assert_eq!(rows[route].0, 5, "{route}: {rows:?}");
    }

    // A budget too small for any wait: the first throttle is the client's answer.
    let p = proxy(
        &sim_url,
        &scratch("budget.db"),
        "",
        &[("BEDROCK_RETRY_BUDGET_MS", "1")],
    );
    for route in ROUTES {
        let nonce = format!("id=b-{route}");
        let (status, _, body) = messages(
            &p.addr,
            route,
            &format!("[sim error=throttling fail_first=1 {nonce}]"),
            false,
        );
        assert_eq!(status, 429, "{route}: {body}");
        assert!(body.contains("rate_limit_error"), "{route}: {body}");
        assert_eq!(received(&sim_url, &nonce).len(), 1, "{route}");
    }
}

#[test]
fn a_failing_model_is_served_by_its_fallbacks_which_the_response_and_the_usage_name() {
    // Sonnet 4.5 in the US is down, Haiku 4.5's Global profile is throttled: whatever the marker.
    let config = bedrock_sim::Config {
        rules: vec![
            bedrock_sim::ModelRule {
                model: "us.anthropic.claude-sonnet-4-5*".into(),
                directives: "error=unavailable".into(),
            },
            bedrock_sim::ModelRule {
                model: "global.anthropic.claude-haiku-4-5*".into(),
                directives: "error=throttling".into(),
            },
        ],
        ..bedrock_sim::Config::default()
    };
    let sim_url = common::sim_with(config);
    let store = scratch("fallbacks.db");
    let fallbacks = "\
[[models]]
name = \"sonnet-geo\"
bedrock_id = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"
api = \"invoke\"
fallbacks = [\"global.anthropic.claude-sonnet-4-5-20250929-v1:0\"]

[[models]]
name = \"sonnet-chain\"
bedrock_id = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"
api = \"converse\"
fallbacks = [\"global.anthropic.claude-haiku-4-5-20251001-v1:0\", \"claude-opus-4-5\"]
";
    let mut p = proxy(&sim_url, &store, fallbacks, &[("BEDROCK_MAX_RETRIES", "1")]);
    // Another geography's profile of the same model: the model asked for answers.
    for stream in [false, true] {
        let (status, head, body) = messages(&p.addr, "sonnet-geo", "hi", stream);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            header(&head, "x-gateway-bedrock-target"),
            Some("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "{head}"
        );
        assert!(body.contains(r#""model":"sonnet-geo""#), "{body}");
    }
    // A chain: the second target throttled too, the third (another model) answers as itself.
    for stream in [false, true] {
        let (status, head, body) = messages(&p.addr, "sonnet-chain", "hi", stream);
        assert_eq!(status, 200, "{body}");
        let target = header(&head, "x-gateway-bedrock-target").unwrap();
        assert!(
            target.contains("anthropic.claude-opus-4-5-20251101-v1:0"),
            "{head}"
        );
        assert!(body.contains(r#""model":"claude-opus-4-5""#), "{body}");
    }
    let fell = |from: &str, to: &str| {
        metric(
            &p.addr,
            &format!("gateway_upstream_fallbacks_total{{from=\"{from}\",to=\"{to}\"}}"),
        )
    };
    assert_eq!(
        fell(
            "sonnet-geo",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
        ),
        2.0
    );
    assert_eq!(
        fell(
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
            "claude-opus-4-5"
        ),
        2.0
    );
    // Each failing target was retried once (BEDROCK_MAX_RETRIES=1) before the next one.
    assert_eq!(
        metric(
            &p.addr,
            "gateway_upstream_retries_total{reason=\"unavailable\"}"
        ),
        4.0
    );
    assert!(sigterm(&mut p).success());
    let rows = usage(&store);
    assert_eq!(rows["sonnet-geo"].0, 2, "{rows:?}");
    assert_eq!(rows["claude-opus-4-5"].0, 2, "{rows:?}");
    assert!(!rows.contains_key("sonnet-chain"), "{rows:?}");
}

#[test]
fn expired_credentials_are_read_again_from_the_chain() {
    // The gateway's credentials come from a credential_process that prints the key in `key`; the
    // emulator says AKIDOLD has expired.
    let dir = scratch("creds");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, "AKIDOLD").unwrap();
    let script = dir.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '{{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"secret\"}}' \"$(cat '{}')\"\n",
            key.display()
        ),
    )
    .unwrap();
    let aws_config = dir.join("config");
    std::fs::write(
        &aws_config,
        format!(
            "[default]\ncredential_process = /bin/sh {}\n",
            script.display()
        ),
    )
    .unwrap();
    let sim_url = common::sim_with(bedrock_sim::Config {
        defaults: "expired_key=AKIDOLD".into(),
        ..bedrock_sim::Config::default()
    });
    let store = scratch("creds.db");
    let config = scratch("creds.toml");
    std::fs::write(&config, MESSAGES_ROUTES).unwrap();
    let p = common::start_without(
        &sim_url,
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"],
        None,
        &[
            ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("STORE_PATH", store.to_str().unwrap()),
            ("PROXY_CONFIG", config.to_str().unwrap()),
            (
                "AWS_ENDPOINT_URL_BEDROCK_MANTLE",
                &format!("{sim_url}/mantle"),
            ),
        ],
    );
    let expired = |addr: &str| {
        metric(
            addr,
            "gateway_upstream_retries_total{reason=\"expired_credentials\"}",
        )
    };
    // Still the expired key after reading again: the client is told, once per request.
    let (status, _, body) = messages(&p.addr, CLAUDE, "[sim id=old]", false);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication_error"), "{body}");
    assert_eq!(received(&sim_url, "id=old").len(), 2);
    assert_eq!(expired(&p.addr), 1.0);
    // The key rotates: the next call fails once on the held key, reads the new one, and is served.
    std::fs::write(&key, "AKIDNEW").unwrap();
    for route in ROUTES {
        let (status, _, body) = messages(&p.addr, route, &format!("[sim id=new-{route}]"), false);
        assert_eq!(status, 200, "{route}: {body}");
        let seen = received(&sim_url, &format!("id=new-{route}"));
        let auth = seen.last().unwrap()["headers"]["authorization"].to_string();
        assert!(auth.contains("Credential=AKIDNEW/"), "{route}: {auth}");
    }
    // Only the first call after the rotation needed a new read.
    assert_eq!(expired(&p.addr), 2.0);
}
