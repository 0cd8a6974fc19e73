//! proxy-admin as scripts use it: the exact interface, JSON output, and a table that never shows keys.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_proxy-admin");

fn store_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("proxy-admin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("gateway.db")
}

fn admin(store: &PathBuf, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("STORE_PATH", store)
        .env_remove("STORE_BACKEND")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(store: &PathBuf, args: &[&str]) -> Value {
    let (ok, out, err) = admin(store, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn keys_lifecycle() {
    let store = store_path("keys");
    let created = json(
        &store,
        &[
            "keys",
            "create",
            "--user-id",
            "alice",
            "--name",
            "laptop",
            "--rate-limit-requests",
            "3",
            "--rate-limit-window",
            "60",
            "--tokens-per-minute",
            "1000",
            "--monthly-token-budget",
            "50000",
            "--models",
            "claude-sonnet-4-5,coder",
            "--json",
        ],
    );
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-") && key.len() == 46);
    assert_eq!(
        (created["user_id"].as_str(), created["name"].as_str()),
        (Some("alice"), Some("laptop"))
    );
    assert_eq!(created["limits"]["rate_limit_requests"], 3);
    assert_eq!(
        created["allowed_models"],
        serde_json::json!(["claude-sonnet-4-5", "coder"])
    );
    json(
        &store,
        &[
            "keys",
            "create",
            "--user-id",
            "bob",
            "--name",
            "ci",
            "--json",
        ],
    );

    let (ok, table, _) = admin(&store, &["keys", "list"]);
    assert!(ok);
    assert!(!table.contains(&key), "the list never shows a whole key");
    assert!(table.contains(&key_id) && table.contains("laptop") && table.contains("3/60s"));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    let col = |l: &str| {
        l.find("USER_ID")
            .or_else(|| l.find("alice"))
            .or_else(|| l.find("bob"))
    };
    assert_eq!(col(lines[0]), col(lines[1]), "aligned columns:\n{table}");
    assert_eq!(col(lines[1]), col(lines[2]), "aligned columns:\n{table}");

    let listed = json(&store, &["keys", "list", "--user-id", "alice", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&key));

    let updated = json(
        &store,
        &[
            "keys",
            "update",
            &key_id,
            "--name",
            "desk",
            "--tokens-per-minute",
            "5",
            "--all-models",
            "--json",
        ],
    );
    assert_eq!(updated["name"], "desk");
    assert_eq!(updated["limits"]["tokens_per_minute"], 5);
    assert_eq!(
        updated["limits"]["rate_limit_requests"], 3,
        "other limits stay"
    );
    assert!(updated["allowed_models"].is_null());

    let (ok, out, _) = admin(&store, &["keys", "revoke", &key_id]);
    assert!(ok && out.contains(&key_id));
    assert_eq!(
        json(&store, &["keys", "show", &key_id, "--json"])["active"],
        false
    );
    assert_eq!(
        json(&store, &["keys", "update", &key_id, "--activate", "--json"])["active"],
        true
    );

    let (ok, _, err) = admin(&store, &["keys", "show", "key_nope"]);
    assert!(!ok && err.contains("key_nope"));
}

#[tokio::test]
async fn usage_reports_what_the_store_holds() {
    let path = store_path("usage");
    let store = proxy_store::Store::Embedded(proxy_store::EmbeddedStore::open(&path).unwrap());
    let record = |id: &str, key: &str, ts: i64, input: u64| proxy_store::UsageRecord {
        request_id: id.into(),
        key_id: key.into(),
        user_id: "alice".into(),
        model: "claude-sonnet-4-5".into(),
        bedrock_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        input_tokens: input,
        output_tokens: 2 * input,
        cache_read_input_tokens: 1,
        cache_creation_input_tokens: 0,
        latency_ms: 5,
        ttft_ms: None,
        status: 200,
        stream: false,
        timestamp: ts,
    };
    let day1 = 1_795_600_000;
    store
        .insert_usage(&[
            record("r1", "key_1", day1, 10),
            record("r2", "key_1", day1 + 86_400, 20),
            record("r3", "key_2", day1, 5),
        ])
        .await
        .unwrap();
    let rows = json(&path, &["usage", "--key-id", "key_1", "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "per key and day");
    for field in [
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ] {
        assert!(rows[0][field].is_u64(), "{field}");
    }
    assert_eq!(
        (rows[0]["day"].as_str(), rows[0]["input_tokens"].as_u64()),
        (Some("2026-11-25"), Some(10))
    );
    let totals = json(&path, &["usage", "--totals", "--json"]);
    let k1 = totals
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key_id"] == "key_1")
        .unwrap()
        .clone();
    assert_eq!(
        (
            k1["requests"].as_u64(),
            k1["input_tokens"].as_u64(),
            k1["output_tokens"].as_u64()
        ),
        (Some(2), Some(30), Some(60))
    );
    let since = json(&path, &["usage", "--since", "2026-11-26", "--json"]);
    assert_eq!(since.as_array().unwrap().len(), 1);
    let (ok, table, _) = admin(&path, &["usage", "--user-id", "alice"]);
    assert!(ok && table.lines().count() == 4 && table.starts_with("DAY"));
    assert!(!table.contains("COST_USD") && rows[0].get("cost_usd").is_none());

    // With the gateway's config, its price table gives cost estimates.
    let config = path.with_file_name("gateway.toml");
    std::fs::write(
        &config,
        "[[models]]\nname = \"claude-sonnet-4-5\"\nbedrock_id = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"\n\n\
         [prices.\"claude-*\"]\ninput = 3.0\noutput = 15.0\ncache_read = 0.3\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let priced = json(&path, &["usage", "--totals", "--config", config, "--json"]);
    let k1 = priced
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key_id"] == "key_1")
        .unwrap();
    // 30 input, 60 output, 2 cache-read tokens.
    let want = (30.0 * 3.0 + 60.0 * 15.0 + 2.0 * 0.3) / 1e6;
    assert!(
        (k1["cost_usd"].as_f64().unwrap() - want).abs() < 1e-12,
        "{k1}"
    );
    let (ok, table, _) = admin(&path, &["usage", "--config", config]);
    assert!(
        ok && table.lines().next().unwrap().ends_with("COST_USD"),
        "{table}"
    );
    let (ok, _, err) = admin(
        &path,
        &[
            "usage",
            "--config",
            path.with_file_name("missing.toml").to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("PROXY_CONFIG"), "{err}");
}

#[test]
fn bad_arguments_name_what_is_wrong() {
    let store = store_path("bad");
    let (ok, _, err) = admin(&store, &["usage", "--since", "yesterday"]);
    assert!(!ok && err.contains("--since"));
    let out = Command::new(BIN)
        .args(["keys", "list"])
        .env("STORE_PATH", &store)
        .env("STORE_BACKEND", "floppy")
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("STORE_BACKEND")
    );
    let (ok, _, err) = admin(
        &store,
        &[
            "keys",
            "create",
            "--user-id",
            "u",
            "--name",
            "n",
            "--rate-limit-requests",
            "0",
        ],
    );
    assert!(!ok && err.contains("--rate-limit-requests"));
    let (ok, _, err) = admin(&store, &["keys", "create", "--name", "n"]);
    assert!(!ok && err.contains("--user-id"));
}

/// `proxy-admin health` (the images' health check) passes on a 200 and fails on anything else or on
/// a closed port.
#[test]
fn health_check_exit_status() {
    use std::io::{Read, Write};
    let serve = |status: &'static str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /health HTTP/1.1\r\n"), "{got:?}");
            // The head in pieces, as a server may write it: the check must read the whole status
            // line (it once read only the first piece and failed a healthy server).
            for piece in ["HTTP/1.1 ", status, "\r\ncontent-length: 0\r\n\r\n"] {
                conn.write_all(piece.as_bytes()).unwrap();
                conn.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        url
    };
    let check = |url: &str| {
        Command::new(BIN)
            .args(["health", "--url", url])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(check(&serve("200 OK")));
    // Without --url: the port of LISTEN_ADDR, as the server reads it.
    let url = serve("200 OK");
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/health");
    let status = Command::new(BIN)
        .arg("health")
        .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!check(&serve("503 Service Unavailable")));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", closed.local_addr().unwrap());
    drop(closed);
    assert!(!check(&url));
}
