//! The proxy-server binary as a user runs it, in front of bedrock-sim: what needs real time and real
//! sockets (pings during silence, cancellation when the client goes away, graceful shutdown) and the
//! start-up checks of its settings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{BIN, KEY, Proxy};

/// bedrock-sim on its own runtime thread, for the life of the test process.
fn sim() -> String {
    common::sim_with(bedrock_sim::Config::default())
}

fn proxy(sim_url: &str, extra_env: &[(&str, &str)]) -> Proxy {
    common::start(sim_url, sim_url, None, extra_env)
}

/// Like [`proxy`], with stderr (the logs) written to `log` when given.
fn proxy_logging_to(
    sim_url: &str,
    extra_env: &[(&str, &str)],
    log: Option<&std::path::Path>,
) -> Proxy {
    common::start(sim_url, sim_url, log, extra_env)
}

/// Sends a streaming request and returns the open connection.
fn stream_request(addr: &str, model: &str, text: &str) -> TcpStream {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":1000,"stream":true,"messages":[{{"role":"user","content":"{text}"}}]}}"#
    );
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    s
}

/// Reads until `needle` appears (or the stream ends); returns what was read.
fn read_until(s: &mut TcpStream, needle: &str, limit: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn sim_requests(sim_url: &str) -> Vec<Value> {
    let addr = sim_url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /_sim/requests HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// A whole streamed response (the request asked `Connection: close`): the payload of each HTTP/1.1
/// chunk, in order. The gateway writes one chunk per body frame.
fn read_chunks(s: &mut TcpStream) -> Vec<String> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, mut body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut chunks = Vec::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            return chunks;
        }
        chunks.push(rest[..n].to_owned());
        body = &rest[n + 2..];
    }
}

#[test]
fn events_ready_together_go_out_together() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    for model in [
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "claude-sonnet-4-5-20250929",
    ] {
        // Bedrock's whole answer at once: its events are in the gateway's buffer together.
        let mut s = stream_request(&p.addr, model, "a burst [sim words=40]");
        let chunks = read_chunks(&mut s);
        let events: Vec<&str> = chunks
            .iter()
            .flat_map(|c| {
                assert!(
                    c.ends_with("\n\n"),
                    "{model}: a frame of whole events: {c:?}"
                );
                c.split_terminator("\n\n")
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|e| e.lines().next().unwrap()).collect();
        assert_eq!(names.first(), Some(&"event: message_start"), "{model}");
        assert_eq!(names.last(), Some(&"event: message_stop"), "{model}");
        let deltas = names
            .iter()
            .filter(|n| **n == "event: content_block_delta")
            .count();
        assert!(deltas >= 20, "{model}: {names:?}");
        // Fewer writes than events (one per event before): what is ready goes out in one frame.
        assert!(
            chunks.len() * 2 <= events.len(),
            "{model}: {} frames for {} events",
            chunks.len(),
            events.len()
        );
        // The first text delta ends its frame: the events after it do not hold it back.
        let first = names
            .iter()
            .position(|n| *n == "event: content_block_delta")
            .unwrap();
        let mut seen = 0;
        let ends_a_frame = chunks.iter().any(|c| {
            seen += c.split_terminator("\n\n").count();
            seen == first + 1
        });
        assert!(ends_a_frame, "{model}: {chunks:?}");
    }
}

#[test]
fn events_that_come_apart_are_not_held_back() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    for model in [
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "claude-sonnet-4-5-20250929",
    ] {
        // 20 words, 150 ms apart: the whole answer takes about 3 s.
        let mut s = stream_request(&p.addr, model, "slowly [sim words=20 delay_ms=150]");
        let started = Instant::now();
        let out = read_until(&mut s, "\"text_delta\"", Duration::from_secs(10));
        assert!(out.contains("\"text_delta\""), "{model}: {out}");
        assert!(!out.contains("message_stop"), "{model}: {out}");
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{model}: the first delta came after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn silent_upstreams_get_pings() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[("SSE_PING_INTERVAL", "1")]);
    for model in [
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "claude-sonnet-4-5-20250929",
    ] {
        let mut s = stream_request(&p.addr, model, "wait for it [sim ttfb_ms=2600]");
        let out = read_until(&mut s, "event: message_stop", Duration::from_secs(20));
        let pings = out
            .matches("event: ping\ndata: {\"type\":\"ping\"}")
            .count();
        assert!(
            pings >= 2,
            "{model}: expected a ping per second of silence, got {pings}:\n{out}"
        );
        assert!(
            out.find("event: ping").unwrap()
                < out.find("event: message_start").unwrap_or(usize::MAX),
            "{model}"
        );
        assert!(
            out.contains("event: message_stop"),
            "{model}: the stream still completes"
        );
    }
}

