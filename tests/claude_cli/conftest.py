"""The Claude Code CLI (pinned in package.json) against the real proxy-server in front of the real
bedrock-sim."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import binary, recorder, start, start_sim, stop  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
KEY = "sk-test-master-0123456789"


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start_sim()
    yield url
    stop(proc, timeout=10)


@pytest.fixture(scope="session")
def proxy_url(sim_url, tmp_path_factory):
    env = {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "MASTER_API_KEY": KEY,
           "STORE_PATH": str(tmp_path_factory.mktemp("store") / "gateway.db"), "LOG_LEVEL": "warn"}
    proc, url = start(binary("PROXY_SERVER_BIN", "proxy-server"), env)
    yield url
    stop(proc)


@pytest.fixture
def sim(sim_url):
    return recorder(sim_url)


@pytest.fixture
def claude(proxy_url, tmp_path):
    """Runs `claude -p PROMPT --output-format json --model MODEL` in a scratch project and HOME."""
    binary = HERE / "node_modules/.bin/claude"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `npm ci` in {HERE}")
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()

    def run(prompt, model, *extra):
        env = {**os.environ, "HOME": str(home), "ANTHROPIC_BASE_URL": proxy_url, "ANTHROPIC_API_KEY": KEY,
               "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
        env.pop("ANTHROPIC_AUTH_TOKEN", None)
        out = subprocess.run([str(binary), "-p", prompt, "--output-format", "json", "--model", model, *extra],
                             cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, f"claude exited {out.returncode}: {out.stderr}\n{out.stdout}"
        return json.loads(out.stdout)

    run.project = project
    return run
