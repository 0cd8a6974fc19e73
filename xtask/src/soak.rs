//! `cargo xtask soak --minutes N [--rate R] [--concurrency C] [--disk-pressure GB]`: bedrock-sim and
//! proxy-server (release builds, the embedded store, the response cache on) under a mixed load for N
//! minutes (default 2), then checks what a long run would show first:
//!
//! - no panic (`gateway_panics_total` 0, no `panicked` in the server's log);
//! - the server's RSS and open descriptors flat after warm-up (the last third of the samples against
//!   the first third; bounds in [`RSS_BOUND_MB`], [`RSS_BOUND_RATIO`] and [`FD_BOUND`]);
//! - every request the client saw succeed has exactly one usage record (by its `request-id`) with the
//!   tokens the client was told (zero for a response-cache hit); every stream cut by a fault or by the
//!   client has one record; a request refused by auth or limits has none; no record dropped;
//! - no stream left open (`gateway_open_streams` 0) and the emulator holds no connection once the
//!   gateway has exited; the gateway exits 0 on SIGTERM.
//!
//! The load is a weighted list of traffic classes ([`CLASSES`]) on the three routes (native,
//! Converse, Messages API); upstream faults are the emulator's directives ([`FAULTS`]: add a line
//! to inject another). Exits non-zero on any failed check.
//!
//! `--disk-pressure GB` keeps the disk busy meanwhile: a thread rewrites two scratch files of GB
//! gigabytes, never synced, so gigabytes wait to be written back while the gateway serves (as after
//! a release, or beside a busy neighbour); the summary gives the peak of `Dirty` in /proc/meminfo.
//! The embedded store must answer its key lookups anyway (docs/RELIABILITY.md, "The embedded store
//! on a busy disk").

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::{Scratch, child_command, create_key, start_server, target_dir, terminate};

/// RSS may grow from the first third to the last third of the samples after warm-up by this much...
pub const RSS_BOUND_MB: f64 = 16.0;
/// ...or by this fraction of the first third's, whichever is larger.
pub const RSS_BOUND_RATIO: f64 = 0.25;
/// Open descriptors may grow by this many (the client's pooled connections come and go).
pub const FD_BOUND: f64 = 48.0;

/// The routes a model name takes (the soak's config below).
const ROUTES: &[(&str, &str)] = &[
    ("native", "claude-sonnet-4-5"),
    ("converse", "soak-converse"),
    ("messages", "soak-messages"),
];

const CONFIG: &str = r#"
[[models]]
name = "soak-converse"
bedrock_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
api = "converse"

[[models]]
name = "soak-messages"
bedrock_id = "anthropic.claude-opus-4-8"
api = "messages"
endpoint = "mantle"
"#;

/// What the client must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A complete message or stream: one usage record with its tokens.
    Success,
    /// An error before any byte, in the Anthropic envelope, with one of these types.
    Error(&'static [&'static str]),
    /// A stream that starts and ends in an SSE `error` event: one (estimated) usage record.
    StreamError,
    /// The client reads a few events and leaves: one (estimated) usage record.
    Disconnect,
    /// A success, or a refusal by the key's own request limit (429, no record).
    SuccessOrLimited,
    /// 401 `authentication_error`, no record.
    Unauthorized,
}

/// An upstream fault: the emulator's directive (in the `[sim ...]` marker of the last user
/// message), streamed or not, and what the client must see.
pub struct Fault {
    name: &'static str,
    directive: &'static str,
    stream: bool,
    expect: Expect,
}

/// The faults injected, one of them per fault request (round robin). Directives the emulator does
/// not have are not listed (it would ignore them).
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "throttling",
        directive: "error=throttling",
        stream: false,
        expect: Expect::Error(&["rate_limit_error"]),
    },
    Fault {
        name: "unavailable",
        directive: "error=unavailable",
        stream: true,
        expect: Expect::Error(&["overloaded_error"]),
    },
    Fault {
        name: "stream_error",
        directive: "stream_error=model_stream_error after=3 words=20",
        stream: true,
        expect: Expect::StreamError,
    },
    Fault {
        name: "slow_first_byte",
        directive: "ttfb_ms=300",
        stream: true,
        expect: Expect::Success,
    },
    Fault {
        name: "reset_mid_stream",
        directive: "reset after=3 words=20",
        stream: true,
        expect: Expect::StreamError,
    },
    Fault {
        name: "truncated_frame",
        directive: "truncate after=3 words=20",
        stream: true,
        expect: Expect::StreamError,
    },
    Fault {
        name: "corrupt_frame",
        directive: "bad_crc after=3 words=20",
        stream: true,
        expect: Expect::StreamError,
    },
    // The marker is the same for every such request: the first one is refused once and retried
    // by the gateway; each later one is served at once. Both are a success for the client.
    Fault {
        name: "unavailable_once",
        directive: "error=unavailable fail_first=1 id=soak",
        stream: false,
        expect: Expect::Success,
    },
];

