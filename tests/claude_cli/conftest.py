"""The Claude Code CLI (pinned in package.json) against the real proxy-server in front of the real
bedrock-sim."""

import json
import os
import pathlib
import subprocess
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
KEY = "sk-test-master-0123456789"


def start(path, env=None):
    path = pathlib.Path(path)
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build --bins`")
    proc = subprocess.Popen([str(path), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if " listening on " not in line:
        proc.kill()
        pytest.fail(f"{path.name} did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].strip()


@pytest.fixture(scope="session")
def sim_url():
    proc, url = start(os.environ.get("BEDROCK_SIM_BIN", ROOT / "target/debug/bedrock-sim"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def proxy_url(sim_url, tmp_path_factory):
    env = {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "MASTER_API_KEY": KEY,
           "STORE_PATH": str(tmp_path_factory.mktemp("store") / "gateway.db"), "LOG_LEVEL": "warn"}
    proc, url = start(os.environ.get("PROXY_SERVER_BIN", ROOT / "target/debug/proxy-server"), env)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def sim(sim_url):
    urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/reset", method="POST")).read()
    return lambda: json.loads(urllib.request.urlopen(f"{sim_url}/_sim/requests").read())


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
