//! `cargo xtask`: every developer task of this workspace, in Rust, no Makefile.
//!
//! - `cargo xtask test`: fmt check, clippy `-D warnings`, the Rust tests (nextest), then the Python
//!   suites (boto3 against bedrock-sim) in a venv that this command creates and keeps up to date.
//! - `cargo xtask demo`: starts bedrock-sim (127.0.0.1:8001) and proxy-server (127.0.0.1:8000) and
//!   prints a request to try.
//! - `cargo xtask bench`: the latency the gateway adds and its throughput, against bedrock-sim
//!   called directly in the same run (release builds, `wrk` for load).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("venv") => venvs(&root).map(|_| ()),
        Some("setup-tables") => run(cargo()
            .args(["run", "--quiet", "-p", "proxy-admin", "--", "setup-tables"])
            .args(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test [--rust-only|--python-only]  fmt, clippy, Rust tests, Python SDK suites\n  demo                              run bedrock-sim and proxy-server (no AWS account) and print a request\n  bench [SECONDS]                   latency the gateway adds and throughput vs bedrock-sim (wrk; default 10 s per case)\n  venv                              create/update the Python venvs (.venv, .venv-sdk0) the tests use\n  setup-tables                      create the DynamoDB tables (proxy-admin setup-tables; AWS env as usual)"
            );
            std::process::exit(2);
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test(root: &Path, args: &[String]) -> Result<()> {
    let python_only = args.iter().any(|a| a == "--python-only");
    let rust_only = args.iter().any(|a| a == "--rust-only");
    // The venvs come first: the Rust suite of the DynamoDB store runs moto's server from `.venv`.
    let (current, legacy) = venvs(root)?;
    let moto = root.join(".venv/bin/moto_server");
    if !python_only {
        run(cargo().args(["fmt", "--all", "--check"]))?;
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        if has_nextest() {
            run(cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .env("MOTO_SERVER_BIN", &moto))?;
        } else {
            eprintln!("cargo-nextest not found: running cargo test");
            run(cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .env("MOTO_SERVER_BIN", &moto))?;
        }
        run(cargo().args(["test", "--workspace", "--doc"]))?;
        // The store suite again on Amazon's DynamoDB Local (npm package pinned in tests/dynamodb,
        // Java 17). It binds every interface, so it runs inside a private network namespace.
        npm_install(&root.join("tests/dynamodb"))?;
        let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let inner = if has_nextest() {
            "ip link set lo up && exec \"$0\" nextest run -p proxy-store --test behaviour --run-ignored only"
        } else {
            "ip link set lo up && exec \"$0\" test -p proxy-store --test behaviour -- --ignored"
        };
        let namespaces = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if namespaces {
            run(Command::new("unshare")
                .args(["-n", "sh", "-c", inner])
                .arg(&cargo_bin))?;
        } else {
            // Not root (or no util-linux/iproute2): the test still runs, with its port open.
            eprintln!(
                "warning: no private network namespace here (unshare -n needs root); DynamoDB Local's port is reachable from outside while its test runs"
            );
            run(Command::new("sh")
                .args(["-c", inner.trim_start_matches("ip link set lo up && ")])
                .arg(&cargo_bin))?;
        }
    }
    if !rust_only {
        run(cargo().args(["build", "--bins"]))?;
        run(cargo().args(["build", "-p", "proxy-convert", "--examples"]))?;
        let scenarios = root.join("target/debug/examples/sse_scenarios");
        let sim = root.join("target/debug/bedrock-sim");
        let proxy = root.join("target/debug/proxy-server");
        let pytest = |python: &Path, suites: &[&str]| -> Result<()> {
            run(Command::new(python)
                .args([
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-W",
                    "ignore::DeprecationWarning",
                ])
                .args(suites)
                .env("BEDROCK_SIM_BIN", &sim)
                .env("PROXY_SERVER_BIN", &proxy)
                .env("PROXY_ADMIN_BIN", root.join("target/debug/proxy-admin"))
                .env("SSE_SCENARIOS_BIN", &scenarios))
        };
        // The current SDK generation (2.x) and boto3 in one venv; the 0.x SDK in its own.
        pytest(
            &current,
            &[
                "tests/boto3",
                "tests/bedrock_messages",
                "tests/anthropic_sdk",
                "tests/proxy_sdk",
                "tests/keys",
            ],
        )?;
        pytest(
            &legacy,
            // The DynamoDB store test is about the store, not the SDK generation: once is enough.
            &[
                "tests/anthropic_sdk",
                "tests/proxy_sdk",
                "tests/keys",
                "--ignore=tests/keys/test_dynamodb.py",
            ],
        )?;
        // Claude Code itself (npm package pinned in tests/claude_cli), through both routes.
        let claude_code = root.join("tests/claude_cli");
        if claude_code.join("package.json").exists() {
            npm_install(&claude_code)?;
            pytest(&current, &["tests/claude_cli"])?;
        }
    }
    Ok(())
}

/// `npm ci` in `dir` when its lock file changed since the last install.
fn npm_install(dir: &Path) -> Result<()> {
    let lock =
        std::fs::read_to_string(dir.join("package-lock.json")).context("package-lock.json")?;
    let stamp = dir.join("node_modules/.installed-lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(());
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir))?;
    std::fs::write(&stamp, lock)?;
    Ok(())
}

