"""The real proxy-server in front of the real bedrock-sim, both on ephemeral ports, and the official
Anthropic SDK of whichever generation this venv holds (2.x: Bearer + 2026-10-21; 0.x: x-api-key +
2023-06-01)."""

import pathlib
import sys

import anthropic
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import binary, recorder, start, start_sim, stop, wait_for_catalog  # noqa: E402

MASTER_KEY = "sk-test-master-0123456789"


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start_sim()
    yield url
    stop(proc, timeout=10)


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
    proc, url = start(binary("PROXY_SERVER_BIN", "proxy-server"), env)
    wait_for_catalog(url)
    yield url
    assert stop(proc) == 0, "proxy-server must exit cleanly on SIGTERM"


@pytest.fixture
def master_key():
    return MASTER_KEY


@pytest.fixture
def client(proxy_url):
    return anthropic.Anthropic(base_url=proxy_url, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def sim(sim_url):
    """Reset the emulator's recording; `sim()` returns what it received since."""
    return recorder(sim_url)
