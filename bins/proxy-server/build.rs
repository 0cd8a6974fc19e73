//! Links proxy-server's code in the order `symbol-order.txt` gives: the functions a served request
//! and the start run, hottest first, packed together at the start of `.text`.
//!
//! The kernel maps a binary's code 64 KB at a time around each page it touches (fault-around), so
//! code that runs, scattered among code that never does, makes every page of the binary resident.
//! Packed, an idle gateway keeps about 6 MB of its code resident instead of 11 MB
//! (docs/BENCHMARKS.md, eighth pass). The list is made with `cargo xtask symbol-order`; a name the
//! build no longer has is skipped, so a stale list costs memory, never correctness.
//!
//! Only LLD (Rust's default linker on x86_64 Linux since 1.90) is given the list: GNU ld has no
//! `--symbol-ordering-file`. A build that picks another linker links in the default order.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    // A linker or linker features chosen by the builder may not be LLD.
    let other_linker = env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || ["linker", "link-self-contained", "fuse-ld"]
            .iter()
            .any(|f| flags.contains(f));
    if target != "x86_64-unknown-linux-gnu" || other_linker {
        return;
    }
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/symbol-order.txt");
    println!("cargo:rustc-link-arg-bin=proxy-server=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bin=proxy-server=-Wl,--no-warn-symbol-ordering");
}
