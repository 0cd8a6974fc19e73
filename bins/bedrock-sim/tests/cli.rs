//! The `bedrock-sim` binary as a user starts it: it prints the address it serves, answers, refuses
//! bad settings with a message naming them, and stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-sim");

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("bedrock-sim listening on http://")
        .expect(&line)
        .to_owned();
    let health = get(&addr, "/_sim/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let models = get(&addr, "/foundation-models");
    assert!(
        models.starts_with("HTTP/1.1 403"),
        "control plane needs auth too: {models}"
    );
    assert!(models.contains("MissingAuthenticationTokenException"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_settings_stop_start_up_with_a_message_naming_them() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--defaults", "words=many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--defaults") && err.contains("words=many"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/sim.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn help_documents_the_directives() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "stream_error=KIND",
        "ttfb_ms=N",
        "/_sim/requests",
        "[[rule]]",
        "/anthropic/v1/messages",
        "/mantle/anthropic/v1/messages",
        "POST /_sim/models",
        "inference_types",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}
