//! `cargo xtask image`: the gateway's container image, built from this checkout's binaries (the
//! `dist` profile: release, optimized across crates) with no base image and no daemon, then run and
//! checked end to end.
//!
//! Two images, both `FROM scratch` plus the binaries and exactly what they load (`ldd`: glibc's
//! loader, libc, libm, libgcc_s), Debian's CA bundle, `/etc/passwd` with the non-root user 10001, and
//! a writable `/data` (the working directory, and the embedded store's file `/data/gateway.db`):
//!
//! - `localhost/bedrock-gateway:<version>`: `proxy-server` (the entrypoint) and `proxy-admin`; health
//!   check `proxy-admin health` (`GET /health`; the image has no shell or curl), stop signal SIGTERM
//!   (the server drains open requests and flushes usage), listening on `0.0.0.0:8000`.
//! - `localhost/bedrock-sim:<version>`: the Bedrock emulator, for the compose file and this check.
//!
//! `buildah` assembles them (as root, vfs storage: no overlay or fuse needed), in Docker's image
//! format because the OCI format has no health check. The check starts both with `podman` (host
//! network, `runc`, cgroupfs, no default ulimits: the settings that work on a machine without systemd
//! or cgroup delegation), sends a request with the operator key through the gateway to the emulator,
//! runs the image's health check, and stops the gateway with its stop signal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Scratch, describe, run, target_dir};

/// The gateway image's name (the tag is the workspace version).
pub const GATEWAY: &str = "localhost/bedrock-gateway";
/// The emulator image's name.
pub const SIM: &str = "localhost/bedrock-sim";
/// The non-root user (and group) the images run as.
const USER: &str = "10001";

/// `cargo xtask image`: build both images, then run them and check a request end to end.
pub fn image(root: &Path, args: &[String]) -> Result<()> {
    let version = workspace_version(root)?;
    build(root, &version)?;
    if args.iter().any(|a| a == "--no-check") {
        return Ok(());
    }
    check(root, &version)
}

/// The `[workspace.package]` version of the root `Cargo.toml`.
pub fn workspace_version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return Ok(v.to_owned());
        }
    }
    bail!("no version in [workspace.package] of Cargo.toml")
}

/// Builds the shipped binaries (the `dist` profile) and both images, tagged `version`.
pub fn build(root: &Path, version: &str) -> Result<()> {
    if !is_root() {
        bail!("cargo xtask image runs buildah and podman as root (vfs storage); run it as root");
    }
    for tool in ["buildah", "ldd", "strip"] {
        if crate::which(tool).is_none() {
            bail!(
                "`{tool}` not found: install it (Debian: apt-get install buildah podman runc binutils)"
            );
        }
    }
    // The `dist` profile (Cargo.toml): what ships is optimized across crates.
    crate::build_bins("dist", crate::GATEWAY_BINS)?;
    let bins = target_dir(root).join("dist");
    let scratch = Scratch::new(root, "image-rootfs")?;
    assemble(
        &scratch.0.join("gateway"),
        &[bins.join("proxy-server"), bins.join("proxy-admin")],
        &format!("{GATEWAY}:{version}"),
        version,
        &[
            "--entrypoint",
            r#"["/usr/local/bin/proxy-server"]"#,
            "--env",
            "LISTEN_ADDR=0.0.0.0:8000",
            "--env",
            "STORE_PATH=/data/gateway.db",
            "--port",
            "8000",
            "--healthcheck",
            "CMD /usr/local/bin/proxy-admin health",
            "--healthcheck-interval",
            "10s",
            "--healthcheck-timeout",
            "5s",
            "--healthcheck-start-period",
            "10s",
            "--healthcheck-retries",
            "3",
            "--label",
            "org.opencontainers.image.title=bedrock-gateway",
            "--label",
            "org.opencontainers.image.description=Anthropic Messages API on AWS Bedrock (proxy-server, proxy-admin)",
        ],
    )?;
    assemble(
        &scratch.0.join("sim"),
        &[bins.join("bedrock-sim")],
        &format!("{SIM}:{version}"),
        version,
        &[
            "--entrypoint",
            r#"["/usr/local/bin/bedrock-sim"]"#,
            "--env",
            "BEDROCK_SIM_LISTEN=0.0.0.0:8001",
            "--port",
            "8001",
            "--label",
            "org.opencontainers.image.title=bedrock-sim",
            "--label",
            "org.opencontainers.image.description=A local AWS Bedrock emulator (tests and demos only)",
        ],
    )?;
    Ok(())
}

