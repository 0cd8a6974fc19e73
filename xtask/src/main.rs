//! `cargo xtask`: every developer task of this workspace, in Rust, no Makefile.
//!
//! - `cargo xtask test`: fmt check, clippy `-D warnings`, the Rust tests (nextest), then the Python
//!   suites (boto3 against bedrock-sim) in a venv that this command creates and keeps up to date.
//! - `cargo xtask demo`: starts bedrock-sim on 127.0.0.1:8001 and prints a request to try.
//! - `cargo xtask bench`: measures bedrock-sim's own throughput with `wrk` (release build).

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
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test [--rust-only|--python-only]  fmt, clippy, Rust tests, Python SDK suites\n  demo                              run bedrock-sim on 127.0.0.1:8001 and print a request\n  bench [SECONDS]                   bedrock-sim throughput with wrk (default 10 s per case)\n  venv                              create/update the Python venvs (.venv, .venv-sdk0) the tests use"
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
            run(cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]))?;
        } else {
            eprintln!("cargo-nextest not found: running cargo test");
            run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
        }
        run(cargo().args(["test", "--workspace", "--doc"]))?;
    }
    if !rust_only {
        run(cargo().args(["build", "--bins"]))?;
        run(cargo().args(["build", "-p", "proxy-convert", "--examples"]))?;
        let scenarios = root.join("target/debug/examples/sse_scenarios");
        let sim = root.join("target/debug/bedrock-sim");
        let (current, legacy) = venvs(root)?;
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
                .env("SSE_SCENARIOS_BIN", &scenarios))
        };
        // The current SDK generation (2.x) and boto3 in one venv; the 0.x SDK in its own.
        pytest(
            &current,
            &["tests/aws_python", "tests/anthropic_sdk", "tests/proxy_sdk"],
        )?;
        pytest(&legacy, &["tests/anthropic_sdk", "tests/proxy_sdk"])?;
    }
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

/// Starts a built bedrock-sim binary on `listen` and waits until it prints its address.
fn start_sim(binary: &Path, listen: &str, extra: &[&str]) -> Result<(KillOnDrop, String)> {
    use std::io::BufRead;
    let mut child = Command::new(binary)
        .args(["--listen", listen])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("bedrock-sim listening on ")
        .with_context(|| format!("bedrock-sim did not start: {line:?}"))?
        .to_owned();
    Ok((KillOnDrop(child), url))
}

fn demo(root: &Path) -> Result<()> {
    run(cargo().args(["build", "--release", "--bin", "bedrock-sim"]))?;
    let (mut sim, url) = start_sim(
        &root.join("target/release/bedrock-sim"),
        "127.0.0.1:8001",
        &[],
    )?;
    println!(
        "\nbedrock-sim is serving the Bedrock Runtime API at {url} (Ctrl-C stops it).\n\n\
         Try it (any Bearer token or SigV4 signature is accepted):\n\n  \
         curl -s {url}/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse \\\n    \
         -H 'authorization: Bearer demo' -H 'content-type: application/json' \\\n    \
         -d '{{\"messages\":[{{\"role\":\"user\",\"content\":[{{\"text\":\"Hello! [sim thinking]\"}}]}}]}}'\n\n  \
         AWS_ENDPOINT_URL_BEDROCK_RUNTIME={url} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 <your AWS SDK program>\n\n  \
         curl -s {url}/_sim/requests   # what it received\n"
    );
    let status = sim.0.wait()?;
    if !status.success() {
        bail!("bedrock-sim exited with {status}");
    }
    Ok(())
}

/// `wrk` Lua scripts: one POST body per case.
fn wrk_script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"content-type\"] = \"application/json\"\nwrk.headers[\"authorization\"] = \"Bearer bench\"\nwrk.body = [[{body}]]\n"
    )
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
    run(cargo().args(["build", "--release", "--bin", "bedrock-sim"]))?;
    let (_sim, url) = start_sim(
        &root.join("target/release/bedrock-sim"),
        "127.0.0.1:0",
        &["--record-limit", "0"],
    )?;
    let dir = std::env::temp_dir().join(format!("bedrock-sim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let converse = r#"{"messages":[{"role":"user","content":[{"text":"Summarise the benefits of connection reuse in two sentences."}]}],"inferenceConfig":{"maxTokens":256}}"#;
    let cases = [
        ("Converse", "converse", converse),
        ("ConverseStream", "converse-stream", converse),
        (
            "InvokeModel",
            "invoke",
            r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"messages":[{"role":"user","content":"Summarise the benefits of connection reuse in two sentences."}]}"#,
        ),
    ];
    let started = Instant::now();
    println!(
        "bedrock-sim throughput, wrk -t2 -c64 -d{seconds}s on loopback ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for (name, op, body) in cases {
        let script = dir.join(format!("{op}.lua"));
        std::fs::write(&script, wrk_script(body))?;
        let target = format!("{url}/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/{op}");
        let out = Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
            .arg(&script)
            .arg(&target)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .unwrap_or("Requests/sec: ?");
        let p50 = text
            .lines()
            .find(|l| l.trim_start().starts_with("50%"))
            .unwrap_or("50% ?")
            .trim();
        let p99 = text
            .lines()
            .find(|l| l.trim_start().starts_with("99%"))
            .unwrap_or("99% ?")
            .trim();
        let non2xx = text
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .unwrap_or("")
            .trim();
        println!("  {name:<15} {rps:<28} latency p50 {p50:<14} p99 {p99} {non2xx}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "(took {:.0?})",
        started.elapsed().max(Duration::from_secs(0))
    );
    Ok(())
}
