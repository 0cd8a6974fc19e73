"""The real proxy-server in front of the real bedrock-sim, both on ephemeral ports, and the official
Anthropic SDK of whichever generation this venv holds (2.x: Bearer + 2026-10-21; 0.x: x-api-key +
2023-06-01)."""

import json
import os
import pathlib
import subprocess
import urllib.request

import anthropic
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-test-master-0123456789"


def start(binary, env=None):
    binary = pathlib.Path(binary)
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it with `cargo build --bins`")
    proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if " listening on " not in line:
        proc.kill()
        pytest.fail(f"{binary.name} did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].strip()


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start(os.environ.get("BEDROCK_SIM_BIN", ROOT / "target/debug/bedrock-sim"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def proxy_url(sim_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("proxy") / "proxy.toml"
    config.write_text('[[models]]\nname = "coder"\nbedrock_id = "qwen.qwen3-coder-480b-a35b-v1:0"\napi = "converse"\n'
                      'display_name = "Qwen3 Coder"\n\n'
                      '[[models]]\nname = "claude-converse"\nbedrock_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"\n'
                      'api = "converse"\n')
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url,
        "AWS_ENDPOINT_URL_BEDROCK": sim_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "MASTER_API_KEY": MASTER_KEY,
        "PROXY_CONFIG": str(config),
        "STORE_PATH": str(config.parent / "gateway.db"),
        "LOG_LEVEL": "warn",
    }
    proc, url = start(os.environ.get("PROXY_SERVER_BIN", ROOT / "target/debug/proxy-server"), env)
    yield url
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "proxy-server must exit cleanly on SIGTERM"


@pytest.fixture
def master_key():
    return MASTER_KEY


@pytest.fixture
def client(proxy_url):
    return anthropic.Anthropic(base_url=proxy_url, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def sim(sim_url):
    """Reset the emulator's recording; `sim()` returns what it received since."""
    urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/reset", method="POST")).read()
    return lambda: json.loads(urllib.request.urlopen(f"{sim_url}/_sim/requests").read())
