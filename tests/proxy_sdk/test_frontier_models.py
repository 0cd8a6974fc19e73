"""The newest Claude models by the names clients send, with no per-model configuration: routes read from
Bedrock's own catalog (inference-profile-only models through the region's profile), `/v1/models` in
Anthropic names, and Bedrock's Anthropic Messages API as a third route (runtime and Mantle), all through
proxy-server to bedrock-sim with the official Anthropic SDK of this venv's generation."""

import json
import time
import urllib.request

import anthropic
import pytest
from harness import binary, recorder, start, stop

MASTER_KEY = "sk-test-master-0123456789"  # as in this suite's conftest

OPUS = "claude-opus-4-8"
SONNET5 = "claude-sonnet-5"
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
# What Claude Code sends and Bedrock refuses: a first-party beta, a JSON-string user id, a cache scope.
CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,prompt-caching-scope-2026-01-05"
CLAUDE_CODE_USER = json.dumps({"device_id": "ab12", "account_uuid": "", "session_id": "5f0c"})


def gateway(sim_url, tmp_path, config="", **env):
    path = tmp_path / "proxy.toml"
    path.write_text(config)
    return start(binary("PROXY_SERVER_BIN", "proxy-server"), {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url,
        "AWS_ENDPOINT_URL_BEDROCK_MANTLE": f"{sim_url}/mantle",
        "AWS_ENDPOINT_URL_BEDROCK": sim_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "MASTER_API_KEY": MASTER_KEY,
        "PROXY_CONFIG": str(path),
        "STORE_PATH": str(tmp_path / "gateway.db"),
        "LOG_LEVEL": "warn",
        **env,
    })


@pytest.fixture(scope="module")
def plain(sim_url, tmp_path_factory):
    """A gateway with no config at all, reading the catalog every second."""
    proc, url = gateway(sim_url, tmp_path_factory.mktemp("plain"), MODEL_REFRESH_INTERVAL="1")
    yield url
    assert stop(proc) == 0


@pytest.fixture(scope="module")
def routed(sim_url, tmp_path_factory):
    """A gateway that sends two models through Bedrock's Messages API, one per host."""
    config = ('[[models]]\nname = "opus-messages"\nbedrock_id = "us.anthropic.claude-opus-4-8"\napi = "messages"\n\n'
              '[[models]]\nname = "sonnet5-mantle"\nbedrock_id = "anthropic.claude-sonnet-5"\napi = "messages"\n'
              'endpoint = "mantle"\n')
    proc, url = gateway(sim_url, tmp_path_factory.mktemp("routed"), config)
    yield url
    assert stop(proc) == 0


def client_for(url):
    return anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0)


def text(message):
    return "".join(b.text for b in message.content if b.type == "text")


def calls(received):
    """The data-plane calls Bedrock received (the gateway's catalog reads left out)."""
    return [(r["operation"], r["model_id"]) for r in received if r.get("endpoint") != "control"]


@pytest.mark.parametrize("model,bedrock", [(OPUS, "us.anthropic.claude-opus-4-8"),
                                           (SONNET5, "us.anthropic.claude-sonnet-5")])
def test_newest_models_by_name_with_no_config(plain, sim_url, model, bedrock):
    sim = recorder(sim_url)
    client = client_for(plain)
    messages = [{"role": "user", "content": "tell me [sim words=12]"}]
    whole = client.messages.create(model=model, max_tokens=200, messages=messages)
    with client.messages.stream(model=model, max_tokens=200, messages=messages) as stream:
        final = stream.get_final_message()
    assert text(final) == text(whole) and whole.model == final.model == model
    assert final.usage.output_tokens == whole.usage.output_tokens > 0
    assert calls(sim()) == [("InvokeModel", bedrock), ("InvokeModelWithResponseStream", bedrock)], \
        "the model that was asked for, through the region's inference profile"


