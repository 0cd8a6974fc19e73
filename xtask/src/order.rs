//! `cargo xtask symbol-order CALLGRIND_OUT`: writes `bins/proxy-server/symbol-order.txt`, the link
//! order of proxy-server's code (its `build.rs`), from a callgrind profile of proxy-server.
//!
//! The profile is taken by hand, on the `dist` build, with the emulator as Bedrock:
//!
//! ```text
//! valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
//!     --callgrind-out-file=cg.out target/dist/proxy-server --listen 127.0.0.1:8000
//! ```
//!
//! then requests of every route, plain and streamed, `/v1/models`, `count_tokens` and `/metrics`,
//! then SIGTERM. Every function of proxy-server's binary that ran is listed, most instructions
//! first; the functions of the shared libraries are left out.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

pub fn symbol_order(root: &Path, args: &[String]) -> Result<()> {
    let [profile] = args else {
        bail!("usage: cargo xtask symbol-order CALLGRIND_OUT");
    };
    let text = std::fs::read_to_string(profile).with_context(|| format!("reading {profile}"))?;
    let names = ran(&text, "/proxy-server");
    if names.is_empty() {
        bail!("{profile} has no function of proxy-server: was it made with --compress-strings=no?");
    }
    let out = root.join("bins/proxy-server/symbol-order.txt");
    std::fs::write(&out, names.join("\n") + "\n")?;
    eprintln!("{} functions written to {}", names.len(), out.display());
    Ok(())
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
            // Valgrind's own entries, such as `(below main)`, are not symbols.
            current = (ob.ends_with(object) && !name.contains(' ')).then_some(name);
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
            fn=warm\n0 12\nfn=(below main)\n0 99\n";
        assert_eq!(ran(profile, "/proxy-server"), ["hot", "warm", "cold"]);
    }
}
