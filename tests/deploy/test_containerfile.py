"""deploy/Containerfile cannot be built here (no base image can be pulled): its instructions are
checked against what `cargo xtask image` builds and checks end to end."""

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def instructions():
    text = (ROOT / "deploy/Containerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_containerfile():
    ins = instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    toolchain = re.search(r'channel = "(\d+\.\d+)', (ROOT / "rust-toolchain.toml").read_text()).group(1)
    assert len(froms) == 2, froms
    assert froms[0].startswith(f"docker.io/library/rust:{toolchain}-") and froms[0].endswith(" AS build")
    runtime = [rest for word, rest in ins[ins.index(("FROM", froms[1])):]]
    words = dict(ins[ins.index(("FROM", froms[1])):])
    assert "distroless" in froms[1]
    # Non-root, and the store's directory writable by that user.
    user = words["USER"]
    assert not user.startswith("0") and user.split(":")[0] != "root"
    assert any(r.startswith(f"--from=build --chown={user} ") and r.endswith(" /data") for r in runtime)
    assert words["WORKDIR"] == "/data"
    # Both binaries, the entrypoint, the health check (proxy-admin asks GET /health) and the stop signal.
    assert any("/out/proxy-server" in r and "/out/proxy-admin" in r for r in runtime)
    assert json.loads(words["ENTRYPOINT"]) == ["/usr/local/bin/proxy-server"]
    health = words["HEALTHCHECK"]
    assert json.loads(health.split(" CMD ", 1)[1]) == ["/usr/local/bin/proxy-admin", "health"]
    assert words["STOPSIGNAL"] == "SIGTERM"
    assert "LISTEN_ADDR=0.0.0.0:8000" in words["ENV"] and words["EXPOSE"] == "8000"
    assert "STORE_PATH=/data/gateway.db" in words["ENV"]
    assert "--locked" in dict(ins)["RUN"]
