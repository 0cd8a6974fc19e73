"""Fixtures: the real bedrock-sim binary on an ephemeral port, boto3 clients pointed at it, and the
emulator's recording (`/_sim/requests`, `/_sim/reset`) read with the standard library."""

import json
import os
import pathlib
import queue
import subprocess
import threading
import urllib.request

import boto3
import pytest
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 10
BANNER = "bedrock-sim listening on "


def _binary():
    return pathlib.Path(os.environ.get("BEDROCK_SIM_BIN") or ROOT / "target" / "debug" / "bedrock-sim")


@pytest.fixture(scope="session")
def sim_url():
    binary = _binary()
    if not binary.is_file():
        pytest.fail(f"bedrock-sim binary not found at {binary} (set BEDROCK_SIM_BIN or build the workspace)")
    proc = subprocess.Popen(
        [str(binary), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines = queue.Queue()

    def pump():
        # Keeps reading stdout for the whole session so that a chatty emulator never blocks on a full pipe.
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        proc.kill()
        proc.wait()
        pytest.fail(f"{binary} printed nothing on stdout within {STARTUP_TIMEOUT_S} s")
    if first is None or not first.startswith(BANNER):
        proc.kill()
        proc.wait()
        pytest.fail(f"{binary} did not announce its address; first stdout line: {first!r}, exit code {proc.returncode}")
    url = first[len(BANNER):].strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"unexpected listen address in {first!r}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_client(service, url, **config):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        # botocore reads retries["max_attempts"] as the number of *retries* (args.py adds one for the
        # first attempt), so "no retry at all" is total_max_attempts=1.
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture(scope="session")
def runtime(sim_url):
    return make_client("bedrock-runtime", sim_url)


@pytest.fixture(scope="session")
def runtime_unvalidated(sim_url):
    """botocore's own client-side parameter validation off, to put what it would refuse on the wire."""
    return make_client("bedrock-runtime", sim_url, parameter_validation=False)


@pytest.fixture
def fresh_runtime(sim_url):
    """A client of its own, for tests that register event hooks on it."""
    return make_client("bedrock-runtime", sim_url)


@pytest.fixture(scope="session")
def control(sim_url):
    return make_client("bedrock", sim_url)


@pytest.fixture
def recorded(sim_url):
    """Clears the emulator's recording, then returns a function that reads it (oldest first)."""
    with urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/reset", method="POST"), timeout=10) as r:
        assert r.status in (200, 204)

    def read():
        with urllib.request.urlopen(f"{sim_url}/_sim/requests", timeout=10) as r:
            return json.loads(r.read())

    return read