/// Both test venvs: `.venv` (tests/requirements.txt: boto3, pytest, the 2.x Anthropic SDK) and
/// `.venv-sdk0` (tests/requirements-sdk0.txt: the 0.x Anthropic SDK); returns their pythons.
fn venvs(root: &Path) -> Result<(PathBuf, PathBuf)> {
    Ok((
        venv(root, ".venv", "tests/requirements.txt")?,
        venv(root, ".venv-sdk0", "tests/requirements-sdk0.txt")?,
    ))
}

/// Creates the venv `name` and installs `requirements` into it when that file changed; returns the
/// venv's python.
fn venv(root: &Path, name: &str, requirements: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    let python = dir.join("bin/python");
    let requirements = root.join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| requirements.display().to_string())?;
    let stamp = dir.join(".requirements-installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return Ok(python);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (a built server binary, given its `--listen` address) and waits until it prints
/// `{name} listening on {url}` on stdout; returns the child (killed on drop) and that url.
fn start_server(name: &str, cmd: &mut Command) -> Result<(KillOnDrop, String)> {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", Path::new(cmd.get_program()).display()))?;
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix(&format!("{name} listening on "))
        .with_context(|| format!("{name} did not start: {line:?}"))?
        .to_owned();
    Ok((KillOnDrop(child), url))
}

/// Starts a built bedrock-sim binary on `listen` and waits until it prints its address.
fn start_sim(binary: &Path, listen: &str, extra: &[&str]) -> Result<(KillOnDrop, String)> {
    start_server(
        "bedrock-sim",
        Command::new(binary).args(["--listen", listen]).args(extra),
    )
}

/// Starts a built proxy-server on `listen` in front of the emulator at `sim_url`.
fn start_proxy(
    binary: &Path,
    listen: &str,
    sim_url: &str,
    key: &str,
    extra_env: &[(&str, &str)],
) -> Result<(KillOnDrop, String)> {
    start_server(
        "proxy-server",
        Command::new(binary)
            .args(["--listen", listen])
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", sim_url)
            .env("AWS_ENDPOINT_URL_BEDROCK", sim_url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "demo")
            .env("AWS_SECRET_ACCESS_KEY", "demo")
            .env("MASTER_API_KEY", key)
            .env(
                "STORE_PATH",
                std::env::temp_dir().join(format!("gateway-{}.db", std::process::id())),
            )
            .env(
                "LOG_LEVEL",
                std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .envs(extra_env.iter().copied()),
    )
}

fn demo(root: &Path) -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "--bin",
        "bedrock-sim",
        "--bin",
        "proxy-server",
    ]))?;
    let (_sim, sim_url) = start_sim(
        &root.join("target/release/bedrock-sim"),
        "127.0.0.1:8001",
        &[],
    )?;
    let key = "sk-demo-0123456789";
    let (mut proxy, url) = start_proxy(
        &root.join("target/release/proxy-server"),
        "127.0.0.1:8000",
        &sim_url,
        key,
        &[],
    )?;
    println!(
        "\nproxy-server is serving the Anthropic API at {url}, in front of bedrock-sim at {sim_url}\n\
         (no AWS account needed; Ctrl-C stops both).\n\n\
         Try it:\n\n  \
         curl -s {url}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' \\\n    \
         -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":256,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'\n\n\
         Any Anthropic client works: ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={key}\n\
         (e.g. claude --model claude-sonnet-4-6). Script the emulator with markers such as\n\
         [sim thinking tool] in the prompt (bedrock-sim --help lists them); what Bedrock received:\n\
         curl -s {sim_url}/_sim/requests\n"
    );
    let status = proxy.0.wait()?;
    if !status.success() {
        bail!("proxy-server exited with {status}");
    }
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection; returns (time to the first occurrence of `marker`
/// in the response, if given, and the time to the end of the response).
fn timed_request(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    marker: Option<&[u8]>,
) -> Result<(Duration, Duration)> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    let mut seen = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if first.is_none()
            && let Some(m) = marker
            && seen.windows(m.len()).any(|w| w == m)
        {
            first = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    if !seen.starts_with(b"HTTP/1.1 200") {
        bail!(
            "{path}: {}",
            String::from_utf8_lossy(&seen[..seen.len().min(300)])
        );
    }
    Ok((first.unwrap_or(total), total))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p99 over `n` sequential requests (after 20 warm-up requests).
fn latencies(
    n: usize,
    mut one: impl FnMut() -> Result<(Duration, Duration)>,
    first_token: bool,
) -> Result<(Duration, Duration)> {
    for _ in 0..20 {
        one()?;
    }
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let (first, total) = one()?;
        all.push(if first_token { first } else { total });
    }
    all.sort();
    Ok((percentile(&all, 0.5), percentile(&all, 0.99)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bench(root: &Path, args: &[String]) -> Result<()> {
    let seconds: u64 = args
        .first()
        .map(|s| s.parse())
        .transpose()
        .context("bench SECONDS")?
        .unwrap_or(10);
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        bail!("wrk is not installed (apt-get install wrk)");
    }
    run(cargo().args([
        "build",
        "--release",
        "--bin",
        "bedrock-sim",
        "--bin",
        "proxy-server",
    ]))?;
    let (_sim, sim_url) = start_sim(
        &root.join("target/release/bedrock-sim"),
        "127.0.0.1:0",
        &["--record-limit", "0"],
    )?;
    let key = "sk-bench-0123456789";
    let (_proxy, proxy_url) = start_proxy(
        &root.join("target/release/proxy-server"),
        "127.0.0.1:0",
        &sim_url,
        key,
        &[],
    )?;
    // A second gateway with the response cache on (its own store file).
    let cache_store = std::env::temp_dir().join(format!("gateway-cache-{}.db", std::process::id()));
    let (_cached, cached_url) = start_proxy(
        &root.join("target/release/proxy-server"),
        "127.0.0.1:0",
        &sim_url,
        key,
        &[
            ("CACHE_ENABLED", "true"),
            ("STORE_PATH", cache_store.to_str().unwrap_or_default()),
        ],
    )?;
    let cached_addr = cached_url.trim_start_matches("http://").to_owned();
    let sim_addr = sim_url.trim_start_matches("http://").to_owned();
    let proxy_addr = proxy_url.trim_start_matches("http://").to_owned();
    let dir = std::env::temp_dir().join(format!("gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let prompt = "Summarise the benefits of connection reuse in two sentences.";
    let converse = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"text":"{prompt}"}}]}}],"inferenceConfig":{{"maxTokens":256}}}}"#
    );
    let native = format!(
        r#"{{"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let anthropic = |model: &str, stream: bool| {
        format!(
            r#"{{"model":"{model}","max_tokens":256,"stream":{stream},"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
        )
    };
    let deterministic = format!(
        r#"{{"model":"qwen.qwen3-coder-480b-a35b-v1:0","max_tokens":256,"temperature":0,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let qwen = "/model/qwen.qwen3-coder-480b-a35b-v1%3A0";
    let claude = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
    let sim_auth = [("authorization", "Bearer bench")];
    let proxy_auth = [("x-api-key", key), ("anthropic-version", "2023-06-01")];
    let n = 500;

    println!(
        "Latency the gateway adds: {n} sequential requests per case, fresh connection each, loopback, {cores} cores"
    );
    println!(
        "  {:<44} {:>10} {:>10} {:>10} {:>10}",
        "case", "direct p50", "proxy p50", "direct p99", "proxy p99"
    );
    let cases: Vec<(&str, String, String, String, &str, bool)> = vec![
        (
            "Converse route, non-streaming",
            format!("{qwen}/converse"),
            converse.clone(),
            anthropic("qwen.qwen3-coder-480b-a35b-v1:0", false),
            "",
            false,
        ),
        (
            "native route, non-streaming",
            format!("{claude}/invoke"),
            native.clone(),
            anthropic("claude-sonnet-4-5-20250929", false),
            "",
            false,
        ),
        (
            "Converse route, stream: time to first token",
            format!("{qwen}/converse-stream"),
            converse.clone(),
            anthropic("qwen.qwen3-coder-480b-a35b-v1:0", true),
            "contentBlockDelta",
            true,
        ),
    ];
    for (name, sim_path, sim_body, proxy_body, sim_marker, first_token) in &cases {
        let proxy_marker: &[u8] = if *first_token {
            b"content_block_delta"
        } else {
            b""
        };
        let (dp50, dp99) = latencies(
            n,
            || {
                timed_request(
                    &sim_addr,
                    sim_path,
                    &sim_auth,
                    sim_body,
                    first_token.then_some(sim_marker.as_bytes()),
                )
            },
            *first_token,
        )?;
        let (pp50, pp99) = latencies(
            n,
            || {
                timed_request(
                    &proxy_addr,
                    "/v1/messages",
                    &proxy_auth,
                    proxy_body,
                    first_token.then_some(proxy_marker),
                )
            },
            *first_token,
        )?;
        println!(
            "  {name:<44} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>8.3}ms   added p50 {:+.3}ms ({:.2}x), p99 {:+.3}ms ({:.2}x)",
            ms(dp50),
            ms(pp50),
            ms(dp99),
            ms(pp99),
            ms(pp50) - ms(dp50),
            ms(pp50) / ms(dp50),
            ms(pp99) - ms(dp99),
            ms(pp99) / ms(dp99)
        );
    }

    // The response cache: after one miss every request is a hit served from the embedded store.
    timed_request(
        &cached_addr,
        "/v1/messages",
        &proxy_auth,
        &deterministic,
        None,
    )?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let deterministic_at = |addr: &str| {
        latencies(
            n,
            || timed_request(addr, "/v1/messages", &proxy_auth, &deterministic, None),
            false,
        )
    };
    let (miss50, miss99) = deterministic_at(&proxy_addr)?;
    let (hit50, hit99) = deterministic_at(&cached_addr)?;
    println!(
        "  {:<44} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>8.3}ms   hit/miss p50 {:.2}x, p99 {:.2}x",
        "cache hit vs miss (Converse route, sim)",
        ms(miss50),
        ms(hit50),
        ms(miss99),
        ms(hit99),
        ms(hit50) / ms(miss50),
        ms(hit99) / ms(miss99)
    );

    println!(
        "\nThroughput, wrk -t2 -c64 -d{seconds}s (wrk, gateway and emulator share the {cores} cores)"
    );
    let wrk = |name: &str, url: String, body: &str, headers: &[(&str, &str)]| -> Result<f64> {
        let script = dir.join(format!("{}.lua", name.replace(' ', "_")));
        let mut lua = String::from(
            "wrk.method = \"POST\"\nwrk.headers[\"content-type\"] = \"application/json\"\n",
        );
        for (k, v) in headers {
            lua.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
        }
        lua.push_str(&format!("wrk.body = [[{body}]]\n"));
        std::fs::write(&script, lua)?;
        let out = Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
            .arg(&script)
            .arg(&url)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
            bail!("{name}: {}", line.trim());
        }
        let rps: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{name}: no Requests/sec in wrk output:\n{text}"))?;
        let p99 = text
            .lines()
            .find(|l| l.trim_start().starts_with("99%"))
            .unwrap_or("99% ?")
            .trim()
            .to_owned();
        println!("  {name:<40} {rps:>10.0} req/s   latency {p99}");
        Ok(rps)
    };
    let direct = wrk(
        "bedrock-sim Converse",
        format!("{sim_url}{qwen}/converse"),
        &converse,
        &sim_auth,
    )?;
    let proxied = wrk(
        "proxy-server Converse route",
        format!("{proxy_url}/v1/messages"),
        &anthropic("qwen.qwen3-coder-480b-a35b-v1:0", false),
        &proxy_auth,
    )?;
    let native_rps = wrk(
        "proxy-server native route",
        format!("{proxy_url}/v1/messages"),
        &anthropic("claude-sonnet-4-5-20250929", false),
        &proxy_auth,
    )?;
    let hits = wrk(
        "proxy-server cache hits",
        format!("{cached_url}/v1/messages"),
        &deterministic,
        &proxy_auth,
    )?;
    wrk(
        "bedrock-sim ConverseStream",
        format!("{sim_url}{qwen}/converse-stream"),
        &converse,
        &sim_auth,
    )?;
    wrk(
        "proxy-server Converse route, stream",
        format!("{proxy_url}/v1/messages"),
        &anthropic("qwen.qwen3-coder-480b-a35b-v1:0", true),
        &proxy_auth,
    )?;
    println!(
        "\n  proxied/direct throughput: Converse route {:.2}, native route {:.2} (the emulator alone answers {:.0} req/s)",
        proxied / direct,
        native_rps / direct,
        direct
    );
    println!(
        "  cache hits / Converse route through the gateway: {:.2}",
        hits / proxied
    );
    let _ = std::fs::remove_file(&cache_store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
