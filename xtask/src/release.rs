//! `cargo xtask release`: everything a release publishes, in `<target>/release-dist/`:
//!
//! - `bedrock-gateway-<version>-x86_64-unknown-linux-gnu.tar.gz`: `proxy-server`, `proxy-admin`, the
//!   README, the CHANGELOG, deploy/README.md as DEPLOY.md and the IAM policies;
//!   `bedrock-sim-<version>-...tar.gz`: the emulator and the README;
//! - `bedrock-gateway-image-<version>.tar` and `bedrock-sim-image-<version>.tar`: the images of
//!   `cargo xtask image` (built and checked end to end first), as Docker archives (`podman load -i`,
//!   `docker load -i`);
//! - `sbom-<binary>.cdx.json`: CycloneDX SBOMs from `cargo cyclonedx` (the CycloneDX project's cargo
//!   plugin), one per binary;
//! - `RELEASE-NOTES.md`: this version's section of CHANGELOG.md (a version without one is refused);
//! - `SHA256SUMS` of all of the above.
//!
//! Then it checks what it made as a user would: the checksums, and the unpacked `proxy-server` starts
//! and answers `/health`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::image::{self, GATEWAY, SIM};
use crate::{Scratch, cargo, child_command, run, start_server, target_dir, terminate};

/// The binaries a release ships (and describes in SBOMs).
const RELEASED: &[&str] = &["proxy-server", "proxy-admin", "bedrock-sim"];

/// The only target the toolchain here builds; arm64 users build from source or with the Containerfile.
const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn release(root: &Path) -> Result<()> {
    let version = image::workspace_version(root)?;
    let notes = changelog_section(
        &std::fs::read_to_string(root.join("CHANGELOG.md"))?,
        &version,
    )
    .with_context(|| format!("CHANGELOG.md has no section `## [{version}]`: write it first"))?;
    if crate::which("cargo-cyclonedx").is_none() {
        bail!("cargo-cyclonedx not found: cargo install cargo-cyclonedx --locked");
    }
    image::build(root, &version)?;
    // The binaries `image::build` made (the `dist` profile).
    let shipped = target_dir(root).join("dist");
    check_symbol_order(root, &shipped.join("proxy-server"))?;
    image::check(root, &version)?;

    let dist = target_dir(root).join("release-dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    let gateway_tar = tarball(
        root,
        &dist,
        &format!("bedrock-gateway-{version}-{TARGET}"),
        &[shipped.join("proxy-server"), shipped.join("proxy-admin")],
        &[
            ("README.md", "README.md"),
            ("CHANGELOG.md", "CHANGELOG.md"),
            ("deploy/README.md", "DEPLOY.md"),
            ("deploy/iam-policy.json", "iam-policy.json"),
            ("deploy/iam-policy-admin.json", "iam-policy-admin.json"),
        ],
    )?;
    tarball(
        root,
        &dist,
        &format!("bedrock-sim-{version}-{TARGET}"),
        &[shipped.join("bedrock-sim")],
        &[("README.md", "README.md")],
    )?;
    for (name, file) in [
        (GATEWAY, "bedrock-gateway-image"),
        (SIM, "bedrock-sim-image"),
    ] {
        let archive = dist.join(format!("{file}-{version}.tar"));
        let _ = std::fs::remove_file(&archive);
        run(image::buildah().args([
            "push",
            "--quiet",
            &format!("{name}:{version}"),
            &format!("docker-archive:{}:{name}:{version}", archive.display()),
        ]))?;
    }
    sbom(root, &dist)?;
    std::fs::write(dist.join("RELEASE-NOTES.md"), notes)?;
    let mut files: Vec<String> = std::fs::read_dir(&dist)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    files.sort();
    run(Command::new("sh")
        .args(["-c", "sha256sum \"$@\" > SHA256SUMS", "sh"])
        .args(&files)
        .current_dir(&dist))?;
    verify(root, &dist, &gateway_tar, &version)?;
    eprintln!("\nrelease {version}: {}", dist.display());
    for f in files
        .iter()
        .chain(std::iter::once(&"SHA256SUMS".to_owned()))
    {
        let size = std::fs::metadata(dist.join(f))?.len();
        eprintln!("  {f:<60} {:>6.1} MB", size as f64 / 1e6);
    }
    Ok(())
}

