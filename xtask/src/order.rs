//! `cargo xtask symbol-order [CALLGRIND_OUT]`: writes `bins/proxy-server/symbol-order.txt`, the
//! link order of proxy-server's code (its `build.rs`), from a callgrind profile of proxy-server.
//!
//! Without an argument it takes the profile itself (it needs `valgrind`): the `dist` build of
//! proxy-server under callgrind, the emulator as Bedrock, requests of every route, plain and
//! streamed, `count_tokens`, `/v1/models` and `/metrics`, then SIGTERM. By hand, the same is
//!
//! ```text
//! valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
//!     --callgrind-out-file=cg.out target/dist/proxy-server --listen 127.0.0.1:8000
//! ```
//!
//! with those requests, and `cargo xtask symbol-order cg.out`. Every function of proxy-server's
//! binary that ran is listed, most instructions first; the functions of the shared libraries are
//! left out. Rebuild the `dist` profile afterwards: the order is the linker's.
//!
//! The list goes stale as the code changes: a function that runs and is not listed lies among
//! the ones that never do, and the kernel reads 64 KB of code around it (fault-around).
//! `cargo xtask bench` says when proxy-server holds much more code than the list names.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{Conn, Req};
use crate::{KillOnDrop, Scratch, child_command, start_server, target_dir};

pub fn symbol_order(root: &Path, args: &[String]) -> Result<()> {
    let (text, profile) = match args {
        [profile] => (
            std::fs::read_to_string(profile).with_context(|| format!("reading {profile}"))?,
            profile.clone(),
        ),
        [] => (take_profile(root)?, "the profile".to_owned()),
        _ => bail!("usage: cargo xtask symbol-order [CALLGRIND_OUT]"),
    };
    let names = ran(&text, "/proxy-server");
    if names.is_empty() {
        bail!("{profile} has no function of proxy-server: was it made with --compress-strings=no?");
    }
    let out = root.join(crate::SYMBOL_ORDER);
    std::fs::write(&out, names.join("\n") + "\n")?;
    eprintln!(
        "{} functions written to {}; rebuild the dist profile to link in that order",
        names.len(),
        out.display()
    );
    Ok(())
}

/// The profile the module's doc describes, taken on a fresh `dist` build; its text.
fn take_profile(root: &Path) -> Result<String> {
    if crate::which("valgrind").is_none() {
        bail!("valgrind not found: apt-get install -y valgrind");
    }
    crate::build_bins("dist", crate::GATEWAY_BINS)?;
    let bins = target_dir(root).join("dist");
    let scratch = Scratch::new(root, "symbol-order")?;
    let (_sim, sim_url) = start_server(
        "bedrock-sim",
        child_command(&bins.join("bedrock-sim")).args([
            "--listen",
            "127.0.0.1:0",
            "--record-limit",
            "0",
        ]),
    )?;
    let store = scratch.0.join("gateway.db");
    let key = crate::create_key(&bins.join("proxy-admin"), &store, "order", crate::UNLIMITED)?;
    let config = scratch.0.join("gateway.toml");
    std::fs::write(&config, crate::MANTLE_MODEL)?;
    let out = scratch.0.join("callgrind.out");
    eprintln!("proxy-server under callgrind (about 20 s)");
    let (mut gateway, url) = start_server(
        "proxy-server",
        crate::at_emulator(
            child_command(Path::new("valgrind"))
                .args([
                    "--tool=callgrind",
                    "--demangle=no",
                    "--compress-strings=no",
                    "--compress-pos=no",
                ])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(bins.join("proxy-server"))
                .args(["--listen", "127.0.0.1:0"]),
            &sim_url,
            "order",
        )
        .env("STORE_PATH", &store)
        .env("PROXY_CONFIG", &config)
        .env("LOG_LEVEL", "warn")
        .stderr(Stdio::null()),
    )?;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    every_route(&addr, &key)?;
    stop(&mut gateway)?;
    std::fs::read_to_string(&out).with_context(|| format!("callgrind wrote no {}", out.display()))
}

