"""What the Python suites share: starting our built binaries on ephemeral ports and reading the
emulator's recording. Each suite's conftest puts this folder on `sys.path` and imports it (a module
of its own name, so the suites' conftests never collide)."""

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def binary(env_name, name):
    """A built binary: `$env_name` if set, else target/debug/`name`; a clear failure if it is missing."""
    path = pathlib.Path(os.environ.get(env_name, ROOT / "target/debug" / name))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build --bins`")
    return path


def start(path, env=None, base_env=None):
    """Starts a server binary on 127.0.0.1:0 and reads the address it prints: (process, url). Its
    environment is `base_env` (default: this process's) with `env` on top."""
    path = pathlib.Path(path)
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build --bins`")
    proc = subprocess.Popen([str(path), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                            env={**(os.environ if base_env is None else base_env), **(env or {})})
    line = proc.stdout.readline()
    if " listening on " not in line:
        proc.kill()
        pytest.fail(f"{path.name} did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].strip()


def wait_for_catalog(url, timeout=15):
    """Waits until proxy-server has read Bedrock's model catalog (its control-plane calls are done,
    so they cannot land in a test's recording of what the emulator received)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = urllib.request.urlopen(f"{url}/metrics").read().decode()
        for line in metrics.splitlines():
            if line.startswith("gateway_model_catalog_last_success_timestamp_seconds ") and float(line.split()[1]) > 0:
                return
        time.sleep(0.05)
    pytest.fail(f"proxy-server at {url} did not read the model catalog within {timeout} s")


def start_sim():
    """bedrock-sim on an ephemeral port: (process, url)."""
    return start(binary("BEDROCK_SIM_BIN", "bedrock-sim"))


def stop(proc, timeout=30):
    """SIGTERM, then the exit code."""
    proc.terminate()
    return proc.wait(timeout=timeout)


def recorder(sim_url):
    """Forgets what the emulator received so far; the returned function lists what it received since."""
    urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/reset", method="POST")).read()
    return lambda: json.loads(urllib.request.urlopen(f"{sim_url}/_sim/requests").read())