def test_tools_thinking_and_claude_code_extras_reach_a_profile_only_model(plain, sim_url):
    sim = recorder(sim_url)
    client = client_for(plain)
    first = {"role": "user", "content": "Weather in Paris? [sim tool thinking]"}
    with client.messages.stream(model=OPUS, max_tokens=2000, tools=TOOLS, thinking={"type": "adaptive"},
                                messages=[first], metadata={"user_id": CLAUDE_CODE_USER},
                                extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS}) as stream:
        msg = stream.get_final_message()
    assert msg.stop_reason == "tool_use"
    kinds = [b.type for b in msg.content]
    assert kinds[0] == "thinking" and "tool_use" in kinds
    use = next(b for b in msg.content if b.type == "tool_use")
    done = client.messages.create(model=OPUS, max_tokens=2000, tools=TOOLS, thinking={"type": "adaptive"}, messages=[
        first, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])
    assert done.stop_reason == "end_turn"
    received = [r for r in sim() if r.get("endpoint") != "control"]
    assert [r["status"] for r in received] == [200, 200]
    body, headers = received[0]["body"], received[0]["headers"]
    betas = body.get("anthropic_beta", [])
    assert "interleaved-thinking-2025-05-14" in betas
    assert not [b for b in betas if b.startswith(("claude-code-", "prompt-caching-scope-"))]
    assert len(body["metadata"]["user_id"]) == 64, "Claude Code's JSON user id, hashed to what Bedrock accepts"
    assert "anthropic-beta" not in headers or "claude-code" not in headers["anthropic-beta"]


def test_count_tokens_on_a_profile_only_model(plain, sim_url):
    sim = recorder(sim_url)
    client = client_for(plain)
    messages = [{"role": "user", "content": "count these words please"}]
    counted = client.messages.with_raw_response.count_tokens(model=OPUS, messages=messages)
    assert counted.parse().input_tokens > 0
    # bedrock-sim counts on the bare id (Bedrock's refusal there, reported by third parties, would
    # fall back to the estimate).
    assert counted.headers["x-gateway-token-count"] == "bedrock"
    assert calls(sim()) == [("CountTokens", "anthropic.claude-opus-4-8")], "CountTokens takes the bare id"


def test_models_list_the_names_clients_send_and_follow_the_catalog(plain, sim_url):
    client = client_for(plain)
    ids = [m.id for m in client.models.list(limit=1000)]
    assert OPUS in ids and SONNET5 in ids and "claude-haiku-4-5" in ids
    assert not [i for i in ids if i.startswith(("us.", "eu.", "global.", "anthropic."))], ids
    assert client.models.retrieve(OPUS).display_name == "Claude Opus 4.8"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-opus-7")
    # A model Bedrock starts listing appears within one refresh (MODEL_REFRESH_INTERVAL=1 here).
    spec = {"id": "anthropic.claude-opus-7", "name": "Claude Opus 7", "inference_types": ["INFERENCE_PROFILE"],
            "geos": ["us", "global"]}
    urllib.request.urlopen(urllib.request.Request(f"{sim_url}/_sim/models", data=json.dumps(spec).encode(),
                                                  method="POST", headers={"content-type": "application/json"})).read()
    deadline = time.monotonic() + 5
    while "claude-opus-7" not in [m.id for m in client.models.list(limit=1000)]:
        assert time.monotonic() < deadline, "the new model did not appear within one refresh"
        time.sleep(0.2)
    assert client.models.retrieve("claude-opus-7").display_name == "Claude Opus 7"
    sim = recorder(sim_url)
    assert text(client.messages.create(model="claude-opus-7", max_tokens=20,
                                       messages=[{"role": "user", "content": "hi"}]))
    assert calls(sim()) == [("InvokeModel", "us.anthropic.claude-opus-7")]


