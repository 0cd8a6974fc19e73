"""The Messages API paths of bedrock-sim, as Bedrock documents and field reports describe them (the
crate docs of bedrock-sim summarise the rules): runtime takes inference-profile ids, Mantle bare ids;
SigV4 with either service name, Bearer or x-api-key; Anthropic's envelope for errors."""

import json
import urllib.request

import pytest
from sigv4_http import send, signed

OPUS = "anthropic.claude-opus-4-8"
OPUS_PROFILE = "us.anthropic.claude-opus-4-8"
ON_DEMAND = ("Invocation of model ID anthropic.claude-opus-4-8 with on-demand throughput isn\u2019t supported. "
             "Retry your request with the ID or ARN of an inference profile that contains this model.")
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def body(model, text="hello there", **extra):
    return {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def runtime(sim_url):
    return f"{sim_url}/anthropic/v1/messages"


def mantle(sim_url, suffix=""):
    return f"{sim_url}/mantle/anthropic/v1/messages{suffix}"


def assert_error(reply, status, kind, contains=""):
    assert reply.status == status, reply.body
    err = reply.json()
    assert err["type"] == "error" and err["error"]["type"] == kind, err
    assert contains in err["error"]["message"]


def text_of(message):
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


def accumulate(events):
    """Rebuilds the message from its stream events, as an SDK does."""
    message = None
    for name, data in events:
        assert name == data["type"]
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["_json"] = block.get("_json", "") + delta["partial_json"]
        elif name == "content_block_stop":
            block = message["content"][data["index"]]
            if "_json" in block:
                block["input"] = json.loads(block.pop("_json"))
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["usage"]["output_tokens"] = data["usage"]["output_tokens"]
    return message


@pytest.mark.parametrize("service", ["bedrock", "bedrock-mantle"])
def test_sigv4_scope_picks_the_host(sim_url, recorded, service):
    model = OPUS_PROFILE if service == "bedrock" else OPUS
    reply = signed(runtime(sim_url), body(model), service)
    assert reply.status == 200, reply.body
    msg = reply.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["id"].startswith("msg_bdrk_")
    assert text_of(msg) == "Hello from bedrock-sim. You said: hello there"
    assert msg["stop_reason"] == "end_turn" and msg["usage"]["input_tokens"] > 0
    assert reply.headers["request-id"]
    [entry] = recorded()
    assert entry["endpoint"] == ("runtime" if service == "bedrock" else "mantle")
    assert entry["operation"] == "Messages" and entry["model_id"] == model
    assert f"/{service}/aws4_request" in entry["headers"]["authorization"]


def test_runtime_takes_profiles_and_refuses_bare_profile_only_ids(sim_url):
    for model in (OPUS_PROFILE, "global." + OPUS,
                  "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu." + OPUS):
        assert signed(runtime(sim_url), body(model), "bedrock").status == 200, model
    assert_error(signed(runtime(sim_url), body(OPUS), "bedrock"), 400, "invalid_request_error", ON_DEMAND)
    assert_error(signed(runtime(sim_url), body("us.anthropic.claude-nope"), "bedrock"), 400,
                 "invalid_request_error", "model identifier is invalid")


def test_mantle_takes_bare_ids_only(sim_url):
    headers = {"authorization": "Bearer ABSKtest"}
    assert send(mantle(sim_url), body(OPUS), headers).status == 200
    assert send(mantle(sim_url), body("anthropic.claude-haiku-4-5"), headers).status == 200
    for model in (OPUS_PROFILE, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + OPUS_PROFILE,
                  "anthropic.claude-sonnet-4-5-20250929-v1:0"):
        assert_error(send(mantle(sim_url), body(model), headers), 404, "not_found_error",
                     f"The model '{model}' does not exist")


@pytest.mark.parametrize("service", ["bedrock", "bedrock-mantle"])
def test_stream_is_plain_sse_and_agrees_with_the_message(sim_url, service):
    model = OPUS_PROFILE if service == "bedrock" else OPUS
    text = "stream please [sim tool thinking]"
    whole = signed(runtime(sim_url), body(model, text, tools=TOOLS), service).json()
    reply = signed(runtime(sim_url), body(model, text, tools=TOOLS, stream=True), service)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = reply.sse()
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" not in names
    assert all("amazon-bedrock-invocationMetrics" not in data for _, data in events)
    streamed = accumulate(events)
    assert [b["type"] for b in streamed["content"]] == [b["type"] for b in whole["content"]] \
        == ["thinking", "text", "tool_use"]
    assert streamed["stop_reason"] == whole["stop_reason"] == "tool_use"
    assert streamed["content"][2]["input"] == whole["content"][2]["input"] == {"city": "bedrock-sim"}
    assert streamed["content"][0]["thinking"] == whole["content"][0]["thinking"]
    assert streamed["content"][0]["signature"] == whole["content"][0]["signature"]


def test_tool_loop_hands_the_signed_thinking_back(sim_url):
    first = signed(runtime(sim_url), body(OPUS_PROFILE, "weather? [sim tool thinking]", tools=TOOLS,
                                          thinking={"type": "adaptive"}), "bedrock").json()
    tool_use = first["content"][-1]
    follow = body(OPUS_PROFILE, tools=TOOLS, thinking={"type": "adaptive"})
    follow["messages"] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}]},
    ]
    reply = signed(runtime(sim_url), follow, "bedrock")
    assert reply.status == 200, reply.body
    assert "sunny" in text_of(reply.json())
    follow["messages"][1]["content"][0]["thinking"] += " (edited)"
    assert_error(signed(runtime(sim_url), follow, "bedrock"), 400, "invalid_request_error", "signature")