/// The traffic classes and their weights (per 100 requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Plain,
    Stream,
    Tools,
    PromptCache,
    ResponseCache,
    Disconnect,
    Fault,
    BadKey,
    Limited,
}

const CLASSES: &[(Class, u32)] = &[
    (Class::Plain, 20),
    (Class::Stream, 25),
    (Class::Tools, 10),
    (Class::PromptCache, 8),
    (Class::ResponseCache, 10),
    (Class::Disconnect, 7),
    (Class::Fault, 10),
    (Class::BadKey, 5),
    (Class::Limited, 5),
];

/// A small deterministic generator (xorshift), one per request.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one request showed the client.
#[derive(Debug, Default, Clone)]
struct Seen {
    class: Option<Class>,
    route: &'static str,
    fault: Option<&'static str>,
    expect: Option<Expect>,
    status: u16,
    request_id: Option<String>,
    /// The usage the client was told: input, output, cache read, cache write.
    usage: Option<[u64; 4]>,
    cache_hit: bool,
    /// A stream that ended with an SSE `error` event.
    stream_error: bool,
    /// The client left on purpose.
    left: bool,
    /// A stream that ended with `message_stop`, or a message body.
    complete: bool,
    error_type: Option<String>,
    problem: Option<String>,
}

/// The keys the load uses.
struct Keys {
    main: String,
    limited: String,
}