def test_an_unknown_claude_name_reaches_bedrock_as_itself(plain, sim_url):
    sim = recorder(sim_url)
    with pytest.raises(anthropic.NotFoundError) as e:
        client_for(plain).messages.create(model="claude-opus-9-9", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    assert calls(sim()) == [("InvokeModel", "us.anthropic.claude-opus-9-9")], "never silently another model"


@pytest.mark.parametrize("model,endpoint,bedrock", [("opus-messages", "runtime", "us.anthropic.claude-opus-4-8"),
                                                    ("sonnet5-mantle", "mantle", "anthropic.claude-sonnet-5")])
def test_messages_api_route_on_both_hosts(routed, sim_url, model, endpoint, bedrock):
    sim = recorder(sim_url)
    client = client_for(routed)
    messages = [{"role": "user", "content": "Weather in Paris? [sim tool]"}]
    whole = client.messages.create(model=model, max_tokens=300, tools=TOOLS, messages=messages,
                                   metadata={"user_id": CLAUDE_CODE_USER},
                                   extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS})
    with client.messages.stream(model=model, max_tokens=300, tools=TOOLS, messages=messages) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert whole.model == final.model == model, "the client's name, not Bedrock's id"
    assert whole.stop_reason == final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == [b.type for b in whole.content]
    assert events[0] == "message_start" and "content_block_delta" in events
    received = sim()
    received = [r for r in received if r.get("endpoint") != "control"]
    assert [(r["endpoint"], r["operation"], r["model_id"]) for r in received] == [
        (endpoint, "Messages", bedrock), (endpoint, "MessagesStream", bedrock)]
    first = received[0]
    assert first["path"].endswith("/anthropic/v1/messages") and first["status"] == 200
    assert first["body"]["model"] == bedrock and "anthropic_version" not in first["body"]
    assert len(first["body"]["metadata"]["user_id"]) == 64
    assert "claude-code" not in first["headers"].get("anthropic-beta", "")
    assert f"/{'bedrock-mantle' if endpoint == 'mantle' else 'bedrock'}/aws4_request" in first["headers"]["authorization"]
    assert received[1]["body"]["stream"] is True


def test_messages_api_count_tokens_and_errors(routed, sim_url):
    client = client_for(routed)
    messages = [{"role": "user", "content": "count these words please"}]
    mantle = client.messages.with_raw_response.count_tokens(model="sonnet5-mantle", messages=messages)
    assert mantle.headers["x-gateway-token-count"] == "bedrock" and mantle.parse().input_tokens > 0
    runtime = client.messages.with_raw_response.count_tokens(model="opus-messages", messages=messages)
    assert runtime.headers["x-gateway-token-count"] == "estimate", "runtime's /anthropic cannot count"
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="opus-messages", max_tokens=20,
                               messages=[{"role": "user", "content": "x [sim error=throttling]"}])
    assert e.value.body["error"]["type"] == "rate_limit_error" and e.value.response.headers["retry-after"]
    with pytest.raises(anthropic.APIStatusError) as e:
        with client.messages.stream(model="sonnet5-mantle", max_tokens=50, messages=[
                {"role": "user", "content": "x [sim stream_error=throttling after=3]"}]) as stream:
            for _ in stream:
                pass
    assert "rate_limit_error" in str(e.value.body) or "rate_limit_error" in str(e.value)


def test_usage_of_every_route_is_recorded(routed, sim_url):
    client = client_for(routed)
    before = metric(routed, 'gateway_tokens_total{kind="output",model="opus-messages"}')
    msg = client.messages.create(model="opus-messages", max_tokens=50,
                                 messages=[{"role": "user", "content": "hello [sim words=5]"}])
    with client.messages.stream(model="opus-messages", max_tokens=50,
                                messages=[{"role": "user", "content": "hello [sim words=7]"}]) as stream:
        streamed = stream.get_final_message()
    after = metric(routed, 'gateway_tokens_total{kind="output",model="opus-messages"}')
    assert after - before == msg.usage.output_tokens + streamed.usage.output_tokens


def metric(url, name):
    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
