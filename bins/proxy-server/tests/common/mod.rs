//! What the proxy-server test files share: bedrock-sim in-process, and the binary started as a user
//! starts it.

#![allow(dead_code, reason = "each test file uses a part")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_proxy-server");
pub const KEY: &str = "sk-test-master-0123456789";

/// bedrock-sim with `config` on its own runtime thread, for the life of the test process.
pub fn sim_with(config: bedrock_sim::Config) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let sim = bedrock_sim::testing::LocalSim::start(config).await.unwrap();
            tx.send(sim.url().to_owned()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

fn next_id() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A running proxy-server, killed when dropped.
pub struct Proxy {
    pub child: Child,
    pub addr: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway with its runtime calls to `runtime_url` and its control-plane calls to
/// `control_url`, with stderr (the logs) written to `log` when given, and `env` on top.
pub fn start(
    runtime_url: &str,
    control_url: &str,
    log: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Proxy {
    start_command(Command::new(BIN), runtime_url, control_url, log, env)
}

/// Like [`start`], with the process's descriptor limit (`ulimit -n`) set to `nofile`.
pub fn start_with_nofile(
    nofile: u32,
    runtime_url: &str,
    log: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Proxy {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
        BIN,
    ]);
    start_command(cmd, runtime_url, runtime_url, log, env)
}

/// Like [`start`], with the variables in `remove` taken out of the environment after the usual ones
/// are set (e.g. the static AWS credentials, for a test of another credential source).
pub fn start_without(
    runtime_url: &str,
    remove: &[&str],
    log: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Proxy {
    start_command_with(
        Command::new(BIN),
        runtime_url,
        runtime_url,
        log,
        env,
        remove,
    )
}

fn start_command(
    cmd: Command,
    runtime_url: &str,
    control_url: &str,
    log: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Proxy {
    start_command_with(cmd, runtime_url, control_url, log, env, &[])
}

fn start_command_with(
    mut cmd: Command,
    runtime_url: &str,
    control_url: &str,
    log: Option<&std::path::Path>,
    env: &[(&str, &str)],
    remove: &[&str],
) -> Proxy {
    if let Some(path) = log {
        cmd.stderr(std::fs::File::create(path).unwrap());
    }
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", runtime_url)
        .env("AWS_ENDPOINT_URL_BEDROCK", control_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("MASTER_API_KEY", KEY)
        .env(
            "STORE_PATH",
            std::env::temp_dir().join(format!(
                "proxy-server-test-{}-{}.db",
                std::process::id(),
                next_id()
            )),
        )
        .env("LOG_LEVEL", "warn")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("proxy-server listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    Proxy { child, addr }
}

/// Sends SIGTERM and waits (at most 20 s) for the process to exit.
pub fn sigterm(p: &mut Proxy) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The usage rows in the embedded store at `store`, per model: (requests, input tokens, output
/// tokens).
pub fn usage(store: &std::path::Path) -> std::collections::HashMap<String, (u64, u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = proxy_store::open("embedded", store, "unused")
            .await
            .unwrap();
        let rows = s.usage(&proxy_store::UsageQuery::default()).await.unwrap();
        let mut by_model = std::collections::HashMap::new();
        for r in rows {
            let e = by_model.entry(r.model).or_insert((0, 0, 0));
            e.0 += r.requests;
            e.1 += r.input_tokens;
            e.2 += r.output_tokens;
        }
        by_model
    })
}