pub fn soak(root: &Path, args: &[String]) -> Result<()> {
    let mut minutes = 2.0_f64;
    let mut rate = 150.0_f64;
    let mut concurrency = 24_usize;
    let mut pressure_gb = 0_u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => minutes = value()?.parse().context("--minutes")?,
            "--rate" => rate = value()?.parse().context("--rate")?,
            "--concurrency" => concurrency = value()?.parse().context("--concurrency")?,
            "--disk-pressure" => pressure_gb = value()?.parse().context("--disk-pressure")?,
            other => bail!(
                "unknown argument {other}: cargo xtask soak [--minutes N] [--rate R] [--concurrency C] [--disk-pressure GB]"
            ),
        }
    }
    let release = target_dir(root).join("release");
    let bins = ["bedrock-sim", "proxy-server", "proxy-admin"];
    // As `cargo xtask release` and `image` build them: nothing to do after those.
    crate::build_gateway_bins()?;
    if let Some(b) = bins.iter().find(|b| !release.join(b).exists()) {
        bail!("{b} was not built in {}", release.display());
    }
    let scratch = Scratch::new(root, "soak")?;
    let dir = scratch.0.clone();
    let store = dir.join("gateway.db");
    let config = dir.join("soak.toml");
    std::fs::write(&config, CONFIG)?;
    let admin = release.join("proxy-admin");
    let keys = Keys {
        main: create_key(&admin, &store, "soak", crate::UNLIMITED)?,
        limited: create_key(
            &admin,
            &store,
            "soak-limited",
            &["--rate-limit-requests", "30", "--rate-limit-window", "60"],
        )?,
    };
    let (sim, sim_url) = start_server(
        "bedrock-sim",
        child_command(&release.join("bedrock-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .env("BEDROCK_SIM_RECORD_LIMIT", "0"),
    )?;
    let sim_pid = sim.0.id();
    let sim_fds_idle = fd_count(sim_pid).unwrap_or(0);
    let log_path = dir.join("proxy-server.log");
    let log = std::fs::File::create(&log_path)?;
    let (mut proxy, url) = start_server(
        "proxy-server",
        crate::at_emulator(
            child_command(&release.join("proxy-server")).args(["--listen", "127.0.0.1:0"]),
            &sim_url,
            "soak",
        )
        .env("STORE_PATH", &store)
        .env("PROXY_CONFIG", &config)
        .env("CACHE_ENABLED", "true")
        .env("LOG_LEVEL", "warn")
        .env("RUST_BACKTRACE", "1")
        .stderr(log),
    )?;
    let pid = proxy.0.id();
    println!(
        "soak: {minutes} min at {rate} req/s (at most {concurrency} at once) on {url}, bedrock-sim {sim_url}"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let pressure = (pressure_gb > 0).then(|| DiskPressure::start(&dir, pressure_gb));
    let (seen, samples) =
        runtime.block_on(drive(url.clone(), keys, duration, rate, concurrency, pid))?;
    if let Some(pressure) = pressure {
        let (written, dirty) = pressure.stop()?;
        println!(
            "disk pressure: {:.1} GB written beside the load, never synced; Dirty peaked at {:.0} MB",
            written as f64 / 1e9,
            dirty as f64 / 1e6
        );
    }
    let mut problems: Vec<String> = Vec::new();

    // Streams: none left open once the load is over.
    let metrics = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = get_metrics(&url).await.unwrap_or_default();
            if metric(&m, "gateway_open_streams") == Some(0.0) || Instant::now() > deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let open_streams = metric(&metrics, "gateway_open_streams");
    if open_streams != Some(0.0) {
        problems.push(format!(
            "gateway_open_streams is {open_streams:?} after the load"
        ));
    }
    let panics = metric(&metrics, "gateway_panics_total");
    if panics != Some(0.0) {
        problems.push(format!("gateway_panics_total is {panics:?}"));
    }
    for lost in [
        "gateway_usage_records_dropped_total",
        "gateway_usage_records_failed_total",
    ] {
        let v = metric(&metrics, lost);
        if v.is_some_and(|v| v != 0.0) {
            problems.push(format!("{lost} is {v:?}"));
        }
    }
    let estimated = metric_sum(&metrics, "gateway_usage_estimated_total");

    // Memory and descriptors.
    let flat = flatness(&samples, duration);
    problems.extend(flat.problems.iter().cloned());

    // The gateway drains and flushes usage on SIGTERM; the emulator then holds no connection.
    terminate(&mut proxy);
    let status = proxy.0.try_wait()?;
    if !status.is_some_and(|s| s.success()) {
        problems.push(format!(
            "proxy-server did not exit 0 on SIGTERM: {status:?}"
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sim_fds_after = fd_count(sim_pid).unwrap_or(0);
    while sim_fds_after > sim_fds_idle && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        sim_fds_after = fd_count(sim_pid).unwrap_or(0);
    }
    if sim_fds_after > sim_fds_idle {
        problems.push(format!(
            "bedrock-sim holds {sim_fds_after} descriptors after the gateway exited ({sim_fds_idle} before the load)"
        ));
    }
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let panicked = log_text.lines().filter(|l| l.contains("panicked")).count();
    if panicked > 0 {
        problems.push(format!("{panicked} 'panicked' lines in proxy-server's log"));
    }

    // Usage: one record per request, as the client saw it.
    let rows = usage_rows(&store)?;
    let usage = check_usage(&seen, &rows, &mut problems);
    drop(sim);

    report(&seen, &usage, &flat, estimated);
    if !problems.is_empty() {
        let shown = problems.len().min(30);
        eprintln!("\nsoak FAILED ({} problem(s)):", problems.len());
        for p in &problems[..shown] {
            eprintln!("  - {p}");
        }
        if problems.len() > shown {
            eprintln!("  ... and {} more", problems.len() - shown);
        }
        let kept = target_dir(root).join("soak-failed.log");
        let _ = std::fs::copy(&log_path, &kept);
        eprintln!("proxy-server's log: {}", kept.display());
        bail!("the soak failed");
    }
    println!("\nsoak passed");
    Ok(())
}

/// A thread that keeps gigabytes waiting for writeback (see the module's docs).
struct DiskPressure {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<(u64, u64)>>,
}

impl DiskPressure {
    fn start(dir: &Path, gb: u64) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let files = [dir.join("pressure.0"), dir.join("pressure.1")];
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            let block = vec![0_u8; 1 << 20];
            let (mut written, mut dirty_peak) = (0_u64, 0_u64);
            'files: for turn in 0.. {
                let mut f = std::fs::File::create(&files[turn % 2])?;
                for i in 0..gb << 10 {
                    if stopped.load(Ordering::Relaxed) {
                        break 'files;
                    }
                    f.write_all(&block)?;
                    written += block.len() as u64;
                    if i % 64 == 0 {
                        dirty_peak = dirty_peak.max(dirty_bytes().unwrap_or(0));
                    }
                }
            }
            for f in &files {
                let _ = std::fs::remove_file(f);
            }
            Ok((written, dirty_peak))
        });
        DiskPressure { stop, thread }
    }

    /// Stops the writer: (bytes written, the peak of `Dirty`).
    fn stop(self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let joined = self.thread.join();
        let result = joined.map_err(|_| anyhow::anyhow!("the disk pressure thread panicked"))?;
        result.context("disk pressure")
    }
}

