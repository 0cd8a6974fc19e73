//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` (libFuzzer, built by cargo-fuzz
//! on the stable toolchain with `--sanitizer none`), each for its share of the time, from the seeds
//! committed in `fuzz/seeds` plus the corpus earlier runs grew (kept in the target directory). Prints
//! executions, corpus and findings per target, and fails on any finding (its input is kept in
//! `<target dir>/fuzz/artifacts/<target>/`: replay it with `cargo fuzz run -s none --fuzz-dir fuzz
//! <target> <file>`, then make it a regression test in the crate's own suite).
//!
//! `cargo xtask fuzz [--minutes N | --seconds-each S] [--target T]`: N minutes split evenly over the
//! targets (default 5), or S seconds for each (CI: 15).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The targets (`fuzz/fuzz_targets/<name>.rs`) and the folder of `fuzz/seeds` each starts from.
pub const TARGETS: &[(&str, &str)] = &[
    ("parse_request", "requests"),
    ("to_converse", "requests"),
    ("to_native_body", "requests"),
    ("eventstream", "eventstream"),
    ("native_chunk", "native_chunk"),
    ("messages_sse", "messages_sse"),
];

/// One target's run.
struct Outcome {
    name: &'static str,
    seconds: f64,
    executions: u64,
    corpus: usize,
    findings: Vec<String>,
}

pub fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let mut minutes: Option<f64> = None;
    let mut seconds_each: Option<u64> = None;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => minutes = Some(value()?.parse().context("--minutes")?),
            "--seconds-each" => seconds_each = Some(value()?.parse().context("--seconds-each")?),
            "--target" => only = Some(value()?.clone()),
            other => bail!(
                "unknown argument {other}: cargo xtask fuzz [--minutes N | --seconds-each S] [--target T]"
            ),
        }
    }
    let targets: Vec<(&'static str, &'static str)> = TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    if targets.is_empty() {
        bail!(
            "no fuzz target {:?}; the targets: {}",
            only.unwrap_or_default(),
            TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
        );
    }
    let each = match seconds_each {
        Some(s) => s.max(1),
        None => ((minutes.unwrap_or(5.0) * 60.0) / targets.len() as f64).max(1.0) as u64,
    };
    let cargo_fuzz = crate::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !cargo_fuzz {
        bail!(
            "cargo-fuzz is missing: cargo install cargo-fuzz --version 0.13.2 --locked (.ci/run does)"
        );
    }
    let target_dir = crate::target_dir(root);
    let fuzz_dir = root.join("fuzz");
    // Release, with debug assertions and overflow checks (`-a`): an overflow is a finding. No
    // sanitizer: the workspace forbids `unsafe`, and ASan needs a nightly compiler.
    let started = Instant::now();
    crate::run(
        crate::cargo()
            .args(["fuzz", "build", "-s", "none", "-a", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    eprintln!(
        "fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let bin_dir = target_dir.join(host_triple()?).join("release");
    let mut outcomes = Vec::new();
    for (name, seeds) in targets {
        outcomes.push(run_target(
            &bin_dir.join(name),
            name,
            &fuzz_dir.join("seeds").join(seeds),
            &target_dir.join("fuzz"),
            each,
        )?);
    }
    println!(
        "\n{:<16} {:>8} {:>14} {:>10} {:>8}  findings",
        "target", "seconds", "executions", "exec/s", "corpus"
    );
    let mut total = 0;
    for o in &outcomes {
        total += o.executions;
        println!(
            "{:<16} {:>8.0} {:>14} {:>10.0} {:>8}  {}",
            o.name,
            o.seconds,
            o.executions,
            o.executions as f64 / o.seconds.max(0.001),
            o.corpus,
            if o.findings.is_empty() {
                "none".to_owned()
            } else {
                o.findings.join(", ")
            }
        );
    }
    println!("{:<16} {:>8} {:>14}", "all", "", total);
    let found: Vec<_> = outcomes.iter().filter(|o| !o.findings.is_empty()).collect();
    if !found.is_empty() {
        bail!(
            "the fuzzers found {} input(s) that fail: see the artifacts above",
            found.iter().map(|o| o.findings.len()).sum::<usize>()
        );
    }
    Ok(())
}

fn run_target(
    binary: &Path,
    name: &'static str,
    seeds: &Path,
    work: &Path,
    seconds: u64,
) -> Result<Outcome> {
    let corpus = work.join("corpus").join(name);
    let artifacts = work.join("artifacts").join(name);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let before: Vec<_> = list(&artifacts);
    eprintln!("== fuzz {name} for {seconds} s");
    let started = Instant::now();
    let out = Command::new(binary)
        .arg(&corpus)
        .arg(seeds)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args([
            "-print_final_stats=1",
            // A single input taking over 10 s is a hang; over 2 GB a memory blow-up.
            "-timeout=10",
            "-rss_limit_mb=2048",
            // The Claude Code fixtures are ~60 KB; mutate around that size, not beyond.
            "-max_len=131072",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    let stat = |key: &str| -> Option<u64> {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{key}:")))
            .and_then(|v| v.trim().parse().ok())
    };
    let executions = stat("number_of_executed_units").unwrap_or(0);
    let mut findings: Vec<String> = list(&artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| artifacts.join(f).display().to_string())
        .collect();
    if !out.status.success() {
        // The report (the panic message and the input) is the end of libFuzzer's output.
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        if findings.is_empty() {
            findings.push(format!("exit status {}", out.status));
        }
    }
    Ok(Outcome {
        name,
        seconds,
        executions,
        corpus: list(&corpus).len(),
        findings,
    })
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host")
}