/// Lays out a root filesystem in `dir` with `binaries` (stripped) and what they load, and commits
/// it as the image `name` with the extra `buildah config` arguments `config`.
fn assemble(
    dir: &Path,
    binaries: &[PathBuf],
    name: &str,
    version: &str,
    config: &[&str],
) -> Result<()> {
    let bin = dir.join("usr/local/bin");
    std::fs::create_dir_all(&bin)?;
    let mut libs = std::collections::BTreeSet::new();
    for binary in binaries {
        let out = bin.join(binary.file_name().context("binary name")?);
        run(Command::new("strip").arg("-o").arg(&out).arg(binary))?;
        libs.extend(shared_libraries(binary)?);
    }
    for lib in &libs {
        // The path the loader looks up (a symlink on the host is copied as the file it names).
        let to = dir.join(lib.strip_prefix("/").unwrap_or(lib));
        std::fs::create_dir_all(to.parent().unwrap())?;
        std::fs::copy(lib, &to).with_context(|| format!("copying {}", lib.display()))?;
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !certs.exists() {
        bail!(
            "{} missing: install Debian's ca-certificates (the gateway verifies Bedrock's TLS certificates with it)",
            certs.display()
        );
    }
    std::fs::create_dir_all(dir.join("etc/ssl/certs"))?;
    std::fs::copy(certs, dir.join("etc/ssl/certs/ca-certificates.crt"))?;
    std::fs::write(
        dir.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\ngateway:x:{USER}:{USER}:gateway:/data:/sbin/nologin\n"
        ),
    )?;
    std::fs::write(
        dir.join("etc/group"),
        format!("root:x:0:\ngateway:x:{USER}:\n"),
    )?;
    let empty = dir.with_extension("empty");
    std::fs::create_dir_all(&empty)?;

    // The image this build replaces under the same tag: removed afterwards (vfs keeps full copies).
    let previous = buildah()
        .args(["images", "--quiet", "--noheading", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let container = output(buildah().args(["from", "--pull=never", "scratch"]))?;
    let container = container.trim();
    let result = (|| {
        run(buildah()
            .args(["copy", "--quiet", container])
            .arg(dir)
            .arg("/"))?;
        // Writable by the user: the working directory (the embedded store) and /tmp.
        run(buildah()
            .args(["copy", "--quiet", "--chown", &format!("{USER}:{USER}")])
            .arg(container)
            .arg(&empty)
            .arg("/data"))?;
        run(buildah()
            .args(["copy", "--quiet", "--chmod", "1777", container])
            .arg(&empty)
            .arg("/tmp"))?;
        run(buildah()
            .args(["config", "--user", &format!("{USER}:{USER}")])
            .args(["--workingdir", "/data", "--stop-signal", "SIGTERM"])
            .args(["--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"])
            .args([
                "--label",
                &format!("org.opencontainers.image.version={version}"),
            ])
            .args(["--label", "org.opencontainers.image.licenses=Apache-2.0"])
            .args(config)
            .arg(container))?;
        run(buildah().args([
            "commit", "--quiet", "--format", "docker", "--rm", container, name,
        ]))
    })();
    if result.is_err() {
        let _ = buildah().args(["rm", container]).status();
    } else if !previous.is_empty() {
        // Still in use by a container, it stays; otherwise it goes.
        let _ = buildah()
            .args(["rmi", &previous])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    result
}

/// The shared libraries `binary` loads (absolute paths, from `ldd`), the loader included.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        } else if line.contains("not found") {
            bail!("{}: {line}", binary.display());
        }
    }
    Ok(libs)
}

