//! proxy-server routing from Bedrock's catalog, as a user runs it: in front of bedrock-sim with
//! models served only through inference profiles, and with the control plane out of reach.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{KEY, Proxy};

/// bedrock-sim with `config`, for the life of the test process.
fn sim(config: &str) -> String {
    common::sim_with(bedrock_sim::Config::from_toml(config).unwrap())
}

/// The gateway with its runtime calls to `runtime_url` and its control-plane calls to
/// `control_url`, logging to `log`.
fn proxy(
    runtime_url: &str,
    control_url: &str,
    log: &std::path::Path,
    env: &[(&str, &str)],
) -> Proxy {
    common::start(runtime_url, control_url, Some(log), env)
}

/// One HTTP/1.1 exchange: (status, body).
fn call(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {KEY}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies here are small and not chunked except for /metrics, which is read as text anyway.
    (status, body.to_owned())
}

fn model_ids(addr: &str) -> Vec<String> {
    let (status, body) = call(addr, "GET", "/v1/models?limit=1000", None);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sim_model_ids(sim_url: &str) -> Vec<String> {
    let addr = sim_url.trim_start_matches("http://");
    let (_, body) = call(addr, "GET", "/_sim/requests", None);
    let v: Vec<Value> = serde_json::from_str(&body).unwrap();
    v.iter()
        .filter_map(|r| r["model_id"].as_str().map(str::to_owned))
        .collect()
}

fn message(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":50,"messages":[{{"role":"user","content":"hello"}}]}}"#
    )
}

fn log_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("proxy-catalog-{name}-{}.log", std::process::id()))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn claude_models_route_and_list_by_their_anthropic_names() {
    let sim_url = sim(r#"
[[model]]
id = "anthropic.claude-opus-4-8"
name = "Claude Opus 4.8"
provider = "Anthropic"
on_demand = false
geos = ["us", "eu", "global"]
"#);
    let log = log_path("live");
    let p = proxy(&sim_url, &sim_url, &log, &[("MODEL_REFRESH_INTERVAL", "1")]);
    wait_for("the catalog lists claude-opus-4-8", || {
        model_ids(&p.addr).contains(&"claude-opus-4-8".to_owned())
    });
    let ids = model_ids(&p.addr);
    assert!(ids.contains(&"claude-sonnet-4-5".to_owned()), "{ids:?}");
    assert!(
        ids.contains(&"qwen.qwen3-coder-480b-a35b-v1:0".to_owned()),
        "{ids:?}"
    );
    assert!(
        !ids.iter().any(|i| i.starts_with("us.")),
        "no profile ids: {ids:?}"
    );
    let (status, body) = call(&p.addr, "GET", "/v1/models/claude-opus-4-8", None);
    assert_eq!(status, 200);
    let m: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["display_name"], "Claude Opus 4.8");
    let (status, body) = call(&p.addr, "GET", "/v1/models/claude-nope-1", None);
    assert_eq!(status, 404, "{body}");

    // The profile-only model is served through the geography's profile.
    let (status, body) = call(
        &p.addr,
        "POST",
        "/v1/messages",
        Some(&message("claude-opus-4-8")),
    );
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["model"], "claude-opus-4-8");
    // A claude-* name found nowhere goes to Bedrock as itself, and its refusal comes back.
    let (status, body) = call(
        &p.addr,
        "POST",
        "/v1/messages",
        Some(&message("claude-nope-1")),
    );
    assert!((400..500).contains(&status), "{status} {body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["type"], "error", "{body}");
    let sent = sim_model_ids(&sim_url);
    assert!(
        sent.contains(&"us.anthropic.claude-opus-4-8".to_owned()),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"us.anthropic.claude-nope-1".to_owned()),
        "{sent:?}"
    );

    let (_, metrics) = call(&p.addr, "GET", "/metrics", None);
    let last = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_model_catalog_last_success_timestamp_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(last.trim().parse::<f64>().unwrap() > 1.0e9, "{last}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("cannot read Bedrock's model catalog"),
        "{text}"
    );
}

#[test]
fn without_the_control_plane_the_builtin_table_routes() {
    let sim_url = sim("");
    // Nothing listens on the control-plane endpoint.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let log = log_path("offline");
    let p = proxy(&sim_url, &closed, &log, &[("MODEL_REFRESH_INTERVAL", "1")]);
    let errors = || {
        let (_, metrics) = call(&p.addr, "GET", "/metrics", None);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("gateway_model_catalog_refresh_errors_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("two failed catalog reads", || errors() >= 2);
    let ids = model_ids(&p.addr);
    assert!(ids.contains(&"claude-sonnet-4-6".to_owned()), "{ids:?}");
    assert!(!ids.contains(&"claude-opus-4-8".to_owned()), "{ids:?}");
    let (status, body) = call(
        &p.addr,
        "POST",
        "/v1/messages",
        Some(&message("claude-sonnet-4-5")),
    );
    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("cannot read Bedrock's model catalog").count(),
        1,
        "one warning per streak of failures:\n{text}"
    );
    assert!(text.contains("built-in table"), "{text}");
}