/// `Dirty` of /proc/meminfo, in bytes.
fn dirty_bytes() -> Option<u64> {
    Some((crate::proc_kb("/proc/meminfo", "Dirty")? * 1024.0) as u64)
}

/// One sample of the server's process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_mb: f64,
    fds: f64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn drive(
    url: String,
    keys: Keys,
    duration: Duration,
    rate: f64,
    concurrency: usize,
    pid: u32,
) -> Result<(Vec<Seen>, Vec<Sample>)> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let keys = Arc::new(keys);
    let url = Arc::new(url);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tick.tick().await;
            let (Some(rss_mb), Some(fds)) = (rss_mb(pid), fd_count(pid)) else {
                break;
            };
            samples.push(Sample {
                at: started.elapsed(),
                rss_mb,
                fds: fds as f64,
            });
            if started.elapsed() > duration {
                break;
            }
        }
        samples
    });
    let counter = Arc::new(AtomicU64::new(0));
    let fault_turn = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    let mut progress = Instant::now();
    while started.elapsed() < duration {
        tick.tick().await;
        let permit = permits.clone().acquire_owned().await?;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let (client, keys, url, seen, fault_turn) = (
            client.clone(),
            keys.clone(),
            url.clone(),
            seen.clone(),
            fault_turn.clone(),
        );
        tasks.spawn(async move {
            let s = one_request(&client, &url, &keys, n, &fault_turn).await;
            seen.lock().unwrap().push(s);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        if progress.elapsed() > Duration::from_secs(30) {
            progress = Instant::now();
            println!(
                "  {:>4.0} s: {} requests",
                started.elapsed().as_secs_f64(),
                n + 1
            );
        }
    }
    while tasks.join_next().await.is_some() {}
    let samples = sampler.await?;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    Ok((seen, samples))
}

fn pick_class(rng: &mut Rng) -> Class {
    let total: u32 = CLASSES.iter().map(|c| c.1).sum();
    let mut r = rng.below(u64::from(total)) as u32;
    for &(class, weight) in CLASSES {
        if r < weight {
            return class;
        }
        r -= weight;
    }
    Class::Plain
}

async fn one_request(
    client: &HttpClient,
    url: &str,
    keys: &Keys,
    n: u64,
    fault_turn: &AtomicU64,
) -> Seen {
    let mut rng =
        Rng(0x9E37_79B9_7F4A_7C15 ^ (n.wrapping_add(1)).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let class = pick_class(&mut rng);
    let (route, model) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
    let mut seen = Seen {
        class: Some(class),
        route,
        ..Seen::default()
    };
    let words = 5 + rng.below(40);
    let mut key = keys.main.as_str();
    let bad_key;
    let mut stream = rng.below(2) == 0;
    let mut directive = format!("words={words}");
    let mut extra = json!({});
    let mut expect = Expect::Success;
    let mut headers: Vec<(&str, String)> = Vec::new();
    match class {
        Class::Plain => stream = false,
        Class::Stream => {
            stream = true;
            directive.push_str(" delay_ms=2");
        }
        Class::Tools => {
            directive.push_str(" tool");
            extra = json!({"tools": [{"name": "get_weather", "description": "The weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]});
        }
        Class::PromptCache => {
            directive.push_str(&format!(
                " cache_read={} cache_write={}",
                1 + rng.below(50),
                rng.below(20)
            ));
        }
        Class::ResponseCache => {
            // A few fixed deterministic requests, repeated: most are hits.
            directive = format!("words={}", 3 + n % 4);
            extra = json!({"temperature": 0});
            headers.push(("x-proxy-cache", "on".into()));
        }
        Class::Disconnect => {
            stream = true;
            directive = "words=300 delay_ms=5".into();
            expect = Expect::Disconnect;
        }
        Class::Fault => {
            let f = &FAULTS[(fault_turn.fetch_add(1, Ordering::Relaxed) as usize) % FAULTS.len()];
            seen.fault = Some(f.name);
            stream = f.stream;
            directive = f.directive.into();
            expect = f.expect;
        }
        Class::BadKey => {
            bad_key = format!("sk-soak-not-a-key-{n:016x}");
            key = &bad_key;
            expect = Expect::Unauthorized;
        }
        Class::Limited => {
            key = keys.limited.as_str();
            expect = Expect::SuccessOrLimited;
        }
    }
    seen.expect = Some(expect);
    let text = if class == Class::ResponseCache {
        format!("soak cached question [sim {directive}]")
    } else {
        format!("soak request {n} [sim {directive}]")
    };
    let mut body = json!({
        "model": model,
        "max_tokens": 512,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let mut req = hyper::Request::post(format!("{url}/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", key);
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    let req = match req.body(Full::new(Bytes::from(body.to_string()))) {
        Ok(r) => r,
        Err(e) => {
            seen.problem = Some(format!("request: {e}"));
            return seen;
        }
    };
    let resp = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            seen.problem = Some(format!("no response: {e}"));
            return seen;
        }
        Err(_) => {
            seen.problem = Some("no response head within 30 s".into());
            return seen;
        }
    };
    seen.status = resp.status().as_u16();
    seen.request_id = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.cache_hit = resp
        .headers()
        .get("x-proxy-cache")
        .is_some_and(|v| v.as_bytes() == b"hit");
    let is_sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut body = resp.into_body();
    if seen.status == 200 && is_sse {
        read_stream(&mut body, &mut seen, expect == Expect::Disconnect).await;
    } else {
        let bytes = match tokio::time::timeout(Duration::from_secs(30), body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            _ => {
                seen.problem = Some("the body did not arrive".into());
                return seen;
            }
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if seen.status == 200 {
            seen.usage = usage_of(&v["usage"], None);
            seen.complete = v["type"] == "message" && seen.usage.is_some();
        } else if v["type"] == "error" {
            seen.error_type = v["error"]["type"].as_str().map(str::to_owned);
        } else {
            seen.problem = Some(format!(
                "a {} without the Anthropic envelope: {}",
                seen.status,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ));
        }
    }
    seen
}

/// Reads an SSE stream, noting usage (`message_start`, then `message_delta`'s fields), `error` and
/// `message_stop`; leaves after 5 events when `leave`.
async fn read_stream(body: &mut hyper::body::Incoming, seen: &mut Seen, leave: bool) {
    let mut buf: Vec<u8> = Vec::new();
    let mut events = 0;
    let mut usage: Option<[u64; 4]> = None;
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                seen.problem = Some(format!("the stream broke: {e}"));
                return;
            }
            Err(_) => {
                seen.problem = Some("the stream stalled for 30 s".into());
                return;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let mut name = "";
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            events += 1;
            match name {
                "message_start" => usage = usage_of(&v["message"]["usage"], None),
                "message_delta" => usage = usage_of(&v["usage"], usage),
                "message_stop" => seen.complete = true,
                "error" => {
                    seen.stream_error = true;
                    seen.error_type = v["error"]["type"].as_str().map(str::to_owned);
                }
                _ => {}
            }
            if leave && events >= 5 {
                seen.left = true;
                seen.usage = usage;
                return;
            }
        }
    }
    seen.usage = usage;
}

/// Usage fields of a `usage` object, over `base` (a `message_delta` carries the final counts).
fn usage_of(u: &Value, base: Option<[u64; 4]>) -> Option<[u64; 4]> {
    if !u.is_object() {
        return base;
    }
    let mut out = base.unwrap_or_default();
    for (i, f) in [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .enumerate()
    {
        if let Some(n) = u[*f].as_u64() {
            out[i] = n;
        }
    }
    Some(out)
}

/// A usage record as stored.
#[derive(Debug, Clone)]
struct Row {
    tokens: [u64; 4],
}

fn usage_rows(store: &Path) -> Result<HashMap<String, Vec<Row>>> {
    let db =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| store.display().to_string())?;
    let mut stmt = db.prepare(
        "SELECT request_id, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens FROM usage",
    )?;
    let mut out: HashMap<String, Vec<Row>> = HashMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            [
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
            ],
        ))
    })?;
    for r in rows {
        let (id, tokens) = r?;
        out.entry(id).or_default().push(Row { tokens });
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct UsageCheck {
    checked: u64,
    exact: u64,
    lost: u64,
    wrong: u64,
    unexpected: u64,
    records: usize,
}

/// Checks each request's outcome against what its class expects, and its usage record.
fn check_usage(
    seen: &[Seen],
    rows: &HashMap<String, Vec<Row>>,
    problems: &mut Vec<String>,
) -> UsageCheck {
    let mut c = UsageCheck {
        records: rows.values().map(Vec::len).sum(),
        ..UsageCheck::default()
    };
    for s in seen {
        let label = format!(
            "{:?}/{}{} ({})",
            s.class.unwrap_or(Class::Plain),
            s.route,
            s.fault.map(|f| format!("/{f}")).unwrap_or_default(),
            s.request_id.as_deref().unwrap_or("no request-id"),
        );
        if let Some(p) = &s.problem {
            problems.push(format!("{label}: {p}"));
            continue;
        }
        let found = s.request_id.as_ref().and_then(|id| rows.get(id));
        let n = found.map_or(0, Vec::len);
        let success = s.status == 200 && s.complete && !s.stream_error;
        let expect = s.expect.unwrap_or(Expect::Success);
        let outcome_ok = match expect {
            Expect::Success => success,
            Expect::SuccessOrLimited => {
                success || (s.status == 429 && s.error_type.as_deref() == Some("rate_limit_error"))
            }
            Expect::Error(types) => {
                s.status >= 400 && s.error_type.as_deref().is_some_and(|t| types.contains(&t))
            }
            Expect::StreamError => s.status == 200 && s.stream_error,
            Expect::Disconnect => s.status == 200 && s.left,
            Expect::Unauthorized => {
                s.status == 401 && s.error_type.as_deref() == Some("authentication_error")
            }
        };
        if !outcome_ok {
            c.unexpected += 1;
            problems.push(format!(
                "{label}: expected {expect:?}, got {} {:?}{}{}",
                s.status,
                s.error_type,
                if s.complete { " complete" } else { "" },
                if s.stream_error { " stream error" } else { "" },
            ));
            continue;
        }
        if success {
            c.checked += 1;
            let want = if s.cache_hit {
                [0; 4]
            } else {
                s.usage.unwrap_or_default()
            };
            match found.map(Vec::as_slice) {
                None | Some([]) => {
                    c.lost += 1;
                    problems.push(format!("{label}: a success without a usage record"));
                }
                Some([row]) if row.tokens == want => c.exact += 1,
                Some([row]) => {
                    c.wrong += 1;
                    problems.push(format!(
                        "{label}: usage record {:?}, the client was told {want:?}",
                        row.tokens
                    ));
                }
                Some(more) => {
                    c.wrong += 1;
                    problems.push(format!("{label}: {} usage records", more.len()));
                }
            }
        } else if matches!(expect, Expect::StreamError | Expect::Disconnect) {
            c.checked += 1;
            if n != 1 {
                c.lost += 1;
                problems.push(format!("{label}: {n} usage records for a cut stream"));
            } else if let (Some(rows), Some(u)) = (found, s.usage)
                && rows[0].tokens[0] < u[0]
            {
                c.wrong += 1;
                problems.push(format!(
                    "{label}: a cut stream recorded {:?}, message_start said {u:?}",
                    rows[0].tokens
                ));
            } else {
                c.exact += 1;
            }
        } else if matches!(expect, Expect::Unauthorized | Expect::SuccessOrLimited) && n != 0 {
            problems.push(format!(
                "{label}: a refused request has {n} usage record(s)"
            ));
        }
    }
    c
}

struct Flatness {
    warm_up: Duration,
    first: Option<(f64, f64)>,
    last: Option<(f64, f64)>,
    start: Option<Sample>,
    end: Option<Sample>,
    problems: Vec<String>,
}

/// Compares the last third of the samples after warm-up (a fifth of the run, at least 20 s) with
/// the first third: medians of RSS and descriptors.
fn flatness(samples: &[Sample], duration: Duration) -> Flatness {
    let warm_up = (duration / 5)
        .max(Duration::from_secs(20))
        .min(duration / 2);
    let after: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at >= warm_up)
        .collect();
    let mut f = Flatness {
        warm_up,
        first: None,
        last: None,
        start: samples.first().copied(),
        end: samples.last().copied(),
        problems: Vec::new(),
    };
    if after.len() < 3 {
        f.problems.push(format!(
            "only {} samples after warm-up: run longer",
            after.len()
        ));
        return f;
    }
    let third = after.len() / 3;
    let med = |s: &[Sample], g: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = s.iter().map(g).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let first = &after[..third];
    let last = &after[after.len() - third..];
    let (r0, r1) = (med(first, |s| s.rss_mb), med(last, |s| s.rss_mb));
    let (d0, d1) = (med(first, |s| s.fds), med(last, |s| s.fds));
    f.first = Some((r0, d0));
    f.last = Some((r1, d1));
    let rss_allowed = RSS_BOUND_MB.max(r0 * RSS_BOUND_RATIO);
    if r1 - r0 > rss_allowed {
        f.problems.push(format!(
            "RSS grew from {r0:.1} MB to {r1:.1} MB after warm-up (allowed: +{rss_allowed:.1} MB)"
        ));
    }
    if d1 - d0 > FD_BOUND {
        f.problems.push(format!(
            "open descriptors grew from {d0} to {d1} after warm-up (allowed: +{FD_BOUND})"
        ));
    }
    f
}

fn report(seen: &[Seen], usage: &UsageCheck, flat: &Flatness, estimated: Option<f64>) {
    let mut by_class: Vec<(String, u64, HashMap<String, u64>)> = Vec::new();
    for s in seen {
        let name = match (s.class, s.fault) {
            (Some(Class::Fault), Some(f)) => format!("fault {f}"),
            (c, _) => format!("{:?}", c.unwrap_or(Class::Plain)),
        };
        let outcome = if s.problem.is_some() {
            "problem".to_owned()
        } else if s.left {
            "left mid-stream".to_owned()
        } else if s.stream_error {
            "stream error event".to_owned()
        } else if s.status == 200 && s.cache_hit {
            "200 (cache hit)".to_owned()
        } else {
            s.status.to_string()
        };
        let entry = match by_class.iter_mut().find(|e| e.0 == name) {
            Some(e) => e,
            None => {
                by_class.push((name, 0, HashMap::new()));
                by_class.last_mut().unwrap()
            }
        };
        entry.1 += 1;
        *entry.2.entry(outcome).or_default() += 1;
    }
    by_class.sort_by(|a, b| a.0.cmp(&b.0));
    println!("\n{:<24} {:>8}  outcomes", "class", "requests");
    for (name, n, outcomes) in &by_class {
        let mut o: Vec<_> = outcomes.iter().collect();
        o.sort();
        let o: Vec<String> = o.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("{name:<24} {n:>8}  {}", o.join(", "));
    }
    let mut routes: HashMap<&str, u64> = HashMap::new();
    for s in seen {
        *routes.entry(s.route).or_default() += 1;
    }
    let mut routes: Vec<_> = routes.into_iter().collect();
    routes.sort();
    println!(
        "{:<24} {:>8}  by route: {}",
        "all",
        seen.len(),
        routes
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\nusage: {} requests checked against the store ({} records in it): {} exact, {} lost, {} wrong; {} outcomes not as expected; estimated records (cut streams): {}",
        usage.checked,
        usage.records,
        usage.exact,
        usage.lost,
        usage.wrong,
        usage.unexpected,
        estimated.map_or("?".into(), |e| format!("{e:.0}")),
    );
    let show = |s: Option<Sample>| {
        s.map_or("?".into(), |s| {
            format!(
                "{:.1} MB, {} fds at {:.0} s",
                s.rss_mb,
                s.fds,
                s.at.as_secs_f64()
            )
        })
    };
    println!(
        "proxy-server: start {}; end {}",
        show(flat.start),
        show(flat.end)
    );
    if let (Some((r0, d0)), Some((r1, d1))) = (flat.first, flat.last) {
        println!(
            "after {:.0} s of warm-up, medians of the first and last thirds: RSS {r0:.1} -> {r1:.1} MB (bound +max({RSS_BOUND_MB} MB, {:.0}%)), fds {d0} -> {d1} (bound +{FD_BOUND})",
            flat.warm_up.as_secs_f64(),
            RSS_BOUND_RATIO * 100.0
        );
    }
}

async fn get_metrics(url: &str) -> Result<String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client.get(format!("{url}/metrics").parse()?).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The sum of a metric's series.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}

fn rss_mb(pid: u32) -> Option<f64> {
    Some(crate::proc_kb(&format!("/proc/{pid}/status"), "VmRSS")? / 1024.0)
}

fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