/// Runs both images with podman: a request with the operator key through the gateway to the
/// emulator must answer 200 with text, and one with a key that the image's proxy-admin makes in the
/// gateway's store; the image's health check must pass; the stop signal must stop the gateway cleanly
/// (exit status 0) well before podman's kill timeout.
pub fn check(root: &Path, version: &str) -> Result<()> {
    let conf = podman_conf(root)?;
    let (sim_port, gateway_port) = (free_port()?, free_port()?);
    let tag = std::process::id();
    let sim = Container::start(
        &conf,
        &format!("xtask-sim-{tag}"),
        &["--env", &format!("BEDROCK_SIM_LISTEN=127.0.0.1:{sim_port}")],
        &format!("{SIM}:{version}"),
    )?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let key = "sk-image-check-0123456789";
    let gateway = Container::start(
        &conf,
        &format!("xtask-gateway-{tag}"),
        &[
            "--env",
            &format!("LISTEN_ADDR=127.0.0.1:{gateway_port}"),
            "--env",
            &format!("AWS_ENDPOINT_URL_BEDROCK_RUNTIME={sim_url}"),
            "--env",
            &format!("AWS_ENDPOINT_URL_BEDROCK_MANTLE={sim_url}/mantle"),
            "--env",
            &format!("AWS_ENDPOINT_URL_BEDROCK={sim_url}"),
            "--env",
            "AWS_REGION=us-east-1",
            "--env",
            "AWS_ACCESS_KEY_ID=image-check",
            "--env",
            "AWS_SECRET_ACCESS_KEY=image-check",
            "--env",
            &format!("MASTER_API_KEY={key}"),
        ],
        &format!("{GATEWAY}:{version}"),
    )?;
    let gateway_addr = format!("127.0.0.1:{gateway_port}");
    wait_healthy(&format!("127.0.0.1:{sim_port}"), "/_sim/requests", &sim)?;
    wait_healthy(&gateway_addr, "/health", &gateway)?;

    let body = r#"{"model":"claude-opus-4-8","max_tokens":64,"messages":[{"role":"user","content":"Hello from the image check"}]}"#;
    let (status, answer) = http(
        &gateway_addr,
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", key),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        body,
    )?;
    if status != 200 {
        bail!(
            "POST /v1/messages through the image answered {status}: {answer}\n{}",
            gateway.logs()
        );
    }
    let answer: Value = serde_json::from_str(&answer).context("the answer is not JSON")?;
    let text = answer["content"][0]["text"].as_str().unwrap_or_default();
    if answer["type"] != "message" || text.is_empty() {
        bail!("POST /v1/messages through the image: no text in {answer}");
    }
    let (status, _) = http(&gateway_addr, "POST", "/v1/messages", &[], body)?;
    if status != 401 {
        bail!("a request without a key answered {status}, not 401");
    }
    eprintln!("image check: POST /v1/messages -> 200, {:?}", text);

    // proxy-admin in the image, on the gateway's store (/data/gateway.db, as the image's user): a
    // key it makes is one the gateway takes.
    let created = output(podman(&conf).args([
        "exec",
        &gateway.name,
        "/usr/local/bin/proxy-admin",
        "keys",
        "create",
        "--user-id",
        "image-check",
        "--name",
        "check",
        "--json",
    ]))?;
    let created: Value =
        serde_json::from_str(&created).context("proxy-admin keys create --json")?;
    let store_key = created["key"]
        .as_str()
        .context("no key in proxy-admin's answer")?;
    let (status, answer) = http(
        &gateway_addr,
        "POST",
        "/v1/messages",
        &[
            ("x-api-key", store_key),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        body,
    )?;
    if status != 200 {
        bail!("a key made by the image's proxy-admin answered {status}: {answer}");
    }
    eprintln!("image check: a key made by proxy-admin in the image -> 200");

    // The image's own health check, run now (without systemd, podman cannot schedule it and says so
    // on `run` and `stop`: harmless here).
    run(podman(&conf).args(["healthcheck", "run", &gateway.name]))?;
    let user = output(podman(&conf).args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{.Config.StopSignal}} {{json .Config.Healthcheck.Test}}",
        &format!("{GATEWAY}:{version}"),
    ]))?;
    let wanted = format!(r#"{USER}:{USER} SIGTERM ["CMD","/usr/local/bin/proxy-admin","health"]"#);
    if user.trim() != wanted {
        bail!(
            "the gateway image's user, stop signal and health check: {user:?}, wanted {wanted:?}"
        );
    }
    // `podman stop` sends the image's stop signal and kills after 30 s: the server must drain and
    // exit 0 well before.
    let started = Instant::now();
    run(podman(&conf).args(["stop", "--time", "30", &gateway.name]))?;
    let took = started.elapsed();
    let exit =
        output(podman(&conf).args(["inspect", "--format", "{{.State.ExitCode}}", &gateway.name]))?;
    if exit.trim() != "0" || took > Duration::from_secs(20) {
        bail!(
            "the gateway stopped with status {} after {took:?} (wanted 0, promptly)\n{}",
            exit.trim(),
            gateway.logs()
        );
    }
    eprintln!(
        "image check: health check passed; SIGTERM stopped the gateway in {took:.1?} with status 0"
    );
    drop(gateway);
    drop(sim);
    Ok(())
}