/// Below this share of its names found in the binary, `symbol-order.txt` is too stale to ship:
/// the functions it no longer names are scattered through `.text` again, and each makes 64 KB of
/// code resident (fault-around). At 84% (after three passes of changes) the idle gateway held
/// 2 MB more code than with a fresh list (docs/BENCHMARKS.md, twelfth pass).
const MIN_ORDERED_SHARE: f64 = 0.9;

/// Refuses a release whose link order has gone stale (bins/proxy-server/build.rs).
fn check_symbol_order(root: &Path, binary: &Path) -> Result<()> {
    let list = std::fs::read_to_string(root.join(crate::SYMBOL_ORDER))?;
    let share = ordered_share(&list, &crate::nm_defined(binary)?);
    eprintln!(
        "link order: {:.0}% of symbol-order.txt's names are in proxy-server",
        share * 100.0
    );
    if share < MIN_ORDERED_SHARE {
        bail!(
            "{} is stale ({:.0}% of its names are in the binary, {:.0}% needed): regenerate it \
             (`cargo xtask symbol-order`)",
            crate::SYMBOL_ORDER,
            share * 100.0,
            MIN_ORDERED_SHARE * 100.0
        );
    }
    Ok(())
}

/// The share of the list's names that `nm`'s output defines (its last column).
fn ordered_share(list: &str, nm: &str) -> f64 {
    let defined: std::collections::HashSet<&str> = nm
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return 0.0;
    }
    names.iter().filter(|n| defined.contains(*n)).count() as f64 / names.len() as f64
}

/// The body of the section `## [version]` (up to the next `## `), without its heading.
fn changelog_section(text: &str, version: &str) -> Option<String> {
    let heading = format!("## [{version}]");
    let start = text.lines().position(|l| l.starts_with(&heading))?;
    let body: Vec<&str> = text
        .lines()
        .skip(start)
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("## "))
        .map(|(_, l)| l)
        .collect();
    Some(body.join("\n").trim().to_owned() + "\n")
}

/// `<dist>/<name>.tar.gz` holding `<name>/` with the stripped `binaries` and the repository `files`
/// (path in the repository, name in the archive);
/// owned by root, sorted, dated by the last commit, so that the same input gives the same archive.
fn tarball(
    root: &Path,
    dist: &Path,
    name: &str,
    binaries: &[PathBuf],
    files: &[(&str, &str)],
) -> Result<PathBuf> {
    let scratch = Scratch::new(root, &format!("release-{name}"))?;
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir)?;
    for binary in binaries {
        run(Command::new("strip")
            .arg("-o")
            .arg(dir.join(binary.file_name().unwrap()))
            .arg(binary))?;
    }
    for (file, to) in files {
        let from = root.join(file);
        std::fs::copy(&from, dir.join(to)).with_context(|| from.display().to_string())?;
    }
    // The last commit's date (a checkout without git gets a fixed one).
    let date = Command::new("git")
        .args(["log", "-1", "--format=%cI"])
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let date = if date.trim().is_empty() {
        "2026-01-01T00:00:00Z".to_owned()
    } else {
        date.trim().to_owned()
    };
    let tar = dist.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            &format!("--mtime={date}"),
            "-czf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(&scratch.0)
        .arg(name))?;
    Ok(tar)
}

