"""The same gateway on the DynamoDB backend (moto's server on loopback): tables made by
`proxy-admin setup-tables`, a key made with proxy-admin used through proxy-server, usage in the tables."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import anthropic
import pytest



@pytest.fixture
def moto():
    """A moto server on loopback: (process, url)."""
    server = pathlib.Path(sys.executable).parent / "moto_server"
    if not server.exists():
        pytest.fail(f"{server} is missing: moto[server] is in tests/requirements.txt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, "moto_server did not start"
            time.sleep(0.1)
    yield proc, f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def moto_url(moto):
    return moto[1]


def store_env(dynamodb_url, prefix):
    """The DynamoDB store settings, as proxy-admin and proxy-server both take them."""
    return {"STORE_BACKEND": "dynamodb", "DYNAMODB_TABLE_PREFIX": prefix, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret"}


def gateway_env(store, sim_url, log_level="warn"):
    """proxy-server on that store, in front of the emulator."""
    return {**store, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url,
            "LIST_BEDROCK_MODELS": "false", "MODEL_REFRESH_INTERVAL": "0", "LOG_LEVEL": log_level}


def admin(bin_path, store):
    """`run(*args)`: proxy-admin on that store, (exit code, stdout, stderr)."""
    binary = bin_path("PROXY_ADMIN_BIN", "proxy-admin")

    def run(*args):
        out = subprocess.run([str(binary), *args], env={**os.environ, **store}, capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout, out.stderr
    return run


def admin_ok(bin_path, store):
    """`run(*args)`: proxy-admin on that store, asserted to succeed; its stdout."""
    run = admin(bin_path, store)

    def ok(*args):
        code, out, err = run(*args)
        assert code == 0, err
        return out
    return ok


def test_keys_and_usage_on_dynamodb(sim_url, moto_url, launch, bin_path):
    store = store_env(moto_url, "itest")
    run_admin = admin(bin_path, store)
    code, _, err = run_admin("keys", "list")
    assert code != 0 and "setup-tables" in err, "missing tables are named with how to create them"
    code, out, err = run_admin("setup-tables")
    assert code == 0 and "itest-api-keys: created" in out, err
    code, out, _ = run_admin("setup-tables")
    assert code == 0 and "itest-usage: exists" in out, "idempotent"
    code, out, err = run_admin("keys", "create", "--user-id", "dora", "--name", "ddb", "--json")
    assert code == 0, err
    key = json.loads(out)

    proc, url = launch(bin_path("PROXY_SERVER_BIN", "proxy-server"), gateway_env(store, sim_url))
    try:
        c = anthropic.Anthropic(base_url=url, api_key=key["key"], max_retries=0)
        msg = c.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=50, messages=[{"role": "user", "content": "x [sim words=11]"}])
        assert msg.usage.output_tokens == 11
        with c.messages.stream(model="claude-sonnet-4-5-20250929", max_tokens=50, messages=[{"role": "user", "content": "y [sim words=7]"}]) as s:
            streamed = s.get_final_message()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    code, out, err = run_admin("usage", "--key-id", key["key_id"], "--totals", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert sum(r["requests"] for r in rows) == 2
    assert sum(r["output_tokens"] for r in rows) == 11 + streamed.usage.output_tokens


def test_three_replicas_share_one_limit(sim_url, moto_url, launch, bin_path):
    """Three proxy-server processes on one DynamoDB: a key limited to 3 requests gets 3 in all, not 3
    per replica, and a tokens-per-minute budget spent on one replica is refused on another."""
    store = store_env(moto_url, "shared")
    run_admin = admin_ok(bin_path, store)
    run_admin("setup-tables")
    limited = json.loads(run_admin("keys", "create", "--user-id", "team", "--name", "three", "--rate-limit-requests", "3",
                                   "--rate-limit-window", "3600", "--json"))
    tpm = json.loads(run_admin("keys", "create", "--user-id", "team", "--name", "tpm", "--tokens-per-minute", "30", "--json"))
    replicas = [launch(bin_path("PROXY_SERVER_BIN", "proxy-server"), gateway_env(store, sim_url)) for _ in range(3)]
    try:
        # Windows are aligned to the clock: keep clear of a boundary (an hour's, and a minute's for tokens).
        while time.time() % 3600 > 3590 or time.time() % 60 > 45:
            time.sleep(1)
        clients = [anthropic.Anthropic(base_url=url, api_key=limited["key"], max_retries=0) for _, url in replicas]
        outcomes = []
        for i in range(9):
            c = clients[i % 3]
            try:
                c.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=5, messages=[{"role": "user", "content": f"r{i}"}])
                outcomes.append("ok")
            except anthropic.RateLimitError as e:
                assert int(e.response.headers["retry-after"]) >= 1
                assert e.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
                outcomes.append("429")
        # Each replica alone would allow 3 (9 in all): the shared counter allows 3 in all.
        assert outcomes == ["ok"] * 3 + ["429"] * 6, outcomes

        first = anthropic.Anthropic(base_url=replicas[0][1], api_key=tpm["key"], max_retries=0)
        other = anthropic.Anthropic(base_url=replicas[2][1], api_key=tpm["key"], max_retries=0)
        assert first.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=100,
                                     messages=[{"role": "user", "content": "x [sim words=40]"}]).usage.output_tokens == 40
        # The tokens are added when the request ends, in the background: the other replica sees them shortly.
        deadline = time.time() + 5
        while True:
            try:
                other.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=5, messages=[{"role": "user", "content": "y"}])
            except anthropic.RateLimitError as e:
                assert "tokens per minute" in e.body["error"]["message"]
                break
            assert time.time() < deadline, "the other replica never saw the tokens spent on the first"
            time.sleep(0.2)
    finally:
        for proc, _ in replicas:
            proc.terminate()
        for proc, _ in replicas:
            assert proc.wait(timeout=30) == 0


def metric(url, name):
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_store_outage_does_not_fail_served_requests(sim_url, moto, launch, bin_path):
    """DynamoDB goes away under a running gateway: requests of a key it knows are still served (the
    shared limit falls back to the local bucket), and the lost store writes are counted, not failed
    requests; the gateway still stops cleanly."""
    moto_proc, url = moto
    store = store_env(url, "outage")
    run_admin = admin_ok(bin_path, store)
    run_admin("setup-tables")
    key = json.loads(run_admin("keys", "create", "--user-id", "u", "--name", "n", "--rate-limit-requests", "50", "--json"))
    proc, gw = launch(bin_path("PROXY_SERVER_BIN", "proxy-server"), gateway_env(store, sim_url, log_level="error"))
    try:
        c = anthropic.Anthropic(base_url=gw, api_key=key["key"], max_retries=0)
        c.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=5, messages=[{"role": "user", "content": "before"}])
        assert metric(gw, "gateway_limit_store_errors_total") == 0
        moto_proc.kill()
        moto_proc.wait()
        started = time.time()
        for i in range(3):
            msg = c.messages.create(model="qwen.qwen3-coder-480b-a35b-v1:0", max_tokens=5,
                                    messages=[{"role": "user", "content": f"during {i}"}])
            assert msg.content
        assert time.time() - started < 4, "within the key cache's lifetime, and no request waited long"
        assert metric(gw, "gateway_limit_store_errors_total") >= 3
        deadline = time.time() + 20
        while metric(gw, "gateway_usage_records_failed_total") < 1:
            assert time.time() < deadline, "failed usage writes are counted"
            time.sleep(0.2)
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
