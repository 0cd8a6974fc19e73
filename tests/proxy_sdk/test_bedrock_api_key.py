"""Bedrock API keys: with `AWS_BEARER_TOKEN_BEDROCK` and no AWS access keys at all, the gateway calls
Bedrock with `Authorization: Bearer <token>` (both routes, streams included) instead of SigV4."""

import os
import uuid

import anthropic
import pytest
from harness import binary, start, stop


@pytest.fixture
def bearer_gateway(sim_url, tmp_path):
    token = f"bedrock-api-key-{uuid.uuid4().hex}"
    # No credential of any other kind: environment, files and instance metadata are all out of reach.
    no_aws = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc, url = start(binary("PROXY_SERVER_BIN", "proxy-server"), base_env=no_aws, env={
        "AWS_BEARER_TOKEN_BEDROCK": token,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url, "AWS_REGION": "us-east-1",
        "MASTER_API_KEY": "sk-test-master-0123456789", "STORE_PATH": str(tmp_path / "gateway.db"),
        "LIST_BEDROCK_MODELS": "false", "MODEL_REFRESH_INTERVAL": "0", "LOG_LEVEL": "error",
    })
    yield url, token
    assert stop(proc) == 0


def test_bedrock_api_key_is_sent_as_bearer(bearer_gateway, sim):
    url, token = bearer_gateway
    c = anthropic.Anthropic(base_url=url, api_key="sk-test-master-0123456789", max_retries=0)
    for model in ("claude-sonnet-4-6", "qwen.qwen3-coder-480b-a35b-v1:0"):
        assert c.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]).content
        with c.messages.stream(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]) as s:
            assert s.get_final_message().content
    received = sim()
    assert sorted(r["operation"] for r in received) == sorted(
        ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"])
    for r in received:
        headers = {k.lower(): v for k, v in r["headers"].items()}
        assert headers["authorization"] == f"Bearer {token}", r["operation"]
