"""proxy-server with its embedded store, proxy-admin on the same file, bedrock-sim behind, and the
official Anthropic SDK of this venv's generation."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import binary, start, start_sim  # noqa: E402


class Gateway:
    """A running proxy-server and the admin CLI on its store."""

    def __init__(self, sim_url, store, extra_env=None):
        self.store = store
        self.env = {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url,
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "STORE_PATH": str(store), "LOG_LEVEL": "warn", "LIST_BEDROCK_MODELS": "false", "MODEL_REFRESH_INTERVAL": "0", **(extra_env or {}),
        }
        self.env.pop("MASTER_API_KEY", None)
        self.proc, self.url = start(binary("PROXY_SERVER_BIN", "proxy-server"), self.env)

    def admin(self, *args):
        out = subprocess.run([str(binary("PROXY_ADMIN_BIN", "proxy-admin")), *args], capture_output=True, text=True,
                             env={**os.environ, "STORE_PATH": str(self.store)}, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if "--json" in args else out.stdout

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start_sim()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def gateway(sim_url, tmp_path):
    g = Gateway(sim_url, tmp_path / "gateway.db")
    yield g
    if g.proc.poll() is None:
        g.stop()


@pytest.fixture
def new_gateway(sim_url, tmp_path):
    """Starts gateways with extra settings; all are stopped at the end."""
    started = []

    def make(**env):
        g = Gateway(sim_url, tmp_path / f"gateway-{len(started)}.db", env)
        started.append(g)
        return g

    yield make
    for g in started:
        if g.proc.poll() is None:
            g.stop()


@pytest.fixture(scope="session")
def launch():
    """`launch(path, env)` starts a binary on an ephemeral port: (process, url)."""
    return start


@pytest.fixture(scope="session")
def bin_path():
    """`bin_path(ENV_NAME, name)`: a built binary's path."""
    return binary