/// One CycloneDX SBOM (JSON) per released binary, from `cargo cyclonedx`, which writes one beside the
/// Cargo.toml of every binary package of the workspace: the released ones are moved into `dist`, the
/// others removed.
fn sbom(root: &Path, dist: &Path) -> Result<()> {
    run(cargo()
        .args([
            "cyclonedx",
            "--quiet",
            "--format",
            "json",
            "--spec-version",
            "1.5",
            "--describe",
            "binaries",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml")))?;
    let mut written = Vec::new();
    for group in ["bins", "crates"] {
        for package in std::fs::read_dir(root.join(group))? {
            written.push(package?.path());
        }
    }
    written.push(root.join("xtask"));
    let mut moved = Vec::new();
    for dir in written {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(binary) = name.strip_suffix("_bin.cdx.json") else {
                continue;
            };
            if RELEASED.contains(&binary) {
                std::fs::rename(&path, dist.join(format!("sbom-{binary}.cdx.json")))?;
                moved.push(binary.to_owned());
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    moved.sort();
    let mut wanted: Vec<String> = RELEASED.iter().map(|s| s.to_string()).collect();
    wanted.sort();
    if moved != wanted {
        bail!("cargo cyclonedx wrote SBOMs for {moved:?}, wanted {wanted:?}");
    }
    Ok(())
}

/// Checks the release as its user would: `sha256sum -c`, the SBOMs name the binary and its
/// dependencies, and the unpacked `proxy-server` reports the version and answers `/health`.
pub fn verify(root: &Path, dist: &Path, gateway_tar: &Path, version: &str) -> Result<()> {
    run(Command::new("sha256sum")
        .args(["--check", "--strict", "--quiet", "SHA256SUMS"])
        .current_dir(dist))?;
    let listed = std::fs::read_to_string(dist.join("SHA256SUMS"))?;
    for entry in std::fs::read_dir(dist)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "SHA256SUMS" && !listed.lines().any(|l| l.ends_with(&format!("  {name}"))) {
            bail!("{name} is not in SHA256SUMS");
        }
    }
    for &package in RELEASED {
        let path = dist.join(format!("sbom-{package}.cdx.json"));
        let sbom: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| path.display().to_string())?;
        let components = sbom["components"].as_array().map_or(0, Vec::len);
        let names_hyper = sbom["components"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "hyper"));
        if sbom["bomFormat"] != "CycloneDX"
            || sbom["metadata"]["component"]["name"] != package
            || components < 50
            || !names_hyper
        {
            bail!(
                "{}: not a CycloneDX SBOM of {package} with its dependencies ({components} components)",
                path.display()
            );
        }
    }
    for image in ["bedrock-gateway-image", "bedrock-sim-image"] {
        let archive = dist.join(format!("{image}-{version}.tar"));
        let list = Command::new("tar").arg("-tf").arg(&archive).output()?;
        if !String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l == "manifest.json")
        {
            bail!("{} is not a Docker image archive", archive.display());
        }
    }

    let scratch = Scratch::new(root, "release-verify")?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(gateway_tar)
        .arg("-C")
        .arg(&scratch.0))?;
    let name = gateway_tar
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_owned();
    let server = scratch.0.join(&name).join("proxy-server");
    let out = Command::new(&server).arg("--version").output()?;
    let shown = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || shown.trim() != format!("proxy-server {version}") {
        bail!("the packaged proxy-server --version: {shown:?}");
    }
    let (mut proxy, url) = start_server(
        "proxy-server",
        child_command(&server)
            .args(["--listen", "127.0.0.1:0"])
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "release-check")
            .env("AWS_SECRET_ACCESS_KEY", "release-check")
            .env("MODEL_REFRESH_INTERVAL", "0")
            .env("STORE_PATH", scratch.0.join("gateway.db"))
            .env("LOG_LEVEL", "warn"),
    )?;
    let addr = url.trim_start_matches("http://");
    let (status, body) = image::http(addr, "GET", "/health", &[], "")?;
    terminate(&mut proxy);
    if status != 200 || !body.contains("ok") {
        bail!("the packaged proxy-server's /health answered {status}: {body}");
    }
    let admin = scratch.0.join(&name).join("proxy-admin");
    let out = Command::new(&admin).arg("--help").output()?;
    if !out.status.success() {
        bail!("the packaged proxy-admin --help failed");
    }
    eprintln!(
        "release check: SHA256SUMS verified; the packaged proxy-server {version} answered /health"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ordered_share_counts_names_the_binary_defines() {
        let nm = "0000000000001000 T _ZN3foo3bar17h0123456789abcdefE\n\
                  0000000000002000 t _ZN3foo3baz17hfedcba9876543210E\n\
                                   U malloc\n";
        let list = "_ZN3foo3bar17h0123456789abcdefE\n_ZN3foo3baz17hfedcba9876543210E\n\
                    _ZN3foo4gone17h0000000000000000E\n_ZN3foo3bar17h1111111111111111E\n";
        assert_eq!(ordered_share(list, nm), 0.5);
        assert_eq!(ordered_share("", nm), 0.0);
    }

    #[test]
    fn changelog_section_of_a_version() {
        let text = "# Changelog\n\n## [0.2.0] - 2027-01-01\n- b\n\n## [0.1.0] - 2026-12-01\n- a\n### x\n- c\n\n## [0.0.1]\n- z\n";
        assert_eq!(
            changelog_section(text, "0.1.0").unwrap(),
            "## [0.1.0] - 2026-12-01\n- a\n### x\n- c\n"
        );
        assert!(changelog_section(text, "0.3.0").is_none());
    }

    #[test]
    fn the_current_version_has_a_changelog_section() {
        let root = crate::project_root();
        let version = image::workspace_version(&root).unwrap();
        let text = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
        assert!(changelog_section(&text, &version).is_some(), "{version}");
    }
}