/// A running container, removed when dropped.
struct Container {
    name: String,
    conf: PathBuf,
}

impl Container {
    fn start(conf: &Path, name: &str, args: &[&str], image: &str) -> Result<Self> {
        let _ = podman(conf)
            .args(["rm", "--force", "--ignore", name])
            .stdout(Stdio::null())
            .status();
        run(podman(conf)
            .args(["run", "--detach", "--network", "host", "--name", name])
            .args(args)
            .arg(image)
            .stdout(Stdio::null()))?;
        Ok(Container {
            name: name.to_owned(),
            conf: conf.to_owned(),
        })
    }

    fn logs(&self) -> String {
        podman(&self.conf)
            .args(["logs", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{} logs:\n{}{}",
                    self.name,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&self.conf)
            .args(["rm", "--force", "--time", "2", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits up to 60 s for `GET path` at `addr` to answer 200.
fn wait_healthy(addr: &str, path: &str, container: &Container) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http(addr, "GET", path, &[], "") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer GET {path} within 60 s\n{}",
                container.name,
                container.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The containers.conf podman needs on these machines: without systemd's delegation, setting the
/// default rlimits fails in the runtime.
fn podman_conf(root: &Path) -> Result<PathBuf> {
    let dir = target_dir(root).join("podman");
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n")?;
    Ok(conf)
}

/// `buildah` on vfs storage (shared with `podman`, below), in Docker's image format (the only one
/// with a health check).
pub fn buildah() -> Command {
    let mut cmd = Command::new("buildah");
    cmd.env("BUILDAH_FORMAT", "docker")
        .args(["--storage-driver", "vfs"]);
    cmd
}

/// `podman` with the settings that work here: vfs storage, runc, cgroupfs, `conf`.
fn podman(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf).args([
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    cmd
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed ({})", describe(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One HTTP/1.1 request over a fresh connection (plain HTTP, `Connection: close`): the status and
/// the body (de-chunked).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, rest) = raw.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Ok((status, rest.to_owned()));
    }
    let (mut body, mut rest) = (String::new(), rest);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            break;
        }
        body.push_str(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).unwrap_or_default();
    }
    Ok((status, body))
}