def test_count_tokens_on_mantle_matches_countTokens(sim_url):
    import boto3
    from botocore.config import Config

    messages = [{"role": "user", "content": "count these words, please"}]
    reply = signed(mantle(sim_url, "/count_tokens"), {"model": OPUS, "messages": messages}, "bedrock-mantle")
    assert reply.status == 200, reply.body
    client = boto3.client("bedrock-runtime", endpoint_url=sim_url, region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                          config=Config(retries={"total_max_attempts": 1}))
    native = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": messages})
    counted = client.count_tokens(modelId="anthropic.claude-sonnet-4-5-20250929-v1:0",
                                  input={"invokeModel": {"body": native}})
    assert reply.json() == {"input_tokens": counted["inputTokens"]}


def test_runtime_has_no_count_tokens_route(sim_url, recorded):
    reply = signed(f"{sim_url}/anthropic/v1/messages/count_tokens", {"model": OPUS_PROFILE, "messages": []},
                   "bedrock")
    assert reply.status == 200
    assert reply.json()["Output"]["__type"].endswith("#UnknownOperationException")
    assert recorded()[0]["error"] == "UnknownOperationException"


def test_authentication(sim_url):
    assert_error(send(runtime(sim_url), body(OPUS_PROFILE)), 401, "authentication_error")
    assert send(runtime(sim_url), body(OPUS_PROFILE), {"x-api-key": "ABSKtest"}).status == 200
    assert send(runtime(sim_url), body(OPUS_PROFILE), {"authorization": "Bearer ABSKtest"}).status == 200
    assert_error(send(runtime(sim_url), body(OPUS_PROFILE), {"authorization": "Bearer a", "x-api-key": "b"}),
                 401, "authentication_error", "not both")
    assert_error(signed(mantle(sim_url), body(OPUS), "s3"), 401, "authentication_error",
                 "'bedrock-mantle'")


@pytest.mark.parametrize("edit,headers,message", [
    ({}, {"anthropic-beta": "interleaved-thinking-2025-05-14,claude-code-20250219"},
     "Unexpected value(s) `claude-code-20250219` for the `anthropic-beta` header"),
    ({}, {"anthropic-beta": "oauth-2025-04-20"}, "Unexpected value(s) `oauth-2025-04-20`"),
    ({"tools": [{**TOOLS[0], "eager_input_streaming": True}]}, {}, "Extra inputs are not permitted"),
    ({"system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "scope": "global"}}]},
     {}, "Extra inputs are not permitted"),
    ({"metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s"})}}, {},
     "Request metadata contains a value that violates the regular expression"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, {}, "thinking.type.adaptive"),
])
def test_refusals(sim_url, edit, headers, message):
    for url, model, service in ((runtime(sim_url), OPUS_PROFILE, "bedrock"), (mantle(sim_url), OPUS, "bedrock-mantle")):
        assert_error(signed(url, body(model, **edit), service, headers), 400, "invalid_request_error", message)


def test_what_bedrock_takes_is_taken(sim_url):
    ok = body(OPUS_PROFILE, metadata={"user_id": "3f2a9c0e1b7d4a65b8c9d0e1f2a3b4c5"}, thinking={"type": "adaptive"},
              system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    assert signed(runtime(sim_url), ok, "bedrock", {"anthropic-beta": "interleaved-thinking-2025-05-14"}).status == 200


@pytest.mark.parametrize("kind,status,error", [("throttling", 429, "rate_limit_error"),
                                               ("unavailable", 529, "overloaded_error"),
                                               ("access_denied", 403, "permission_error"),
                                               ("internal", 500, "api_error")])
def test_error_directives_use_anthropic_statuses(sim_url, kind, status, error):
    assert_error(signed(runtime(sim_url), body(OPUS_PROFILE, f"x [sim error={kind}]"), "bedrock"), status, error)


def test_stream_error_is_an_sse_error_event(sim_url):
    reply = signed(runtime(sim_url), body(OPUS_PROFILE, "x [sim stream_error=throttling after=3]", stream=True),
                   "bedrock")
    events = reply.sse()
    assert len(events) == 4
    assert events[-1] == ("error", {"type": "error", "error": {"type": "rate_limit_error",
                                                                "message": events[-1][1]["error"]["message"]}})


def test_model_added_at_runtime_is_served(sim_url):
    spec = {"id": "anthropic.claude-opus-9", "name": "Claude Opus 9", "inference_types": ["INFERENCE_PROFILE"],
            "geos": ["us", "global"], "mantle": True, "adaptive_thinking": True}
    request = urllib.request.Request(f"{sim_url}/_sim/models", data=json.dumps(spec).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{sim_url}/_sim/models", timeout=10) as r:
        assert "anthropic.claude-opus-9" in {m["id"] for m in json.loads(r.read())["models"]}
    assert signed(runtime(sim_url), body("global.anthropic.claude-opus-9"), "bedrock").status == 200
    assert send(mantle(sim_url), body("anthropic.claude-opus-9"), {"x-api-key": "k"}).status == 200
    assert_error(signed(runtime(sim_url), body("anthropic.claude-opus-9"), "bedrock"), 400, "invalid_request_error",
                 "on-demand throughput")