#[test]
fn a_client_that_goes_away_cancels_the_bedrock_call() {
    let sim_url = sim();
    let p = proxy(&sim_url, &[]);
    for model in [
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "claude-sonnet-4-5-20250929",
    ] {
        let mut s = stream_request(&p.addr, model, "long answer [sim words=200 delay_ms=50]");
        let out = read_until(&mut s, "content_block_delta", Duration::from_secs(10));
        assert!(out.contains("content_block_delta"), "{out}");
        drop(s);
        let started = Instant::now();
        let state = loop {
            let last = sim_requests(&sim_url)
                .into_iter()
                .rev()
                .find(|r| {
                    r["model_id"].as_str().is_some_and(|m| {
                        m.contains(if model.starts_with("qwen") {
                            "qwen"
                        } else {
                            "claude"
                        })
                    })
                })
                .unwrap();
            let state = last["stream"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if state != "streaming" || started.elapsed() > Duration::from_secs(5) {
                break (
                    state,
                    last["stream"]["events_sent"].as_u64().unwrap_or_default(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            state.0, "cancelled",
            "{model}: Bedrock kept streaming after the client left"
        );
        assert!(
            state.1 < 100,
            "{model}: {} events were sent of ~200",
            state.1
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{model}: cancellation took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn sigterm_lets_open_streams_finish() {
    let sim_url = sim();
    let mut p = proxy(&sim_url, &[]);
    let mut s = stream_request(
        &p.addr,
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "x [sim words=30 delay_ms=50]",
    );
    let first = read_until(&mut s, "content_block_delta", Duration::from_secs(10));
    assert!(first.contains("content_block_delta"));
    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = read_until(&mut s, "event: message_stop", Duration::from_secs(20));
    assert!(
        rest.contains("event: message_stop"),
        "the stream in flight completed:\n{rest}"
    );
    let started = Instant::now();
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(&p.addr).is_err(), "no longer accepting");
}

#[test]
fn bad_settings_stop_start_up_naming_them() {
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(BIN);
        if !env.iter().any(|(k, _)| *k == "LISTEN_ADDR") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let store =
            std::env::temp_dir().join(format!("proxy-server-bad-{}.db", std::process::id()));
        cmd.args(args)
            .env("AWS_REGION", "us-east-1")
            .env("LIST_BEDROCK_MODELS", "false")
            .env("STORE_PATH", store)
            .env_remove("MASTER_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{env:?} {args:?} should not start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&[("MASTER_API_KEY", "short")], &[]).contains("MASTER_API_KEY"));
    assert!(
        run(&[("MASTER_API_KEY", KEY), ("STORE_BACKEND", "floppy")], &[]).contains("STORE_BACKEND")
    );
    assert!(
        run(
            &[("MASTER_API_KEY", KEY), ("RATE_LIMIT_REQUESTS", "0")],
            &[]
        )
        .contains("RATE_LIMIT_REQUESTS")
    );
    assert!(
        run(
            &[("MASTER_API_KEY", KEY), ("REQUIRE_API_KEY", "maybe")],
            &[]
        )
        .contains("REQUIRE_API_KEY")
    );
    assert!(
        run(&[("MASTER_API_KEY", KEY), ("BEDROCK_TIMEOUT", "soon")], &[])
            .contains("BEDROCK_TIMEOUT")
    );
    assert!(run(&[("MASTER_API_KEY", KEY), ("LOG_FORMAT", "xml")], &[]).contains("LOG_FORMAT"));
    for name in [
        "MAX_CONNECTIONS",
        "HEADER_READ_TIMEOUT",
        "BODY_READ_TIMEOUT",
        "IDLE_TIMEOUT",
        "STREAM_FIRST_EVENT_TIMEOUT",
        "STREAM_IDLE_TIMEOUT",
    ] {
        assert!(run(&[("MASTER_API_KEY", KEY), (name, "0")], &[]).contains(name));
    }
    assert!(
        run(&[("MASTER_API_KEY", KEY), ("DRAIN_TIMEOUT", "soon")], &[]).contains("DRAIN_TIMEOUT")
    );
    assert!(
        run(
            &[("MASTER_API_KEY", KEY), ("FALLBACK_MODEL", "claude nope")],
            &[]
        )
        .contains("FALLBACK_MODEL")
    );
    let dir = std::env::temp_dir().join(format!("proxy-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[[models]]\nname = \"x\"\napi = \"fax\"\n").unwrap();
    assert!(
        run(
            &[
                ("MASTER_API_KEY", KEY),
                ("PROXY_CONFIG", config.to_str().unwrap())
            ],
            &[]
        )
        .contains("PROXY_CONFIG")
    );
    let misplaced = dir.join("misplaced-endpoint.toml");
    std::fs::write(
        &misplaced,
        "[[models]]\nname = \"x\"\nbedrock_id = \"y\"\napi = \"invoke\"\nendpoint = \"mantle\"\n",
    )
    .unwrap();
    let err = run(
        &[
            ("MASTER_API_KEY", KEY),
            ("PROXY_CONFIG", misplaced.to_str().unwrap()),
        ],
        &[],
    );
    assert!(
        err.contains("PROXY_CONFIG") && err.contains("endpoint"),
        "{err}"
    );
    let bad_prices = dir.join("bad-prices.toml");
    std::fs::write(&bad_prices, "[prices.\"claude-*\"]\ninput = 3.0\n").unwrap();
    let err = run(
        &[
            ("MASTER_API_KEY", KEY),
            ("PROXY_CONFIG", bad_prices.to_str().unwrap()),
        ],
        &[],
    );
    assert!(
        err.contains("PROXY_CONFIG") && err.contains("output"),
        "{err}"
    );
    assert!(
        run(&[("MASTER_API_KEY", KEY), ("LISTEN_ADDR", "nowhere")], &[]).contains("LISTEN_ADDR")
    );
    assert!(
        run(
            &[
                ("MASTER_API_KEY", KEY),
                ("CACHE_ENABLED", "true"),
                ("CACHE_TTL", "0")
            ],
            &[]
        )
        .contains("CACHE_TTL")
    );
}

#[test]
fn configuration_errors_are_one_line_without_backtrace() {
    let one_line = |env: &[(&str, &str)], removed: &[&str]| {
        let mut cmd = Command::new(BIN);
        let store =
            std::env::temp_dir().join(format!("proxy-server-line-{}.db", std::process::id()));
        cmd.args(["--listen", "127.0.0.1:0"])
            .env("AWS_REGION", "us-east-1")
            .env("LIST_BEDROCK_MODELS", "false")
            .env("STORE_PATH", store)
            .env("MASTER_API_KEY", KEY)
            // Common on hosts; it must not turn a configuration error into a stack dump.
            .env("RUST_BACKTRACE", "1")
            // Where no region is set, instance metadata must not be asked for long.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for k in removed {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.starts_with("proxy-server: "), "{stderr}");
        stderr
    };
    let e = one_line(&[("LOG_LEVEL", "bogus")], &[]);
    assert!(e.contains("LOG_LEVEL") && e.contains("debug"), "{e}");
    let e = one_line(&[("MASTER_API_KEY", "short")], &[]);
    assert!(e.contains("MASTER_API_KEY"), "{e}");
    // No region anywhere: an empty home (no ~/.aws/config), no region variables.
    let home = std::env::temp_dir().join(format!("proxy-server-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let e = one_line(
        &[("HOME", home.to_str().unwrap())],
        &[
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
        ],
    );
    assert!(e.contains("AWS_REGION"), "{e}");
}

#[test]
fn a_config_with_routes_and_prices_is_served() {
    let sim_url = sim();
    let dir = std::env::temp_dir().join(format!("proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[[models]]\nname = \"coder\"\nbedrock_id = \"qwen.qwen3-coder-480b-a35b-v1:0\"\napi = \"converse\"\n\n\
         [prices.coder]\ninput = 0.22\noutput = 1.8\n",
    )
    .unwrap();
    let p = proxy(&sim_url, &[("PROXY_CONFIG", config.to_str().unwrap())]);
    let (status, body) = post(
        &p.addr,
        r#"{"model":"coder","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(
        (status, body["model"].as_str()),
        (200, Some("coder")),
        "{body}"
    );
    // The price table gives a cost estimate in /metrics.
    let usage = &body["usage"];
    let want = (usage["input_tokens"].as_f64().unwrap() * 0.22
        + usage["output_tokens"].as_f64().unwrap() * 1.8)
        / 1e6;
    let mut s = TcpStream::connect(&p.addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gateway_cost_usd_total{model=\"coder\"}"))
        .unwrap_or_else(|| panic!("no cost metric in {metrics}"));
    let got: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(want > 0.0 && (got - want).abs() < 1e-12, "{got} vs {want}");
}

/// A plain request; returns (status, body as JSON).
fn post(addr: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let json = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn feature_switches() {
    let sim_url = sim();
    let p = proxy(
        &sim_url,
        &[
            ("ENABLE_TOOL_USE", "false"),
            ("ENABLE_EXTENDED_THINKING", "false"),
            ("ENABLE_DOCUMENT_SUPPORT", "false"),
            ("PROMPT_CACHING_ENABLED", "false"),
        ],
    );
    let tools = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":50,"tools":[{"name":"t","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"x"}]}"#;
    let (status, body) = post(&p.addr, tools);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ENABLE_TOOL_USE")
    );
    let doc = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":50,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"}},{"type":"text","text":"x"}]}]}"#;
    let (status, body) = post(&p.addr, doc);
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ENABLE_DOCUMENT_SUPPORT")
    );
    for model in [
        "claude-sonnet-4-5-20250929",
        "qwen.qwen3-coder-480b-a35b-v1:0",
    ] {
        let thinking = format!(
            r#"{{"model":"{model}","max_tokens":2000,"thinking":{{"type":"enabled","budget_tokens":1024}},"system":[{{"type":"text","text":"s","cache_control":{{"type":"ephemeral"}}}}],"messages":[{{"role":"user","content":"x"}}]}}"#
        );
        let (status, _) = post(&p.addr, &thinking);
        assert_eq!(status, 200, "{model}");
        let sent = sim_requests(&sim_url).last().unwrap()["body"].to_string();
        assert!(
            !sent.contains("thinking") && !sent.contains("budget_tokens"),
            "{model}: thinking removed: {sent}"
        );
        assert!(
            !sent.contains("cache_control") && !sent.contains("cachePoint"),
            "{model}: caching removed: {sent}"
        );
    }
}

