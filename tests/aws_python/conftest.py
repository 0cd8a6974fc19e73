"""bedrock-sim as a user runs it (the real binary on an ephemeral port), and boto3 clients on it."""

import json
import os
import pathlib
import subprocess
import urllib.request

import boto3
import pytest
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sim_url():
    binary = pathlib.Path(os.environ.get("BEDROCK_SIM_BIN", ROOT / "target/debug/bedrock-sim"))
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it with `cargo build --bins`")
    proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("bedrock-sim listening on "):
        proc.kill()
        pytest.fail(f"bedrock-sim did not start: {line!r}")
    yield line.split(" on ", 1)[1].strip()
    proc.terminate()
    proc.wait(timeout=10)


def _client(service, url, **config):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture(scope="session")
def runtime(sim_url):
    return _client("bedrock-runtime", sim_url)


@pytest.fixture(scope="session")
def runtime_unvalidated(sim_url):
    """A client whose own parameter validation is off, to send what botocore would refuse."""
    return _client("bedrock-runtime", sim_url, parameter_validation=False)


@pytest.fixture(scope="session")
def control(sim_url):
    return _client("bedrock", sim_url)


@pytest.fixture
def recorded(sim_url):
    """Resets the recording, then returns a function that reads it."""
    urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/reset", method="POST")).read()

    def read():
        return json.loads(urllib.request.urlopen(f"{sim_url}/_sim/requests").read())

    return read