/// Requests of every route, plain and streamed, and the other endpoints, as a client sends them.
fn every_route(addr: &str, key: &str) -> Result<()> {
    let mut conn = Conn::new(addr);
    let headers = vec![
        ("x-api-key".to_owned(), key.to_owned()),
        ("anthropic-version".to_owned(), "2023-06-01".to_owned()),
    ];
    let post = |path: &str, body: String| Req {
        path: path.to_owned(),
        headers: headers.clone(),
        body,
    };
    for model in [
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-8",
    ] {
        for stream in [false, true] {
            let req = post(
                "/v1/messages",
                format!(
                    r#"{{"model":"{model}","max_tokens":256,"stream":{stream},"messages":[{{"role":"user","content":"Summarise the benefits of connection reuse in two sentences."}}]}}"#
                ),
            )
            .bytes(addr);
            for _ in 0..30 {
                conn.exchange(&req, None)
                    .with_context(|| format!("{model}, stream {stream}"))?;
            }
        }
        let count = post(
            "/v1/messages/count_tokens",
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
        );
        conn.exchange(&count.bytes(addr), None)
            .with_context(|| format!("count_tokens, {model}"))?;
    }
    for path in ["/v1/models", "/metrics"] {
        let get = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n\r\n"
        );
        conn.exchange(get.as_bytes(), None).context(path)?;
    }
    Ok(())
}

/// SIGTERM, then the wait for callgrind to write its profile (the drain runs under valgrind).
fn stop(child: &mut KillOnDrop) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait()? {
            if !status.success() {
                bail!("proxy-server under callgrind ended with {status}");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("proxy-server under callgrind did not stop within 2 minutes of SIGTERM")
}

/// The functions of the object whose path ends with `object` that ran, by instructions of their
/// own (not their callees'), most first. Callgrind marks a function in a recursive cycle `name'2`;
/// the mark is dropped.
fn ran(profile: &str, object: &str) -> Vec<String> {
    let mut own: HashMap<&str, u64> = HashMap::new();
    let (mut ob, mut current, mut call_follows) = ("", None, false);
    for line in profile.lines() {
        if let Some(o) = line.strip_prefix("ob=") {
            ob = o.trim();
        } else if let Some(f) = line.strip_prefix("fn=") {
            let name = f.trim();
            let name = name
                .rsplit_once('\'')
                .filter(|(_, cycle)| cycle.bytes().all(|b| b.is_ascii_digit()))
                .map_or(name, |(n, _)| n);
            // Valgrind's own entries, such as `(below main)`, and code without a symbol (named by
            // its address) are not symbols.
            current = (ob.ends_with(object) && !name.contains(' ') && !name.starts_with("0x"))
                .then_some(name);
            if let Some(n) = current {
                own.entry(n).or_default();
            }
        } else if line.starts_with("calls=") {
            // The next cost line is the call's inclusive cost, not the caller's own.
            call_follows = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            if std::mem::take(&mut call_follows) {
                continue;
            }
            let cost = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u64>().ok());
            if let (Some(n), Some(c)) = (current, cost) {
                *own.entry(n).or_default() += c;
            }
        }
    }
    let mut names: Vec<(&str, u64)> = own.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.into_iter().map(|(n, _)| n.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::ran;

    #[test]
    fn own_cost_orders_the_binarys_functions_and_a_calls_cost_is_not_the_callers() {
        let profile = "events: Ir\n\
            ob=/usr/lib/libc.so.6\nfn=memcpy\n0 500\n\
            ob=/x/proxy-server\nfn=cold\n0 3\ncfn=hot\ncalls=1 0\n0 900\n\
            fn=hot'2\n0 10\n+1 5\n\
            fn=warm\n0 12\nfn=(below main)\n0 99\nfn=0x00000000007c08a0\n0 7\n";
        assert_eq!(ran(profile, "/proxy-server"), ["hot", "warm", "cold"]);
    }
}