#[test]
fn json_logs_carry_request_id_masked_key_model_tokens_latency_and_status() {
    let sim_url = sim();
    let log = std::env::temp_dir().join(format!("proxy-server-log-{}.jsonl", std::process::id()));
    let mut p = proxy_logging_to(
        &sim_url,
        &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "info")],
        Some(&log),
    );
    let (status, body) = post(
        &p.addr,
        r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":50,"messages":[{"role":"user","content":"log me"}]}"#,
    );
    assert_eq!(status, 200);
    let output_tokens = body["usage"]["output_tokens"].as_u64().unwrap();
    let _ = p.child.kill();
    let _ = p.child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(KEY), "the key is never logged whole");
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let usage = lines
        .iter()
        .find(|l| l["fields"]["message"] == "usage")
        .expect("a usage line");
    assert_eq!(
        usage["fields"]["output_tokens"].as_u64(),
        Some(output_tokens)
    );
    let response = lines
        .iter()
        .find(|l| l["fields"]["message"] == "response")
        .expect("a response line");
    assert_eq!(response["fields"]["status"], 200);
    assert!(response["fields"]["latency_ms"].is_u64());
    let span = &response["span"];
    assert!(span["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(span["model"], "claude-sonnet-4-5-20250929");
    let masked = span["key"].as_str().unwrap();
    assert!(masked.contains("...") && masked.len() < 16, "{masked}");
}
